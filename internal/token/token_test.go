package token

import (
	"hash/crc32"
	"strings"
	"testing"
)

func TestNewAndParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		s := tok.String()
		if len(s) != Len {
			t.Fatalf("len = %d, want %d", len(s), Len)
		}
		if !strings.HasPrefix(s, "lk_"+tok.ID+"_") {
			t.Fatalf("token %q does not start with its prefix and id", s)
		}
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(New()): %v", err)
		}
		if got != tok {
			t.Fatalf("round trip changed the token")
		}
		if seen[tok.ID] || seen[tok.Secret] {
			t.Fatalf("duplicate id or secret from crypto/rand")
		}
		seen[tok.ID], seen[tok.Secret] = true, true
	}
}

func TestParseRejects(t *testing.T) {
	good, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s := good.String()
	flip := func(i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := map[string]string{
		"empty":              "",
		"short":              s[:len(s)-1],
		"long":               s + "x",
		"wrong prefix":       "lx" + s[2:],
		"secret typo":        flip(len(Prefix) + TokenIDLen + 5),
		"id typo":            flip(len(Prefix) + 3),
		"checksum typo":      flip(len(s) - 1),
		"client secret":      "key_" + strings.Repeat("a", 43),
		"separator replaced": s[:len(Prefix)+TokenIDLen] + "-" + s[len(Prefix)+TokenIDLen+1:],
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(in); err == nil {
				t.Fatalf("Parse accepted %s", name)
			} else if in != "" && strings.Contains(err.Error(), in) {
				t.Fatalf("error leaks the input")
			}
		})
	}
}

func TestEntropyAndShapes(t *testing.T) {
	id, _ := NewClientID()
	if !strings.HasPrefix(id, "id_") || len(id) != 3+16 {
		t.Fatalf("client id %q: want id_ and 16 characters", id)
	}
	sec, _ := NewClientSecret()
	// 43 base64url characters carry 258 bits, of which 256 are random.
	if !strings.HasPrefix(sec, "key_") || len(sec) != 4+43 {
		t.Fatalf("client secret: want key_ and 43 characters, got %d", len(sec))
	}
	tid, _ := NewTokenID()
	if !ValidTokenID(tid) {
		t.Fatalf("token id %q is not valid", tid)
	}
	if ValidTokenID("ABCDEFGHIJKLMNOP") || ValidTokenID("abc") {
		t.Fatal("ValidTokenID accepted a bad id")
	}
}

func TestHashVerify(t *testing.T) {
	tok, _ := New()
	h := HashGenerated(tok.ID, tok.Secret)
	if strings.Contains(h, tok.Secret) {
		t.Fatal("hash contains the secret")
	}
	for _, tc := range []struct {
		name           string
		stored, id, in string
		want           bool
		wantErr        bool
	}{
		{"sha256 match", h, tok.ID, tok.Secret, true, false},
		{"sha256 wrong secret", h, tok.ID, tok.Secret[:42] + "x", false, false},
		{"sha256 other token id", h, "aaaaaaaaaaaaaaaa", tok.Secret, false, false},
		{"unknown scheme", "md5$abc", tok.ID, tok.Secret, false, true},
		{"empty", "", tok.ID, tok.Secret, false, true},
		{"argon2 garbage", "argon2id$v=19$m=x", "", "pw", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.stored, tc.id, tc.in)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("Verify = %v, %v; want %v, err %v", got, err, tc.want, tc.wantErr)
			}
		})
	}

	chosen, err := HashChosen("my-insecure-password")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(chosen, "argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(chosen, "my-insecure-password") {
		t.Fatalf("unexpected argon2id hash shape")
	}
	again, _ := HashChosen("my-insecure-password")
	if again == chosen {
		t.Fatal("argon2id hashes share a salt")
	}
	if ok, err := Verify(chosen, "", "my-insecure-password"); !ok || err != nil {
		t.Fatalf("argon2id match: %v %v", ok, err)
	}
	if ok, _ := Verify(chosen, "", "my-insecure-passwore"); ok {
		t.Fatal("argon2id accepted a wrong password")
	}
}

func FuzzParse(f *testing.F) {
	tok, _ := New()
	f.Add(tok.String())
	f.Add("lk_")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		if got.String() != s {
			t.Fatalf("Parse accepted %q but formats it as %q", s, got.String())
		}
	})
}

// The checksum is CRC-32 (IEEE) of the body, whatever computes it.
func TestChecksumIsCRC32(t *testing.T) {
	for _, body := range []string{"", "a", "1234567", "12345678", "123456789", "lk_", "lk_abcdefghijklmnop_" + strings.Repeat("x", 43), strings.Repeat("\xff", 200), "\x00\x01\x80\xfe"} {
		n := crc32.ChecksumIEEE([]byte(body))
		var want [ChecksumLen]byte
		for i := ChecksumLen - 1; i >= 0; i-- {
			want[i] = base62[n%62]
			n /= 62
		}
		if got := checksumBytes(body); got != want {
			t.Errorf("checksum of %q: %q, want %q", body, got, want)
		}
	}
}
