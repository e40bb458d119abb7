// Package token generates, formats, parses and hashes Latchkey's secrets.
//
// A credential token looks like
//
//	lk_<tokenid>_<secret><checksum>
//
// tokenid is 16 lower-case base32 characters (80 random bits), safe to log
// and to use in object names; secret is 43 base64url characters (256 bits
// from crypto/rand); checksum is the CRC-32 of everything before it, in 6
// base62 characters, so secret scanners (and the verifier, before any lookup)
// can tell a Latchkey token from a typo. Lookup is O(1) by token id; the secret
// is compared in constant time against a hash.
//
// Generated secrets are hashed with SHA-256 (their entropy makes a slow hash
// pointless); a user-chosen client secret is hashed with argon2id.
package token
