// Package accesstoken is the format of the access tokens that /oauth2/token
// issues: JWTs as RFC 9068 profiles them ("typ": "at+jwt"), signed with ES256
// (ECDSA on P-256 with SHA-256, RFC 7518 §3.4) under a key that belongs to the
// operator alone. It is pure: no I/O, no Kubernetes, no clock of its own.
//
// # Why not a key derived from the backing token
//
// Access tokens used to be MACed under a key derived from the stored hash of
// the client secret's backing token. A hash is stored so that reading it does
// not let anyone act as the client; using it as a key undoes that, because
// anyone who can read the stored hash can mint access tokens. Nothing a
// backing token holds is ever key material here: the signing key is a random
// P-256 key the operator creates and keeps in a Secret of its own namespace
// (see [KeySet.Marshal]).
//
// # Why asymmetric
//
// Only the operator holds private keys. Everything that verifies tokens (the
// verification service, API gateways, resource servers) needs only the public
// keys, published as a JWKS (RFC 7517, [KeySet.JWKS]) at
// /.well-known/jwks.json and announced in the RFC 8414 metadata document
// ([Metadata]). A verifier that leaks its keys leaks nothing that signs.
//
// # Rotation
//
// A [KeySet] holds the signing key and the retired keys, newest first.
// [KeySet.Rotate] adds a new signing key and retires the old one; a retired key
// still verifies, until every token it signed has expired, when
// [KeySet.Prune] drops it. A token names its key by "kid" ([KeyID]: a hash
// of the public key, computed the way Kubernetes names service-account keys),
// so verifiers that cache the JWKS refetch it when they meet an unknown kid.
// [KeySet.Due] and [KeySet.NextChange] tell a controller when to act.
//
// # Offline and online verification
//
// [Parse] checks everything a token says about itself: the signature, the
// issuer, the expiry and the lifetime. That is offline verification, and all
// a resource server holding only the JWKS can do: it accepts a token until its
// "exp", even if the client was deleted a second after it was issued, so
// lifetimes are kept short. Latchkey's own verify and introspection endpoints
// also verify online: after [Parse] they check that the client
// ([Claims.ClientID]) and the backing token of the secret the token was issued
// against ([Claims.TokenID]) are still live, so deleting, deactivating or
// rotating past the grace period takes effect at once for them.
//
// # Parsing untrusted input
//
// [Parse] is a small hand-written compact-JWS parser rather than a JOSE
// library, so that the hot path is short, strict and fuzzed (FuzzParse). It
// accepts exactly one algorithm, never follows a key embedded in or pointed to
// by a token, checks the signature before it decodes the claims, and never
// echoes the token or any key material in an error. The tests check
// interoperability with github.com/go-jose/go-jose in both directions.
//
// ECDSA signatures are malleable (both (r, s) and (r, n-s) verify), so one
// set of claims can have more than one valid encoding: identify a token by its
// "jti" (or its claims), never by the hash of its raw string.
package accesstoken
