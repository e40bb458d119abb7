package configmap

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/latchkey-dev/latchkey/internal/catalog"
)

// The informer half is exercised against a real API server by the webhook
// suite (internal/webhook/suite, "catalog ConfigMap is live"); these cases
// cover how a ConfigMap's content becomes a catalog or an error.
func TestParse(t *testing.T) {
	base, err := catalog.Load([]byte("scopes:\n- name: blogs\n  permissions: [blogs.read]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSource(base, "latchkey-system", "catalog")
	if c, err := s.Get(); c != nil || err == nil || !strings.Contains(err.Error(), "not loaded yet") {
		t.Fatalf("before loading: %v, %v", c, err)
	}
	cm := func(data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "latchkey-system", Name: "catalog"}, Data: data}
	}
	tests := []struct {
		name    string
		data    map[string]string
		wantErr string
	}{
		{name: "merged with the file", data: map[string]string{catalog.ConfigMapKey: "scopes:\n- name: system\n  global: true\n  permissions: [system.x]\n"}},
		{name: "missing key", data: map[string]string{"other.yaml": "scopes: []"}, wantErr: `has no key "catalog.yaml"`},
		{name: "invalid", data: map[string]string{catalog.ConfigMapKey: "scopes:\n- name: system\n  bogus: 1\n"}, wantErr: `is invalid: parsing catalog`},
		{name: "scope also in the file", data: map[string]string{catalog.ConfigMapKey: "scopes:\n- name: blogs\n"}, wantErr: "more than one catalog source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := s.parse(cm(tt.data))
			if tt.wantErr != "" {
				if l.err == nil || !strings.Contains(l.err.Error(), tt.wantErr) || l.catalog != nil {
					t.Fatalf("err = %v, want one containing %q", l.err, tt.wantErr)
				}
				return
			}
			if l.err != nil {
				t.Fatal(l.err)
			}
			if !l.catalog.HasPermission("blogs.read") || !l.catalog.IsGlobal("system") {
				t.Fatalf("merged catalog: %+v", l.catalog.Scopes())
			}
		})
	}
}
