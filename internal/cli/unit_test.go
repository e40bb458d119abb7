package cli

import (
	"slices"
	"testing"
	"time"
)

func TestProgramName(t *testing.T) {
	for arg0, want := range map[string]string{
		"/usr/local/bin/kubectl-latchkey": "kubectl latchkey",
		"kubectl-latchkey.exe":            "kubectl latchkey",
		"./bin/api-client":                "api-client",
		"api-client":                      "api-client",
	} {
		if got := ProgramName(arg0); got != want {
			t.Errorf("ProgramName(%q) = %q, want %q", arg0, got, want)
		}
	}
}

func TestDefaultName(t *testing.T) {
	// Decidim's examples.
	for id, want := range map[string]string{
		"id_FEwz1JiXgP6K3zX7": "API Client ***3zX7",
		"id_qsJ9Tc5WDqmcw-g_": "API Client ***w-g_",
		"sysadmin-org":        "API Client ***-org",
		"abc":                 "API Client ***abc",
	} {
		if got := DefaultName(id); got != want {
			t.Errorf("DefaultName(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestOrganizationID(t *testing.T) {
	if got := organizationID("2"); got != int64(2) {
		t.Errorf("organizationID(2) = %#v, want the number 2", got)
	}
	if got := organizationID("acme"); got != "acme" {
		t.Errorf("organizationID(acme) = %#v", got)
	}
}

func TestEditedPermissions(t *testing.T) {
	cases := []struct {
		have, perms []string
		add         bool
		want        []string
	}{
		{nil, []string{"a.b"}, true, []string{"a.b"}},
		{[]string{"a.b"}, []string{"a.b", "a.c"}, true, []string{"a.b", "a.c"}},
		{[]string{"a.b", "a.c", "a.d"}, []string{"a.c"}, false, []string{"a.b", "a.d"}},
		{[]string{"a.b"}, []string{"a.x"}, false, []string{"a.b"}},
		{[]string{"a.b"}, []string{"a.b"}, false, []string{}},
	}
	for _, tc := range cases {
		have := slices.Clone(tc.have)
		if got := editedPermissions(have, tc.perms, tc.add); !slices.Equal(got, tc.want) {
			t.Errorf("editedPermissions(%v, %v, %v) = %v, want %v", tc.have, tc.perms, tc.add, got, tc.want)
		}
		if !slices.Equal(have, tc.have) {
			t.Errorf("editedPermissions changed its input")
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m": now.Add(90 * time.Minute),
		"2d":  now.Add(48 * time.Hour),
		"1h":  now.Add(time.Hour),
	} {
		got, err := parseExpiry(in, "", now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := parseExpiry("", "", now); got != nil || err != nil {
		t.Errorf("no expiry: %v, %v", got, err)
	}
	if _, err := parseExpiry("", "2030-01-02", now); err == nil {
		t.Errorf("a date without time was accepted")
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\nb\r\n  c \n"); got != "a; b; c" {
		t.Errorf("oneLine = %q", got)
	}
}

func TestCreateValidateDedupes(t *testing.T) {
	r := createRequest{Scopes: []string{"blogs", "blogs", "system"}, Permissions: []string{"blogs.read", "blogs.read"}, OrganizationID: "2"}
	if err := r.validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Scopes, []string{"blogs", "system"}) || !slices.Equal(r.Permissions, []string{"blogs.read"}) || r.tenant() != "2" {
		t.Errorf("%+v", r)
	}
}
