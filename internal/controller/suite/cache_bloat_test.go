package suite_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// Issue 11, acceptance 5: Secrets are cached by the label
// app.kubernetes.io/managed-by=latchkey, which any tenant can put on its own
// Secrets. 200 tenant Secrets of 1 MiB carrying it, in a watched namespace,
// are held in the manager's cache without their data (a quarter of them of
// the consumer type latchkey.dev/token, with a 1 MiB token, a quarter with a
// 200 KiB annotation), the manager's heap grows by a few MiB at most, and it
// still issues and keeps credentials: a resync writes nothing.
func TestCacheTenantSecretsCostNothing(t *testing.T) {
	const n = 200
	f := newFixture(t)
	var writes atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet && !strings.HasSuffix(r.URL.Path, "/secrets/"+heartbeat.Name) {
				writes.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	mgr, err := operator.NewManager(cfg, withSkip(f.options()))
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	// The informer the controllers share (started here if they have not yet).
	_, err = mgr.GetCache().GetInformer(f.ctx, &corev1.Secret{})
	f.g.Expect(err).NotTo(HaveOccurred())
	cached := func() []corev1.Secret {
		var list corev1.SecretList
		f.g.Expect(mgr.GetCache().List(f.ctx, &list, client.InNamespace(f.ns),
			client.MatchingLabels{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue})).To(Succeed())
		return list.Items
	}
	f.g.Expect(cached()).To(BeEmpty())
	before := heapAlloc()

	payload := bytes.Repeat([]byte{'x'}, 1<<20)
	annotation := strings.Repeat("a", 200<<10)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("tenant-%03d", i),
					Labels: map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}},
				Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"blob": payload},
			}
			switch i % 4 {
			case 1:
				s.Type, s.Data = latchkeyv1alpha1.GrantSecretType, map[string][]byte{latchkeyv1alpha1.TokenKey: payload}
			case 2:
				s.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": annotation}
			}
			errs <- env.Client.Create(f.ctx, s)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		f.g.Expect(err).NotTo(HaveOccurred())
	}
	created := time.Now()
	f.g.Eventually(func() int { return len(cached()) }).WithTimeout(120 * time.Second).Should(Equal(n))
	synced := time.Since(created)
	payload, annotation = nil, ""
	after := heapAlloc()
	growth := int64(after) - int64(before)
	// Without the Secret transform this is about +210 MiB.
	t.Logf("heap after GC: %.1f MiB before, %.1f MiB with %d tenant Secrets of 1 MiB in the cache: %+.1f MiB; cache caught up %v after the last create",
		mib(before), mib(after), n, float64(growth)/(1<<20), synced.Round(time.Millisecond))

	for _, s := range cached() {
		size := 0
		for k, v := range s.Data {
			size += len(k) + len(v)
		}
		for k, v := range s.Annotations {
			size += len(k) + len(v)
		}
		f.g.Expect(size).To(BeNumerically("<", 1<<10), "%s (%s) is held in the cache with %d bytes of data and annotations", s.Name, s.Type, size)
		if s.Type == latchkeyv1alpha1.GrantSecretType {
			f.g.Expect(s.Data).To(HaveKey(latchkeyv1alpha1.TokenKey), "a consumer-type Secret shows the key, with a marker value")
		} else {
			f.g.Expect(s.Data).To(BeEmpty())
		}
	}
	// A loose bound: 200 MiB of data held would be 200 MiB of heap.
	f.g.Expect(growth).To(BeNumerically("<", 64<<20), "the tenant Secrets cost %.1f MiB of heap", float64(growth)/(1<<20))

	// Still issues and keeps credentials.
	c := f.client("reader", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.SecretTemplate = &latchkeyv1alpha1.SecretTemplate{Labels: map[string]string{"team": "blue"}, Annotations: map[string]string{"note": "kept"}}
	})
	g := f.grant("token", "reader", func(g *latchkeyv1alpha1.CredentialGrant) {
		g.Spec.Type = latchkeyv1alpha1.CredentialTypeKeyAuth
	})
	f.waitReady(c)
	f.waitReady(g)
	f.g.Eventually(queueDepth).WithTimeout(30 * time.Second).Should(BeZero())
	secrets := map[string]*corev1.Secret{"reader": f.secret("reader"), "token": f.secret("token")}
	reconciled, wrote := reconcileCount(), writes.Load()
	for _, obj := range []client.Object{c, g} {
		f.patch(obj, `{"metadata":{"annotations":{"touched":"1"}}}`)
	}
	f.g.Eventually(func() float64 { return reconcileCount() - reconciled }).Should(BeNumerically(">=", 2))
	f.g.Consistently(queueDepth).WithTimeout(time.Second).Should(BeZero())
	f.g.Expect(writes.Load()-wrote).To(BeZero(), "a resync wrote to the API server")
	for name, s := range secrets {
		now := f.secret(name)
		f.g.Expect(now.ResourceVersion).To(Equal(s.ResourceVersion), "secret %s was written", name)
	}
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
