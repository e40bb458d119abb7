package cli_test

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

var (
	generatedID     = regexp.MustCompile(`^id_[A-Za-z0-9_-]{16}$`)
	generatedSecret = regexp.MustCompile(`^key_[A-Za-z0-9_-]{40,}$`)
)

// TestDecidimExamples replays every example of Decidim's api-client
// document (../shared/reference/decidim-rest-full-api-client.txt) against a
// real API server with the operator running, and checks the JSON fields.
func TestDecidimExamples(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// checkGenerated checks a create's record with a generated id and
	// secret, and that the secret is the one the operator issued.
	checkGenerated := func(t *testing.T, rec map[string]any) {
		t.Helper()
		id, _ := rec["id"].(string)
		if !generatedID.MatchString(id) {
			t.Errorf("id = %q, want a generated id_ + 16 characters", id)
		}
		if s, _ := rec["secret"].(string); !generatedSecret.MatchString(s) {
			t.Errorf("secret = %q, want a generated key_...", s)
		}
		if want := "API Client ***" + id[len(id)-4:]; rec["name"] != want {
			t.Errorf("name = %v, want Decidim's default %q", rec["name"], want)
		}
		f.checkIssued(rec)
	}

	// All outputs, by example, for get.
	var created []map[string]any

	t.Run("system only, generated id and secret, no permission", func(t *testing.T) {
		rec := object(t, f.mustRun("create", "--scope", "system"))
		checkGenerated(t, rec)
		wantFields(t, rec, map[string]any{"scopes": []any{"system"}, "permissions": []any{}, "tenant": nil})
		wantKeys(t, rec, "id", "secret", "name", "scopes", "permissions", "tenant")
		c := f.clientByID(rec["id"].(string))
		if !strings.HasPrefix(c.Name, "api-client-") {
			t.Errorf("resource name %q: a generated id gives a generated name api-client-...", c.Name)
		}
		created = append(created, rec)
	})

	t.Run("system client that can create organizations", func(t *testing.T) {
		rec := object(t, f.mustRun("create", "--scope", "system", "--permission", "system.organizations.update"))
		checkGenerated(t, rec)
		wantFields(t, rec, map[string]any{"scopes": []any{"system"}, "permissions": []any{"system.organizations.update"}, "tenant": nil})
		created = append(created, rec)
	})

	t.Run("blogs reader of organization 2, --organization-id", func(t *testing.T) {
		rec := object(t, f.mustRun("create", "--scope", "blogs", "--permission", "blogs.read", "--organization-id", "2"))
		checkGenerated(t, rec)
		// Decidim prints organization_id as a number.
		wantFields(t, rec, map[string]any{"scopes": []any{"blogs"}, "permissions": []any{"blogs.read"}, "organization_id": json.Number("2"), "tenant": "2"})
		wantKeys(t, rec, "id", "secret", "name", "scopes", "permissions", "tenant", "organization_id")
		if c := f.clientByID(rec["id"].(string)); c.Spec.Tenant != "2" {
			t.Errorf("spec.tenant = %q, want 2", c.Spec.Tenant)
		}
		delete(rec, "organization_id") // get prints the tenant only
		created = append(created, rec)
	})

	t.Run("blogs reader of organization 2, --tenant", func(t *testing.T) {
		rec := object(t, f.mustRun("create", "--scope", "blogs", "--perm", "blogs.read", "--tenant", "2"))
		checkGenerated(t, rec)
		wantFields(t, rec, map[string]any{"scopes": []any{"blogs"}, "permissions": []any{"blogs.read"}, "tenant": "2"})
		wantKeys(t, rec, "id", "secret", "name", "scopes", "permissions", "tenant")
		created = append(created, rec)
	})

	t.Run("system admin with fixed credentials", func(t *testing.T) {
		out := f.mustRun("create", "--scope", "system", "--permission", "system.organizations.update",
			"--permission", "system.organizations.read", "--id", "sysadmin-org", "--secret", "my-insecure-password")
		// Decidim's exact line, plus "tenant".
		want := `{"id":"sysadmin-org","secret":"my-insecure-password","name":"API Client ***-org","scopes":["system"],"permissions":["system.organizations.update","system.organizations.read"],"tenant":null}` + "\n"
		if out != want {
			t.Errorf("output:\n%s\nwant:\n%s", out, want)
		}
		rec := object(t, out)
		f.checkIssued(rec)
		c := f.clientByID("sysadmin-org")
		if c.Name != "sysadmin-org" || c.Spec.ClientID != "sysadmin-org" {
			t.Errorf("resource %q with spec.clientID %q, want both sysadmin-org (a valid --id names the resource)", c.Name, c.Spec.ClientID)
		}
		// The chosen secret is in a Secret the client references and owns.
		ref := c.Spec.ClientSecretRef
		if ref == nil {
			t.Fatal("spec.clientSecretRef is not set")
		}
		chosen := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: ref.Name}, chosen); err != nil {
			t.Fatal(err)
		}
		if string(chosen.Data[ref.Key]) != "my-insecure-password" {
			t.Errorf("referenced Secret holds %q", chosen.Data[ref.Key])
		}
		if len(chosen.OwnerReferences) != 1 || chosen.OwnerReferences[0].UID != c.UID {
			t.Errorf("referenced Secret owners %v, want the ApiClient (so delete removes it)", chosen.OwnerReferences)
		}
		created = append(created, rec)
	})

	var full map[string]any
	t.Run("named client with every scope and capability", func(t *testing.T) {
		rec := object(t, f.mustRun("create", "--name", "Full", "--scope", "system,proposals,meetings,debates,pages,blogs,oauth,public",
			"--organization-id", "2", "--allow-impersonate", "--allow-login"))
		checkGenerated := func() {
			if rec["name"] != "Full" {
				t.Errorf("name = %v, want Full", rec["name"])
			}
			f.checkIssued(rec)
		}
		checkGenerated()
		wantFields(t, rec, map[string]any{
			"scopes":      []any{"system", "proposals", "meetings", "debates", "pages", "blogs", "oauth", "public"},
			"permissions": []any{}, "organization_id": json.Number("2"), "tenant": "2",
		})
		c := f.clientByID(rec["id"].(string))
		if !c.Spec.AllowImpersonate || !c.Spec.AllowLogin || c.Spec.DisplayName != "Full" {
			t.Errorf("spec %+v: want allowImpersonate, allowLogin and displayName Full", c.Spec)
		}
		delete(rec, "organization_id")
		full = rec
		created = append(created, rec)
	})

	t.Run("get all: one JSON object per line, with secrets", func(t *testing.T) {
		ls := lines(f.mustRun("get"))
		if len(ls) != len(created) {
			t.Fatalf("get printed %d lines, want %d:\n%s", len(ls), len(created), strings.Join(ls, "\n"))
		}
		// Oldest first; creation timestamps have second precision, so
		// clients created within a second may come in any order.
		byID := map[string]map[string]any{}
		for _, c := range created {
			byID[c["id"].(string)] = c
		}
		for i, l := range ls {
			got := object(t, l)
			want := byID[got["id"].(string)]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("line %d:\n%v\nwant (as created):\n%v", i+1, got, want)
			}
			delete(byID, got["id"].(string))
		}
	})

	t.Run("get one", func(t *testing.T) {
		for _, want := range created {
			got := object(t, f.mustRun("get", "--id", want["id"].(string)))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("get --id %s:\n%v\nwant:\n%v", want["id"], got, want)
			}
		}
	})

	t.Run("grant", func(t *testing.T) {
		id := full["id"].(string)
		rec := object(t, f.mustRun("grant", "--id", id, "--permission", "blogs.read"))
		wantFields(t, rec, map[string]any{"id": id, "name": "Full", "permissions": []any{"blogs.read"}, "tenant": "2", "scopes": full["scopes"]})
		// grant never prints the secret (only create, issue, get and rotate do).
		wantKeys(t, rec, "id", "name", "scopes", "permissions", "tenant")
		if c := f.clientByID(id); !slices.Equal(c.Spec.Permissions, []string{"blogs.read"}) {
			t.Errorf("spec.permissions = %v", c.Spec.Permissions)
		}
		// Granting again changes nothing; several at once, with --perm.
		rec = object(t, f.mustRun("grant", "--id", id, "--perm", "blogs.read", "--perm", "proposals.read,system.organizations.read"))
		wantFields(t, rec, map[string]any{"permissions": []any{"blogs.read", "proposals.read", "system.organizations.read"}})
	})

	t.Run("revoke", func(t *testing.T) {
		id := full["id"].(string)
		f.mustRun("revoke", "--id", id, "--permission", "proposals.read", "--permission", "system.organizations.read")
		rec := object(t, f.mustRun("revoke", "--id", id, "--permission", "blogs.read"))
		wantFields(t, rec, map[string]any{"id": id, "permissions": []any{}, "tenant": "2"})
		if c := f.clientByID(id); len(c.Spec.Permissions) != 0 {
			t.Errorf("spec.permissions = %v, want none", c.Spec.Permissions)
		}
		// get still prints the secret, unchanged by grant and revoke.
		got := object(t, f.mustRun("get", "--id", id))
		if got["secret"] != full["secret"] {
			t.Errorf("secret changed by grant/revoke: %v, was %v", got["secret"], full["secret"])
		}
	})

	t.Run("text format", func(t *testing.T) {
		out := f.mustRun("get", "--id", "sysadmin-org", "--format", "text")
		ls := lines(out)
		col := -1
		for _, l := range ls {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				t.Fatalf("line %q is not 'Key: value'", l)
			}
			start := len(k) + 1 + len(v) - len(strings.TrimLeft(v, " "))
			if col == -1 {
				col = start
			} else if start != col {
				t.Errorf("values not aligned: line %q starts its value at %d, want %d\n%s", l, start, col, out)
			}
		}
		for _, want := range []string{"ID:", "sysadmin-org", "Secret:", "my-insecure-password", "Name:", "API Client ***-org",
			"Permissions:", "system.organizations.update, system.organizations.read", "Tenant:", "Ready:", "True"} {
			if !strings.Contains(out, want) {
				t.Errorf("text output lacks %q:\n%s", want, out)
			}
		}
	})
}

// checkIssued checks that a printed id and secret are what the operator
// issued into the client's Secret.
func (f *fixture) checkIssued(rec map[string]any) {
	f.t.Helper()
	c := f.clientByID(rec["id"].(string))
	sec := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: c.Status.SecretName}, sec); err != nil {
		f.t.Fatal(err)
	}
	if string(sec.Data["client_id"]) != rec["id"] || string(sec.Data["client_secret"]) != rec["secret"] {
		f.t.Errorf("printed id/secret %v/%v differ from the issued Secret's", rec["id"], rec["secret"])
	}
}

// clientByID finds the ApiClient with the given client id.
func (f *fixture) clientByID(id string) *latchkeyv1alpha1.ApiClient {
	f.t.Helper()
	list := &latchkeyv1alpha1.ApiClientList{}
	if err := env.Client.List(context.Background(), list); err != nil {
		f.t.Fatal(err)
	}
	for i := range list.Items {
		if c := &list.Items[i]; c.Namespace == f.ns && c.Status.ClientID == id {
			return c
		}
	}
	f.t.Fatalf("no ApiClient with client id %q in %s", id, f.ns)
	return nil
}

func wantFields(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		got, ok := rec[k]
		if !ok {
			t.Errorf("no %q in %v", k, rec)
			continue
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", k, got, w)
		}
	}
}

// wantKeys checks the record has exactly these keys: the JSON shape is a
// contract.
func wantKeys(t *testing.T, rec map[string]any, want ...string) {
	t.Helper()
	got := make([]string, 0, len(rec))
	for k := range rec {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys %v, want exactly %v", got, want)
	}
}
