package backing

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/latchkey-dev/latchkey/internal/token"
)

// A verifier-only cache holds backing tokens and claims compact: the same
// Token and Claim FromSecret and ClaimFromSecret read, none of the Secret's
// maps, and nothing for a Secret they refuse.
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
	if ct.GetLabels() != nil || ct.GetAnnotations() != nil {
		t.Fatal("cached token keeps the Secret's maps")
	}
	cp := ct.DeepCopyObject().(*CachedToken)
	*cp.Token.ExpiresAt = time.Time{}
	if !ct.Token.ExpiresAt.Equal(exp) {
		t.Fatal("DeepCopyObject shares ExpiresAt")
	}

	claim := Claim{ClientID: "id_abc", ClientUID: "u1", OwnerNamespace: "team-a", OwnerName: "blog"}
	cc, ok := Cached(claim.Secret("latchkey-system")).(*CachedClaim)
	if !ok || cc.Claim != claim {
		t.Fatalf("Cached(claim) = %+v", Cached(claim.Secret("latchkey-system")))
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
