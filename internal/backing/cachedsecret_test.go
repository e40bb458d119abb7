package backing

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// CompactSecret renders back exactly (reflect.DeepEqual) what it keeps, up
// to its 64 KiB of strings, and refuses what it cannot represent; it
// shares no memory with the Secret it was made from. (The operator's tests,
// internal/operator cache_test.go, compare it with the cache's trimmed
// Secrets.)
func TestCompactSecret(t *testing.T) {
	base := func() *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "tenant", UID: "u-1", ResourceVersion: "7",
				CreationTimestamp: metav1.NewTime(time.Unix(1764700000, 0)),
				Labels:            map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue, "creds": "u-1"},
				Annotations:       map[string]string{latchkeyv1alpha1.AnnotationTokenID: "abcdefghijklmnop", "a": ""}},
			Type: latchkeyv1alpha1.GrantSecretType,
			Data: map[string][]byte{latchkeyv1alpha1.TokenKey: []byte("lk_abcdefghijklmnop_x"), latchkeyv1alpha1.TokenIDKey: []byte("abcdefghijklmnop"),
				latchkeyv1alpha1.ClientIDKey: []byte(latchkeyv1alpha1.ManagedByValue), "": {}},
		}
	}
	for _, tc := range []struct {
		name string
		edit func(s *corev1.Secret)
		ok   bool
	}{
		{"as written", nil, true},
		// The buffer: "creds", "7", "u-1", "k" and the value (the type is a
		// constant).
		{"strings of 64 KiB less one byte in all", func(s *corev1.Secret) {
			s.Labels, s.Data = nil, nil
			s.Annotations = map[string]string{"k": strings.Repeat("v", 0xFFFF-len("creds7u-1k"))}
		}, true},
		{"strings of 64 KiB in all", func(s *corev1.Secret) {
			s.Labels, s.Data = nil, nil
			s.Annotations = map[string]string{"k": strings.Repeat("v", 0xFFFF-len("creds7u-1k")+1)}
		}, false},
		{"one string of 64 KiB", func(s *corev1.Secret) { s.Data["big"] = []byte(strings.Repeat("v", 0xFFFF)) }, false},
		{"managedFields", func(s *corev1.Secret) { s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "m"}} }, false},
		{"stringData", func(s *corev1.Secret) { s.StringData = map[string]string{"a": "b"} }, false},
		{"selfLink", func(s *corev1.Secret) { s.SetSelfLink("/api/v1/x") }, false},
		{"two owner references", func(s *corev1.Secret) { s.OwnerReferences = make([]metav1.OwnerReference, 2) }, false},
		{"an empty finalizer list", func(s *corev1.Secret) { s.Finalizers = []string{} }, false},
	} {
		in := base()
		if tc.edit != nil {
			tc.edit(in)
		}
		want := in.DeepCopy()
		c := CompactSecret(in)
		if (c != nil) != tc.ok {
			t.Errorf("%s: compact %v, want %v", tc.name, c != nil, tc.ok)
			continue
		}
		if c == nil {
			continue
		}
		// Nothing of in is kept: changing it changes nothing.
		for k := range in.Data {
			if len(in.Data[k]) > 0 {
				in.Data[k][0] ^= 1
			}
		}
		if got := c.DeepCopyObject(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: renders as\n%#v\nwant\n%#v", tc.name, got, want)
		}
	}
}
