package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/latchkey-dev/latchkey/internal/backing"
)

// action is what must happen to a credential's secret.
type action int

const (
	// actionKeep leaves the issued secret as it is.
	actionKeep action = iota
	// actionIssue issues the first secret.
	actionIssue
	// actionReissue issues a new secret because the issued one was lost or
	// altered (consumer Secret deleted or edited, backing token gone).
	actionReissue
	// actionRotate issues a new secret on request (annotation, changed
	// user-chosen secret); the old one may stay valid for a grace period.
	actionRotate
)

func (a action) String() string {
	return [...]string{"Keep", "Issue", "Reissue", "Rotate"}[a]
}

// observed is what a controller saw of one credential: its consumer Secret and
// its backing tokens. It holds no secret material, only facts about it.
type observed struct {
	// SecretExists: the consumer Secret exists and is ours.
	SecretExists bool
	// SecretTokenID is the token id recorded in the consumer Secret.
	SecretTokenID string
	// SecretMatches: the secret in the consumer Secret matches the hash in
	// the backing token SecretTokenID (or, for a user-chosen client secret,
	// equals the referenced value).
	SecretMatches bool
	// RotatedFor is the rotate annotation value the consumer Secret was
	// issued for; RotateWanted is the object's current value.
	RotatedFor, RotateWanted string
	// SourceChanged: a user-chosen secret changed in its referenced Secret.
	SourceChanged bool
	// Tampered: the consumer Secret exists and is ours, but its content
	// differs from what was issued (some key edited, added or removed).
	Tampered bool

	// DeliveredTokenID is the token id the object's status records as issued
	// (status.tokenID): the last secret a consumer Secret held. A backing
	// token that is neither it nor retiring was never delivered (a crash
	// between creating it and writing the consumer Secret).
	DeliveredTokenID string

	// Tokens are the owner's backing tokens.
	Tokens []backing.Token
	// ClientUID is the UID of the ApiClient the tokens must belong to; a
	// token of an earlier client of the same name is not current.
	ClientUID types.UID

	// Blocked: a new secret cannot be issued now (client missing or not
	// ready, referenced Secret missing, target Secret owned by someone else).
	Blocked bool
	// RevokeAll: every backing token must go (expired, client gone).
	RevokeAll bool

	Now   time.Time
	Grace time.Duration
}

// plan is the decision for one credential.
type plan struct {
	Action action
	// Current is the backing token in use when Action is actionKeep (or
	// actionRotate, the one being rotated out); nil otherwise.
	Current *backing.Token
	// Delete lists token ids to delete now.
	Delete []string
	// Retire lists token ids to keep valid until Now+Grace, then delete.
	Retire []string
	// RequeueAfter is when a retiring token's grace period ends (0: none).
	RequeueAfter time.Duration
	// Unconfirmed: a first issue decided from the cache alone; the consumer
	// Secret is created, not applied (see decideConfirmed).
	Unconfirmed bool
}

// decide is the pure decision of the credential controllers: given what was
// observed, must a secret be issued, reissued or rotated, and which backing
// tokens must go now or later? It never regenerates a consistent secret, which
// is what makes an issued secret survive restarts, resyncs and conflicts.
func decide(o observed) plan {
	var p plan
	if o.RevokeAll {
		for _, t := range o.Tokens {
			p.Delete = append(p.Delete, t.ID)
		}
		return p
	}

	var current *backing.Token
	for i := range o.Tokens {
		t := &o.Tokens[i]
		if o.SecretExists && t.ID == o.SecretTokenID && (o.ClientUID == "" || t.ClientUID == o.ClientUID) {
			current = t
		}
	}

	switch {
	case o.Blocked:
		p.Action = actionKeep
		p.Current = current
	case !o.SecretExists && !o.delivered():
		// Nothing issued yet, or only orphans of a crash before their
		// consumer Secret was written: no consumer ever saw a value, so this
		// is a first issue, not a reissue; the orphans go below.
		p.Action = actionIssue
	case current == nil || !o.SecretMatches:
		// Lost or altered: the old secret may be in the wrong hands, so every
		// old backing token goes at once, grace period or not.
		p.Action = actionReissue
		for _, t := range o.Tokens {
			p.Delete = append(p.Delete, t.ID)
		}
		return p
	case o.RotatedFor != o.RotateWanted || o.SourceChanged:
		p.Action = actionRotate
		p.Current = current
		if o.Grace > 0 {
			p.Retire = append(p.Retire, current.ID)
			p.RequeueAfter = o.Grace
		} else {
			p.Delete = append(p.Delete, current.ID)
		}
	default:
		p.Action = actionKeep
		p.Current = current
	}

	for _, t := range o.Tokens {
		if current != nil && t.ID == current.ID {
			continue
		}
		switch {
		case t.RetireAt == nil && !o.Blocked:
			// Neither current nor retiring: left over from a crash between
			// steps. Nothing hands it out any more.
			p.Delete = append(p.Delete, t.ID)
		case t.RetireAt == nil:
		case !o.Now.Before(*t.RetireAt):
			p.Delete = append(p.Delete, t.ID)
		default:
			p.RequeueAfter = minPositive(p.RequeueAfter, t.RetireAt.Sub(o.Now))
		}
	}
	return p
}

// tampered tells an edited consumer Secret from one whose backing token was
// deleted by hand: when the Secret still names the token id status records
// as delivered and no backing token of that id exists, the Secret was not
// edited (nothing is left to compare it with) and the reissue is reported as
// Reissued, not SecretTampered (docs/credentials.md, "Issued once").
func (o observed) tampered() bool {
	if !o.SecretExists || o.SecretMatches {
		return false
	}
	if o.SecretTokenID == "" || o.SecretTokenID != o.DeliveredTokenID {
		return true
	}
	for _, t := range o.Tokens {
		if t.ID == o.SecretTokenID {
			return true
		}
	}
	return false
}

// delivered reports whether some backing token holds a value that a consumer
// Secret held: the one status records as issued, or one retiring after a
// rotation.
func (o observed) delivered() bool {
	for _, t := range o.Tokens {
		if t.RetireAt != nil || o.DeliveredTokenID != "" && t.ID == o.DeliveredTokenID {
			return true
		}
	}
	return false
}

// expiry reports whether a credential expiring at expiresAt has expired at
// now, and otherwise how long until it does (0 when it never expires).
func expiry(expiresAt *time.Time, now time.Time) (expired bool, after time.Duration) {
	if expiresAt == nil {
		return false, 0
	}
	if !now.Before(*expiresAt) {
		return true, 0
	}
	return false, expiresAt.Sub(now)
}

// waitBackoff is how long to wait before looking again for an object that
// cannot be watched (a user's Secret, which is not cached): half the time
// already waited, between 1 s and 30 s, so a Secret applied with its client
// is seen within a second or two and a long-missing one costs one GET per 30 s.
func waitBackoff(waited time.Duration) time.Duration {
	return min(max(waited/2, time.Second), 30*time.Second)
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 {
		return b
	}
	if b <= 0 {
		return a
	}
	return min(a, b)
}
