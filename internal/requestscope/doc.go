// Package requestscope decides whether an original request (method and
// path) is inside a credential's request scope: CredentialGrant
// spec.allowedRequests, entries "METHOD /path/prefix" as in Arvados's token
// scopes. It is pure and protocol-neutral: the verifier's HTTP endpoint and
// its gRPC ext_authz service pass it whatever their gateway sent.
//
// Paths are normalised once (Normalize) and matched on whole segments
// (Rule.Match). What could be read as two different paths by the gateway and
// the backend is refused, never guessed: see Normalize, and the decision
// table in docs/verifier.md.
package requestscope
