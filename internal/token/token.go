package token

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

const (
	// Prefix starts every credential token.
	Prefix = "lk_"
	// ClientIDPrefix starts a generated client id (Decidim's format).
	ClientIDPrefix = "id_"
	// ClientSecretPrefix starts a generated client secret (Decidim's format).
	ClientSecretPrefix = "key_"

	// TokenIDLen is the length of a token id.
	TokenIDLen = 16
	// SecretLen is the length of the secret part: 32 bytes in base64url.
	SecretLen = 43
	// ChecksumLen is the length of the base62 CRC-32 checksum.
	ChecksumLen = 6
	// Len is the length of a whole token.
	Len = len(Prefix) + TokenIDLen + 1 + SecretLen + ChecksumLen

	secretBytes = 32
)

var (
	idEncoding     = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	secretEncoding = base64.RawURLEncoding
)

// ErrMalformed is returned for a string that is not a Latchkey token. It
// never includes the input: the input may be a secret.
var ErrMalformed = errors.New("not a Latchkey token")

// Token is a parsed credential token.
type Token struct {
	// ID is the non-secret handle: safe to log.
	ID string
	// Secret is the secret part.
	Secret string
}

// String formats the token as lk_<id>_<secret><checksum>.
func (t Token) String() string {
	body := Prefix + t.ID + "_" + t.Secret
	return body + checksum(body)
}

// New generates a fresh token from crypto/rand.
func New() (Token, error) {
	id, err := NewTokenID()
	if err != nil {
		return Token{}, err
	}
	secret, err := NewSecret()
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Secret: secret}, nil
}

// Parse splits a token into id and secret after checking its shape and
// checksum. The error never contains the input.
func Parse(s string) (Token, error) {
	if len(s) != Len || !strings.HasPrefix(s, Prefix) {
		return Token{}, ErrMalformed
	}
	body, sum := s[:len(s)-ChecksumLen], s[len(s)-ChecksumLen:]
	if want := checksumBytes(body); string(want[:]) != sum {
		return Token{}, ErrMalformed
	}
	rest := body[len(Prefix):]
	if rest[TokenIDLen] != '_' {
		return Token{}, ErrMalformed
	}
	t := Token{ID: rest[:TokenIDLen], Secret: rest[TokenIDLen+1:]}
	if !ValidTokenID(t.ID) || !validSecret(t.Secret) {
		return Token{}, ErrMalformed
	}
	return t, nil
}

// NewTokenID returns a random token id: 16 lower-case base32 characters.
func NewTokenID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return idEncoding.EncodeToString(b), nil
}

// ValidTokenID reports whether s has the shape of a token id.
func ValidTokenID(s string) bool {
	if len(s) != TokenIDLen {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '2' || r > '7') {
			return false
		}
	}
	return true
}

// NewSecret returns 256 random bits in base64url (43 characters).
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return secretEncoding.EncodeToString(b), nil
}

// NewClientID returns a generated client id: "id_" and 16 url-safe characters.
func NewClientID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return ClientIDPrefix + secretEncoding.EncodeToString(b), nil
}

// NewClientSecret returns a generated client secret: "key_" and 256 random
// bits in base64url.
func NewClientSecret() (string, error) {
	s, err := NewSecret()
	if err != nil {
		return "", err
	}
	return ClientSecretPrefix + s, nil
}

// validSecret checks the shape of a secret part without allocating: 43
// base64url characters, the last one carrying 4 data bits (256 in all).
func validSecret(s string) bool {
	if len(s) != SecretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b64Value(s[i]) < 0 {
			return false
		}
	}
	return b64Value(s[len(s)-1])&0b11 == 0
}

func b64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func checksum(body string) string {
	b := checksumBytes(body)
	return string(b[:])
}

// checksumBytes is the CRC-32 of body in 6 base62 digits, computed without
// allocating (Parse runs on every verification).
func checksumBytes(body string) [ChecksumLen]byte {
	n := crc32IEEE(body)
	var out [ChecksumLen]byte
	for i := ChecksumLen - 1; i >= 0; i-- {
		out[i] = base62[n%62]
		n /= 62
	}
	return out
}

// crc32Slicing8 are the slicing-by-8 tables of CRC-32 (IEEE).
var crc32Slicing8 = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for i := range 256 {
		c := t[0][i]
		for j := 1; j < 8; j++ {
			c = t[0][c&0xff] ^ c>>8
			t[j][i] = c
		}
	}
	return t
}()

// crc32IEEE is crc32.ChecksumIEEE of s, computed over the string itself:
// handing a byte slice to crc32 moves it to the heap, on every
// verification. Slicing-by-8, eight bytes a step.
func crc32IEEE(s string) uint32 {
	t := &crc32Slicing8
	n := ^uint32(0)
	for len(s) >= 8 {
		n ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		n = t[0][s[7]] ^ t[1][s[6]] ^ t[2][s[5]] ^ t[3][s[4]] ^
			t[4][n>>24] ^ t[5][n>>16&0xff] ^ t[6][n>>8&0xff] ^ t[7][n&0xff]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		n = t[0][byte(n)^s[i]] ^ n>>8
	}
	return ^n
}
