package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// presented is a credential as a caller sent it.
type presented struct {
	// bearer is an "Authorization: Bearer" or "X-API-Key" value.
	bearer string
	// user and pass come from "Authorization: Basic", or from an X-API-Key
	// of the form keyId:keySecret.
	user, pass string
	basic      bool
}

// credentialFrom extracts the credential. Authorization wins over X-API-Key.
func credentialFrom(r *http.Request) (presented, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, ok := strings.Cut(h, " ")
		value = strings.TrimSpace(value)
		switch {
		case !ok || value == "":
			return presented{}, reject(OutcomeMalformed)
		case strings.EqualFold(scheme, "Bearer"):
			return presented{bearer: value}, nil
		case strings.EqualFold(scheme, "Basic"):
			raw, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return presented{}, reject(OutcomeMalformed)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok || user == "" || pass == "" {
				return presented{}, reject(OutcomeMalformed)
			}
			return presented{user: user, pass: pass, basic: true}, nil
		default:
			return presented{}, reject(OutcomeMalformed)
		}
	}
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		if user, pass, ok := strings.Cut(k, ":"); ok {
			return presented{user: user, pass: pass, basic: true}, nil
		}
		return presented{bearer: k}, nil
	}
	return presented{}, reject(OutcomeMissing)
}

// authenticator checks presented credentials against backing tokens.
type authenticator struct {
	lookup
	now     func() time.Time
	limiter *failureLimiter
	// slow caches successful argon2id verifications: a user-chosen client
	// secret would otherwise cost ~20 ms of CPU on every request.
	slow *verifiedCache

	// Access tokens: the signing-key Secret's name, the issuer and audience
	// they carry, and their longest lifetime.
	keySecret, issuer, audience string
	accessTTL                   time.Duration
	keyCache                    keyCache
}

func (a *authenticator) authenticate(ctx context.Context, p presented) (Identity, error) {
	switch {
	case p.basic:
		// A key-auth / basic-auth grant (its token id as user name), else a
		// client id and secret.
		if token.ValidTokenID(p.user) {
			id, err := a.grantSecret(ctx, p.user, p.pass)
			if outcomeOf(err) != OutcomeUnknown {
				return id, err
			}
		}
		return a.clientSecret(ctx, p.user, p.pass)
	case strings.HasPrefix(p.bearer, token.Prefix):
		t, err := token.Parse(p.bearer)
		if err != nil {
			return Identity{}, reject(OutcomeMalformed)
		}
		return a.grantSecret(ctx, t.ID, t.Secret)
	case accesstoken.LooksLike(p.bearer):
		return a.accessToken(ctx, p.bearer)
	default:
		return Identity{}, reject(OutcomeMalformed)
	}
}

// grantSecret verifies a CredentialGrant's token.
func (a *authenticator) grantSecret(ctx context.Context, tokenID, secret string) (Identity, error) {
	t, err := a.token(ctx, tokenID)
	if err != nil {
		return Identity{}, err
	}
	if t.OwnerKind != backing.KindCredentialGrant {
		return Identity{}, reject(OutcomeUnknown)
	}
	if a.limiter.blocked(tokenID) {
		return Identity{}, reject(OutcomeRateLimited)
	}
	if ok, _ := token.Verify(t.Hash, t.ID, secret); !ok {
		a.limiter.fail(tokenID)
		return Identity{}, reject(OutcomeWrongSecret)
	}
	now := a.now()
	if err := tokenValid(t, now); err != nil {
		return Identity{}, err
	}
	g, err := a.grant(ctx, t, now)
	if err != nil {
		return Identity{}, err
	}
	c, err := a.client(ctx, g.Namespace, g.Spec.ClientName, t.ClientUID)
	if err != nil {
		return Identity{}, err
	}
	if err := a.holds(ctx, t); err != nil {
		return Identity{}, err
	}
	return grantIdentity(c, g, t), nil
}

// clientSecret verifies an ApiClient's client id and secret. During a
// rotation's grace period two backing tokens may match the client id.
func (a *authenticator) clientSecret(ctx context.Context, clientID, secret string) (Identity, error) {
	tokens, err := a.clientSecretTokens(ctx, clientID)
	if err != nil {
		return Identity{}, err
	}
	if len(tokens) == 0 {
		return Identity{}, reject(OutcomeUnknown)
	}
	for _, t := range tokens[1:] {
		if t.ClientUID != tokens[0].ClientUID {
			// Two clients carry one id (a race before claims existed, or a
			// damaged store): answer for neither.
			return Identity{}, reject(OutcomeUnknown)
		}
	}
	if a.limiter.blocked(clientID) {
		return Identity{}, reject(OutcomeRateLimited)
	}
	now := a.now()
	outcome := OutcomeWrongSecret
	for _, t := range tokens {
		if !a.verify(t, secret) {
			continue
		}
		if err := tokenValid(t, now); err != nil {
			outcome = outcomeOf(err)
			continue
		}
		c, err := a.client(ctx, t.OwnerNamespace, t.OwnerName, t.OwnerUID)
		if err != nil {
			return Identity{}, err
		}
		if err := a.holds(ctx, t); err != nil {
			return Identity{}, err
		}
		return clientIdentity(c, t, backing.TypeClientSecret), nil
	}
	if outcome == OutcomeWrongSecret {
		a.limiter.fail(clientID)
	}
	return Identity{}, reject(outcome)
}

func (a *authenticator) verify(t backing.Token, secret string) bool {
	if !strings.HasPrefix(t.Hash, token.SchemeArgon2id) {
		ok, _ := token.Verify(t.Hash, t.ID, secret)
		return ok
	}
	key := sha256.Sum256([]byte(t.ID + "\x00" + t.Hash + "\x00" + secret))
	if a.slow.has(key) {
		return true
	}
	ok, _ := token.Verify(t.Hash, t.ID, secret)
	if ok {
		a.slow.add(key)
	}
	return ok
}

func tokenValid(t backing.Token, now time.Time) error {
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return reject(OutcomeExpired)
	}
	if t.RetireAt != nil && !now.Before(*t.RetireAt) {
		return reject(OutcomeRevoked)
	}
	return nil
}

// failureLimiter limits failed attempts per token id or client id, so a
// secret cannot be guessed online; it blocks further attempts (even correct
// ones) until the bucket refills.
type failureLimiter struct {
	mu     sync.Mutex
	every  rate.Limit
	burst  int
	bucket map[string]*rate.Limiter
}

func newFailureLimiter(perSecond float64, burst int) *failureLimiter {
	return &failureLimiter{every: rate.Limit(perSecond), burst: burst, bucket: map[string]*rate.Limiter{}}
}

func (f *failureLimiter) get(key string, create bool) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.bucket[key]
	if l == nil && create {
		if len(f.bucket) > 100_000 {
			f.bucket = map[string]*rate.Limiter{} // bounded memory under a spray of ids
		}
		l = rate.NewLimiter(f.every, f.burst)
		f.bucket[key] = l
	}
	return l
}

func (f *failureLimiter) blocked(key string) bool {
	l := f.get(key, false)
	return l != nil && l.Tokens() < 1
}

func (f *failureLimiter) fail(key string) { f.get(key, true).Allow() }

// verifiedCache remembers successful slow-hash verifications.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[[32]byte]struct{}
}

func (c *verifiedCache) has(k [32]byte) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.m[k]
	return ok
}

func (c *verifiedCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 10_000 {
		c.m = map[[32]byte]struct{}{}
	}
	c.m[k] = struct{}{}
}
