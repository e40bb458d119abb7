package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Hash schemes, the prefix of a stored hash.
const (
	SchemeSHA256   = "sha256"
	SchemeArgon2id = "argon2id"
)

// argon2id parameters: OWASP's minimum for argon2id (19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// ErrUnknownScheme is returned for a stored hash Latchkey cannot read; the
// verifier treats it as a mismatch (fail closed).
var ErrUnknownScheme = errors.New("unknown hash scheme")

// HashGenerated hashes a high-entropy generated secret with SHA-256. The
// token id is mixed in so one secret cannot stand for another token.
func HashGenerated(tokenID, secret string) string {
	sum := sha256.Sum256([]byte("latchkey/v1\x00" + tokenID + "\x00" + secret))
	return SchemeSHA256 + "$" + hex.EncodeToString(sum[:])
}

// HashChosen hashes a user-chosen (possibly low-entropy) secret with argon2id
// and a random salt, in the PHC string format.
func HashChosen(secret string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	key := argon2.IDKey([]byte(secret), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$v=%d$m=%d,t=%d,p=%d$%s$%s", SchemeArgon2id, argon2.Version,
		argonMemory, argonTime, argonThreads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// Verify reports whether secret matches the stored hash, in constant time for
// the comparison. tokenID is needed for SHA-256 hashes.
func Verify(stored, tokenID, secret string) (bool, error) {
	scheme, _, _ := strings.Cut(stored, "$")
	switch scheme {
	case SchemeSHA256:
		// The hot path of every verification: no allocation.
		var in [256]byte
		b := append(in[:0], "latchkey/v1\x00"...)
		b = append(append(append(b, tokenID...), 0), secret...)
		sum := sha256.Sum256(b)
		var want [len(SchemeSHA256) + 1 + 2*sha256.Size]byte
		copy(want[:], SchemeSHA256+"$")
		hex.Encode(want[len(SchemeSHA256)+1:], sum[:])
		return subtle.ConstantTimeCompare([]byte(stored), want[:]) == 1, nil
	case SchemeArgon2id:
		return verifyArgon2id(stored, secret)
	default:
		return false, ErrUnknownScheme
	}
}

func verifyArgon2id(stored, secret string) (bool, error) {
	parts := strings.Split(stored, "$")
	if len(parts) != 5 {
		return false, ErrUnknownScheme
	}
	var version int
	var mem uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[1], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrUnknownScheme
	}
	if _, err := fmt.Sscanf(parts[2], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil || mem > 1<<20 || t > 10 || p == 0 {
		return false, ErrUnknownScheme
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[3])
	if err != nil {
		return false, ErrUnknownScheme
	}
	key, err := enc.DecodeString(parts[4])
	if err != nil || len(key) == 0 {
		return false, ErrUnknownScheme
	}
	got := argon2.IDKey([]byte(secret), salt, t, mem, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(key, got) == 1, nil
}
