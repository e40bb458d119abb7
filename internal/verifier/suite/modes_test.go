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

// counter is a latchkey_verifications_total value (TestAbuse* in
// abuse_test.go count failed guesses with it).
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
