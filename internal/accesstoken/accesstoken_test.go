package accesstoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://latchkey.example.com"
	testAudience = "https://api.example.com"
	testTokenID  = "abcdefghijkmnop2"
	testTTL      = 10 * time.Minute
)

var testNow = time.Unix(1_800_000_000, 0).UTC()

func testClaims() Claims {
	return Claims{
		Issuer:   testIssuer,
		Subject:  "id_blogmirror",
		Audience: testAudience,
		ClientID: "id_blogmirror",
		Scope:    "posts:read comments:write",
		JTI:      "3q2-7wAAAAAAAAAAAAAAAA",
		IssuedAt: testNow.Unix(),
		Expires:  testNow.Add(testTTL).Unix(),
		TokenID:  testTokenID,
	}
}

func mustKey(t testing.TB, now time.Time) Key {
	t.Helper()
	k, err := NewKey(now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, k Key, c Claims) string {
	t.Helper()
	tok, err := Sign(k, c)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

// claimsMap is c as a JSON object, to edit.
func claimsMap(t testing.TB, c Claims) map[string]any {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawES256 signs any header and payload with priv.
func rawES256(t testing.TB, priv *ecdsa.PrivateKey, h, p []byte) string {
	t.Helper()
	tok, err := signJWS(priv, h, p)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestRoundTrip(t *testing.T) {
	k := mustKey(t, testNow)
	ks := KeySet{Keys: []Key{k}}
	c := testClaims()
	tok := mustSign(t, k, c)
	if !LooksLike(tok) {
		t.Errorf("LooksLike(%q) = false", tok)
	}
	got, err := Parse(tok, ks.PublicKey, testIssuer, testNow, testTTL)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got != c {
		t.Errorf("Parse = %+v, want %+v", got, c)
	}
	if s := got.Scopes(); len(s) != 2 || s[0] != "posts:read" || s[1] != "comments:write" {
		t.Errorf("Scopes = %q", s)
	}

	parts := strings.Split(tok, ".")
	h, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"ES256","typ":"at+jwt","kid":"` + k.ID + `"}`; string(h) != want {
		t.Errorf("header = %s, want %s", h, want)
	}
	if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(sig) != 64 {
		t.Errorf("signature is %d bytes, want 64", len(sig))
	}

	// No scope: the claim is left out and Scopes is empty.
	c.Scope = ""
	got, err = Parse(mustSign(t, k, c), ks.PublicKey, testIssuer, testNow, testTTL)
	if err != nil || got != c || len(got.Scopes()) != 0 {
		t.Errorf("without scope: %+v, %v", got, err)
	}
}

func TestParseAccepts(t *testing.T) {
	k := mustKey(t, testNow)
	ks := KeySet{Keys: []Key{k}}
	hdr := func(typ string) []byte {
		return mustJSON(t, map[string]any{"alg": "ES256", "typ": typ, "kid": k.ID})
	}
	c := testClaims()
	for _, tc := range []struct {
		name string
		raw  string
		now  time.Time
	}{
		{"typ application/at+jwt", rawES256(t, k.Private, hdr("application/at+jwt"), mustJSON(t, c)), testNow},
		{"typ in upper case", rawES256(t, k.Private, hdr("AT+JWT"), mustJSON(t, c)), testNow},
		{"typ Application/At+Jwt", rawES256(t, k.Private, hdr("Application/At+Jwt"), mustJSON(t, c)), testNow},
		{"unknown header and claims ignored", rawES256(t, k.Private,
			mustJSON(t, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": k.ID, "cty": "x"}),
			mustJSON(t, func() map[string]any { m := claimsMap(t, c); m["extra"] = []int{1}; return m }())), testNow},
		{"one second before exp", mustSign(t, k, c), time.Unix(c.Expires-1, 999_999_999)},
		{"iat exactly IssuedAtLeeway ahead", mustSign(t, k, c), testNow.Add(-IssuedAtLeeway)},
		{"lifetime exactly maxTTL", mustSign(t, k, c), testNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.raw, ks.PublicKey, testIssuer, tc.now, testTTL)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got != c {
				t.Errorf("Parse = %+v, want %+v", got, c)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	k := mustKey(t, testNow)
	other := mustKey(t, testNow)
	ks := KeySet{Keys: []Key{k}}
	good := mustSign(t, k, testClaims())
	parts := strings.Split(good, ".")
	goodHdr := map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": k.ID}

	// withHeader signs the good claims under the good header changed by edit.
	withHeader := func(edit func(h map[string]any)) string {
		h := map[string]any{}
		for n, v := range goodHdr {
			h[n] = v
		}
		edit(h)
		return rawES256(t, k.Private, mustJSON(t, h), mustJSON(t, testClaims()))
	}
	// withClaims signs the good claims changed by edit, under the good header.
	withClaims := func(edit func(m map[string]any)) string {
		m := claimsMap(t, testClaims())
		edit(m)
		return rawES256(t, k.Private, mustJSON(t, goodHdr), mustJSON(t, m))
	}
	withRawClaims := func(payload string) string {
		return rawES256(t, k.Private, mustJSON(t, goodHdr), []byte(payload))
	}
	drop := func(name string) string { return withClaims(func(m map[string]any) { delete(m, name) }) }
	set := func(name string, v any) string { return withClaims(func(m map[string]any) { m[name] = v }) }
	hmacTok := func(h []byte, key []byte) string {
		input := enc(h) + "." + enc(mustJSON(t, testClaims()))
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(input))
		return input + "." + enc(mac.Sum(nil))
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es384 := func() string {
		h := mustJSON(t, map[string]any{"alg": "ES384", "typ": "at+jwt", "kid": k.ID})
		input := enc(h) + "." + parts[1]
		d := sha512.Sum384([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, p384, d[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 96)
		r.FillBytes(sig[:48])
		s.FillBytes(sig[48:])
		return input + "." + enc(sig)
	}()
	asn1Sig := func() string {
		input := parts[0] + "." + parts[1]
		d := sha256.Sum256([]byte(input))
		sig, err := ecdsa.SignASN1(rand.Reader, k.Private, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return input + "." + enc(sig)
	}()
	tampered := func() string {
		m := claimsMap(t, testClaims())
		m["scope"] = "posts:read comments:write admin"
		return enc(mustJSON(t, goodHdr)) + "." + enc(mustJSON(t, m)) + "." + parts[2]
	}()
	c := testClaims()
	exp := func(iat, exp int64) string {
		cc := c
		cc.IssuedAt, cc.Expires = iat, exp
		return mustSign(t, k, cc)
	}
	oversized := func() string {
		cc := c
		cc.Scope = strings.Repeat("p ", MaxLen/2)
		return rawES256(t, k.Private, mustJSON(t, goodHdr), mustJSON(t, cc))
	}()

	for _, tc := range []struct {
		name string
		raw  string
		now  time.Time // testNow if zero
		iss  string    // testIssuer if empty
		want error
	}{
		// Shape.
		{name: "empty", raw: "", want: ErrMalformed},
		{name: "oversized (validly signed)", raw: oversized, want: ErrMalformed},
		{name: "good token padded past MaxLen", raw: good + strings.Repeat("A", MaxLen-len(good)+1), want: ErrMalformed},
		{name: "two parts", raw: parts[0] + "." + parts[1], want: ErrMalformed},
		{name: "four parts", raw: good + "." + parts[2], want: ErrMalformed},
		{name: "empty header", raw: "." + parts[1] + "." + parts[2], want: ErrMalformed},
		{name: "empty payload", raw: parts[0] + ".." + parts[2], want: ErrMalformed},
		{name: "alg none, empty signature", raw: enc([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+k.ID+`"}`)) + "." + parts[1] + ".", want: ErrMalformed},
		{name: "padding", raw: good + "==", want: ErrMalformed},
		{name: "standard base64 alphabet", raw: parts[0] + "." + parts[1] + "+/" + "." + parts[2], want: ErrMalformed},
		{name: "newline inside", raw: parts[0][:4] + "\n" + parts[0][4:] + "." + parts[1] + "." + parts[2], want: ErrMalformed},
		{name: "non-canonical base64 (trailing bits)", raw: enc([]byte(`{"a":1}`))[:9] + "B." + parts[1] + "." + parts[2], want: ErrMalformed},
		{name: "header not JSON", raw: enc([]byte("alg=ES256")) + "." + parts[1] + "." + parts[2], want: ErrMalformed},
		{name: "header an array", raw: rawES256(t, k.Private, []byte(`["ES256"]`), mustJSON(t, c)), want: ErrMalformed},
		{name: "header with trailing data", raw: rawES256(t, k.Private, append(mustJSON(t, goodHdr), "{}"...), mustJSON(t, c)), want: ErrMalformed},
		{name: "header alg twice", raw: rawES256(t, k.Private, []byte(`{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"`+k.ID+`"}`), mustJSON(t, c)), want: ErrMalformed},

		// Algorithm.
		{name: "alg none with a signature", raw: withHeader(func(h map[string]any) { h["alg"] = "none" }), want: ErrAlgorithm},
		{name: "alg HS256 keyed with the public key", raw: hmacTok(mustJSON(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": k.ID}), pubDER), want: ErrAlgorithm},
		{name: "alg HS256 keyed with a secret", raw: hmacTok(mustJSON(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": k.ID}), []byte("0123456789abcdef0123456789abcdef")), want: ErrAlgorithm},
		{name: "alg ES384", raw: es384, want: ErrAlgorithm},
		{name: "alg missing", raw: withHeader(func(h map[string]any) { delete(h, "alg") }), want: ErrAlgorithm},
		{name: "alg lower case", raw: withHeader(func(h map[string]any) { h["alg"] = "es256" }), want: ErrAlgorithm},
		{name: "alg not a string", raw: withHeader(func(h map[string]any) { h["alg"] = []string{"ES256"} }), want: ErrAlgorithm},
		{name: "Alg instead of alg", raw: withHeader(func(h map[string]any) { delete(h, "alg"); h["Alg"] = "ES256" }), want: ErrAlgorithm},

		// Type and header parameters.
		{name: "typ missing", raw: withHeader(func(h map[string]any) { delete(h, "typ") }), want: ErrMalformed},
		{name: "typ JWT", raw: withHeader(func(h map[string]any) { h["typ"] = "JWT" }), want: ErrMalformed},
		{name: "typ null", raw: withHeader(func(h map[string]any) { h["typ"] = nil }), want: ErrMalformed},
		{name: "crit", raw: withHeader(func(h map[string]any) { h["crit"] = []string{"exp"} }), want: ErrMalformed},
		{name: "jku", raw: withHeader(func(h map[string]any) { h["jku"] = "https://attacker.example/jwks.json" }), want: ErrMalformed},
		{name: "jwk", raw: withHeader(func(h map[string]any) { h["jwk"] = map[string]any{"kty": "EC"} }), want: ErrMalformed},
		{name: "x5u", raw: withHeader(func(h map[string]any) { h["x5u"] = "https://attacker.example/cert.pem" }), want: ErrMalformed},
		{name: "x5c", raw: withHeader(func(h map[string]any) { h["x5c"] = []string{"MIIB"} }), want: ErrMalformed},
		{name: "kid missing", raw: withHeader(func(h map[string]any) { delete(h, "kid") }), want: ErrMalformed},
		{name: "kid not a string", raw: withHeader(func(h map[string]any) { h["kid"] = 1 }), want: ErrMalformed},

		// Key and signature.
		{name: "unknown kid", raw: mustSign(t, other, c), want: ErrUnknownKey},
		{name: "other P-256 key under a known kid", raw: rawES256(t, other.Private, mustJSON(t, goodHdr), mustJSON(t, c)), want: ErrSignature},
		{name: "tampered payload", raw: tampered, want: ErrSignature},
		{name: "signature of another token", raw: parts[0] + "." + strings.Split(exp(c.IssuedAt, c.Expires-1), ".")[1] + "." + parts[2], want: ErrSignature},
		{name: "signature 63 bytes", raw: parts[0] + "." + parts[1] + "." + enc(make([]byte, 63)), want: ErrSignature},
		{name: "signature 65 bytes", raw: good + "AA", want: ErrSignature},
		{name: "signature ASN.1 DER", raw: asn1Sig, want: ErrSignature},
		{name: "signature zero", raw: parts[0] + "." + parts[1] + "." + enc(make([]byte, 64)), want: ErrSignature},
		{name: "signature r||s swapped", raw: func() string {
			sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
			return parts[0] + "." + parts[1] + "." + enc(append(sig[32:64:64], sig[:32]...))
		}(), want: ErrSignature},

		// Claims.
		{name: "claims not JSON", raw: withRawClaims("iss=x"), want: ErrMalformed},
		{name: "claims an array", raw: withRawClaims(`[1,2]`), want: ErrMalformed},
		{name: "claims a string", raw: withRawClaims(`"sub"`), want: ErrMalformed},
		{name: "claims with sub twice", raw: withRawClaims(strings.Replace(string(mustJSON(t, c)), `"sub":"id_blogmirror"`, `"sub":"id_blogmirror","sub":"id_admin"`, 1)), want: ErrMalformed},
		{name: "iss missing", raw: drop("iss"), want: ErrMalformed},
		{name: "sub missing", raw: drop("sub"), want: ErrMalformed},
		{name: "aud missing", raw: drop("aud"), want: ErrMalformed},
		{name: "client_id missing", raw: drop("client_id"), want: ErrMalformed},
		{name: "jti missing", raw: drop("jti"), want: ErrMalformed},
		{name: "latchkey_token_id missing", raw: drop("latchkey_token_id"), want: ErrMalformed},
		{name: "iat missing", raw: drop("iat"), want: ErrMalformed},
		{name: "exp missing", raw: drop("exp"), want: ErrMalformed},
		{name: "sub empty", raw: set("sub", ""), want: ErrMalformed},
		{name: "iss null", raw: set("iss", nil), want: ErrMalformed},
		{name: "aud an array", raw: set("aud", []string{testAudience}), want: ErrMalformed},
		{name: "scope an array", raw: set("scope", []string{"posts:read"}), want: ErrMalformed},
		{name: "latchkey_token_id not a token id", raw: set("latchkey_token_id", "ABCDEFGHIJKLMNOP"), want: ErrMalformed},
		{name: "sub != client_id", raw: set("sub", "id_admin"), want: ErrMalformed},
		{name: "exp == iat", raw: set("exp", c.IssuedAt), want: ErrMalformed},
		{name: "exp < iat", raw: set("exp", c.IssuedAt-1), want: ErrMalformed},
		{name: "iat a float", raw: withRawClaims(strings.Replace(string(mustJSON(t, c)), `"iat":1800000000`, `"iat":1800000000.5`, 1)), want: ErrMalformed},
		{name: "iat in exponent form", raw: withRawClaims(strings.Replace(string(mustJSON(t, c)), `"iat":1800000000`, `"iat":18e8`, 1)), want: ErrMalformed},
		{name: "iat a string", raw: set("iat", "1800000000"), want: ErrMalformed},
		{name: "iat zero", raw: set("iat", 0), want: ErrMalformed},
		{name: "iat negative", raw: set("iat", -1), want: ErrMalformed},
		{name: "exp beyond int64", raw: withRawClaims(strings.Replace(string(mustJSON(t, c)), `"exp":1800000600`, `"exp":9223372036854775808`, 1)), want: ErrMalformed},
		{name: "wrong issuer", raw: good, iss: "https://other.example.com", want: ErrMalformed},
		{name: "issuer differs by a trailing slash", raw: good, iss: testIssuer + "/", want: ErrMalformed},

		// Time.
		{name: "expired at exp", raw: good, now: time.Unix(c.Expires, 0), want: ErrExpired},
		{name: "expired after exp", raw: good, now: testNow.Add(24 * time.Hour), want: ErrExpired},
		{name: "iat 61 s ahead", raw: exp(testNow.Unix()+61, testNow.Unix()+61+60), want: ErrNotYetValid},
		{name: "exp - iat above maxTTL", raw: exp(c.IssuedAt, c.IssuedAt+int64(testTTL/time.Second)+1), want: ErrLifetime},
		{name: "exp far in the future", raw: exp(c.IssuedAt, 1<<62), want: ErrLifetime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now, iss := tc.now, tc.iss
			if now.IsZero() {
				now = testNow
			}
			if iss == "" {
				iss = testIssuer
			}
			got, err := Parse(tc.raw, ks.PublicKey, iss, now, testTTL)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %+v, %v; want %v", got, err, tc.want)
			}
			if got != (Claims{}) {
				t.Errorf("Parse returned claims with an error: %+v", got)
			}
			t.Log(err)
			checkNoEcho(t, err, tc.raw)
		})
	}
}

// checkNoEcho fails if err contains any part of raw long enough to matter.
func checkNoEcho(t *testing.T, err error, raw string) {
	t.Helper()
	msg := err.Error()
	for _, p := range strings.Split(raw, ".") {
		if len(p) >= 8 && strings.Contains(msg, p) {
			t.Errorf("error %q contains part of the token", msg)
		}
	}
}

func TestParseKeys(t *testing.T) {
	k := mustKey(t, testNow)
	tok := mustSign(t, k, testClaims())
	if _, err := Parse(tok, nil, testIssuer, testNow, testTTL); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("nil keys: %v", err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(tok, func(string) *ecdsa.PublicKey { return &p384.PublicKey }, testIssuer, testNow, testTTL); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("P-384 key: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Millisecond} {
		if _, err := Parse(tok, KeySet{Keys: []Key{k}}.PublicKey, testIssuer, testNow, ttl); !errors.Is(err, ErrLifetime) {
			t.Errorf("maxTTL %v: %v", ttl, err)
		}
	}
}

func TestSignRejects(t *testing.T) {
	k := mustKey(t, testNow)
	for _, tc := range []struct {
		name string
		edit func(*Claims)
	}{
		{"no iss", func(c *Claims) { c.Issuer = "" }},
		{"no aud", func(c *Claims) { c.Audience = "" }},
		{"no jti", func(c *Claims) { c.JTI = "" }},
		{"bad token id", func(c *Claims) { c.TokenID = "tok" }},
		{"sub != client_id", func(c *Claims) { c.Subject = "id_other" }},
		{"exp <= iat", func(c *Claims) { c.Expires = c.IssuedAt }},
		{"iat zero", func(c *Claims) { c.IssuedAt = 0 }},
		{"too long", func(c *Claims) { c.Scope = strings.Repeat("x ", MaxLen/2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testClaims()
			tc.edit(&c)
			if tok, err := Sign(k, c); !errors.Is(err, ErrMalformed) {
				t.Errorf("Sign = %q, %v; want ErrMalformed", tok, err)
			}
		})
	}

	bad := k
	bad.ID = KeyID(&mustKey(t, testNow).Private.PublicKey)
	if _, err := Sign(bad, testClaims()); err == nil {
		t.Error("Sign accepted a key whose ID is another key's")
	}
	if _, err := Sign(Key{ID: k.ID}, testClaims()); err == nil {
		t.Error("Sign accepted a key without a private key")
	}
}

func TestLooksLike(t *testing.T) {
	for raw, want := range map[string]bool{
		"eyJhbGciOiJFUzI1NiJ9.eyJ9.sig": true,
		"eyJ..":                         true,
		"lk_abcdefghijkmnop2.secret":    false,
		"lka_abcdefghijkmnop2.x.y":      false,
		"eyJa.b":                        false,
		"eyJa.b.c.d":                    false,
		"":                              false,
	} {
		if got := LooksLike(raw); got != want {
			t.Errorf("LooksLike(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestNewJTI(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		j, err := NewJTI()
		if err != nil {
			t.Fatal(err)
		}
		if b, err := base64.RawURLEncoding.DecodeString(j); err != nil || len(b) != 16 {
			t.Fatalf("NewJTI = %q: not 16 bytes of base64url", j)
		}
		if seen[j] {
			t.Fatalf("NewJTI repeated %q", j)
		}
		seen[j] = true
	}
}

func TestKeyID(t *testing.T) {
	k := mustKey(t, testNow)
	der, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k.ID != want || KeyID(&k.Private.PublicKey) != want {
		t.Errorf("KeyID = %q, Key.ID = %q, want %q", KeyID(&k.Private.PublicKey), k.ID, want)
	}
	if len(k.ID) != 43 {
		t.Errorf("KeyID is %d characters, want 43", len(k.ID))
	}
	if KeyID(nil) != "" {
		t.Error("KeyID(nil) is not empty")
	}
	if k2 := mustKey(t, testNow); k2.ID == k.ID {
		t.Error("two keys have the same id")
	}
}

func TestKeySetLifecycle(t *testing.T) {
	const every, ttl = 24 * time.Hour, time.Hour
	pruneAfter := ttl + IssuedAtLeeway
	t0 := testNow

	var empty KeySet
	if _, ok := empty.Signing(); ok {
		t.Error("an empty set has a signing key")
	}
	if !empty.Due(t0, every, ttl) || empty.NextChange(t0, every, ttl) != 0 {
		t.Error("an empty set is not due now")
	}

	ks, err := empty.Rotate(t0)
	if err != nil {
		t.Fatal(err)
	}
	k1, ok := ks.Signing()
	if !ok || len(ks.Keys) != 1 || !k1.CreatedAt.Equal(t0) || k1.RetiredAt != nil {
		t.Fatalf("after the first Rotate: %+v", ks.Keys)
	}
	if ks.Due(t0, every, ttl) {
		t.Error("a new key is due")
	}
	if d := ks.NextChange(t0, every, ttl); d != every {
		t.Errorf("NextChange = %v, want %v", d, every)
	}
	if d := ks.NextChange(t0.Add(every-time.Second), every, ttl); d != time.Second {
		t.Errorf("NextChange a second before rotation = %v", d)
	}
	if ks.Due(t0, 0, ttl) || ks.NextChange(t0.Add(1000*every), 0, ttl) != 0 {
		t.Error("rotateEvery 0 scheduled a change")
	}

	// Rotation is due; rotate.
	t1 := t0.Add(every)
	if !ks.Due(t1, every, ttl) || ks.NextChange(t1, every, ttl) != 0 || ks.NextChange(t1.Add(time.Hour), every, ttl) != 0 {
		t.Fatal("rotation is not due after rotateEvery")
	}
	ks2, err := ks.Rotate(t1)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Keys[0].RetiredAt != nil {
		t.Error("Rotate modified its receiver")
	}
	k2, _ := ks2.Signing()
	if len(ks2.Keys) != 2 || ks2.Keys[0].ID != k2.ID || k2.ID == k1.ID || ks2.Keys[1].ID != k1.ID {
		t.Fatalf("after Rotate: %+v", ks2.Keys)
	}
	if r := ks2.Keys[1].RetiredAt; r == nil || !r.Equal(t1) {
		t.Errorf("old key RetiredAt = %v, want %v", r, t1)
	}
	if ks2.PublicKey(k1.ID) == nil || ks2.PublicKey(k2.ID) == nil || ks2.PublicKey("nope") != nil {
		t.Error("PublicKey does not find both keys")
	}
	// A token the old key signed just before rotation still verifies.
	c := testClaims()
	c.IssuedAt, c.Expires = t1.Unix()-1, t1.Add(ttl).Unix()-1
	old := mustSign(t, k1, c)
	if _, err := Parse(old, ks2.PublicKey, testIssuer, t1.Add(ttl-2*time.Second), ttl); err != nil {
		t.Errorf("a token of the retired key: %v", err)
	}

	// The retired key is pruned after maxTTL + IssuedAtLeeway.
	if ks2.Due(t1, every, ttl) {
		t.Error("due right after rotation")
	}
	if d := ks2.NextChange(t1, every, ttl); d != pruneAfter {
		t.Errorf("NextChange after rotation = %v, want %v", d, pruneAfter)
	}
	before := t1.Add(pruneAfter - time.Nanosecond)
	if out, changed := ks2.Prune(before, ttl); changed || len(out.Keys) != 2 || ks2.Due(before, every, ttl) {
		t.Error("pruned before every token of the retired key expired")
	}
	at := t1.Add(pruneAfter)
	if !ks2.Due(at, every, ttl) || ks2.NextChange(at, every, ttl) != 0 {
		t.Error("pruning is not due")
	}
	ks3, changed := ks2.Prune(at, ttl)
	if !changed || len(ks3.Keys) != 1 || ks3.Keys[0].ID != k2.ID || len(ks2.Keys) != 2 {
		t.Fatalf("Prune = %+v, %v", ks3.Keys, changed)
	}
	if ks3.PublicKey(k1.ID) != nil {
		t.Error("a pruned key still verifies")
	}
	if d := ks3.NextChange(at, every, ttl); d != every-pruneAfter {
		t.Errorf("NextChange after Prune = %v, want %v", d, every-pruneAfter)
	}
	if out, changed := ks3.Prune(at.Add(1000*every), ttl); changed || len(out.Keys) != 1 {
		t.Error("Prune dropped the signing key")
	}

	// Rotating often: NextChange is the earliest of several retired keys.
	ks4, _ := ks3.Rotate(at)
	ks4, _ = ks4.Rotate(at.Add(time.Minute))
	if len(ks4.Keys) != 3 {
		t.Fatalf("%d keys", len(ks4.Keys))
	}
	if d := ks4.NextChange(at.Add(time.Minute), every, ttl); d != pruneAfter-time.Minute {
		t.Errorf("NextChange = %v, want %v", d, pruneAfter-time.Minute)
	}
}

func TestSigningPicksNewest(t *testing.T) {
	a, b := mustKey(t, testNow), mustKey(t, testNow.Add(time.Hour))
	retired := testNow.Add(2 * time.Hour)
	c := mustKey(t, testNow.Add(3*time.Hour))
	c.RetiredAt = &retired
	ks := KeySet{Keys: []Key{c, a, b}} // out of order, two not retired
	s, ok := ks.Signing()
	if !ok || s.ID != b.ID {
		t.Errorf("Signing = %s, want %s", s.ID, b.ID)
	}
	r, err := ks.Rotate(testNow.Add(4 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range r.Keys[1:] {
		if k.RetiredAt == nil {
			t.Errorf("key %s not retired by Rotate", k.ID)
		}
	}
	if !r.Keys[3].RetiredAt.Equal(testNow.Add(4 * time.Hour)) {
		t.Error("Rotate retired a key at the wrong time")
	}
	if r.Keys[0].RetiredAt != nil {
		t.Error("the new key is retired")
	}
}

func TestMarshalUnmarshal(t *testing.T) {
	ks, err := KeySet{}.Rotate(testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ks, err = ks.Rotate(testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	data, err := ks.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1 || data[DataKey] == nil {
		t.Fatalf("Marshal data keys: %v", data)
	}
	var stored []map[string]any
	if err := json.Unmarshal(data[DataKey], &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0]["kid"] != ks.Keys[0].ID || stored[0]["retired_at"] != nil || stored[1]["retired_at"] == nil {
		t.Errorf("stored JSON: %s", data[DataKey])
	}
	got, err := Unmarshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 {
		t.Fatalf("%d keys", len(got.Keys))
	}
	for i, k := range got.Keys {
		w := ks.Keys[i]
		if k.ID != w.ID || !k.Private.Equal(w.Private) || !k.CreatedAt.Equal(w.CreatedAt) ||
			(k.RetiredAt == nil) != (w.RetiredAt == nil) || (k.RetiredAt != nil && !k.RetiredAt.Equal(*w.RetiredAt)) {
			t.Errorf("key %d: got %+v, want %+v", i, k, w)
		}
	}
	again, err := got.Marshal()
	if err != nil || string(again[DataKey]) != string(data[DataKey]) {
		t.Errorf("Marshal is not stable:\n%s\n%s", data[DataKey], again[DataKey])
	}

	// Stored oldest first: read back newest first.
	rev := []json.RawMessage{}
	if err := json.Unmarshal(data[DataKey], &rev); err != nil {
		t.Fatal(err)
	}
	rev[0], rev[1] = rev[1], rev[0]
	got, err = Unmarshal(map[string][]byte{DataKey: mustJSON(t, rev)})
	if err != nil || got.Keys[0].ID != ks.Keys[0].ID {
		t.Errorf("Unmarshal did not order newest first: %v", err)
	}

	empty, err := KeySet{}.Marshal()
	if err != nil || string(empty[DataKey]) != "[]" {
		t.Errorf("empty set: %s, %v", empty[DataKey], err)
	}
	if got, err := Unmarshal(empty); err != nil || len(got.Keys) != 0 {
		t.Errorf("Unmarshal(empty) = %v, %v", got, err)
	}

	bad := ks.Keys[0]
	bad.ID = ks.Keys[1].ID
	if _, err := (KeySet{Keys: []Key{bad}}).Marshal(); err == nil {
		t.Error("Marshal accepted a key with another key's id")
	}
}

func TestUnmarshalRejects(t *testing.T) {
	k := mustKey(t, testNow)
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	priv := base64.StdEncoding.EncodeToString(der)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der384, err := x509.MarshalPKCS8PrivateKey(p384)
	if err != nil {
		t.Fatal(err)
	}
	priv384 := base64.StdEncoding.EncodeToString(der384)
	entry := func(edit func(m map[string]any)) map[string][]byte {
		m := map[string]any{"kid": k.ID, "created_at": testNow, "private_key": priv}
		edit(m)
		return map[string][]byte{DataKey: mustJSON(t, []any{m})}
	}
	other := mustKey(t, testNow)

	for _, tc := range []struct {
		name string
		data map[string][]byte
		want string
	}{
		{"no data key", map[string][]byte{"other": []byte("[]")}, "no keys.json"},
		{"not JSON", map[string][]byte{DataKey: []byte("{")}, "not a JSON array"},
		{"an object", map[string][]byte{DataKey: []byte(`{"kid":"x"}`)}, "not a JSON array"},
		{"kid of another key", entry(func(m map[string]any) { m["kid"] = other.ID }), "kid does not match"},
		{"kid missing", entry(func(m map[string]any) { delete(m, "kid") }), "kid is missing"},
		{"created_at missing", entry(func(m map[string]any) { delete(m, "created_at") }), "created_at is missing"},
		{"private_key missing", entry(func(m map[string]any) { delete(m, "private_key") }), "private_key is missing"},
		{"private_key not base64", entry(func(m map[string]any) { m["private_key"] = "!!" + priv }), "not base64"},
		{"private_key not PKCS#8", entry(func(m map[string]any) { m["private_key"] = base64.StdEncoding.EncodeToString(der[:len(der)-1]) }), "not a PKCS#8"},
		{"P-384", entry(func(m map[string]any) { m["kid"] = KeyID(&p384.PublicKey); m["private_key"] = priv384 }), "not on P-256"},
		{"kid twice", map[string][]byte{DataKey: mustJSON(t, []any{
			map[string]any{"kid": k.ID, "created_at": testNow, "private_key": priv},
			map[string]any{"kid": k.ID, "created_at": testNow, "private_key": priv},
		})}, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal: %v; want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), priv[20:60]) || strings.Contains(err.Error(), priv384[20:60]) {
				t.Errorf("error contains key material: %v", err)
			}
		})
	}
}

func TestJWKS(t *testing.T) {
	// Find a key whose x or y is shorter than 32 bytes, to check padding.
	var short Key
	for short.Private == nil {
		k := mustKey(t, testNow.Add(time.Hour))
		if k.Private.X.BitLen() <= 248 || k.Private.Y.BitLen() <= 248 {
			short = k
		}
	}
	r := testNow.Add(time.Hour)
	old := mustKey(t, testNow)
	old.RetiredAt = &r
	ks := KeySet{Keys: []Key{short, old}}

	raw := ks.JWKS()
	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 || doc.Keys[0]["kid"] != short.ID || doc.Keys[1]["kid"] != old.ID {
		t.Fatalf("JWKS = %s", raw)
	}
	for _, m := range doc.Keys {
		want := map[string]bool{"kty": true, "crv": true, "x": true, "y": true, "kid": true, "use": true, "alg": true}
		for n := range m {
			if !want[n] {
				t.Errorf("JWKS member %q", n)
			}
		}
		if m["kty"] != "EC" || m["crv"] != "P-256" || m["use"] != "sig" || m["alg"] != "ES256" || len(m["x"]) != 43 || len(m["y"]) != 43 {
			t.Errorf("JWK %v", m)
		}
	}
	if string(ks.JWKS()) != string(raw) {
		t.Error("JWKS is not deterministic")
	}
	if got := string(KeySet{}.JWKS()); got != `{"keys":[]}` {
		t.Errorf("empty JWKS = %s", got)
	}

	// go-jose reads it: public keys equal to ours.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot read the JWKS: %v", err)
	}
	for _, k := range ks.Keys {
		found := set.Key(k.ID)
		if len(found) != 1 {
			t.Fatalf("go-jose finds %d keys for %s", len(found), k.ID)
		}
		j := found[0]
		pub, ok := j.Key.(*ecdsa.PublicKey)
		if !ok || !j.IsPublic() || !j.Valid() || j.Algorithm != "ES256" || j.Use != "sig" || !pub.Equal(&k.Private.PublicKey) {
			t.Errorf("go-jose read key %s as %+v", k.ID, j)
		}
	}
}

func TestMetadata(t *testing.T) {
	for _, base := range []string{"https://latchkey.example.com", "https://latchkey.example.com/"} {
		raw := Metadata(testIssuer, base)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"issuer":                                testIssuer,
			"token_endpoint":                        "https://latchkey.example.com/oauth2/token",
			"jwks_uri":                              "https://latchkey.example.com/.well-known/jwks.json",
			"introspection_endpoint":                "https://latchkey.example.com/oauth2/introspect",
			"revocation_endpoint":                   "https://latchkey.example.com/oauth2/revoke",
			"grant_types_supported":                 []any{"client_credentials"},
			"response_types_supported":              []any{},
			"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post"},
			"introspection_endpoint_auth_methods_supported": []any{"client_secret_basic", "bearer"},
		}
		if g, w := string(mustJSON(t, m)), string(mustJSON(t, want)); g != w {
			t.Errorf("Metadata(%q) =\n%s\nwant\n%s", base, g, w)
		}
		if string(Metadata(testIssuer, base)) != string(raw) {
			t.Error("Metadata is not deterministic")
		}
	}
}

// TestGoJoseVerifiesOurTokens: a JOSE library verifies what we sign, with
// the keys it reads from our JWKS, before and after a rotation.
func TestGoJoseVerifiesOurTokens(t *testing.T) {
	ks, err := KeySet{}.Rotate(testNow)
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := ks.Signing()
	c := testClaims()
	tok1 := mustSign(t, k1, c)
	ks, err = ks.Rotate(testNow)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := ks.Signing()
	tok2 := mustSign(t, k2, c)

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(ks.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	for i, tok := range []string{tok1, tok2} {
		for range 20 { // signatures are random: a few, for leading zero bytes of r and s
			obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatalf("token %d: go-jose cannot parse: %v", i, err)
			}
			h := obj.Signatures[0].Protected
			if h.Algorithm != "ES256" || h.KeyID != []string{k1.ID, k2.ID}[i] || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Errorf("token %d: header %+v", i, h)
			}
			payload, err := obj.Verify(set) // picks the key by kid
			if err != nil {
				t.Fatalf("token %d: go-jose does not verify: %v", i, err)
			}
			var got Claims
			if err := json.Unmarshal(payload, &got); err != nil || got != c {
				t.Errorf("token %d: payload %s, %v", i, payload, err)
			}

			// go-jose's JWT validation agrees on the registered claims.
			jt, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			var reg jwt.Claims
			if err := jt.Claims(set, &reg); err != nil {
				t.Fatalf("token %d: go-jose jwt: %v", i, err)
			}
			if err := reg.ValidateWithLeeway(jwt.Expected{Issuer: testIssuer, Subject: c.ClientID, AnyAudience: jwt.Audience{testAudience}, Time: testNow}, 0); err != nil {
				t.Errorf("token %d: go-jose jwt validation: %v", i, err)
			}
			if i == 0 {
				tok = mustSign(t, k1, c)
			} else {
				tok = mustSign(t, k2, c)
			}
		}
	}
}

func goJoseSign(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, opts *jose.SignerOptions, payload []byte) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestParseAcceptsGoJoseTokens: we accept what a JOSE library signs with our
// key and the right headers, and refuse what it signs otherwise.
func TestParseAcceptsGoJoseTokens(t *testing.T) {
	k := mustKey(t, testNow)
	ks := KeySet{Keys: []Key{k}}
	c := testClaims()
	payload := mustJSON(t, c)
	for _, typ := range []jose.ContentType{"at+jwt", "application/at+jwt"} {
		for range 50 { // random signatures: cover short r and s
			tok := goJoseSign(t, jose.ES256, k.Private, k.ID, (&jose.SignerOptions{}).WithType(typ), payload)
			got, err := Parse(tok, ks.PublicKey, testIssuer, testNow, testTTL)
			if err != nil {
				t.Fatalf("typ %s: Parse of a go-jose token: %v", typ, err)
			}
			if got != c {
				t.Fatalf("typ %s: Parse = %+v", typ, got)
			}
		}
	}
	// go-jose's own JWT builder. (Given a map of float64 numbers, it would
	// write iat and exp as 1.8e+09, which Parse refuses: integers only.)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	built, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Parse(built, ks.PublicKey, testIssuer, testNow, testTTL); err != nil || got != c {
		t.Errorf("Parse of a go-jose jwt: %+v, %v", got, err)
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other := mustKey(t, testNow)
	atJWT := func() *jose.SignerOptions { return (&jose.SignerOptions{}).WithType("at+jwt") }
	for _, tc := range []struct {
		name string
		raw  string
		want error
	}{
		{"typ JWT", goJoseSign(t, jose.ES256, k.Private, k.ID, (&jose.SignerOptions{}).WithType("JWT"), payload), ErrMalformed},
		{"no typ", goJoseSign(t, jose.ES256, k.Private, k.ID, nil, payload), ErrMalformed},
		{"embedded jwk of another key", goJoseSign(t, jose.ES256, other.Private, k.ID, &jose.SignerOptions{EmbedJWK: true, ExtraHeaders: map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}}, payload), ErrMalformed},
		{"jku", goJoseSign(t, jose.ES256, k.Private, k.ID, atJWT().WithHeader("jku", "https://attacker.example/jwks.json"), payload), ErrMalformed},
		{"crit", goJoseSign(t, jose.ES256, k.Private, k.ID, atJWT().WithCritical("exp").WithHeader("exp", 1), payload), ErrMalformed},
		{"ES384", goJoseSign(t, jose.ES384, p384, k.ID, atJWT(), payload), ErrAlgorithm},
		{"HS256 with the public key as secret", func() string {
			der, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			return goJoseSign(t, jose.HS256, der, k.ID, atJWT(), payload)
		}(), ErrAlgorithm},
		{"another key under our kid", goJoseSign(t, jose.ES256, other.Private, k.ID, atJWT(), payload), ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.raw, ks.PublicKey, testIssuer, testNow, testTTL); !errors.Is(err, tc.want) {
				t.Errorf("Parse: %v, want %v", err, tc.want)
			}
		})
	}
}
