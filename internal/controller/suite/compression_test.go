package suite_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// The manager asks the API server for plain responses unless
// --kube-api-compression: kube-apiserver gzips the watch-list streams every
// informer starts with, and a replica's start is bound by CPU on both sides
// (docs/performance.md: at 10,000 tokens a verifier-only start cost the API
// server 1.1 CPU-seconds plain and 1.9 gzipped). The transport decompresses
// a gzipped response itself and marks it Uncompressed; the test counts those.
func TestAPICompressionOffByDefault(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compression=%t", compress), func(t *testing.T) {
			f := newFixture(t)
			var all, gzipped atomic.Int64
			cfg := rest.CopyConfig(env.Config)
			cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(req *http.Request) (*http.Response, error) {
					resp, err := rt.RoundTrip(req)
					if err == nil {
						all.Add(1)
						if resp.Uncompressed {
							gzipped.Add(1)
						}
					}
					return resp, err
				})
			})
			opts := withSkip(f.options())
			opts.APICompression = compress
			mgr, err := operator.NewManager(cfg, opts)
			f.g.Expect(err).NotTo(HaveOccurred())
			testenv.RunManager(t, mgr)
			c := f.client("c")
			f.waitReady(c)
			f.waitReady(f.grant("g", c.Name))
			time.Sleep(time.Second)
			f.g.Expect(all.Load()).To(BeNumerically(">", 10), "requests seen")
			if compress {
				f.g.Expect(gzipped.Load()).To(BeNumerically(">", 0), "gzipped responses with --kube-api-compression")
			} else {
				f.g.Expect(gzipped.Load()).To(BeZero(), "gzipped responses by default")
			}
		})
	}
}
