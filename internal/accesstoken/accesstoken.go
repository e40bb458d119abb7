package accesstoken

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/token"
)

const (
	// Type is the JWS "typ" header of an access token (RFC 9068 §2.1).
	// [Parse] also accepts "application/at+jwt", in any case.
	Type = "at+jwt"
	// Algorithm is the only JWS "alg" that is signed and accepted: ECDSA
	// on P-256 with SHA-256 (RFC 7518 §3.4).
	Algorithm = "ES256"
	// MaxLen is the longest input [Parse] looks at; longer input is
	// rejected before any decoding.
	MaxLen = 4096
	// IssuedAtLeeway is how far in the future "iat" may be, for clock
	// skew between the issuing replica and the verifier.
	IssuedAtLeeway = 60 * time.Second
)

// typeLong is the media-type form of [Type] (RFC 9068 §2.1).
const typeLong = "application/" + Type

// Errors returned by [Parse] and [Sign]. They may be wrapped with detail
// (test with errors.Is); no error ever contains the token or key material.
var (
	// ErrMalformed: not a compact JWS, an unacceptable header, or claims
	// that are missing, of the wrong type, inconsistent or from another
	// issuer.
	ErrMalformed = errors.New("accesstoken: malformed access token")
	// ErrAlgorithm: the header "alg" is not exactly [Algorithm].
	ErrAlgorithm = errors.New("accesstoken: signing algorithm not accepted")
	// ErrUnknownKey: no key with the header "kid" is known.
	ErrUnknownKey = errors.New("accesstoken: unknown signing key")
	// ErrSignature: the signature is not 64 bytes or does not verify.
	ErrSignature = errors.New("accesstoken: invalid signature")
	// ErrExpired: the token's "exp" has passed.
	ErrExpired = errors.New("accesstoken: access token expired")
	// ErrNotYetValid: the token's "iat" is more than [IssuedAtLeeway] in
	// the future.
	ErrNotYetValid = errors.New("accesstoken: access token not yet valid")
	// ErrLifetime: "exp" - "iat" exceeds the maximum lifetime.
	ErrLifetime = errors.New("accesstoken: access token lifetime exceeds the maximum")
)

// Claims are the claims of an access token (RFC 9068 §2.2), plus the id of
// the backing token of the client secret it was issued against.
type Claims struct {
	// Issuer ("iss") is the issuer identifier, an https URL.
	Issuer string `json:"iss"`
	// Subject ("sub") is the client id: no resource owner takes part in
	// the client credentials grant (RFC 9068 §2.2). It equals ClientID.
	Subject string `json:"sub"`
	// Audience ("aud") is the resource the token is meant for. Required
	// by RFC 9068; a single string here.
	Audience string `json:"aud"`
	// ClientID ("client_id") is the client the token was issued to.
	ClientID string `json:"client_id"`
	// Scope ("scope") holds the granted permissions, space-separated.
	Scope string `json:"scope,omitempty"`
	// JTI ("jti") identifies the token; see [NewJTI].
	JTI string `json:"jti"`
	// IssuedAt ("iat") is in seconds since the Unix epoch.
	IssuedAt int64 `json:"iat"`
	// Expires ("exp") is in seconds since the Unix epoch.
	Expires int64 `json:"exp"`
	// TokenID ("latchkey_token_id") is the id of the backing token of the
	// client secret the token was issued against (see token.ValidTokenID).
	TokenID string `json:"latchkey_token_id"`
}

// Scopes returns the permissions in Scope.
func (c Claims) Scopes() []string { return strings.Fields(c.Scope) }

// check reports what is wrong with the claims regardless of any clock or
// issuer: a missing claim, sub != client_id, or exp <= iat.
func (c Claims) check() error {
	switch {
	case c.Issuer == "":
		return fmt.Errorf("%w: iss is missing", ErrMalformed)
	case c.Subject == "":
		return fmt.Errorf("%w: sub is missing", ErrMalformed)
	case c.Audience == "":
		return fmt.Errorf("%w: aud is missing", ErrMalformed)
	case c.ClientID == "":
		return fmt.Errorf("%w: client_id is missing", ErrMalformed)
	case c.JTI == "":
		return fmt.Errorf("%w: jti is missing", ErrMalformed)
	case c.TokenID == "":
		return fmt.Errorf("%w: latchkey_token_id is missing", ErrMalformed)
	case !token.ValidTokenID(c.TokenID):
		return fmt.Errorf("%w: latchkey_token_id is not a token id", ErrMalformed)
	case c.Subject != c.ClientID:
		return fmt.Errorf("%w: sub differs from client_id", ErrMalformed)
	case c.IssuedAt <= 0 || c.Expires <= 0:
		return fmt.Errorf("%w: iat and exp must be positive", ErrMalformed)
	case c.Expires <= c.IssuedAt:
		return fmt.Errorf("%w: exp is not after iat", ErrMalformed)
	}
	return nil
}

var b64 = base64.RawURLEncoding.Strict()

// header is the JWS protected header that Sign writes, in this order.
type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// Sign returns c as a compact JWS signed by k: header
// {"alg":"ES256","typ":"at+jwt","kid":k.ID}, payload the JSON of c, and
// signature r||s, 64 bytes (RFC 7518 §3.4); each part base64url without
// padding. It refuses (ErrMalformed) claims that [Parse] would reject
// whatever the time and issuer: a missing claim (including aud), a
// latchkey_token_id that is not a token id, sub != client_id, exp <= iat, or
// a token longer than [MaxLen] (too many scopes).
func Sign(k Key, c Claims) (string, error) {
	if err := k.check(); err != nil {
		return "", err
	}
	if err := c.check(); err != nil {
		return "", err
	}
	h, err := json.Marshal(header{Alg: Algorithm, Typ: Type, Kid: k.ID})
	if err != nil {
		return "", fmt.Errorf("accesstoken: encoding header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("accesstoken: encoding claims: %w", err)
	}
	tok, err := signJWS(k.Private, h, p)
	if err != nil {
		return "", err
	}
	if len(tok) > MaxLen {
		return "", fmt.Errorf("%w: token would be longer than %d bytes", ErrMalformed, MaxLen)
	}
	return tok, nil
}

// signJWS signs any header and payload; the tests use it to make tokens
// that Sign would refuse to.
func signJWS(priv *ecdsa.PrivateKey, h, p []byte) (string, error) {
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		return "", fmt.Errorf("accesstoken: signing: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig[:]), nil
}

// NewJTI returns a random token identifier: 16 bytes from crypto/rand,
// base64url without padding (22 characters).
func NewJTI() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("accesstoken: reading random bytes: %w", err)
	}
	return b64.EncodeToString(b), nil
}

// LooksLike is a cheap check for dispatching a bearer token to [Parse]: raw
// starts with "eyJ" (base64url of `{"`) and contains exactly two '.'.
func LooksLike(raw string) bool {
	return strings.HasPrefix(raw, "eyJ") && strings.Count(raw, ".") == 2
}

// Parse verifies raw and returns its claims. keys returns the public key
// with a kid, or nil; wantIssuer is the issuer identifier; maxTTL is the
// longest lifetime (exp - iat) accepted, and must be positive.
//
// In order, it rejects:
//   - input longer than [MaxLen], or not three non-empty parts of
//     base64url without padding, separated by '.' (ErrMalformed);
//   - a header that is not a JSON object or repeats a member
//     (ErrMalformed);
//   - a header "alg" other than exactly "ES256", including none, HS256,
//     ES384 or no alg (ErrAlgorithm);
//   - a header "typ" other than "at+jwt" or "application/at+jwt" in any
//     case (ErrMalformed);
//   - a header with "crit", "jku", "jwk", "x5u" or "x5c": a key is never
//     taken from the token (ErrMalformed);
//   - a missing or non-string "kid" (ErrMalformed), or one keys does not
//     know or maps to a key not on P-256 (ErrUnknownKey);
//   - a signature that is not 64 bytes or does not verify (ErrSignature).
//     The signature is verified before the claims are decoded;
//   - claims that are not a JSON object, repeat a member, have a known
//     claim of the wrong type, a missing iss, sub, aud, client_id, jti or
//     latchkey_token_id, a latchkey_token_id that is not a token id,
//     sub != client_id, iat or exp that is not a positive integer within
//     int64, or exp <= iat (ErrMalformed);
//   - iss != wantIssuer (ErrMalformed);
//   - now at or after exp (ErrExpired);
//   - iat more than [IssuedAtLeeway] after now (ErrNotYetValid);
//   - exp - iat greater than maxTTL (ErrLifetime).
//
// Unknown header parameters and claims are ignored.
func Parse(raw string, keys func(kid string) *ecdsa.PublicKey, wantIssuer string, now time.Time, maxTTL time.Duration) (Claims, error) {
	if len(raw) > MaxLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLen)
	}
	h64, rest, _ := strings.Cut(raw, ".")
	p64, s64, _ := strings.Cut(rest, ".")
	if !isB64(h64) || !isB64(p64) || !isB64(s64) {
		return Claims{}, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	hb, err := b64.DecodeString(h64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	sig, err := b64.DecodeString(s64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	hdr, err := object(hb)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if alg, ok := str(hdr["alg"]); !ok || alg != Algorithm {
		return Claims{}, fmt.Errorf("%w: alg is not %s", ErrAlgorithm, Algorithm)
	}
	if typ, ok := str(hdr["typ"]); !ok || !strings.EqualFold(typ, Type) && !strings.EqualFold(typ, typeLong) {
		return Claims{}, fmt.Errorf("%w: typ is not %s", ErrMalformed, Type)
	}
	for _, name := range [...]string{"crit", "jku", "jwk", "x5u", "x5c"} {
		if _, ok := hdr[name]; ok {
			return Claims{}, fmt.Errorf("%w: header parameter %s is not accepted", ErrMalformed, name)
		}
	}
	kid, ok := str(hdr["kid"])
	if !ok || kid == "" {
		return Claims{}, fmt.Errorf("%w: kid is missing or not a string", ErrMalformed)
	}
	var pub *ecdsa.PublicKey
	if keys != nil {
		pub = keys(kid)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return Claims{}, ErrUnknownKey
	}
	if len(sig) != 64 {
		return Claims{}, fmt.Errorf("%w: not 64 bytes", ErrSignature)
	}
	digest := sha256.Sum256([]byte(raw[:len(h64)+1+len(p64)]))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return Claims{}, ErrSignature
	}

	// Signed by one of our keys: now the claims.
	pb, err := b64.DecodeString(p64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	c, err := claims(pb)
	if err != nil {
		return Claims{}, err
	}
	if err := c.check(); err != nil {
		return Claims{}, err
	}
	if c.Issuer != wantIssuer {
		return Claims{}, fmt.Errorf("%w: issued by another issuer", ErrMalformed)
	}
	t := now.Unix()
	if t >= c.Expires {
		return Claims{}, ErrExpired
	}
	if c.IssuedAt > now.Add(IssuedAtLeeway).Unix() {
		return Claims{}, ErrNotYetValid
	}
	if maxTTL <= 0 || c.Expires-c.IssuedAt > int64(maxTTL/time.Second) {
		return Claims{}, ErrLifetime
	}
	return c, nil
}

// isB64 reports whether s is non-empty and only base64url characters (the
// decoder alone would skip '\r' and '\n').
func isB64(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// claims decodes a payload strictly: an object, no member twice, known
// claims of the right JSON type.
func claims(b []byte) (Claims, error) {
	m, err := object(b)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %w", ErrMalformed, err)
	}
	var c Claims
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"iss", &c.Issuer}, {"sub", &c.Subject}, {"aud", &c.Audience},
		{"client_id", &c.ClientID}, {"scope", &c.Scope}, {"jti", &c.JTI},
		{"latchkey_token_id", &c.TokenID},
	} {
		v, present := m[f.name]
		if !present {
			continue
		}
		s, ok := str(v)
		if !ok {
			return Claims{}, fmt.Errorf("%w: %s is not a string", ErrMalformed, f.name)
		}
		*f.dst = s
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"iat", &c.IssuedAt}, {"exp", &c.Expires}} {
		v, present := m[f.name]
		if !present {
			return Claims{}, fmt.Errorf("%w: %s is missing", ErrMalformed, f.name)
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n <= 0 {
			return Claims{}, fmt.Errorf("%w: %s is not a positive integer", ErrMalformed, f.name)
		}
		*f.dst = n
	}
	return c, nil
}

var (
	errNotObject = errors.New("not a JSON object")
	errDuplicate = errors.New("a member appears twice")
)

// object decodes a JSON object into its members, exactly as written (names
// are case-sensitive), rejecting a name that appears twice and anything
// after the object.
func object(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	m := make(map[string]json.RawMessage)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errNotObject
		}
		name, ok := t.(string)
		if !ok {
			return nil, errNotObject
		}
		if _, dup := m[name]; dup {
			return nil, errDuplicate
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errNotObject
		}
		m[name] = bytes.TrimSpace(v)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errNotObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotObject
	}
	return m, nil
}

// str decodes v if it is a JSON string (not null, not a number).
func str(v json.RawMessage) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}
