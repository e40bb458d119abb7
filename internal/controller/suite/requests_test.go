package suite_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// Issue 14, acceptance 4: converging n ApiClients with one grant each costs
// at most 1.5× the API requests of a floor that makes the same writes by hand
// (the writes a credential needs: its backing token, its client-id claim,
// its consumer Secret, the finalizer, one status write), and no request
// whose number grows with the objects is a LIST (a LIST per object costs the
// API server a scan of every token in the namespace: quadratic at scale).
func TestConvergeRequestsNearFloor(t *testing.T) {
	const n = 50 // ApiClients, each with one grant: 100 credentials
	f := newFixture(t)
	f.g.SetDefaultEventuallyTimeout(3 * time.Minute)

	// The floor: the same writes, made once each by a client that knows
	// what to write, with the same client settings (rest.Config).
	var floorLog testenv.Requests
	floorCfg := floorLog.Wrap(env.Config)
	floorClient, err := client.New(floorCfg, client.Options{Scheme: env.Client.Scheme()})
	f.g.Expect(err).NotTo(HaveOccurred())
	floorNs := env.Namespace(t)
	for i := range n {
		floorWrites(f, floorClient, floorNs, f.opNs, i)
	}
	floor := floorLog.Snapshot()

	var opLog testenv.Requests
	cfg := opLog.Wrap(env.Config)
	mgr, err := operator.NewManager(cfg, withSkip(f.options()))
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	// Let the informers start and list before counting per-object work.
	f.g.Eventually(func() bool { return mgr.GetCache().WaitForCacheSync(f.ctx) }).Should(BeTrue())
	time.Sleep(time.Second)
	start := opLog.Snapshot()

	var clients []*latchkeyv1alpha1.ApiClient
	var grants []*latchkeyv1alpha1.CredentialGrant
	for i := range n {
		clients = append(clients, f.client(fmt.Sprintf("c%03d", i)))
		grants = append(grants, f.grant(fmt.Sprintf("g%03d", i), fmt.Sprintf("c%03d", i)))
	}
	for _, c := range clients {
		f.waitReady(c)
	}
	for _, g := range grants {
		f.waitReady(g)
	}
	// Let trailing writes (events, requeues) land.
	time.Sleep(3 * time.Second)
	used := testenv.RequestsSince(start, opLog.Snapshot())
	for k := range used {
		if strings.Contains(k, "(heartbeat)") {
			delete(used, k) // per interval, not per object
		}
	}
	got, want := testenv.RequestTotal(used, "watch "), testenv.RequestTotal(floor, "")
	t.Logf("converging %d clients + %d grants: %d requests (floor %d, %.2fx)\noperator:\n%sfloor:\n%s",
		n, n, got, want, float64(got)/float64(want), testenv.RequestTable(used), testenv.RequestTable(floor))
	f.g.Expect(float64(got)).To(BeNumerically("<=", 1.5*float64(want)),
		"the operator made %d API requests to converge %d credentials, more than 1.5x the floor's %d", got, 2*n, want)
	for k, v := range used {
		if strings.HasPrefix(k, "list ") {
			f.g.Expect(v).To(BeNumerically("<", n/5), "%d %q requests for %d objects: a LIST per object", v, k, 2*n)
		}
		if strings.HasPrefix(k, "get ") {
			f.g.Expect(v).To(BeNumerically("<", n/5), "%d %q requests for %d objects: an uncached GET per object", v, k, 2*n)
		}
	}
}

// floorWrites makes, by hand, the writes that converging one ApiClient and
// its grant needs: each object, its finalizer, its backing token and
// consumer Secret, the client's id claim, one status write each.
func floorWrites(f *fixture, c client.Client, ns, opNs string, i int) {
	f.t.Helper()
	ctx := f.ctx
	mk := func(ns, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}},
			Data: map[string][]byte{"k": []byte("v")}}
	}
	ac := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%03d", i), Namespace: ns},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"}}
	// Creating the test's own objects is not the operator's work: it is
	// counted on neither side.
	f.g.Expect(env.Client.Create(ctx, ac)).To(Succeed())
	gr := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("g%03d", i), Namespace: ns},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: ac.Name}}
	f.g.Expect(env.Client.Create(ctx, gr)).To(Succeed())
	for _, o := range []client.Object{ac, gr} {
		f.g.Expect(c.Patch(ctx, o, client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":["latchkey.dev/floor"]}}`)))).To(Succeed())
	}
	for _, s := range []*corev1.Secret{
		mk(opNs, fmt.Sprintf("floor-claim-%s-%03d", ns, i)), mk(opNs, fmt.Sprintf("floor-c-%s-%03d", ns, i)),
		mk(opNs, fmt.Sprintf("floor-g-%s-%03d", ns, i)), mk(ns, ac.Name), mk(ns, gr.Name),
	} {
		f.g.Expect(c.Create(ctx, s)).To(Succeed())
	}
	now := metav1.Now()
	for _, o := range []client.Object{ac, gr} {
		f.g.Expect(c.Status().Patch(ctx, o, client.RawPatch(types.MergePatchType,
			[]byte(fmt.Sprintf(`{"status":{"tokenID":"floor","issuedAt":%q}}`, now.UTC().Format(time.RFC3339)))))).To(Succeed())
	}
}

// A grant applied together with its client (the usual order in Git) gets
// one status write, not a ClientNotReady write a moment before its Ready one:
// while its client has never been reconciled it waits silently, and the
// client's first status write wakes it. A client that was reconciled and
// holds no id (a conflict) still makes its grant say ClientNotReady.
func TestGrantStatusWrittenOnce(t *testing.T) {
	const n = 30
	f := newFixture(t)
	f.g.SetDefaultEventuallyTimeout(2 * time.Minute)
	// Everything exists before the operator starts, so both controllers
	// work through their queues at once: many grants are reconciled before
	// their clients.
	var grants []*latchkeyv1alpha1.CredentialGrant
	for i := range n {
		grants = append(grants, f.grant(fmt.Sprintf("g%03d", i), fmt.Sprintf("c%03d", i)))
		f.client(fmt.Sprintf("c%03d", i))
	}
	f.client("holder", func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "shared-id" })
	var opLog testenv.Requests
	mgr, err := operator.NewManager(opLog.Wrap(env.Config), withSkip(f.options()))
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	for _, g := range grants {
		f.waitReady(g)
	}
	time.Sleep(2 * time.Second) // trailing writes land
	writes := opLog.Snapshot()["patch credentialgrants/status"]
	f.g.Expect(writes).To(Equal(n), "status writes of %d grants:\n%s", n, testenv.RequestTable(opLog.Snapshot()))

	// The client holds no id: once reconciled, its grant says why.
	f.client("taker", func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "shared-id" })
	g := f.grant("waiting", "taker")
	f.waitCondition(g, latchkeyv1alpha1.ConditionReady, metav1.ConditionFalse, latchkeyv1alpha1.ReasonClientNotReady)
}
