package verifier

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

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
	return credentialFromHeaders(r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
}

// credentialFromHeaders extracts the credential from the values of the
// Authorization and X-API-Key headers ("" when absent), whatever protocol
// carried them. Authorization wins over X-API-Key.
func credentialFromHeaders(authorization, apiKey string) (presented, error) {
	if h := authorization; h != "" {
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
	if k := strings.TrimSpace(apiKey); k != "" {
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
	now func() time.Time
	// limiter limits failed guesses of user-chosen (argon2id) secrets per
	// (client id, source). Generated secrets have none: 256 random bits
	// cannot be guessed online, and a limiter would only let anyone who
	// knows an id lock its owner out.
	limiter *failureLimiter
	// slow caches successful argon2id verifications: a user-chosen client
	// secret would otherwise cost ~20 ms of CPU and 19 MiB on every request.
	slow *verifiedCache
	// gate bounds the memory of the argon2id computations in flight
	// (--slow-hash-memory-budget); nil: unbounded.
	gate *slowHashGate

	// Access tokens: the signing-key Secret's name, the issuer and audience
	// they carry, and their longest lifetime.
	keySecret, issuer, audience string
	accessTTL                   time.Duration
	keyCache                    keyCache

	// memo holds what grantSecret derived for recently verified tokens
	// (memo.go).
	memo grantMemo
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

// grantSecret verifies a CredentialGrant's token. Grant secrets are
// generated (SHA-256 of 256 random bits): no failure limiter, so a correct
// token is never turned away, whatever was sent before.
func (a *authenticator) grantSecret(ctx context.Context, tokenID, secret string) (Identity, error) {
	if e := a.memo.get(tokenID); e != nil {
		if id, err, ok := a.fromMemo(e, secret); ok {
			return id, err
		}
	}
	t, sec, err := a.tokenSecret(ctx, tokenID)
	if err != nil {
		return Identity{}, err
	}
	if t.OwnerKind != backing.KindCredentialGrant {
		return Identity{}, reject(OutcomeUnknown)
	}
	if strings.HasPrefix(t.Hash, token.SchemeArgon2id) {
		// Not issued today; should one exist, it is bounded like any other.
		m, err := a.match(ctx, tokenID, []backing.Token{t}, secret)
		if err != nil {
			return Identity{}, err
		}
		if m[0] == nil {
			return Identity{}, reject(OutcomeWrongSecret)
		}
	} else if ok, _ := token.Verify(t.Hash, t.ID, secret); !ok {
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
	claim, err := a.holdsClaim(ctx, t)
	if err != nil {
		return Identity{}, err
	}
	id := grantIdentity(c, g, t)
	if !strings.HasPrefix(t.Hash, token.SchemeArgon2id) {
		a.remember(t, sec, g, c, claim, id)
	}
	return id, nil
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
	m, err := a.match(ctx, clientID, tokens, secret)
	if err != nil {
		return Identity{}, err
	}
	now := a.now()
	outcome := OutcomeWrongSecret
	for i, t := range tokens {
		if m[i] == nil {
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
	return Identity{}, reject(outcome)
}

// matches marks the tokens a secret matches (non-nil entries).
type matches []*backing.Token

// match checks secret against tokens, cheapest first, and marks which match.
//
// Generated secrets (SHA-256) cost a hash of a few hundred bytes: they are
// checked with no limit at all. A user-chosen secret (argon2id) costs ~19 MiB
// and tens of milliseconds, so before its hash is computed:
//
//  1. a success remembered by the verified cache answers at once (a correct
//     secret costs one argon2id computation, then none);
//  2. a failure-limiter token of (limitKey, the request's source) is taken:
//     none left answers 429 (OutcomeRateLimited), before any hash. The token
//     is given back when the secret matches, so only wrong guesses count and
//     a source that has not failed is never turned away;
//  3. the hash's memory is reserved from the slow-hash budget, without
//     waiting, and the limiter token is given back if it does not fit
//     (nothing was evaluated). A source with a failure or another check in
//     flight against limitKey gets little of the budget (slowHashGate) and
//     is answered 429 (OutcomeRateLimited) when that is used; a source
//     with neither finds the rest, and is answered 503 (OutcomeBusy, with
//     Retry-After) only when the whole budget is in use.
func (a *authenticator) match(ctx context.Context, limitKey string, tokens []backing.Token, secret string) (matches, error) {
	out := make(matches, len(tokens))
	var pending []int // user-chosen, not in the verified cache
	var cost int64    // memory of the largest of them
	for i := range tokens {
		t := &tokens[i]
		if !strings.HasPrefix(t.Hash, token.SchemeArgon2id) {
			if ok, _ := token.Verify(t.Hash, t.ID, secret); ok {
				out[i] = t
			}
			continue
		}
		if a.slow.has(verifiedKey(t, secret)) {
			out[i] = t
			continue
		}
		if m, ok := argon2Memory(t.Hash); ok { // else token.Verify refuses it unhashed
			pending = append(pending, i)
			cost = max(cost, m)
		}
	}
	if len(pending) == 0 || slices.ContainsFunc(out, func(t *backing.Token) bool { return t != nil }) {
		return out, nil
	}

	limit := limitKey + "\x00" + sourceOf(ctx)
	ok, clean := a.limiter.reserve(limit)
	if !ok {
		return nil, reject(OutcomeRateLimited)
	}
	release, ok := a.gate.tryAcquire(limitKey, cost, !clean)
	if !ok {
		a.limiter.refund(limit) // nothing was evaluated
		if !clean {
			return nil, reject(OutcomeRateLimited)
		}
		return nil, errSlowHashBusy
	}
	hit := false
	for _, i := range pending {
		t := &tokens[i]
		if ok, _ := token.Verify(t.Hash, t.ID, secret); ok {
			a.slow.add(verifiedKey(t, secret))
			out[i], hit = t, true
		}
	}
	release()
	if hit {
		a.limiter.refund(limit)
	}
	return out, nil
}

func verifiedKey(t *backing.Token, secret string) [32]byte {
	return sha256.Sum256([]byte(t.ID + "\x00" + t.Hash + "\x00" + secret))
}

// argon2Memory is the memory, in bytes, that verifying an argon2id PHC hash
// allocates (its m parameter, in KiB), parsed as token.Verify parses it; ok
// is false when token.Verify would refuse the hash without computing it.
func argon2Memory(hash string) (int64, bool) {
	parts := strings.Split(hash, "$")
	if len(parts) != 5 || parts[0] != token.SchemeArgon2id {
		return 0, false
	}
	var mem, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil || mem > 1<<20 || t > 10 || p == 0 {
		return 0, false
	}
	return int64(mem) << 10, true
}

// OutcomeBusy: a user-chosen secret could not be checked because the
// argon2id computations in flight already use --slow-hash-memory-budget; the
// caller is told to retry (503, Retry-After), never that it was wrong.
const OutcomeBusy Outcome = "busy"

func init() { allOutcomes = append(allOutcomes, OutcomeBusy) }

var errSlowHashBusy = rejection{OutcomeBusy}

// callerKey is the context key of the request's source address.
type callerKey struct{}

// withSource records each request's source (remoteAddr: the first
// X-Forwarded-For address, else the peer) in its context, where the failure
// limiter of user-chosen secrets finds it. Requests with a Bearer credential
// skip it: grant tokens and access tokens never reach the limiter, and the
// forward-auth hot path keeps its allocations.
func withSource(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth := headerGet(r.Header, "Authorization"); len(auth) < 7 || !strings.EqualFold(auth[:7], "Bearer ") {
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, remoteAddr(r)))
		}
		h.ServeHTTP(w, r)
	})
}

// sourceOf is the source withSource recorded; "" when none (every such
// request shares one limiter bucket per client id).
func sourceOf(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
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

// failureLimiter limits failed guesses of user-chosen secrets per key
// (client id and source): a token bucket per key, taken before the hash is
// computed and given back when the secret matched or was not checked. A
// bucket given back to full is dropped at once; the others (recent
// failures) stay until pushed out, least recently used first, beyond
// maxKeys: a spray of ids and sources costs bounded memory (~180 bytes a
// key, ~12 MiB at the cap).
type failureLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	maxKeys int
	now     func() time.Time
	keys    map[string]*list.Element
	lru     list.List // of *bucket, most recent first
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

// defaultLimiterKeys bounds the failure limiter's map.
const defaultLimiterKeys = 1 << 16

func newFailureLimiter(perSecond float64, burst int) *failureLimiter {
	return &failureLimiter{rate: perSecond, burst: float64(burst), maxKeys: defaultLimiterKeys, now: time.Now,
		keys: map[string]*list.Element{}}
}

// refill brings b up to now.
func (f *failureLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens = min(f.burst, b.tokens+d*f.rate)
	}
	b.at = now
}

// reserve takes a token for key; ok is false when none is left (answer 429
// without computing the hash). clean: the bucket was full, so this source
// has no failure (nor another check in flight) against the key.
func (f *failureLimiter) reserve(key string) (ok, clean bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	var b *bucket
	if e, ok := f.keys[key]; ok {
		b = e.Value.(*bucket)
		f.refill(b, now)
		f.lru.MoveToFront(e)
	} else {
		for f.lru.Len() >= f.maxKeys {
			oldest := f.lru.Back()
			delete(f.keys, oldest.Value.(*bucket).key)
			f.lru.Remove(oldest)
		}
		b = &bucket{key: key, tokens: f.burst, at: now}
		f.keys[key] = f.lru.PushFront(b)
	}
	if b.tokens < 1 {
		return false, false
	}
	clean = b.tokens >= f.burst
	b.tokens--
	return true, clean
}

// refund gives back a token reserve took: the secret matched, or was not
// checked. A bucket that is full again is dropped.
func (f *failureLimiter) refund(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.keys[key]
	if !ok {
		return
	}
	b := e.Value.(*bucket)
	f.refill(b, f.now())
	if b.tokens++; b.tokens >= f.burst {
		delete(f.keys, key)
		f.lru.Remove(e)
	}
}

// size is the number of keys held.
func (f *failureLimiter) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.keys)
}

// slowHashGate bounds the argon2id computations in flight, in memory and in
// CPU. Memory: a computation starts only if its memory fits in the budget
// next to those running (one always may when none runs), and one client id
// may hold at most half of the budget, so guesses against one client leave
// room for the others. CPU: computations for one client id start at most
// slowHashStartsPerSecond a second (after a burst) per class below; a
// correct secret needs one computation per replica (the verified cache holds
// it after), so only guessing meets this limit. Computations for
// a source that has failed against the client (a suspect: its limiter bucket
// was not full) are a class of their own, held tighter still: at most one
// per client id at a time, and at most half of the budget in all, so a
// source that has not failed finds room even while one that has keeps
// guessing. It never waits: over a limit the caller answers 429 or 503.
type slowHashGate struct {
	mu          sync.Mutex
	budget      int64
	used        int64
	per         map[string]int64
	suspectUsed int64
	suspect     map[string]bool
	now         func() time.Time
	starts      map[startKey]*bucket
}

// startKey is a client id and whether the computation is for a suspect.
type startKey struct {
	key     string
	suspect bool
}

// Starts of argon2id computations per client id and class: ~30 ms of CPU
// each, so at most ~0.12 of a core per attacked client once the bursts are
// spent. Sources that have not failed need one per client and replica (then
// the verified cache answers): their burst is small. Suspects are held by
// the failure limiter per source already: their burst lets one source use
// the limiter's default burst of 10.
const (
	slowHashStartsPerSecond   = 2
	slowHashStartBurst        = 4
	slowHashSuspectStartBurst = 10
)

func newSlowHashGate(budget int64) *slowHashGate {
	return &slowHashGate{budget: budget, per: map[string]int64{}, suspect: map[string]bool{}, now: time.Now,
		starts: map[startKey]*bucket{}}
}

// tryAcquire reserves cost bytes for key (a client id); release gives them
// back. suspect: the request's source has failed against key.
func (g *slowHashGate) tryAcquire(key string, cost int64, suspect bool) (release func(), ok bool) {
	if g == nil {
		return func() {}, true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	mine := g.per[key]
	if g.used > 0 {
		switch {
		case g.used+cost > g.budget:
			return nil, false
		case mine > 0 && mine+cost > g.budget/2:
			return nil, false
		case suspect && (g.suspect[key] || g.suspectUsed > 0 && g.suspectUsed+cost > g.budget/2):
			return nil, false
		}
	}
	now := g.now()
	burst := float64(slowHashStartBurst)
	if suspect {
		burst = slowHashSuspectStartBurst
	}
	sk := startKey{key, suspect}
	b := g.starts[sk]
	if b == nil {
		if len(g.starts) >= defaultLimiterKeys {
			for k, o := range g.starts { // drop the refilled ones
				if now.Sub(o.at).Seconds()*slowHashStartsPerSecond+o.tokens >= slowHashSuspectStartBurst {
					delete(g.starts, k)
				}
			}
		}
		b = &bucket{tokens: burst, at: now}
		g.starts[sk] = b
	} else if d := now.Sub(b.at).Seconds(); d > 0 {
		b.tokens, b.at = min(burst, b.tokens+d*slowHashStartsPerSecond), now
	}
	if b.tokens < 1 {
		return nil, false
	}
	b.tokens--
	g.used += cost
	g.per[key] = mine + cost
	if suspect {
		g.suspectUsed += cost
		g.suspect[key] = true
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.used -= cost
		if g.per[key] -= cost; g.per[key] <= 0 {
			delete(g.per, key)
		}
		if suspect {
			g.suspectUsed -= cost
			delete(g.suspect, key)
		}
	}, true
}

// inFlight is the memory reserved now.
func (g *slowHashGate) inFlight() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}

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

// DefaultSlowHashMemoryBudget is the default --slow-hash-memory-budget:
// six argon2id computations of 19 MiB at once.
const DefaultSlowHashMemoryBudget = 128 << 20
