package install

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// failoverBound is how long the issue allows between the leader's death and
// another replica leading.
const failoverBound = 15 * time.Second

// TestLeaderFailover runs two manager binaries with the chart's arguments
// (leader election and its timings included; the verifier served by the
// manager, verifier.servedByManager) against one API server. One leads; it is
// killed with SIGKILL (no Lease release, as when a node dies); the other must
// lead within 15 s and reconcile, and the verifier of each must answer
// /readyz with 200 the whole time it runs. Who leads is read from the
// metrics, over HTTPS with a token allowed GET /metrics (metrics.secure).
func TestLeaderFailover(t *testing.T) {
	ns, apps := "lk-ha", "apps-ha"
	ensureNamespace(t, ns)
	ensureNamespace(t, apps)
	objs := helmTemplate(t, ns, "verifier.servedByManager=true")
	args, podNS := managerArgs(t, objs, "latchkey")
	ensureNamespace(t, flagValue(t, args, "--token-namespace"))
	reader := find(t, objs, "ClusterRole", "latchkey-metrics-reader")
	serverSideApply(t, env.Client, "helm", []*unstructured.Unstructured{reader})
	t.Cleanup(func() { uninstall(t, []*unstructured.Unstructured{reader}) })
	token := metricsReaderToken(t, ns, reader.GetName())
	for _, want := range []string{"--leader-elect", "--leader-elect-lease-duration=8s", "--leader-elect-retry-period=2s"} {
		if !strings.Contains(strings.Join(args, " "), want) {
			t.Fatalf("the chart's args lack %s: %v", want, args)
		}
	}
	kubeconfig := writeKubeconfig(t, env.Config)
	// The webhook is not what this test is about (TestInstall covers it);
	// without it the replicas need no certificate.
	replicas := []*process{
		startManager(t, "replica-a", args, podNS, kubeconfig, "--enable-webhooks=false"),
		startManager(t, "replica-b", args, podNS, kubeconfig, "--enable-webhooks=false"),
	}
	for _, p := range replicas {
		p.waitReady(t, 60*time.Second)
	}

	// From now on, poll both verifiers; a replica must answer 200 until it
	// is killed.
	killed := make(map[*process]bool)
	var mu sync.Mutex
	var failures []string
	stopPolling := make(chan struct{})
	var polling sync.WaitGroup
	for _, p := range replicas {
		polling.Go(func() {
			for {
				select {
				case <-stopPolling:
					return
				case <-time.After(100 * time.Millisecond):
				}
				code, body, err := get(p.verifier, "/readyz", nil)
				mu.Lock()
				if !killed[p] && (err != nil || code != http.StatusOK) {
					failures = append(failures, fmt.Sprintf("%s %s: verifier /readyz %d %s %v", time.Now().Format(time.StampMilli), p.name, code, body, err))
				}
				mu.Unlock()
			}
		})
	}
	defer func() { close(stopPolling); polling.Wait() }()

	var leader, follower *process
	testenv.Eventually(t, 30*time.Second, func() error {
		var leaders []*process
		for _, p := range replicas {
			if isLeader(p, token) {
				leaders = append(leaders, p)
			}
		}
		if len(leaders) != 1 {
			return fmt.Errorf("%d leaders, want 1", len(leaders))
		}
		leader = leaders[0]
		return nil
	})
	for _, p := range replicas {
		if p != leader {
			follower = p
		}
	}
	t.Logf("%s leads, %s follows", leader.name, follower.name)
	// The leader reconciles.
	grant := issue(t, apps, "before")

	mu.Lock()
	killed[leader] = true
	mu.Unlock()
	killedAt := time.Now()
	leader.kill()
	testenv.Eventually(t, failoverBound, func() error {
		if !isLeader(follower, token) {
			return fmt.Errorf("%s does not lead yet", follower.name)
		}
		return nil
	})
	took := time.Since(killedAt)
	t.Logf("%s leads %s after the leader was killed (bound %s)", follower.name, took.Round(100*time.Millisecond), failoverBound)
	if took > failoverBound {
		t.Fatalf("failover took %s, more than %s", took, failoverBound)
	}

	// The new leader reconciles, and the survivor verifies old and new
	// credentials.
	grant2 := issue(t, apps, "after")
	for _, g := range []string{grant, grant2} {
		assertVerifies(t, follower, secretValue(t, apps, g, "token"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("a running replica's verifier was not ready:\n%s", strings.Join(failures, "\n"))
	}
}

// isLeader reads controller-runtime's leader_election_master_status gauge.
func isLeader(p *process, token string) bool {
	code, body, err := getMetrics(p.metrics, token)
	if err != nil || code != http.StatusOK {
		return false
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.Contains(line, `name="latchkey.latchkey.dev"`) {
			return strings.HasSuffix(strings.TrimSpace(line), " 1")
		}
	}
	return false
}

// issue creates an ApiClient and a bearer grant and waits until both are
// Ready; it returns the grant's (and its Secret's) name.
func issue(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"},
	}
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-token"},
		Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: name},
	}
	for _, o := range []client.Object{c, g} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, o := range latchkeyObjects(t, ns) {
			if o.GetName() != c.Name && o.GetName() != g.Name {
				continue
			}
			if s, r := readyCondition(o); s != "True" {
				return fmt.Errorf("%s %s: Ready=%q (%s)", o.GetKind(), o.GetName(), s, r)
			}
		}
		return nil
	})
	return g.Name
}
