package accesstoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"
)

// fuzzKey derives a fixed P-256 key from name, so that every fuzz worker
// and every saved corpus entry use the same keys.
func fuzzKey(t testing.TB, name string, created time.Time) Key {
	t.Helper()
	d := sha256.Sum256([]byte("latchkey accesstoken fuzz key " + name))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: KeyID(&priv.PublicKey), Private: priv, CreatedAt: created}
}

// fuzzBase is a token the fuzzer starts from.
type fuzzBase struct {
	raw   string
	valid *Claims // what Parse returns, nil if it fails
}

var fuzzState struct {
	once     sync.Once
	ks       KeySet
	bases    []fuzzBase
	accepted map[string]Claims // signing input (header.payload) of each valid base → claims
}

// fuzzSetup signs the bases, with a deterministic random source so that the
// signatures, hence corpus entries that edit them, are the same in every
// process. Parse then runs on crypto/rand as usual.
func fuzzSetup(t *testing.T) {
	fuzzState.once.Do(func() {
		cryptotest.SetGlobalRandom(t, 9068)
		s := &fuzzState
		signing := fuzzKey(t, "signing", testNow)
		retiredAt := testNow
		retired := fuzzKey(t, "retired", testNow.Add(-time.Hour))
		retired.RetiredAt = &retiredAt
		s.ks = KeySet{Keys: []Key{signing, retired}}
		s.accepted = map[string]Claims{}
		add := func(raw string, valid *Claims) {
			s.bases = append(s.bases, fuzzBase{raw, valid})
			if valid != nil {
				s.accepted[raw[:strings.LastIndexByte(raw, '.')]] = *valid
			}
		}
		sign := func(k Key, c Claims, ok bool) string {
			tok, err := Sign(k, c)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				add(tok, &c)
			} else {
				add(tok, nil)
			}
			return tok
		}
		raw := func(k Key, h, p string) string {
			tok, err := signJWS(k.Private, []byte(h), []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}

		// Valid.
		c := testClaims()
		good := sign(signing, c, true)
		sign(retired, c, true)
		noScope := c
		noScope.Scope = ""
		sign(signing, noScope, true)
		long := c
		long.Scope = strings.Repeat("posts:read ", 40)
		sign(signing, long, true)
		add(raw(signing, `{"alg":"ES256","typ":"application/AT+JWT","kid":"`+signing.ID+`"}`, string(mustJSON(t, c))), &c)

		// Signed, with claims Parse rejects.
		expired := c
		expired.IssuedAt, expired.Expires = c.IssuedAt-7200, c.IssuedAt-3600
		sign(signing, expired, false)
		tooLong := c
		tooLong.Expires = c.IssuedAt + int64(testTTL/time.Second) + 1
		sign(signing, tooLong, false)
		future := c
		future.IssuedAt, future.Expires = c.IssuedAt+120, c.IssuedAt+180
		sign(signing, future, false)
		otherIss := c
		otherIss.Issuer = "https://other.example.com"
		sign(signing, otherIss, false)
		h := `{"alg":"ES256","typ":"at+jwt","kid":"` + signing.ID + `"}`
		add(raw(signing, h, `{"iss":"`+testIssuer+`","sub":"a","client_id":"b","aud":"x","jti":"j","iat":1800000000,"exp":1800000060,"latchkey_token_id":"`+testTokenID+`"}`), nil)
		add(raw(signing, h, `{"iss":"`+testIssuer+`","iat":1.8e9,"exp":18000000600000000000000}`), nil)
		add(raw(signing, h, `[]`), nil)
		add(raw(signing, `{"alg":"ES256","alg":"ES256","typ":"at+jwt","kid":"`+signing.ID+`"}`, string(mustJSON(t, c))), nil)
		add(raw(signing, `{"alg":"ES256","typ":"at+jwt","kid":"`+signing.ID+`","jku":"https://x"}`, string(mustJSON(t, c))), nil)

		// Unsigned or wrongly signed.
		parts := strings.Split(good, ".")
		add(enc([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+signing.ID+`"}`))+"."+parts[1]+".", nil)
		hs := enc([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"`+signing.ID+`"}`)) + "." + parts[1]
		mac := hmac.New(sha256.New, []byte(signing.ID))
		mac.Write([]byte(hs))
		add(hs+"."+enc(mac.Sum(nil)), nil)
		add(parts[0]+"."+parts[1]+"."+enc(make([]byte, 64)), nil)

		for _, b := range s.bases {
			got, err := Parse(b.raw, s.ks.PublicKey, testIssuer, testNow, testTTL)
			if (b.valid == nil) != (err != nil) || (b.valid != nil && got != *b.valid) {
				t.Fatalf("fuzz base %.40q…: Parse = %+v, %v", b.raw, got, err)
			}
		}
	})
}

// fuzzToken is the token a fuzz input stands for: base (mod the number of
// bases) edited in one of its forms, the whole string or one of its three
// parts decoded, by replacing cut bytes at at (mod the length + 1) with
// insert; or, for form 4, insert itself. Only insert is a byte string, so
// Go's minimizer, which is quadratic in the length of byte strings, stays
// cheap although each execution may verify an ECDSA signature.
func fuzzToken(base, form uint8, at, cut uint16, insert []byte) string {
	edit := func(s []byte) []byte {
		i := int(at) % (len(s) + 1)
		j := min(i+int(cut), len(s))
		out := append([]byte{}, s[:i]...)
		out = append(out, insert...)
		return append(out, s[j:]...)
	}
	raw := fuzzState.bases[int(base)%len(fuzzState.bases)].raw
	switch form % 5 {
	case 0:
		return string(edit([]byte(raw)))
	case 4:
		return string(insert)
	}
	parts := strings.Split(raw, ".")
	i := int(form%5) - 1
	dec, err := b64.DecodeString(parts[i])
	if err != nil { // the empty signature of alg none
		dec = nil
	}
	parts[i] = enc(edit(dec))
	return strings.Join(parts, ".")
}

// FuzzParse checks that Parse never panics, fails only with its sentinel
// errors and without echoing its input, and that whatever it accepts is a
// token signed here as valid: its signing input (header.payload) is a valid
// base's, and so are the claims.
func FuzzParse(f *testing.F) {
	const nBases = 17
	for b := range uint8(nBases) {
		f.Add(b, uint8(0), uint16(0), uint16(0), []byte{}) // each base as it is
	}
	f.Add(uint8(0), uint8(2), uint16(8), uint16(3), []byte("ISS"))                         // payload edited
	f.Add(uint8(0), uint8(2), uint16(0), uint16(1), []byte(` {`))                          // payload whitespace
	f.Add(uint8(0), uint8(1), uint16(8), uint16(5), []byte("none"))                        // header alg
	f.Add(uint8(1), uint8(1), uint16(0), uint16(0), []byte(`{"crit":["exp"],`))            // header crit
	f.Add(uint8(0), uint8(3), uint16(0), uint16(32), []byte{})                             // signature cut
	f.Add(uint8(0), uint8(0), uint16(0), uint16(0), []byte("x"))                           // prefix
	f.Add(uint8(3), uint8(0), uint16(100), uint16(0), []byte(strings.Repeat("A", MaxLen))) // oversized
	for _, s := range []string{"", ".", "..", "eyJ..", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.AA", "lk_abcdefghijkmnop2.x"} {
		f.Add(uint8(0), uint8(4), uint16(0), uint16(0), []byte(s))
	}

	sentinels := []error{ErrMalformed, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYetValid, ErrLifetime}
	f.Fuzz(func(t *testing.T, base, form uint8, at, cut uint16, insert []byte) {
		fuzzSetup(t)
		if len(fuzzState.bases) != nBases {
			t.Fatalf("%d fuzz bases, want %d", len(fuzzState.bases), nBases)
		}
		raw := fuzzToken(base, form, at, cut, insert)
		got, err := Parse(raw, fuzzState.ks.PublicKey, testIssuer, testNow, testTTL)
		if err != nil {
			known := false
			for _, s := range sentinels {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("Parse failed with an error that is not a sentinel: %v", err)
			}
			if got != (Claims{}) {
				t.Fatalf("Parse returned claims with an error: %+v", got)
			}
			if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if !LooksLike(raw) {
			t.Fatalf("Parse accepted %q, which LooksLike rejects", raw)
		}
		want, ok := fuzzState.accepted[raw[:strings.LastIndexByte(raw, '.')]]
		if !ok {
			t.Fatalf("Parse accepted a token not signed here: %q", raw)
		}
		if got != want {
			t.Fatalf("Parse = %+v, want the signed claims %+v", got, want)
		}
	})
}
