package suite_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// lastUsedAt never goes backwards when several replicas write it: two
// replicas of the operator (leader-elected controllers, a verifier and a
// usage flusher on each), one with its clock an hour ahead of the other. Once
// the one ahead has recorded a use, the one behind keeps verifying and
// flushing and never writes its older time; a watcher polling the API server
// all along sees the value only ever increase.
func TestUsageNeverGoesBackwards(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	ctx := context.Background()
	ns, opNs := env.Namespace(t), env.Namespace(t)
	replica := func(now func() time.Time) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		g.Expect(err).NotTo(HaveOccurred())
		env.StartManager(t, operator.Options{Namespace: opNs, WatchNamespaces: []string{ns}, VerifierListener: ln,
			LeaderElection: true, LeaderElectionID: "usage-" + ns,
			Verifier: verifier.Options{UsageInterval: 100 * time.Millisecond, Now: now}})
		return "http://" + ln.Addr().String() + "/v1/verify"
	}
	const skew = time.Hour
	ahead := replica(func() time.Time { return time.Now().Add(skew) })
	behind := replica(time.Now)

	f := &fixture{t: t, g: g, ctx: ctx, ns: ns, opNs: opNs, http: &http.Client{Timeout: 5 * time.Second}}
	f.create(&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}})
	grant := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "t"}, Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "c"}}
	f.create(grant)
	f.waitReady(grant)
	tok := f.secret("t")["token"]
	verify := func(url string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := f.http.Do(req)
		if err != nil {
			return -1
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	lastUsed := func() *metav1.Time {
		got := &latchkeyv1alpha1.CredentialGrant{}
		if err := env.Client.Get(ctx, clientKey(ns, "t"), got); err != nil {
			return nil
		}
		return got.Status.LastUsedAt
	}

	// The watcher: every value the API server shows, in order.
	var (
		mu       sync.Mutex
		seen     []time.Time
		stopped  = make(chan struct{})
		finished = make(chan struct{})
	)
	go func() {
		defer close(finished)
		for {
			select {
			case <-stopped:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if at := lastUsed(); at != nil {
				mu.Lock()
				if len(seen) == 0 || !seen[len(seen)-1].Equal(at.Time) {
					seen = append(seen, at.Time)
				}
				mu.Unlock()
			}
		}
	}()

	// The replica ahead records a use an hour from now.
	g.Eventually(func() int { return verify(ahead) }).Should(Equal(http.StatusOK))
	g.Eventually(func() time.Time {
		if at := lastUsed(); at != nil {
			return at.Time
		}
		return time.Time{}
	}).Should(BeTemporally(">", time.Now().Add(skew/2)))

	// The replica behind has synced its caches too (its informers start on
	// their own schedule: 503 until then).
	g.Eventually(func() int { return verify(behind) }).Should(Equal(http.StatusOK))

	// The replica behind verifies the same credential, flush after flush,
	// also while the replica ahead keeps moving the value forward.
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		g.Expect(verify(behind)).To(Equal(http.StatusOK))
		if i%5 == 0 {
			g.Expect(verify(ahead)).To(Equal(http.StatusOK))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the last flushes of both replicas
	close(stopped)
	<-finished

	final := lastUsed()
	g.Expect(final).NotTo(BeNil())
	g.Expect(final.Time).To(BeTemporally(">", time.Now().Add(skew/2)), "the replica behind overwrote the newer use")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("lastUsedAt values seen: %d, last %v", len(seen), seen[len(seen)-1])
	for i := 1; i < len(seen); i++ {
		g.Expect(seen[i]).To(BeTemporally(">", seen[i-1]), "lastUsedAt went from %v back to %v", seen[i-1], seen[i])
	}
}
