package suite_test

import (
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// Acceptance 4: once DELETE returns, the verifier rejects within 1 s, in
// 100 of 100 trials.
func TestRevocationPropagation(t *testing.T) {
	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	f.waitReady(c)
	const trials = 100
	grants := make([]*latchkeyv1alpha1.CredentialGrant, trials)
	for i := range grants {
		grants[i] = grant(fmt.Sprintf("g%d", i), "c", latchkeyv1alpha1.CredentialTypeBearer)
		f.create(grants[i])
	}
	tokens := make([]string, trials)
	for i, g := range grants {
		f.waitReady(g)
		tokens[i] = f.secret(g.Name)["token"]
	}
	var worst time.Duration
	for i, g := range grants {
		h := bearer(tokens[i])
		f.g.Expect(f.verify(h, "")).To(Equal(200))
		f.g.Expect(env.Client.Delete(f.ctx, g)).To(Succeed())
		deleted := time.Now()
		f.g.Eventually(func() int { return f.verify(h, "") }).WithTimeout(time.Second).WithPolling(5*time.Millisecond).
			Should(Equal(401), "trial %d: still accepted 1 s after DELETE returned", i)
		worst = max(worst, time.Since(deleted))
	}
	t.Logf("slowest of %d revocations: %v", trials, worst)
}
