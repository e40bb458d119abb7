package controller

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// The ready gauge keeps one entry per object and renders the same series a
// GaugeVec would: set, overwritten, forgotten.
func TestReadyGauge(t *testing.T) {
	g := newReadyGauge()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(g)
	g.set(readyKey{latchkeyv1alpha1.ApiClientKind, "a", "c1"}, true)
	g.set(readyKey{latchkeyv1alpha1.CredentialGrantKind, "a", "g1"}, false)
	g.set(readyKey{latchkeyv1alpha1.CredentialGrantKind, "b", "g1"}, true)
	g.set(readyKey{latchkeyv1alpha1.CredentialGrantKind, "a", "g1"}, true) // overwrites
	g.forget(readyKey{latchkeyv1alpha1.CredentialGrantKind, "b", "g1"})
	g.forget(readyKey{latchkeyv1alpha1.CredentialGrantKind, "b", "missing"})
	want := `# HELP latchkey_credential_ready 1 when the object's Ready condition is True, else 0.
# TYPE latchkey_credential_ready gauge
latchkey_credential_ready{kind="ApiClient",name="c1",namespace="a"} 1
latchkey_credential_ready{kind="CredentialGrant",name="g1",namespace="a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "latchkey_credential_ready"); err != nil {
		t.Fatal(err)
	}
	g.set(readyKey{latchkeyv1alpha1.ApiClientKind, "a", "c1"}, false)
	if got := testutil.CollectAndCount(g); got != 2 {
		t.Fatalf("series: got %d, want 2", got)
	}
	want = strings.Replace(want, `namespace="a"} 1`, `namespace="a"} 0`, 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "latchkey_credential_ready"); err != nil {
		t.Fatal(err)
	}
}
