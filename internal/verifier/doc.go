// Package verifier answers "is this credential valid, and what may it do?"
// for gateways and applications. It is served by the operator binary on its
// own port (every replica; no leader election) or alone (--verifier-only),
// and answers from the manager's informer caches of backing tokens,
// ApiClients and CredentialGrants: no API call is made on the request path.
//
// Endpoints:
//
//	/v1/verify[/...]     forward-auth for Envoy ext_authz, NGINX auth_request, Traefik ForwardAuth
//	/v1/current, /v1/me  the caller's own record (Arvados's "current")
//	/oauth2/introspect   RFC 7662 token introspection
//	/oauth2/token        RFC 6749 §4.4 client_credentials
//
// It serves 503 until its caches have synced and fails closed: anything it
// cannot establish (an object missing from the cache, an unreadable hash, a
// UID that does not match) is a rejection.
package verifier
