package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// TestSecretPassesVerifierUntilDelete: what create and issue print is a
// working credential for the verifier, and delete revokes all of it before
// it returns.
func TestSecretPassesVerifierUntilDelete(t *testing.T) {
	f := newFixture(t)

	gen := object(t, f.mustRun("create", "--scope", "system", "--permission", "system.organizations.read"))
	genID, genSecret := gen["id"].(string), gen["secret"].(string)
	fixed := object(t, f.mustRun("create", "--scope", "blogs", "--permission", "blogs.read", "--tenant", "2",
		"--id", "fixed-client", "--secret", "my-insecure-password"))

	tok := object(t, f.mustRun("issue", "--id", genID))
	key := object(t, f.mustRun("issue", "--id", genID, "--type", "key-auth"))
	fixedTok := object(t, f.mustRun("issue", "--id", "fixed-client", "--type", "basic-auth"))

	creds := []struct {
		what string
		h    http.Header
	}{
		{"generated client id:secret", basic(genID, genSecret)},
		{"chosen client id:secret", basic("fixed-client", fixed["secret"].(string))},
		{"bearer token", bearer(tok["token"].(string))},
		{"X-API-Key token", http.Header{"X-Api-Key": {tok["token"].(string)}}},
		{"key-auth keyId:keySecret", basic(key["key_id"].(string), key["key_secret"].(string))},
		{"basic-auth username:password", basic(fixedTok["username"].(string), fixedTok["password"].(string))},
	}
	for _, c := range creds {
		f.wantVerify(c.what, c.h, http.StatusOK)
	}
	f.wantVerify("a wrong secret", basic(genID, genSecret+"x"), http.StatusUnauthorized)

	// whoami: the verifier's record of the token, never its secret.
	out := f.mustRun("whoami", "--token", tok["token"].(string), "--verifier", f.verifier)
	me := object(t, out)
	if me["client_id"] != genID || me["token_id"] != tok["id"] {
		t.Errorf("whoami: %v, want client_id %s and token_id %s", me, genID, tok["id"])
	}
	if strings.Contains(out, tok["token"].(string)) {
		t.Errorf("whoami printed the token: %s", out)
	}

	// delete returns once everything is revoked.
	del := object(t, f.mustRun("delete", "--id", genID))
	wantFields(t, del, map[string]any{"id": genID, "deleted": true})
	del = object(t, f.mustRun("delete", "--id", "fixed-client"))
	wantFields(t, del, map[string]any{"id": "fixed-client", "resource": "apiclient/fixed-client"})
	for _, c := range creds {
		f.wantVerify(c.what+" after delete", c.h, http.StatusUnauthorized)
	}
	r := f.run("whoami", "--token", tok["token"].(string), "--verifier", f.verifier)
	if r.code == 0 || !strings.Contains(r.stderr, "rejected the token") {
		t.Errorf("whoami after delete: exit %d, stderr %q; want a rejection", r.code, r.stderr)
	}
	if r := f.run("get", "--id", genID); r.code == 0 {
		t.Errorf("get after delete succeeded: %s", r.stdout)
	}
}

// TestIssueRotateActivate covers Latchkey's additions to Decidim's verbs.
func TestIssueRotateActivate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := object(t, f.mustRun("create", "--scope", "blogs", "--permission", "blogs.read,blogs.update", "--tenant", "acme", "--id", "blog-bot"))
	id := c["id"].(string)

	var tok map[string]any
	t.Run("issue", func(t *testing.T) {
		before := time.Now()
		tok = object(t, f.mustRun("issue", "--id", id, "--name", "nightly", "--permission", "blogs.read",
			"--expires-in", "1h", "--description", "nightly import"))
		wantKeys(t, tok, "id", "token", "client_id", "expires_at", "permissions", "type", "grant")
		wantFields(t, tok, map[string]any{"client_id": id, "permissions": []any{"blogs.read"}, "type": "bearer", "grant": "nightly"})
		if !strings.HasPrefix(tok["token"].(string), "lk_"+tok["id"].(string)+"_") {
			t.Errorf("token %q does not carry its token id %q", tok["token"], tok["id"])
		}
		exp, err := time.Parse(time.RFC3339, tok["expires_at"].(string))
		if err != nil || exp.Before(before.Add(59*time.Minute)) || exp.After(before.Add(61*time.Minute)) {
			t.Errorf("expires_at %v (%v), want about an hour from now", tok["expires_at"], err)
		}
		g := &latchkeyv1alpha1.CredentialGrant{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "nightly"}, g); err != nil {
			t.Fatal(err)
		}
		if g.Spec.ClientName != "blog-bot" || g.Spec.Description != "nightly import" || g.Status.TokenID != tok["id"] {
			t.Errorf("grant %+v / %+v", g.Spec, g.Status)
		}
		f.wantVerify("issued token", bearer(tok["token"].(string)), http.StatusOK)

		// No --permission: all of the client's; no expiry: null.
		all := object(t, f.mustRun("issue", "--id", id))
		wantFields(t, all, map[string]any{"permissions": []any{"blogs.read", "blogs.update"}, "expires_at": nil})
		if !strings.HasPrefix(all["grant"].(string), "blog-bot-") {
			t.Errorf("grant name %v, want generated blog-bot-...", all["grant"])
		}
		k := object(t, f.mustRun("issue", "--id", id, "--type", "key-auth", "--expires-at", "2099-01-02T03:04:05Z"))
		wantKeys(t, k, "id", "token", "client_id", "expires_at", "permissions", "type", "grant", "key_id", "key_secret")
		wantFields(t, k, map[string]any{"type": "key-auth", "key_id": k["id"], "expires_at": "2099-01-02T03:04:05Z"})
		b := object(t, f.mustRun("issue", "--id", id, "--type", "basic-auth"))
		wantKeys(t, b, "id", "token", "client_id", "expires_at", "permissions", "type", "grant", "username", "password")

		text := f.mustRun("issue", "--id", id, "--format", "text")
		for _, want := range []string{"Token ID:", "Token:", "lk_", "Client ID:", "blog-bot", "Expires at:", "never"} {
			if !strings.Contains(text, want) {
				t.Errorf("issue --format text lacks %q:\n%s", want, text)
			}
		}
	})

	t.Run("rotate client", func(t *testing.T) {
		old := c["secret"].(string)
		rec := object(t, f.mustRun("rotate", "--id", id))
		if rec["id"] != id || rec["secret"] == old || rec["secret"] == "" {
			t.Fatalf("rotate printed %v; want the same id and a new secret", rec)
		}
		f.wantVerify("new client secret", basic(id, rec["secret"].(string)), http.StatusOK)
		f.wantVerify("old client secret", basic(id, old), http.StatusUnauthorized)
		if got := object(t, f.mustRun("get", "--id", id)); got["secret"] != rec["secret"] {
			t.Errorf("get after rotate shows %v, want the new secret", got["secret"])
		}
	})

	t.Run("rotate grant", func(t *testing.T) {
		rec := object(t, f.mustRun("rotate", "--grant", "nightly"))
		if rec["token"] == tok["token"] || rec["id"] == tok["id"] || rec["grant"] != "nightly" {
			t.Fatalf("rotate --grant printed %v; want a new token for grant nightly", rec)
		}
		f.wantVerify("new token", bearer(rec["token"].(string)), http.StatusOK)
		f.wantVerify("old token", bearer(tok["token"].(string)), http.StatusUnauthorized)
		tok = rec
	})

	t.Run("deactivate and activate", func(t *testing.T) {
		rec := object(t, f.mustRun("deactivate", "--id", id))
		wantFields(t, rec, map[string]any{"id": id, "active": false})
		if _, ok := rec["secret"]; ok {
			t.Errorf("deactivate printed the secret")
		}
		cl := f.clientByID(id)
		if meta.IsStatusConditionTrue(cl.Status.Conditions, latchkeyv1alpha1.ConditionActive) || cl.IsActive() {
			t.Errorf("client still active: %v", cl.Status.Conditions)
		}
		f.wantVerify("token of an inactive client", bearer(tok["token"].(string)), http.StatusUnauthorized)
		wantFields(t, object(t, f.mustRun("activate", "--id", id)), map[string]any{"active": true})
		f.wantVerify("token of a reactivated client", bearer(tok["token"].(string)), http.StatusOK)
	})

	t.Run("delete one grant", func(t *testing.T) {
		rec := object(t, f.mustRun("delete", "--grant", "nightly"))
		wantFields(t, rec, map[string]any{"id": tok["id"], "deleted": true, "resource": "credentialgrant/nightly"})
		f.wantVerify("token of a deleted grant", bearer(tok["token"].(string)), http.StatusUnauthorized)
		f.wantVerify("the client itself", basic(id, object(t, f.mustRun("get", "--id", id))["secret"].(string)), http.StatusOK)
	})
}

// TestConcurrentGrants: grant and revoke never lose a concurrent change:
// parallel grants of different permissions all land (each patch carries the
// resourceVersion it read and is redone on a conflict).
func TestConcurrentGrants(t *testing.T) {
	f := newFixture(t)
	f.mustRun("create", "--scope", "blogs", "--tenant", "2", "--id", "busy-client")
	perms := []string{"blogs.a", "blogs.b", "blogs.c", "blogs.d", "blogs.e", "blogs.f"}
	errs := make(chan string, len(perms))
	for _, p := range perms {
		go func() {
			r := f.run("grant", "--id", "busy-client", "--permission", p)
			if r.code != 0 {
				errs <- p + ": " + r.stderr
				return
			}
			errs <- ""
		}()
	}
	for range perms {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
	got := f.clientByID("busy-client").Spec.Permissions
	slices.Sort(got)
	if !slices.Equal(got, perms) {
		t.Errorf("after concurrent grants spec.permissions = %v, want %v", got, perms)
	}
}

// TestGetWithoutSecretAccess: a caller who may read ApiClients but not
// Secrets gets the records without secrets, and a warning that says why.
func TestGetWithoutSecretAccess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rec := object(t, f.mustRun("create", "--scope", "system", "--id", "watched"))

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "apiclient-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{latchkeyv1alpha1.GroupVersion.Group}, Resources: []string{"apiclients"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "apiclient-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "auditor"}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	var r result
	testenv.Eventually(t, 10*time.Second, func() error {
		if r = f.run("get", "--id", "watched", "--as", "auditor"); r.code != 0 {
			return fmt.Errorf("get as auditor: %s", r.stderr)
		}
		return nil
	})
	got := object(t, r.stdout)
	if _, ok := got["secret"]; ok {
		t.Errorf("get printed a secret the caller may not read: %v", got)
	}
	delete(rec, "secret")
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("get as auditor: %v, want %v", got, rec)
	}
	if !strings.Contains(r.stderr, "may not read Secret") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q, want one warning that the Secret is not readable", r.stderr)
	}
	// What the caller may not do fails with the API server's message.
	wantOneLineError(t, f.run("grant", "--id", "watched", "--permission", "system.x", "--as", "auditor"), "forbidden", "auditor")
}
