package suite_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{}) }

const timeout = 20 * time.Second

// fixture is one test's namespaces and running operator.
type fixture struct {
	t    *testing.T
	g    Gomega
	ctx  context.Context
	ns   string // where the test's objects live
	opNs string // the operator's namespace (backing tokens)
	mgr  ctrl.Manager
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, g: NewWithT(t), ctx: context.Background(), ns: env.Namespace(t), opNs: env.Namespace(t)}
	f.g.SetDefaultEventuallyTimeout(timeout)
	f.g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	return f
}

func (f *fixture) start() *fixture {
	f.mgr = env.StartManager(f.t, f.options())
	return f
}

func (f *fixture) options() operator.Options {
	return operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}}
}

func (f *fixture) client(name string, mods ...func(*latchkeyv1alpha1.ApiClient)) *latchkeyv1alpha1.ApiClient {
	f.t.Helper()
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read", "blogs.write"}, Tenant: "2"},
	}
	for _, m := range mods {
		m(c)
	}
	f.g.Expect(env.Client.Create(f.ctx, c)).To(Succeed())
	return c
}

func (f *fixture) grant(name, clientName string, mods ...func(*latchkeyv1alpha1.CredentialGrant)) *latchkeyv1alpha1.CredentialGrant {
	f.t.Helper()
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
		Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: clientName},
	}
	for _, m := range mods {
		m(g)
	}
	f.g.Expect(env.Client.Create(f.ctx, g)).To(Succeed())
	return g
}

// get refreshes obj from the API server.
func (f *fixture) get(obj client.Object) error {
	return env.Client.Get(f.ctx, client.ObjectKeyFromObject(obj), obj)
}

func conditions(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *latchkeyv1alpha1.ApiClient:
		return o.Status.Conditions
	case *latchkeyv1alpha1.CredentialGrant:
		return o.Status.Conditions
	}
	return nil
}

// waitCondition waits until obj has condition typ with status and reason.
func (f *fixture) waitCondition(obj client.Object, typ string, status metav1.ConditionStatus, reason string) {
	f.t.Helper()
	f.g.Eventually(func(g Gomega) {
		g.Expect(f.get(obj)).To(Succeed())
		c := meta.FindStatusCondition(conditions(obj), typ)
		g.Expect(c).NotTo(BeNil(), "condition %s", typ)
		g.Expect(c.Status).To(Equal(status), "condition %s: %s", typ, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "condition %s: %s", typ, c.Message)
	}).Should(Succeed())
}

func (f *fixture) waitReady(obj client.Object) {
	f.t.Helper()
	f.waitCondition(obj, latchkeyv1alpha1.ConditionReady, metav1.ConditionTrue, latchkeyv1alpha1.ReasonIssued)
}

func (f *fixture) secret(name string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, s)).To(Succeed())
	return s
}

// tokens lists the backing tokens in the operator namespace, by token id.
func (f *fixture) tokens() map[string]backing.Token {
	f.t.Helper()
	var list corev1.SecretList
	f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.opNs))).To(Succeed())
	out := map[string]backing.Token{}
	for i := range list.Items {
		if list.Items[i].Type != backing.SecretType {
			continue
		}
		bt, err := backing.FromSecret(&list.Items[i])
		f.g.Expect(err).NotTo(HaveOccurred())
		out[bt.ID] = bt
	}
	return out
}

func tokenIDs(m map[string]backing.Token) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// startStoppable runs an operator that the test can stop early (a restart).
func startStoppable(f *fixture, opts operator.Options) (stop func()) {
	mgr, err := operator.NewManager(env.Config, withSkip(opts))
	f.g.Expect(err).NotTo(HaveOccurred())
	return testenv.RunManager(f.t, mgr)
}

func withSkip(o operator.Options) operator.Options {
	o.SkipControllerNameValidation = true
	o.MetricsAddr = "0"
	return o
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// metricSum adds up a controller-runtime metric over Latchkey's controllers.
func metricSum(name, label string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && (l.GetValue() == "apiclient" || l.GetValue() == "credentialgrant") {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

func reconcileCount() float64 { return metricSum("controller_runtime_reconcile_total", "controller") }
func queueDepth() float64     { return metricSum("workqueue_depth", "name") }

// patch merge-patches obj (the operator writes status concurrently, so an
// Update could conflict).
func (f *fixture) patch(obj client.Object, patch string) {
	f.t.Helper()
	f.g.Expect(env.Client.Patch(f.ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}
