package backing

import (
	"testing"
	"time"

	"github.com/latchkey-dev/latchkey/internal/token"
)

func TestRoundTripAndValidity(t *testing.T) {
	tok, _ := token.New()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	in := Token{
		ID: tok.ID, Hash: token.HashGenerated(tok.ID, tok.Secret), OwnerKind: KindCredentialGrant,
		OwnerNamespace: "team-a", OwnerName: "reader", OwnerUID: "u1", ClientUID: "c1",
		ClientID: "id_abc", Type: "bearer", ExpiresAt: &exp,
	}
	s := in.Secret("latchkey-system")
	for k, v := range s.Data {
		if k != KeyHash {
			t.Fatalf("backing token has data key %q: only the hash belongs there", k)
		}
		if string(v) == tok.Secret || string(v) == tok.String() {
			t.Fatal("backing token holds the plaintext")
		}
	}
	out, err := FromSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != in.ID || out.Hash != in.Hash || out.OwnerUID != "u1" || out.ClientUID != "c1" ||
		out.OwnerName != "reader" || out.ClientID != "id_abc" || !out.ExpiresAt.Equal(exp) || out.RetireAt != nil {
		t.Fatalf("round trip lost fields: %+v", out)
	}
	for _, tc := range []struct {
		name   string
		at     time.Time
		retire *time.Time
		want   bool
	}{
		{"before expiry", now, nil, true},
		{"at expiry", exp, nil, false},
		{"after expiry", exp.Add(time.Second), nil, false},
		{"retiring later", now, ptr(now.Add(time.Minute)), true},
		{"retired", now.Add(2 * time.Minute), ptr(now.Add(time.Minute)), false},
	} {
		tt := out
		tt.RetireAt = tc.retire
		if got := tt.Valid(tc.at); got != tc.want {
			t.Errorf("%s: Valid = %v, want %v", tc.name, got, tc.want)
		}
	}
	s.Type = "Opaque"
	if _, err := FromSecret(s); err == nil {
		t.Fatal("FromSecret accepted a non-backing Secret")
	}
}

func ptr(t time.Time) *time.Time { return &t }
