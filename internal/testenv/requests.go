package testenv

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/rest"

	"github.com/latchkey-dev/latchkey/internal/heartbeat"
)

// Requests counts the API requests made through a rest.Config by "verb
// resource[/subresource]" (verb: get, list, watch, create, update, patch,
// delete), for the request-count test and make bench-scale. Requests to the
// heartbeat Secret are counted as "… secrets (heartbeat)": a fixed cost per
// interval, not per object. Discovery is not counted.
type Requests struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap returns a copy of cfg whose requests r counts.
func (r *Requests) Wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	r.mu.Lock()
	r.counts = map[string]int{}
	r.mu.Unlock()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if k := classifyRequest(req); k != "" {
				r.mu.Lock()
				r.counts[k]++
				r.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

// Snapshot returns the counts so far.
func (r *Requests) Snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// RequestsSince is what was counted between two snapshots.
func RequestsSince(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// RequestTotal adds up the counts whose key does not start with skipPrefix
// ("" counts all).
func RequestTotal(m map[string]int, skipPrefix string) int {
	t := 0
	for k, v := range m {
		if skipPrefix == "" || !strings.HasPrefix(k, skipPrefix) {
			t += v
		}
	}
	return t
}

// RequestTable lists the counts, one per line, sorted.
func RequestTable(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-44s %8d\n", k, m[k])
	}
	return b.String()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classifyRequest names an API request, or "" for discovery.
func classifyRequest(r *http.Request) string {
	parts := APIPath(r)
	if parts == nil {
		return ""
	}
	resource := parts[0]
	named := len(parts) >= 2
	if named && resource == "secrets" && parts[1] == heartbeat.Name {
		resource += " (heartbeat)"
	}
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[r.Method]
	if r.Method == http.MethodGet {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return verb + " " + resource
}
