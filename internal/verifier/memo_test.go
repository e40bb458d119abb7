package verifier

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// TestMemoFollowsInformers: once a token was verified (and remembered),
// every change of the objects it was derived from, and the passing of its
// expiry, changes the answer at once, as on the long path.
func TestMemoFollowsInformers(t *testing.T) {
	future := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *Server, w *memWorld, tokenID string)
		auth   func(tok string) string
		want   int
	}{
		{name: "nothing changed", change: func(*testing.T, *Server, *memWorld, string) {}, want: http.StatusOK},
		{name: "wrong secret, same id", change: func(*testing.T, *Server, *memWorld, string) {},
			auth: func(tok string) string {
				p, _ := token.Parse(tok)
				other, _ := token.New()
				return token.Token{ID: p.ID, Secret: other.Secret}.String()
			}, want: http.StatusUnauthorized},
		{name: "grant deleted", change: func(t *testing.T, _ *Server, w *memWorld, _ string) {
			o, _, _ := w.grants.GetByKey("ns/g")
			must(t, w.grants.Delete(o))
		}, want: http.StatusUnauthorized},
		{name: "grant's expiresAt moved into the past", change: func(t *testing.T, _ *Server, w *memWorld, _ string) {
			cp := w.grantObj().DeepCopy() // replaced, never modified, like an informer
			cp.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Minute)}
			must(t, w.grants.Update(cp))
		}, want: http.StatusUnauthorized},
		{name: "client deactivated", change: func(t *testing.T, _ *Server, w *memWorld, _ string) {
			cp := w.client.DeepCopy()
			off := false
			cp.Spec.Active = &off
			must(t, w.clients.Update(cp))
		}, want: http.StatusUnauthorized},
		{name: "client permissions narrowed", change: func(t *testing.T, _ *Server, w *memWorld, _ string) {
			cp := w.client.DeepCopy()
			cp.Spec.Permissions = []string{"blogs.write"}
			must(t, w.clients.Update(cp))
		}, want: http.StatusForbidden},
		{name: "backing token deleted", change: func(t *testing.T, _ *Server, w *memWorld, id string) {
			o, _, _ := w.secrets.GetByKey("latchkey-system/" + backing.Name(id))
			must(t, w.secrets.Delete(o))
		}, want: http.StatusUnauthorized},
		{name: "revoked", change: func(t *testing.T, s *Server, _ *memWorld, id string) {
			must(t, s.auth.revocations.Add(backing.Revocation{Kind: backing.RevokedToken, TokenID: id}.ConfigMap("latchkey-system")))
		}, want: http.StatusUnauthorized},
		{name: "client id claimed by another client", change: func(t *testing.T, _ *Server, w *memWorld, _ string) {
			must(t, w.secrets.Update(backing.Claim{ClientID: "id_x", ClientUID: "other", OwnerNamespace: "ns", OwnerName: "d"}.Secret("latchkey-system")))
		}, want: http.StatusUnauthorized},
		{name: "grant expires with the clock, objects unchanged", change: func(t *testing.T, s *Server, _ *memWorld, _ string) {
			s.auth.now = func() time.Time { return future.Add(time.Second) }
		}, want: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, tok, w := memServer(t)
			cp := w.grantObj().DeepCopy()
			cp.Spec.ExpiresAt = &metav1.Time{Time: future}
			must(t, w.grants.Update(cp))
			p, err := token.Parse(tok)
			if err != nil {
				t.Fatal(err)
			}
			ask := func(auth string) int {
				req := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
				req.Header.Set("Authorization", "Bearer "+auth)
				req.Header.Set(HeaderRequirePermission, "blogs.read")
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				return rec.Code
			}
			if got := ask(tok); got != http.StatusOK {
				t.Fatalf("before the change: %d, want 200", got)
			}
			if s.auth.memo.get(p.ID) == nil {
				t.Fatal("the verified token was not remembered: the test would not test the memo")
			}
			tc.change(t, s, w, p.ID)
			auth := tok
			if tc.auth != nil {
				auth = tc.auth(tok)
			}
			if got := ask(auth); got != tc.want {
				t.Fatalf("after the change: %d, want %d", got, tc.want)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// grantObj is the grant the indexer holds now.
func (w *memWorld) grantObj() *latchkeyv1alpha1.CredentialGrant {
	o, _, _ := w.grants.GetByKey("ns/g")
	return o.(*latchkeyv1alpha1.CredentialGrant)
}

// TestMemoConcurrent: verifications of one token and changes of its grant
// race freely (go test -race); every answer is one of the two verdicts.
func TestMemoConcurrent(t *testing.T) {
	s, tok, w := memServer(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			cp := w.grantObj().DeepCopy()
			cp.Spec.Description = string(rune('a' + i%26))
			if err := w.grants.Update(cp); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 500 {
				req := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Errorf("status %d, want 200", rec.Code)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
}
