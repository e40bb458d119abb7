package backing

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/latchkey-dev/latchkey/internal/token"
)

// Latchkey's caches hold backing tokens and claims compact: the same Token
// and Claim FromSecret and ClaimFromSecret read, and nothing for a Secret
// they refuse; a cache reader gets the Secret back.
func TestCached(t *testing.T) {
	tok, _ := token.New()
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	in := Token{ID: tok.ID, Hash: token.HashGenerated(tok.ID, tok.Secret), OwnerKind: KindApiClient,
		OwnerNamespace: "team-a", OwnerName: "blog", OwnerUID: "u1", ClientUID: "u1", ClientID: "id_abc",
		Type: TypeClientSecret, ExpiresAt: &exp}
	s := in.Secret("latchkey-system")
	s.ResourceVersion, s.UID = "42", "secret-uid"
	s.CreationTimestamp = metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	want, err := FromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	ct, ok := Cached(s).(*CachedToken)
	if !ok {
		t.Fatalf("Cached(backing token) = %T", Cached(s))
	}
	if !reflect.DeepEqual(ct.Token, want) {
		t.Fatalf("cached token %+v, want %+v", ct.Token, want)
	}
	if ct.GetName() != s.Name || ct.GetNamespace() != s.Namespace || ct.GetResourceVersion() != "42" {
		t.Fatalf("cached token metadata %+v", ct.CachedMeta)
	}
	// What a cache reader gets: the Secret, which reads as the same token.
	sec, ok := ct.DeepCopyObject().(*corev1.Secret)
	if !ok {
		t.Fatalf("DeepCopyObject = %T, want the Secret", ct.DeepCopyObject())
	}
	if back, err := FromSecret(sec); err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("the Secret a cache reader gets reads %+v (%v), want %+v", back, err, want)
	}
	if sec.ResourceVersion != "42" || !reflect.DeepEqual(ct.GetLabels(), s.Labels) || !reflect.DeepEqual(ct.GetAnnotations(), s.Annotations) {
		t.Fatalf("rendered metadata: rv %q labels %v annotations %v, want %v %v", sec.ResourceVersion, ct.GetLabels(), ct.GetAnnotations(), s.Labels, s.Annotations)
	}
	sec.Labels[LabelOwnerUID] = "changed"
	if ct.Token.OwnerUID != "u1" {
		t.Fatal("the handed-out Secret shares the record")
	}

	claim := Claim{ClientID: "id_abc", ClientUID: "u1", OwnerNamespace: "team-a", OwnerName: "blog"}
	cc, ok := Cached(claim.Secret("latchkey-system")).(*CachedClaim)
	if !ok || cc.Claim != claim {
		t.Fatalf("Cached(claim) = %+v", Cached(claim.Secret("latchkey-system")))
	}
	if back, err := ClaimFromSecret(cc.DeepCopyObject().(*corev1.Secret)); err != nil || back != claim {
		t.Fatalf("the claim's Secret reads %+v (%v)", back, err)
	}
	if cc.GetLabels()[LabelComponent] != ComponentClaim || cc.GetAnnotations()[AnnotationClientID] != "id_abc" {
		t.Fatalf("claim metadata: %v %v", cc.GetLabels(), cc.GetAnnotations())
	}

	damaged := in.Secret("latchkey-system")
	delete(damaged.Data, KeyHash)
	badClaim := claim.Secret("latchkey-system")
	badClaim.Name = "lkid-other"
	signing := in.Secret("latchkey-system")
	signing.Type = SigningKeysSecretType
	for name, s := range map[string]any{"damaged token": Cached(damaged), "claim under another name": Cached(badClaim), "another type": Cached(signing)} {
		if s != nil {
			t.Errorf("%s: Cached = %T, want nil (kept as a Secret)", name, s)
		}
	}
}
