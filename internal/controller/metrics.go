package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

var (
	metricIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_credentials_issued_total",
		Help: "Secrets issued, by kind (ApiClient, CredentialGrant) and action (Issue, Reissue, Rotate).",
	}, []string{"kind", "action"})
	metricRevoked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_credentials_revoked_total",
		Help: "Backing tokens deleted, by kind and reason (deleted, expired, client_deleted, Reissue, Rotate).",
	}, []string{"kind", "reason"})
	metricExpired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_credentials_expired_total",
		Help: "CredentialGrants that reached their expiresAt.",
	}, []string{"namespace"})
	metricExpiration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "latchkey_credential_expiration_timestamp_seconds",
		Help: "When a CredentialGrant's credential expires, in Unix seconds.",
	}, []string{"namespace", "name", "token_id"})
	metricReady = newReadyGauge()
)

func init() {
	metrics.Registry.MustRegister(metricIssued, metricRevoked, metricExpired, metricExpiration, metricReady)
}

func setReadyMetric(kind, ns, name string, ready bool) {
	metricReady.set(readyKey{kind: kind, namespace: ns, name: name}, ready)
}

// forgetMetrics drops an object's series when it is deleted.
func forgetMetrics(kind, ns, name string) {
	metricReady.forget(readyKey{kind: kind, namespace: ns, name: name})
	if kind == latchkeyv1alpha1.CredentialGrantKind {
		metricExpiration.DeletePartialMatch(map[string]string{"namespace": ns, "name": name})
	}
}

// readyGauge is latchkey_credential_ready{kind,namespace,name}: one series
// per ApiClient and CredentialGrant. A GaugeVec keeps a metric object per
// series, with its label pairs built once (about 540 bytes each, as much as
// a cached object); this keeps one map entry (its strings shared with the
// cache's objects) and builds the series when scraped.
type readyGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	m    map[readyKey]bool
}

type readyKey struct{ kind, namespace, name string }

func newReadyGauge() *readyGauge {
	return &readyGauge{
		desc: prometheus.NewDesc("latchkey_credential_ready", "1 when the object's Ready condition is True, else 0.",
			[]string{"kind", "namespace", "name"}, nil),
		m: map[readyKey]bool{},
	}
}

func (g *readyGauge) set(k readyKey, ready bool) {
	switch k.kind { // one string per kind, not one per object
	case latchkeyv1alpha1.ApiClientKind:
		k.kind = latchkeyv1alpha1.ApiClientKind
	case latchkeyv1alpha1.CredentialGrantKind:
		k.kind = latchkeyv1alpha1.CredentialGrantKind
	}
	g.mu.Lock()
	g.m[k] = ready
	g.mu.Unlock()
}

func (g *readyGauge) forget(k readyKey) {
	g.mu.Lock()
	delete(g.m, k)
	g.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (g *readyGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector: the series are built from a
// snapshot, so a scrape holds the lock only to copy.
func (g *readyGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	keys := make([]readyKey, 0, len(g.m))
	values := make([]bool, 0, len(g.m))
	for k, v := range g.m {
		keys = append(keys, k)
		values = append(values, v)
	}
	g.mu.Unlock()
	for i, k := range keys {
		v := 0.0
		if values[i] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v, k.kind, k.namespace, k.name)
	}
}
