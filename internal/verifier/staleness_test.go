package verifier

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A view older than --max-staleness makes every endpoint answer 503 and
// readiness fail; a heartbeat makes it fresh again; 0 never goes stale.
func TestFreshness(t *testing.T) {
	if (*freshness)(nil).stale() || newFreshness(0).stale() {
		t.Fatal("an unbounded view must never be stale")
	}
	s, tok := benchServer(t)
	s.fresh = newFreshness(50 * time.Millisecond)
	s.fresh.beat()
	verify := func() int {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Code
	}
	if got := verify(); got != http.StatusOK || s.ready() != nil {
		t.Fatalf("fresh: verify %d, ready %v", got, s.ready())
	}
	time.Sleep(80 * time.Millisecond)
	if got := verify(); got != http.StatusServiceUnavailable || s.ready() == nil {
		t.Fatalf("stale: verify %d, ready %v; want 503 and not ready", got, s.ready())
	}
	s.fresh.beat()
	if got := verify(); got != http.StatusOK {
		t.Fatalf("after a heartbeat: verify %d", got)
	}
}
