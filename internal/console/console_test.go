package console

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestExpiryWords(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(d)} }
	for _, c := range []struct {
		t       *metav1.Time
		want    string
		expired bool
	}{
		{nil, "Never", false},
		{at(72 * time.Hour), "Expires: in 3 days", false},
		{at(24*time.Hour - 3*time.Second), "Expires: in 1 day", false},
		{at(90 * time.Minute), "Expires: in 2 hours", false},
		{at(time.Minute), "Expires: in 1 minute", false},
		{at(-2 * time.Hour), "Expired 2 hours ago", true},
		{at(0), "Expired 0 seconds ago", true},
		{at(-50 * 24 * time.Hour), "Expired 50 days ago", true},
	} {
		got, expired := expiry(now, c.t)
		if got != c.want || expired != c.expired {
			t.Errorf("expiry(%v) = %q, %v; want %q, %v", c.t, got, expired, c.want, c.expired)
		}
	}
}

func TestFieldErrorsByField(t *testing.T) {
	err := apierrors.NewInvalid(schema.GroupKind{Group: "latchkey.dev", Kind: "ApiClient"}, "x", field.ErrorList{
		field.Invalid(field.NewPath("spec", "permissions").Index(0), "proposals.read", "must start with one of spec.scopes"),
		field.Required(field.NewPath("spec", "tenant"), "spec.tenant is required"),
		field.Invalid(field.NewPath("metadata", "name"), "X", "bad name"),
	})
	got := fieldErrors(err, newClientFields)
	if len(got["permissions"]) != 1 || !strings.Contains(got["permissions"][0], "must start with one of spec.scopes") {
		t.Errorf("permissions: %v", got["permissions"])
	}
	if len(got["tenant"]) != 1 || !strings.Contains(got["tenant"][0], "spec.tenant is required") {
		t.Errorf("tenant: %v", got["tenant"])
	}
	if len(got[""]) != 1 || !strings.Contains(got[""][0], "metadata.name") {
		t.Errorf("other: %v", got[""])
	}
	if got := fieldErrors(errors.New("boom"), newClientFields); len(got[""]) != 1 {
		t.Errorf("plain error: %v", got)
	}
}

func TestExplainForbidden(t *testing.T) {
	err := apierrors.NewForbidden(schema.GroupResource{Group: "latchkey.dev", Resource: "apiclients"}, "", errors.New(`User "alice" cannot list resource "apiclients"`))
	code, p := explain(err)
	if code != http.StatusForbidden || p.Title != "Forbidden" || !strings.Contains(p.Detail, `User "alice" cannot list`) {
		t.Errorf("explain = %d %+v", code, p)
	}
}

// FuzzRequestParsers: the console's parsers of request input (form lists,
// lifetimes and dates, Host and Origin) never panic, and keep their
// promises: a list has no empty, duplicate or separator-holding item; an
// accepted Origin is http:// and an accepted host.
func FuzzRequestParsers(f *testing.F) {
	for _, s := range []string{"blogs, proposals", "a\nb\r\nc\t,,", "24h", "date", "2026-12-31", "127.0.0.1:8080", "http://localhost:8080", "http://evil.example", "null", ""} {
		f.Add(s, s)
	}
	s := &Server{addr: "127.0.0.1:8080"}
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, a, b string) {
		seen := map[string]bool{}
		for _, item := range splitList(a) {
			if item == "" || strings.ContainsAny(item, ", \n\r\t") || seen[item] {
				t.Fatalf("splitList(%q) gave %q", a, item)
			}
			seen[item] = true
		}
		if exp, err := parseLifetime(now, a, b); err == nil && exp != nil && a != "date" && !exp.After(now) {
			t.Fatalf("lifetime %q gave a past expiry %v", a, exp)
		}
		if s.hostAllowed(a) {
			if a != "127.0.0.1:8080" && a != "localhost:8080" && a != "[::1]:8080" {
				t.Fatalf("host %q accepted", a)
			}
		}
		if s.originAllowed(b) && !strings.HasPrefix(b, "http://") {
			t.Fatalf("origin %q accepted", b)
		}
	})
}
