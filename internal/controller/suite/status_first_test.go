package suite_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/controller"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// startWithClient runs Latchkey's controllers (nothing else) with the
// manager's client wrapped by funcs: a test injects API errors with it.
func startWithClient(f *fixture, funcs interceptor.Funcs) {
	f.t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 operator.NewScheme(),
		Cache:                  operator.CacheOptions(operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}}),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		NewClient: func(cfg *rest.Config, o client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(cfg, o)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, funcs), nil
		},
	})
	f.g.Expect(err).NotTo(HaveOccurred())
	f.g.Expect(controller.Setup(mgr, controller.Options{Namespace: f.opNs, MaxConcurrentReconciles: 1})).To(Succeed())
	testenv.RunManager(f.t, mgr)
}

// events lists the Events about the named object, as "reason: note".
func eventsAbout(f *fixture, name string) []string {
	var list eventsv1.EventList
	f.g.Expect(env.Client.List(f.ctx, &list, client.InNamespace(f.ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

// metricValue is the value of a Latchkey metric with exactly these labels,
// and whether such a series exists.
func metricValue(name string, labels map[string]string) (float64, bool) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Events and metrics report what the status records: while the status write
// fails, an ApiClient whose secret was issued emits no Event and counts in
// no metric; once a status write succeeds, the issue is reported exactly
// once (it is not lost: the secret is not issued again, so nothing else
// would report it).
func TestNoEventOrMetricBeforeStatusWrite(t *testing.T) {
	f := newFixture(t)
	var failing atomic.Bool
	failing.Store(true)
	var failed atomic.Int32
	startWithClient(f, interceptor.Funcs{
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			if sub == "status" && failing.Load() {
				failed.Add(1)
				return errors.New("injected: the status write failed")
			}
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if sub == "status" && failing.Load() {
				failed.Add(1)
				return errors.New("injected: the status write failed")
			}
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
	issued := map[string]string{"kind": latchkeyv1alpha1.ApiClientKind, "action": "Issue"}
	issuedBefore, _ := metricValue("latchkey_credentials_issued_total", issued)
	ready := map[string]string{"kind": latchkeyv1alpha1.ApiClientKind, "namespace": f.ns, "name": "c1"}

	c := f.client("c1")
	// The issue happened: its consumer Secret is there, its status write
	// failed, and failed again on the retries.
	f.g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: "c1"}, &corev1.Secret{})).To(Succeed())
		g.Expect(failed.Load()).To(BeNumerically(">=", 3))
	}).Should(Succeed())
	f.g.Expect(f.tokens()).To(HaveLen(1))
	f.g.Consistently(func(g Gomega) {
		g.Expect(eventsAbout(f, "c1")).To(BeEmpty(), "no Event while the status write fails")
		n, _ := metricValue("latchkey_credentials_issued_total", issued)
		g.Expect(n).To(Equal(issuedBefore), "the issue is not counted while the status write fails")
		_, has := metricValue("latchkey_credential_ready", ready)
		g.Expect(has).To(BeFalse(), "no ready gauge while the status write fails")
	}, 2*time.Second, 100*time.Millisecond).Should(Succeed())
	f.g.Expect(f.get(c)).To(Succeed())
	f.g.Expect(c.Status.TokenID).To(BeEmpty(), "the status write really failed")

	failing.Store(false)
	f.waitReady(c)
	f.g.Eventually(func(g Gomega) {
		g.Expect(eventsAbout(f, "c1")).To(ConsistOf(HavePrefix(controller.EventIssued+": ")), "the issue reported once")
		n, _ := metricValue("latchkey_credentials_issued_total", issued)
		g.Expect(n).To(Equal(issuedBefore+1), "the issue counted once")
		v, has := metricValue("latchkey_credential_ready", ready)
		g.Expect(has).To(BeTrue())
		g.Expect(v).To(Equal(1.0))
	}).Should(Succeed())
	f.g.Expect(f.tokens()).To(HaveLen(1), "the secret was issued once")
}
