package verifier

import (
	"net/http"
	"testing"
	"time"
)

// TestNewHTTPServerKeepsItsBounds: the verifier's listener and make bench's
// null handlers share these settings; none of the bounds may be dropped for
// speed (docs/verifier.md, "Server timeouts").
func TestNewHTTPServerKeepsItsBounds(t *testing.T) {
	h := http.NewServeMux()
	s := NewHTTPServer(h)
	if s.Handler != h {
		t.Fatal("NewHTTPServer does not serve the handler it was given")
	}
	for _, b := range []struct {
		name     string
		got, max time.Duration
	}{
		{"ReadHeaderTimeout (Slowloris)", s.ReadHeaderTimeout, 10 * time.Second},
		{"ReadTimeout (slow bodies)", s.ReadTimeout, 30 * time.Second},
		{"WriteTimeout (clients that never read)", s.WriteTimeout, 30 * time.Second},
		{"IdleTimeout", s.IdleTimeout, 5 * time.Minute},
	} {
		if b.got <= 0 || b.got > b.max {
			t.Errorf("%s = %v, want a bound in (0, %v]", b.name, b.got, b.max)
		}
	}
	if s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 64<<10 {
		t.Errorf("MaxHeaderBytes = %d, want a bound in (0, 64 KiB]", s.MaxHeaderBytes)
	}
}
