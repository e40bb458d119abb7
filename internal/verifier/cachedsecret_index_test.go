package verifier

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// The Secret informer stores consumer Secrets of tenant namespaces compact
// (backing.CachedSecret): the client-id index reads them as it reads the
// Secret they stand for.
func TestClientSecretIndexCompactSecret(t *testing.T) {
	for _, tc := range []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
	}{
		{"labelled like a client secret's backing token",
			map[string]string{backing.LabelComponent: backing.ComponentValue, backing.LabelOwnerKind: backing.KindApiClient},
			map[string]string{backing.AnnotationClientID: "id_x"}},
		{"a grant's", map[string]string{backing.LabelComponent: backing.ComponentValue, backing.LabelOwnerKind: backing.KindCredentialGrant},
			map[string]string{backing.AnnotationClientID: "id_x"}},
		{"no client id", map[string]string{backing.LabelComponent: backing.ComponentValue, backing.LabelOwnerKind: backing.KindApiClient}, nil},
		{"a consumer Secret as written", map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue},
			map[string]string{latchkeyv1alpha1.AnnotationTokenID: "abc"}},
	} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "creds", Labels: tc.labels, Annotations: tc.annotations},
			Type: latchkeyv1alpha1.ClientSecretType}
		c := backing.CompactSecret(s)
		if c == nil {
			t.Fatalf("%s: not compact", tc.name)
		}
		if got, want := clientSecretIndex(c), clientSecretIndex(s); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: indexed under %q, the Secret under %q", tc.name, got, want)
		}
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "creds",
		Labels:      map[string]string{backing.LabelComponent: backing.ComponentValue, backing.LabelOwnerKind: backing.KindApiClient},
		Annotations: map[string]string{backing.AnnotationClientID: "id_x"}}}
	if got := clientSecretIndex(backing.CompactSecret(s)); !reflect.DeepEqual(got, []string{"id_x"}) {
		t.Errorf("indexed under %q", got)
	}
}
