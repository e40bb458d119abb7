package backing

import (
	"strings"
	"testing"
	"time"
)

func TestRevocationRoundTrip(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	at := time.Date(2030, 1, 2, 3, 0, 0, 123, time.UTC)
	for _, r := range []Revocation{
		{Kind: RevokedToken, TokenID: "abcdefghijklmnop", OwnerKind: KindCredentialGrant, OwnerNamespace: "ns", OwnerName: "g",
			OwnerUID: "u", ClientID: "id_x", From: "203.0.113.9 via 10.0.0.1", At: at},
		{Kind: RevokedAccessToken, JTI: "j/with:odd chars", TokenID: "abcdefghijklmnop", ClientID: "id_x", At: at, ExpiresAt: &exp},
	} {
		cm := r.ConfigMap("tokens")
		if !strings.HasPrefix(cm.Name, "lkrv-") || len(cm.Name) != len("lkrv-")+32 || len(cm.Data) != 0 {
			t.Fatalf("name %q, data %v", cm.Name, cm.Data)
		}
		if got := RevocationKey("tokens", r.Kind, r.Subject()); got != "tokens/"+cm.Name {
			t.Fatalf("key %q, name %q", got, cm.Name)
		}
		back, err := RevocationFromConfigMap(cm)
		if err != nil {
			t.Fatal(err)
		}
		if back.Kind != r.Kind || back.Subject() != r.Subject() || back.From != r.From || !back.At.Equal(r.At) ||
			back.OwnerName != r.OwnerName || back.OwnerUID != r.OwnerUID || (r.ExpiresAt != nil && !back.ExpiresAt.Equal(*r.ExpiresAt)) {
			t.Fatalf("round trip: %+v, want %+v", back, r)
		}
	}
	// The same subject of the other kind is another record.
	if RevocationName(RevokedToken, "x") == RevocationName(RevokedAccessToken, "x") {
		t.Fatal("kinds share a name")
	}
	// A record whose name is not derived from what it names, or an access
	// token's without expiry, is refused.
	cm := Revocation{Kind: RevokedToken, TokenID: "a", At: at}.ConfigMap("tokens")
	cm.Name = RevocationName(RevokedToken, "b")
	if _, err := RevocationFromConfigMap(cm); err == nil {
		t.Fatal("a renamed record was read")
	}
	cm = Revocation{Kind: RevokedAccessToken, JTI: "j", At: at}.ConfigMap("tokens")
	if _, err := RevocationFromConfigMap(cm); err == nil {
		t.Fatal("an access token's record without exp was read")
	}
}
