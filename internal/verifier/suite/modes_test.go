package suite_test

import (
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

// --verifier-only serves from its own caches next to the operator, and
// sees revocations like the operator's own verifier.
func TestVerifierOnly(t *testing.T) {
	f := newFixture(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	env.StartManager(t, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true, VerifierListener: ln})
	only := &fixture{t: t, g: f.g, ctx: f.ctx, ns: f.ns, opNs: f.opNs, url: "http://" + ln.Addr().String(), http: f.http}
	f.g.Eventually(func() int { return only.get("/readyz", nil).StatusCode }).Should(Equal(http.StatusOK))

	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	g := grant("g", "c", latchkeyv1alpha1.CredentialTypeBearer)
	f.create(g)
	f.waitReady(g)
	h := bearer(f.secret("g")["token"])
	f.g.Eventually(func() int { return only.verify(h, "") }).Should(Equal(200))
	f.g.Expect(env.Client.Delete(f.ctx, g)).To(Succeed())
	f.g.Eventually(func() int { return only.verify(h, "") }).WithTimeout(time.Second).Should(Equal(401))
}

// Failed attempts against one credential are rate-limited, and every
// answer is counted by result.
func TestFailedAttemptsLimitedAndCounted(t *testing.T) {
	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	f.waitReady(c)
	s := f.secret("c")
	before := counter("verify", "rate_limited")
	codes := map[int]int{}
	for range 15 {
		codes[f.verify(basic(s["client_id"], "key_guess"), "")]++
	}
	f.g.Expect(codes[401]).To(BeNumerically(">=", 9))
	f.g.Expect(codes[429]).To(BeNumerically(">=", 4), "guessing is slowed down: %v", codes)
	f.g.Expect(counter("verify", "rate_limited") - before).To(BeNumerically(">=", 4))
	f.g.Expect(counter("verify", "wrong_secret")).To(BeNumerically(">=", 9))
	// The bucket refills: the right secret works again.
	f.g.Eventually(func() int { return f.verify(basic(s["client_id"], s["client_secret"]), "") }).WithTimeout(5 * time.Second).Should(Equal(200))
	f.g.Expect(counter("verify", "valid")).To(BeNumerically(">=", 1))
}

func counter(endpoint, result string) float64 {
	families, _ := metrics.Registry.Gather()
	for _, mf := range families {
		if mf.GetName() != "latchkey_verifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "endpoint") == endpoint && label(m, "result") == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
