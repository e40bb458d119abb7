package suite_test

import (
	"fmt"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// Issue 14: the manager's Secret informer holds the consumer Secrets it
// issues, as the API server sends them, in their compact form
// (backing.CachedSecret), and a cache read gets exactly the Secret the API
// server has (managedFields aside). A tampered consumer Secret is still
// seen (through the compact object's owner reference) and repaired.
func TestConsumerSecretsCachedCompact(t *testing.T) {
	f := newFixture(t).start()
	inf, err := f.mgr.GetCache().GetInformer(f.ctx, &corev1.Secret{})
	f.g.Expect(err).NotTo(HaveOccurred())
	// What the informer stores, as its handlers receive it.
	var mu sync.Mutex
	stored := map[string]any{}
	record := func(o any) {
		if m, ok := o.(metav1.Object); ok && m.GetNamespace() == f.ns {
			mu.Lock()
			stored[m.GetName()] = o
			mu.Unlock()
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: record, UpdateFunc: func(_, n any) { record(n) }})
	f.g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = inf.RemoveEventHandler(reg) })

	c := f.client("owner", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.SecretTemplate = &latchkeyv1alpha1.SecretTemplate{Labels: map[string]string{"team": "blue"}, Annotations: map[string]string{"note": "kept"}}
	})
	g := f.grant("g", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = latchkeyv1alpha1.CredentialTypeKeyAuth })
	f.waitReady(c)
	f.waitReady(g)

	matches := func(name string) func(g Gomega) {
		return func(gm Gomega) {
			want := f.secret(name)
			want.ManagedFields, want.TypeMeta = nil, metav1.TypeMeta{}
			mu.Lock()
			o := stored[name]
			mu.Unlock()
			cs, ok := o.(*backing.CachedSecret)
			gm.Expect(ok).To(BeTrue(), "the informer holds %T for %s", o, name)
			gm.Expect(cs.GetResourceVersion()).To(Equal(want.ResourceVersion))
			gm.Expect(cs.DeepCopyObject()).To(Equal(want), "the compact %s renders as the API server's Secret", name)
			var read corev1.Secret
			gm.Expect(f.mgr.GetClient().Get(f.ctx, client.ObjectKeyFromObject(want), &read)).To(Succeed())
			read.TypeMeta = metav1.TypeMeta{}
			gm.Expect(&read).To(Equal(want), "a cache read of %s", name)
		}
	}
	for _, name := range []string{"owner", "g"} {
		f.g.Eventually(matches(name)).Should(Succeed())
	}

	// Tampering: the compact object's owner reference brings the grant's
	// reconcile, which restores the Secret.
	before := f.secret("g")
	f.patch(before, fmt.Sprintf(`{"data":{%q:"dGFtcGVyZWQ="}}`, latchkeyv1alpha1.KeySecretKey))
	f.g.Eventually(func() []byte { return f.secret("g").Data[latchkeyv1alpha1.KeySecretKey] }).
		ShouldNot(Equal([]byte("tampered")))
	f.g.Eventually(matches("g")).Should(Succeed())
}
