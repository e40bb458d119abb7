package controller

import (
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
	metricReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "latchkey_credential_ready",
		Help: "1 when the object's Ready condition is True, else 0.",
	}, []string{"kind", "namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(metricIssued, metricRevoked, metricExpired, metricExpiration, metricReady)
}

func setReadyMetric(kind, ns, name string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	metricReady.WithLabelValues(kind, ns, name).Set(v)
}

// forgetMetrics drops an object's series when it is deleted.
func forgetMetrics(kind, ns, name string) {
	metricReady.DeleteLabelValues(kind, ns, name)
	if kind == latchkeyv1alpha1.CredentialGrantKind {
		metricExpiration.DeletePartialMatch(map[string]string{"namespace": ns, "name": name})
	}
}
