package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/permissions"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// AccessTokenPrefix starts an OAuth 2.0 access token from /oauth2/token.
//
// An access token is lka_<tokenID>.<claims>.<mac>: tokenID names the backing
// token of the client secret it was issued against, and mac is an HMAC of
// the rest under a key derived from that backing token's hash. Verifying one
// needs no state of its own, and no write to the API server is made per
// token; deleting or deactivating the client, or rotating its secret past the
// grace period (which deletes that backing token), invalidates every access
// token issued from it before it expires.
const AccessTokenPrefix = "lka_"

var b64 = base64.RawURLEncoding

type accessClaims struct {
	Scope    []string `json:"scp"`
	IssuedAt int64    `json:"iat"`
	Expires  int64    `json:"exp"`
	ID       string   `json:"jti"`
}

func accessKey(t backing.Token) []byte {
	m := hmac.New(sha256.New, []byte(t.Hash))
	m.Write([]byte("latchkey/access-token/v1"))
	return m.Sum(nil)
}

func accessMAC(t backing.Token, body string) []byte {
	m := hmac.New(sha256.New, accessKey(t))
	m.Write([]byte(body))
	return m.Sum(nil)
}

// mintAccessToken issues an access token bound to a client's backing token.
func mintAccessToken(t backing.Token, scope []string, now time.Time, ttl time.Duration) (string, accessClaims, error) {
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return "", accessClaims{}, err
	}
	c := accessClaims{Scope: scope, IssuedAt: now.Unix(), Expires: now.Add(ttl).Unix(), ID: b64.EncodeToString(jti)}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", accessClaims{}, err
	}
	body := AccessTokenPrefix + t.ID + "." + b64.EncodeToString(raw)
	return body + "." + b64.EncodeToString(accessMAC(t, body)), c, nil
}

// accessToken verifies an access token.
func (a *authenticator) accessToken(ctx context.Context, s string) (Identity, error) {
	body, sig, ok := cutLast(s, ".")
	if !ok || len(s) > 4096 {
		return Identity{}, reject(OutcomeMalformed)
	}
	tokenID, claimsB64, ok := strings.Cut(strings.TrimPrefix(body, AccessTokenPrefix), ".")
	if !ok || !token.ValidTokenID(tokenID) {
		return Identity{}, reject(OutcomeMalformed)
	}
	mac, err := b64.DecodeString(sig)
	if err != nil {
		return Identity{}, reject(OutcomeMalformed)
	}
	t, err := a.token(ctx, tokenID)
	if err != nil {
		// The client secret it was issued against is gone: revoked.
		if outcomeOf(err) == OutcomeUnknown {
			return Identity{}, reject(OutcomeRevoked)
		}
		return Identity{}, err
	}
	if t.OwnerKind != backing.KindApiClient || !hmac.Equal(mac, accessMAC(t, body)) {
		return Identity{}, reject(OutcomeWrongSecret)
	}
	var c accessClaims
	raw, err := b64.DecodeString(claimsB64)
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return Identity{}, reject(OutcomeMalformed)
	}
	now := a.now()
	if now.Unix() >= c.Expires {
		return Identity{}, reject(OutcomeExpired)
	}
	if err := tokenValid(t, now); err != nil {
		return Identity{}, reject(OutcomeRevoked)
	}
	cl, err := a.client(ctx, t.OwnerNamespace, t.OwnerName, t.OwnerUID)
	if err != nil {
		return Identity{}, err
	}
	id := clientIdentity(cl, t, "access-token")
	id.Permissions = permissions.Intersect(c.Scope, cl.Spec.Permissions)
	iat, exp := time.Unix(c.IssuedAt, 0).UTC(), time.Unix(c.Expires, 0).UTC()
	id.IssuedAt, id.ExpiresAt = &iat, &exp
	return id, nil
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
