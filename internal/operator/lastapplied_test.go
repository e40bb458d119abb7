package operator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// The manager's cache does not hold kubectl's copy of each object.
func TestManagerCacheDropsLastApplied(t *testing.T) {
	opts := CacheOptions(Options{Namespace: "latchkey-system"})
	for obj, want := range map[interface {
		GetAnnotations() map[string]string
		GetManagedFields() []metav1.ManagedFieldsEntry
	}]string{
		&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{"apiVersion":"latchkey.dev/v1alpha1","kind":"ApiClient"}`, latchkeyv1alpha1.AnnotationRotate: "1"}},
			Spec: latchkeyv1alpha1.ApiClientSpec{Tenant: "2"}}: "1",
		&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "g", Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{}`, latchkeyv1alpha1.AnnotationRotate: "2"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "c"}}: "2",
	} {
		var transform func(any) (any, error)
		for k, v := range opts.ByObject {
			if fmtType(k) == fmtType(obj) {
				transform = v.Transform
			}
		}
		if transform == nil {
			t.Fatalf("%T: no transform in the manager's cache options", obj)
		}
		out, err := transform(obj)
		if err != nil {
			t.Fatal(err)
		}
		o := out.(interface {
			GetAnnotations() map[string]string
			GetManagedFields() []metav1.ManagedFieldsEntry
		})
		if _, has := o.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; has || len(o.GetManagedFields()) > 0 {
			t.Errorf("%T: kept %v, managed fields %v", obj, o.GetAnnotations(), o.GetManagedFields())
		}
		if got := o.GetAnnotations()[latchkeyv1alpha1.AnnotationRotate]; got != want {
			t.Errorf("%T: the rotate annotation is %q, want %q", obj, got, want)
		}
	}
}

func fmtType(v any) string {
	switch v.(type) {
	case *latchkeyv1alpha1.ApiClient:
		return "client"
	case *latchkeyv1alpha1.CredentialGrant:
		return "grant"
	}
	return ""
}
