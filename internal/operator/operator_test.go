package operator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// ByObject is keyed by pointer, so a kind configured twice is configured
// twice, and which entry wins depends on map order. Each mode must configure
// Secrets exactly once, label-selected, and the verifier only in its own
// namespace (its RBAC allows nothing else).
func TestCacheOptionsConfigureSecretsOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		namespaces []string
	}{
		{"operator", Options{Namespace: "lk"}, nil},
		{"namespaced operator", Options{Namespace: "lk", WatchNamespaces: []string{"a"}}, nil},
		{"verifier only", Options{Namespace: "lk", VerifierOnly: true}, []string{"lk"}},
		{"verifier only, namespaced", Options{Namespace: "lk", VerifierOnly: true, WatchNamespaces: []string{"a"}}, []string{"lk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := CacheOptions(tc.opts)
			n := 0
			for obj, by := range co.ByObject {
				if _, ok := obj.(*corev1.Secret); !ok {
					continue
				}
				n++
				if by.Label == nil || by.Label.String() != "app.kubernetes.io/managed-by=latchkey" {
					t.Errorf("Secret cache selector = %v", by.Label)
				}
				if len(by.Namespaces) != len(tc.namespaces) {
					t.Fatalf("Secret cache namespaces = %v, want %v", by.Namespaces, tc.namespaces)
				}
				for _, ns := range tc.namespaces {
					if _, ok := by.Namespaces[ns]; !ok {
						t.Errorf("Secret cache namespaces = %v, want %v", by.Namespaces, tc.namespaces)
					}
				}
			}
			if n != 1 {
				t.Fatalf("Secrets configured %d times in ByObject, want once", n)
			}
		})
	}
}
