package verifier

import (
	"slices"
	"sync"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// The valid-token hot path without allocation (issue 14).
//
// A grant token's identity is a pure function of four informer objects:
// its backing-token Secret, its CredentialGrant, its ApiClient and the
// client id's claim Secret (or its absence). Informers never modify an
// object they hold: every change replaces it with a new one. So once a
// token was verified the long way, grantSecret remembers those objects (by
// pointer) and what it derived from them: the index keys, the parsed
// backing token, the identity and its header values. The next request
// looks each object up again in the informers, as before, and reuses the
// derivation only if every lookup returns the very same object and no
// revocation record exists. What depends on the request or the clock is
// checked on every request, as on the long path and in the same order:
// the secret (constant-time compare of its hash), the token's expiry and
// retirement, the grant's expiresAt. Anything else (an object changed,
// deleted or added, a revocation, an argon2id hash, a lookup error) takes
// the long path, which decides and answers exactly as it always did.

// maxMemo bounds the remembered tokens; when full the memo starts over.
// Entries are made only for tokens that passed the long path, never for a
// guess, so only holders of valid credentials fill it.
const maxMemo = 1 << 14

type grantMemo struct {
	mu sync.RWMutex
	m  map[string]*memoEntry
}

// memoEntry is what grantSecret derived for one backing token, from the
// objects it names.
type memoEntry struct {
	secretKey, grantKey, clientKey, claimKey, revocationKey string
	// The informers' objects it was derived from, compared by identity;
	// claim is nil when the client id had no claim.
	sec    any // *backing.CachedToken, or a *corev1.Secret
	grant  *latchkeyv1alpha1.CredentialGrant
	client *latchkeyv1alpha1.ApiClient
	claim  any // *backing.CachedClaim, or a *corev1.Secret
	tok    backing.Token
	id     Identity
}

func (m *grantMemo) get(tokenID string) *memoEntry {
	m.mu.RLock()
	e := m.m[tokenID]
	m.mu.RUnlock()
	return e
}

func (m *grantMemo) put(tokenID string, e *memoEntry) {
	m.mu.Lock()
	if m.m == nil || len(m.m) >= maxMemo {
		m.m = make(map[string]*memoEntry)
	}
	m.m[tokenID] = e
	m.mu.Unlock()
}

// remember stores what the long path derived for t, when the informers'
// indexers are at hand (the cache-reader fallback has no stable objects).
func (a *authenticator) remember(t backing.Token, sec any, g *latchkeyv1alpha1.CredentialGrant,
	c *latchkeyv1alpha1.ApiClient, claim any, id Identity) {
	if a.secrets == nil || a.grants == nil || a.clients == nil || a.revocations == nil {
		return
	}
	id.headers = slices.Clip(id.headerValues()) // shared: an append must copy
	a.memo.put(t.ID, &memoEntry{
		secretKey:     a.namespace + "/" + backing.Name(t.ID),
		grantKey:      t.OwnerNamespace + "/" + t.OwnerName,
		clientKey:     g.Namespace + "/" + g.Spec.ClientName,
		claimKey:      backing.ClaimKey(a.namespace, t.ClientID),
		revocationKey: backing.RevocationKey(a.namespace, backing.RevokedToken, t.ID),
		sec:           sec, grant: g, client: c, claim: claim, tok: t, id: id,
	})
}

// fromMemo answers from e when the informers still hold e's objects; ok
// false sends the request down the long path.
func (a *authenticator) fromMemo(e *memoEntry, secret string) (id Identity, err error, ok bool) {
	if !stillHolds(a.secrets, e.secretKey, e.sec) || !stillHolds(a.grants, e.grantKey, e.grant) ||
		!stillHolds(a.clients, e.clientKey, e.client) || !stillHolds(a.secrets, e.claimKey, e.claim) {
		return Identity{}, nil, false
	}
	if _, revoked, err := a.revocations.GetByKey(e.revocationKey); err != nil || revoked {
		return Identity{}, nil, false
	}
	if ok, _ := token.Verify(e.tok.Hash, e.tok.ID, secret); !ok {
		return Identity{}, reject(OutcomeWrongSecret), true
	}
	now := a.now()
	if err := tokenValid(e.tok, now); err != nil {
		return Identity{}, err, true
	}
	if exp := e.grant.Spec.ExpiresAt; exp != nil && !now.Before(exp.Time) {
		return Identity{}, reject(OutcomeExpired), true
	}
	return e.id, nil, true
}

// stillHolds reports whether idx holds exactly want under key (want nil: holds
// nothing there).
func stillHolds[T comparable](idx interface {
	GetByKey(string) (any, bool, error)
}, key string, want T) bool {
	o, ok, err := idx.GetByKey(key)
	if err != nil {
		return false
	}
	var zero T
	if !ok {
		return want == zero
	}
	got, isT := o.(T)
	return isT && got == want && want != zero
}
