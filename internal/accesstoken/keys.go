package accesstoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Key is one signing key of the operator.
type Key struct {
	// ID is the key id, "kid": KeyID(&Private.PublicKey).
	ID string
	// Private is the key, on P-256.
	Private *ecdsa.PrivateKey
	// CreatedAt is when the key was created.
	CreatedAt time.Time
	// RetiredAt is when a newer key took over signing; nil for the
	// signing key. A retired key still verifies until Prune drops it.
	RetiredAt *time.Time
}

// NewKey returns a new signing key on P-256 from crypto/rand, created at now.
func NewKey(now time.Time) (Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("accesstoken: generating key: %w", err)
	}
	return Key{ID: KeyID(&priv.PublicKey), Private: priv, CreatedAt: now.UTC()}, nil
}

// KeyID returns the key id of pub: the SHA-256 of its PKIX (SubjectPublicKeyInfo)
// DER encoding, base64url without padding, as Kubernetes names its
// service-account signing keys. It returns "" for a key that cannot be
// encoded.
func KeyID(pub *ecdsa.PublicKey) string {
	if pub == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// check reports whether k can sign: a P-256 private key whose kid is ID.
func (k Key) check() error {
	if k.Private == nil {
		return errors.New("accesstoken: key has no private key")
	}
	if k.Private.Curve != elliptic.P256() {
		return errors.New("accesstoken: key is not on P-256")
	}
	if k.ID == "" || k.ID != KeyID(&k.Private.PublicKey) {
		return errors.New("accesstoken: key id does not match the key")
	}
	return nil
}

// KeySet is the operator's keys, newest first: at most one signing key and
// the retired keys that still verify. It is stored in the data of one
// Kubernetes Secret ([KeySet.Marshal]). Methods never modify the receiver.
type KeySet struct {
	// Keys are newest first.
	Keys []Key
}

// Signing returns the key that signs: the newest key that is not retired
// (by CreatedAt; the first of equals). ok is false if every key is retired
// or there is none, and a new key must be made ([KeySet.Rotate]).
func (ks KeySet) Signing() (k Key, ok bool) {
	for _, c := range ks.Keys {
		if c.RetiredAt == nil && (!ok || c.CreatedAt.After(k.CreatedAt)) {
			k, ok = c, true
		}
	}
	return k, ok
}

// PublicKey returns the public key of the key with id kid, signing or
// retired, or nil if there is none. It is the keys argument of [Parse].
func (ks KeySet) PublicKey(kid string) *ecdsa.PublicKey {
	for _, k := range ks.Keys {
		if k.ID == kid && k.Private != nil {
			return &k.Private.PublicKey
		}
	}
	return nil
}

// jwk is a public key as RFC 7517 and RFC 7518 §6.2.1 write it.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS returns the public keys of the set as an RFC 7517 JWK Set, for
// /.well-known/jwks.json:
//
//	{"keys":[{"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,"use":"sig","alg":"ES256"},…]}
//
// in the order of the set (newest first), x and y padded to 32 bytes. It
// holds no private material. Keys that cannot be encoded are left out.
func (ks KeySet) JWKS() []byte {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range ks.Keys {
		if k.Private == nil || k.Private.Curve != elliptic.P256() {
			continue
		}
		pt, err := k.Private.PublicKey.Bytes() // 0x04 || x || y, each 32 bytes
		if err != nil || len(pt) != 65 {
			continue
		}
		set.Keys = append(set.Keys, jwk{
			Kty: "EC", Crv: "P-256",
			X:   base64.RawURLEncoding.EncodeToString(pt[1:33]),
			Y:   base64.RawURLEncoding.EncodeToString(pt[33:]),
			Kid: k.ID, Use: "sig", Alg: Algorithm,
		})
	}
	b, err := json.Marshal(set)
	if err != nil { // cannot happen: only strings
		return []byte(`{"keys":[]}`)
	}
	return b
}

// Rotate returns the set with a new signing key first, created at now, and
// every key that was signing retired at now.
func (ks KeySet) Rotate(now time.Time) (KeySet, error) {
	k, err := NewKey(now)
	if err != nil {
		return ks, err
	}
	out := KeySet{Keys: make([]Key, 0, len(ks.Keys)+1)}
	out.Keys = append(out.Keys, k)
	for _, old := range ks.Keys {
		if old.RetiredAt == nil {
			t := now.UTC()
			old.RetiredAt = &t
		}
		out.Keys = append(out.Keys, old)
	}
	return out, nil
}

// prunableAt is when every token a retired key signed has expired.
func prunableAt(retired time.Time, maxTTL time.Duration) time.Time {
	return retired.Add(maxTTL + IssuedAtLeeway)
}

// Prune returns the set without the retired keys whose RetiredAt + maxTTL +
// IssuedAtLeeway <= now: every token they signed has expired. maxTTL is the
// longest lifetime of an access token. changed reports whether a key was
// dropped. The signing key is never dropped.
func (ks KeySet) Prune(now time.Time, maxTTL time.Duration) (out KeySet, changed bool) {
	out.Keys = make([]Key, 0, len(ks.Keys))
	for _, k := range ks.Keys {
		if k.RetiredAt != nil && !now.Before(prunableAt(*k.RetiredAt, maxTTL)) {
			changed = true
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	return out, changed
}

// Due reports whether the set must change now: it has no signing key, the
// signing key is at least rotateEvery old (rotateEvery 0 = never), or a
// retired key can be pruned. The change is [KeySet.Prune], then
// [KeySet.Rotate] if [KeySet.Signing] is missing or old.
func (ks KeySet) Due(now time.Time, rotateEvery, maxTTL time.Duration) bool {
	s, ok := ks.Signing()
	if !ok || (rotateEvery > 0 && !now.Before(s.CreatedAt.Add(rotateEvery))) {
		return true
	}
	_, prunable := ks.Prune(now, maxTTL)
	return prunable
}

// NextChange returns how long from now until the set must change: the
// signing key becoming rotateEvery old (rotateEvery 0 = never), or the first
// retired key becoming prunable, whichever is first. It is never negative.
// It returns 0 both when a change is due now ([KeySet.Due]) and when none is
// scheduled; tell them apart with Due:
//
//	if ks.Due(now, every, ttl) { /* prune, rotate, write */ }
//	else if d := ks.NextChange(now, every, ttl); d > 0 { /* requeue after d */ }
func (ks KeySet) NextChange(now time.Time, rotateEvery, maxTTL time.Duration) time.Duration {
	if ks.Due(now, rotateEvery, maxTTL) {
		return 0
	}
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if s, ok := ks.Signing(); ok && rotateEvery > 0 {
		consider(s.CreatedAt.Add(rotateEvery))
	}
	for _, k := range ks.Keys {
		if k.RetiredAt != nil {
			consider(prunableAt(*k.RetiredAt, maxTTL))
		}
	}
	if next.IsZero() {
		return 0
	}
	return max(next.Sub(now), 0)
}

// DataKey is the one key of the Secret data that holds a KeySet.
const DataKey = "keys.json"

// storedKey is one key as stored under DataKey.
type storedKey struct {
	Kid        string     `json:"kid"`
	CreatedAt  time.Time  `json:"created_at"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
	PrivateKey string     `json:"private_key"` // base64 (standard) of PKCS#8 DER
}

// Marshal returns the Secret data holding the set: under [DataKey], a JSON
// array of {"kid","created_at","retired_at","private_key"} in the order of
// the set, private_key being base64 of the PKCS#8 DER. It fails on a key
// [Unmarshal] would reject.
func (ks KeySet) Marshal() (map[string][]byte, error) {
	out := make([]storedKey, 0, len(ks.Keys))
	for i, k := range ks.Keys {
		if err := k.check(); err != nil {
			return nil, fmt.Errorf("accesstoken: key %d: %w", i, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("accesstoken: key %d (kid %s): cannot encode as PKCS#8", i, k.ID)
		}
		out = append(out, storedKey{
			Kid: k.ID, CreatedAt: k.CreatedAt.UTC(), RetiredAt: utc(k.RetiredAt),
			PrivateKey: base64.StdEncoding.EncodeToString(der),
		})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("accesstoken: encoding keys: %w", err)
	}
	return map[string][]byte{DataKey: b}, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Unmarshal reads a KeySet from Secret data written by [KeySet.Marshal]. It
// checks every key: a PKCS#8 ECDSA key on P-256, whose kid is recomputed and
// must equal the stored one, a creation time, and no kid twice. Keys are
// ordered newest first. Errors say which key is wrong and why, by index and
// kid (public), never with key material. An empty array is an empty set.
func Unmarshal(data map[string][]byte) (KeySet, error) {
	b, ok := data[DataKey]
	if !ok {
		return KeySet{}, fmt.Errorf("accesstoken: no %s in the Secret data", DataKey)
	}
	var stored []storedKey
	if err := json.Unmarshal(b, &stored); err != nil {
		return KeySet{}, fmt.Errorf("accesstoken: %s is not a JSON array of keys", DataKey)
	}
	ks := KeySet{Keys: make([]Key, 0, len(stored))}
	seen := make(map[string]bool, len(stored))
	for i, s := range stored {
		bad := func(why string) error {
			return fmt.Errorf("accesstoken: %s: key %d (kid %q): %s", DataKey, i, s.Kid, why)
		}
		if s.Kid == "" {
			return KeySet{}, bad("kid is missing")
		}
		if seen[s.Kid] {
			return KeySet{}, bad("kid appears twice")
		}
		seen[s.Kid] = true
		if s.CreatedAt.IsZero() {
			return KeySet{}, bad("created_at is missing")
		}
		if s.PrivateKey == "" {
			return KeySet{}, bad("private_key is missing")
		}
		der, err := base64.StdEncoding.DecodeString(s.PrivateKey)
		if err != nil {
			return KeySet{}, bad("private_key is not base64")
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return KeySet{}, bad("private_key is not a PKCS#8 private key")
		}
		priv, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return KeySet{}, bad("private_key is not an ECDSA key")
		}
		if priv.Curve != elliptic.P256() {
			return KeySet{}, bad("private_key is not on P-256")
		}
		if KeyID(&priv.PublicKey) != s.Kid {
			return KeySet{}, bad("kid does not match private_key")
		}
		ks.Keys = append(ks.Keys, Key{ID: s.Kid, Private: priv, CreatedAt: s.CreatedAt.UTC(), RetiredAt: utc(s.RetiredAt)})
	}
	slices.SortStableFunc(ks.Keys, func(a, b Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return ks, nil
}
