package verifier

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// Access tokens from /oauth2/token are JWTs (RFC 9068) signed with the
// operator's own ES256 keys, kept in their own Secret (never derived from a
// backing token's hash: whoever can read hashes must not be able to mint
// tokens). Offline verifiers check them against /.well-known/jwks.json until
// they expire; Latchkey's own verify and introspection also check that the
// client and the backing token of the secret they were issued against are
// live, so deleting or deactivating the client revokes them at once.

// keyCache holds the parsed key set of one version of the signing-key
// Secret, so a request parses no key.
type keyCache struct {
	v atomic.Pointer[parsedKeys]
}

type parsedKeys struct {
	resourceVersion string
	set             accesstoken.KeySet
	jwks            []byte
}

// keys returns the signing keys as the informer holds them now.
func (a *authenticator) keys(ctx context.Context) (*parsedKeys, error) {
	sec, err := get(ctx, a.lookup, a.secrets, a.namespace, a.keySecret, newSecret)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNoKeys
		}
		return nil, err
	}
	if p := a.keyCache.v.Load(); p != nil && p.resourceVersion == sec.ResourceVersion && sec.ResourceVersion != "" {
		return p, nil
	}
	if sec.Type != backing.SigningKeysSecretType {
		return nil, errNoKeys
	}
	set, err := accesstoken.Unmarshal(sec.Data)
	if err != nil {
		return nil, err
	}
	p := &parsedKeys{resourceVersion: sec.ResourceVersion, set: set, jwks: set.JWKS()}
	a.keyCache.v.Store(p)
	return p, nil
}

var errNoKeys = errors.New("the access-token signing keys do not exist yet")

// accessToken verifies a JWT access token: signature, lifetime, then that
// what it was issued against is still live.
func (a *authenticator) accessToken(ctx context.Context, raw string) (Identity, error) {
	keys, err := a.keys(ctx)
	if err != nil {
		if errors.Is(err, errNoKeys) {
			return Identity{}, reject(OutcomeWrongSecret) // no key: nothing we signed
		}
		return Identity{}, err
	}
	now := a.now()
	c, err := accesstoken.Parse(raw, keys.set.PublicKey, a.issuer, now, a.accessTTL)
	switch {
	case errors.Is(err, accesstoken.ErrExpired):
		return Identity{}, reject(OutcomeExpired)
	case errors.Is(err, accesstoken.ErrMalformed):
		return Identity{}, reject(OutcomeMalformed)
	case err != nil:
		return Identity{}, reject(OutcomeWrongSecret)
	}
	if err := a.revoked(ctx, backing.RevokedAccessToken, c.JTI); err != nil {
		return Identity{}, err
	}
	t, err := a.token(ctx, c.TokenID)
	if err != nil {
		// The client secret it was issued against is gone: revoked.
		if outcomeOf(err) == OutcomeUnknown {
			return Identity{}, reject(OutcomeRevoked)
		}
		return Identity{}, err
	}
	if t.OwnerKind != backing.KindApiClient || t.ClientID != c.ClientID {
		return Identity{}, reject(OutcomeRevoked)
	}
	if err := tokenValid(t, now); err != nil {
		return Identity{}, reject(OutcomeRevoked)
	}
	cl, err := a.client(ctx, t.OwnerNamespace, t.OwnerName, t.OwnerUID)
	if err != nil {
		return Identity{}, err
	}
	if err := a.holds(ctx, t); err != nil {
		return Identity{}, err
	}
	id := clientIdentity(cl, t, "access-token")
	id.Permissions = permissions.Intersect(c.Scopes(), cl.Spec.Permissions)
	iat, exp := time.Unix(c.IssuedAt, 0).UTC(), time.Unix(c.Expires, 0).UTC()
	id.IssuedAt, id.ExpiresAt, id.JTI = &iat, &exp, c.JTI
	return id, nil
}

// Access tokens also die one by one: POST /oauth2/revoke writes a
// revocation record for the jti (revoke.go), kept until the token's exp, and
// a.revoked rejects the jti while it exists.

// mintAccessToken signs an access token for a verified client.
func (a *authenticator) mintAccessToken(ctx context.Context, id Identity, scope []string) (string, accesstoken.Claims, error) {
	keys, err := a.keys(ctx)
	if err != nil {
		return "", accesstoken.Claims{}, err
	}
	k, ok := keys.set.Signing()
	if !ok {
		return "", accesstoken.Claims{}, errNoKeys
	}
	jti, err := accesstoken.NewJTI()
	if err != nil {
		return "", accesstoken.Claims{}, err
	}
	now := a.now()
	c := accesstoken.Claims{
		Issuer: a.issuer, Subject: id.ClientID, Audience: a.audience, ClientID: id.ClientID,
		Scope: strings.Join(scope, " "), JTI: jti, IssuedAt: now.Unix(), Expires: now.Add(a.accessTTL).Unix(), TokenID: id.TokenID,
	}
	s, err := accesstoken.Sign(k, c)
	return s, c, err
}
