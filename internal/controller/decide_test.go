package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/backing"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	tok := func(id string, retire *time.Time) backing.Token {
		return backing.Token{ID: id, ClientUID: "c1", RetireAt: retire}
	}
	consistent := observed{SecretExists: true, SecretTokenID: "a", SecretMatches: true, DeliveredTokenID: "a",
		Tokens: []backing.Token{tok("a", nil)}, ClientUID: "c1", Now: now}
	with := func(f func(*observed)) observed { o := consistent; o.Tokens = slices.Clone(o.Tokens); f(&o); return o }

	for _, tc := range []struct {
		name         string
		in           observed
		want         action
		del, retire  []string
		requeueAfter time.Duration
	}{
		{name: "nothing yet: issue", in: observed{Now: now}, want: actionIssue},
		{name: "consistent: keep, no writes", in: consistent, want: actionKeep},
		{name: "consumer Secret deleted: reissue, old token revoked",
			in: with(func(o *observed) { o.SecretExists = false }), want: actionReissue, del: []string{"a"}},
		{name: "crash before the first consumer Secret: issue (no consumer saw the orphan), orphan deleted",
			in: observed{Tokens: []backing.Token{tok("x", nil)}, ClientUID: "c1", Now: now}, want: actionIssue, del: []string{"x"}},
		{name: "crash before the first consumer Secret, twice: issue, every orphan deleted",
			in:   observed{Tokens: []backing.Token{tok("x", nil), tok("y", nil)}, ClientUID: "c1", Now: now},
			want: actionIssue, del: []string{"x", "y"}},
		{name: "orphan while status records a token that is gone: issue",
			in:   observed{DeliveredTokenID: "a", Tokens: []backing.Token{tok("x", nil)}, ClientUID: "c1", Now: now},
			want: actionIssue, del: []string{"x"}},
		{name: "consumer Secret deleted, then a crash before its reissue was written: still reissue",
			in:   with(func(o *observed) { o.SecretExists = false; o.Tokens = append(o.Tokens, tok("x", nil)) }),
			want: actionReissue, del: []string{"a", "x"}},
		{name: "consumer Secret deleted during a rotation's grace period: reissue",
			in: with(func(o *observed) {
				o.SecretExists, o.DeliveredTokenID = false, "b"
				o.Tokens = []backing.Token{tok("a", at(time.Minute)), tok("b", nil)}
			}), want: actionReissue, del: []string{"a", "b"}},
		{name: "consumer Secret edited: reissue",
			in: with(func(o *observed) { o.SecretMatches = false }), want: actionReissue, del: []string{"a"}},
		{name: "backing token gone: reissue",
			in: with(func(o *observed) { o.Tokens = nil }), want: actionReissue},
		{name: "token of an earlier client of the same name: reissue",
			in: with(func(o *observed) { o.ClientUID = "c2" }), want: actionReissue, del: []string{"a"}},
		{name: "rotate without grace: old deleted now",
			in: with(func(o *observed) { o.RotateWanted = "1" }), want: actionRotate, del: []string{"a"}},
		{name: "rotate with grace: old retires",
			in: with(func(o *observed) { o.RotateWanted = "1"; o.Grace = time.Minute }), want: actionRotate,
			retire: []string{"a"}, requeueAfter: time.Minute},
		{name: "user-chosen secret changed: rotate",
			in: with(func(o *observed) { o.SourceChanged = true }), want: actionRotate, del: []string{"a"}},
		{name: "retiring token inside grace: kept, requeue at its end",
			in:   with(func(o *observed) { o.Tokens = append(o.Tokens, tok("b", at(30*time.Second))) }),
			want: actionKeep, requeueAfter: 30 * time.Second},
		{name: "retiring token past grace: deleted",
			in:   with(func(o *observed) { o.Tokens = append(o.Tokens, tok("b", at(-time.Second))) }),
			want: actionKeep, del: []string{"b"}},
		{name: "orphan from a crash: deleted",
			in: with(func(o *observed) { o.Tokens = append(o.Tokens, tok("b", nil)) }), want: actionKeep, del: []string{"b"}},
		{name: "expired: every token revoked",
			in:   with(func(o *observed) { o.RevokeAll = true; o.Tokens = append(o.Tokens, tok("b", at(time.Hour))) }),
			want: actionKeep, del: []string{"a", "b"}},
		{name: "blocked with nothing issued: wait",
			in: observed{Blocked: true, Now: now}, want: actionKeep},
		{name: "blocked keeps the issued secret and orphans, drops only the retired",
			in: with(func(o *observed) {
				o.Blocked = true
				o.Tokens = append(o.Tokens, tok("b", nil), tok("c", at(-time.Second)))
			}), want: actionKeep, del: []string{"c"}},
		{name: "blocked and Secret gone: nothing revoked",
			in: with(func(o *observed) { o.Blocked = true; o.SecretExists = false }), want: actionKeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decide(tc.in)
			if got.Action != tc.want {
				t.Fatalf("action = %v, want %v", got.Action, tc.want)
			}
			if !slices.Equal(got.Delete, tc.del) || !slices.Equal(got.Retire, tc.retire) {
				t.Fatalf("delete %v retire %v, want %v %v", got.Delete, got.Retire, tc.del, tc.retire)
			}
			if got.RequeueAfter != tc.requeueAfter {
				t.Fatalf("requeueAfter = %v, want %v", got.RequeueAfter, tc.requeueAfter)
			}
			if got.Action == actionKeep && !tc.in.Blocked && !tc.in.RevokeAll && (got.Current == nil || got.Current.ID != "a") {
				t.Fatalf("keep without the current token")
			}
		})
	}
}

func TestExpiryDecision(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(3*time.Second)
	for _, tc := range []struct {
		name    string
		at      *time.Time
		expired bool
		after   time.Duration
	}{
		{"never", nil, false, 0},
		{"past", &past, true, 0},
		{"now", &now, true, 0},
		{"in 3s: requeue at that time", &future, false, 3 * time.Second},
	} {
		e, a := expiry(tc.at, now)
		if e != tc.expired || a != tc.after {
			t.Errorf("%s: expiry = %v, %v; want %v, %v", tc.name, e, a, tc.expired, tc.after)
		}
	}
}

func TestWaitBackoff(t *testing.T) {
	for _, tc := range []struct{ waited, want time.Duration }{
		{0, time.Second}, {time.Second, time.Second}, {10 * time.Second, 5 * time.Second},
		{time.Minute, 30 * time.Second}, {time.Hour, 30 * time.Second},
	} {
		if got := waitBackoff(tc.waited); got != tc.want {
			t.Errorf("waitBackoff(%v) = %v, want %v", tc.waited, got, tc.want)
		}
	}
}

// A reissue is reported as tampering only when the consumer Secret was
// edited; a backing token deleted by hand leaves nothing to compare the
// untouched Secret with, and is a plain Reissued.
func TestTamperedOrLost(t *testing.T) {
	tok := func(id string) backing.Token { return backing.Token{ID: id, ClientUID: "c1"} }
	base := observed{SecretExists: true, SecretTokenID: "a", DeliveredTokenID: "a", ClientUID: "c1", Tokens: []backing.Token{tok("a")}}
	for _, tc := range []struct {
		name string
		f    func(*observed)
		want bool
	}{
		{"consistent", func(o *observed) { o.SecretMatches = true }, false},
		{"no Secret", func(o *observed) { o.SecretExists = false }, false},
		{"a key edited, backing token present", func(*observed) {}, true},
		{"backing token deleted by hand", func(o *observed) { o.Tokens = nil }, false},
		{"backing token deleted by hand, another token left", func(o *observed) { o.Tokens = []backing.Token{tok("x")} }, false},
		{"token id edited to one never delivered", func(o *observed) { o.SecretTokenID, o.Tokens = "z", nil }, true},
		{"token id annotation removed", func(o *observed) { o.SecretTokenID, o.Tokens = "", nil }, true},
	} {
		o := base
		tc.f(&o)
		if got := o.tampered(); got != tc.want {
			t.Errorf("%s: tampered = %v, want %v", tc.name, got, tc.want)
		}
	}
}
