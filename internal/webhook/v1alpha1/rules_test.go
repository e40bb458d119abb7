package v1alpha1

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
)

const testCatalog = `
scopes:
- name: blogs
  permissions: [blogs.read, blogs.write, blogs.comments.moderate]
- name: proposals
  permissions: [proposals.read, proposals.vote]
- name: system
  global: true
  permissions: [system.organizations.read, system.organizations.update]
- name: audit
  permissions: [audit.read]
`

func mustCatalog(t *testing.T, doc string) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiClient(mut ...func(*latchkeyv1alpha1.ApiClient)) *latchkeyv1alpha1.ApiClient {
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "blog-bot"},
		Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes:      []string{"blogs"},
			Permissions: []string{"blogs.read", "blogs.write"},
			Tenant:      "acme",
		},
	}
	for _, m := range mut {
		m(c)
	}
	return c
}

func grant(mut ...func(*latchkeyv1alpha1.CredentialGrant)) *latchkeyv1alpha1.CredentialGrant {
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "blog-bot-ci"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{
			ClientName:  "blog-bot",
			Permissions: []string{"blogs.read"},
			Type:        latchkeyv1alpha1.CredentialTypeBearer,
		},
	}
	for _, m := range mut {
		m(g)
	}
	return g
}

// check asserts that errs is empty when want is empty, and otherwise that
// some error contains every substring of want.
func check(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	msg := errs.ToAggregate()
	if len(want) == 0 {
		if msg != nil {
			t.Fatalf("want no errors, got: %v", msg)
		}
		return
	}
	if msg == nil {
		t.Fatalf("want an error containing %q, got none", want)
	}
	for _, w := range want {
		if !strings.Contains(msg.Error(), w) {
			t.Fatalf("want an error containing %q, got: %v", w, msg)
		}
	}
}

func TestValidateApiClient(t *testing.T) {
	cat := mustCatalog(t, testCatalog)
	withCat := ApiClientLookups{catalogState: catalogState{Catalog: cat}}
	noCat := ApiClientLookups{}
	broken := ApiClientLookups{catalogState: catalogState{Err: errors.New("the permission catalog ConfigMap x/y does not exist")}}
	holder := func(ns, name, f string) ApiClientLookups {
		l := withCat
		l.ClientIDHolders = []ClientIDHolder{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}, Field: f}}
		return l
	}
	tests := []struct {
		name     string
		old, new *latchkeyv1alpha1.ApiClient
		l        ApiClientLookups
		want     []string
	}{
		{name: "valid create with catalog", new: apiClient(), l: withCat},
		{name: "valid create without catalog", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = append(c.Spec.Permissions, "blogs.anything") }), l: noCat},
		{name: "system-only client needs no tenant", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.Scopes, c.Spec.Permissions, c.Spec.Tenant = []string{"system"}, []string{"system.organizations.read"}, ""
		}), l: withCat},
		{name: "client without permissions", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = nil }), l: withCat},
		{name: "client with secret ref to a missing Secret is admitted", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "not-there-yet", Key: "client_secret"}
		}), l: withCat},
		{name: "permission of another scope", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = []string{"proposals.vote"} }), l: withCat,
			want: []string{"spec.permissions[0]", `belongs to scope "proposals", which is not one of spec.scopes`, "create a new ApiClient that has scope"}},
		{name: "malformed permission", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = []string{"blogs"} }), l: noCat,
			want: []string{"spec.permissions[0]", "has no scope"}},
		{name: "permission not in catalog", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = []string{"blogs.read", "blogs.delete"} }), l: withCat,
			want: []string{"spec.permissions[1]", `permission "blogs.delete" is not in the permission catalog`, `"blogs.read", "blogs.write"`}},
		{name: "scope not in catalog", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.Scopes, c.Spec.Permissions = []string{"wiki"}, []string{"wiki.read"}
		}), l: withCat,
			want: []string{"spec.scopes[0]", `scope "wiki" is not in the permission catalog`, `use one of "blogs", "proposals"`}},
		{name: "tenant required by catalog", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.Scopes, c.Spec.Permissions, c.Spec.Tenant = []string{"system", "audit"}, []string{"audit.read"}, ""
		}), l: withCat, want: []string{"spec.tenant: Required value", `binds scope "audit" to a tenant`}},
		{name: "catalog may make system tenant-bound", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.Scopes, c.Spec.Permissions, c.Spec.Tenant = []string{"system"}, nil, ""
		}), l: ApiClientLookups{catalogState: catalogState{Catalog: mustCatalog(t, "scopes:\n- name: system\n")}}, want: []string{`binds scope "system" to a tenant`}},
		{name: "default tenant rule without catalog", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Tenant = "" }), l: noCat,
			want: []string{"spec.tenant: Required value", "unless every scope is global"}},
		{name: "catalog unavailable fails closed on create", new: apiClient(), l: broken,
			want: []string{"spec.scopes: Forbidden", "cannot be checked against the permission catalog", "does not exist"}},
		{name: "duplicate clientID in spec, same namespace", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "blog-bot-id" }), l: holder("team-a", "other", "spec.clientID"),
			want: []string{"spec.clientID", `client id "blog-bot-id" is already used by ApiClient "other" (its spec.clientID)`, "choose another spec.clientID"}},
		{name: "duplicate clientID in status, other namespace", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "id_abc" }), l: holder("team-b", "secret-name", "status.clientID"),
			want: []string{"already used by an ApiClient in another namespace (its status.clientID)"}},
		{name: "secret ref with a namespace", new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "team-b/creds"}
		}), l: withCat, want: []string{"spec.clientSecretRef.name", `own namespace "team-a"`, "create (or sync) the Secret"}},
		{name: "scopes immutable", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = []string{"blogs", "proposals"} }), l: withCat,
			want: []string{"spec.scopes: Forbidden", "spec.scopes is immutable", "create a new ApiClient with the scopes you need"}},
		{name: "scopes reordered is no change", old: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = []string{"blogs", "proposals"} }),
			new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = []string{"proposals", "blogs"} }), l: withCat},
		{name: "tenant immutable", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Tenant = "globex" }), l: withCat,
			want: []string{"spec.tenant: Forbidden", `it is "acme"`, `create a new ApiClient for tenant "globex"`}},
		{name: "clientID immutable", old: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "one" }), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = "two" }), l: withCat,
			want: []string{"spec.clientID: Forbidden", "spec.clientID is immutable"}},
		{name: "update adding a permission outside the catalog", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = append(c.Spec.Permissions, "blogs.publish") }), l: withCat,
			want: []string{"spec.permissions[2]", `"blogs.publish" is not in the permission catalog`}},
		{name: "update keeps a permission the catalog dropped (ratcheting)", old: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = []string{"blogs.legacy"} }),
			new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
				c.Spec.Permissions = []string{"blogs.legacy", "blogs.read"}
				c.Spec.DisplayName = "x"
			}), l: withCat},
		{name: "metadata-only update with a broken catalog", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Finalizers = []string{"latchkey.dev/revoke"} }), l: broken},
		{name: "update adding a permission with a broken catalog", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.Permissions = append(c.Spec.Permissions, "blogs.comments.moderate")
		}), l: broken,
			want: []string{"spec.permissions: Forbidden", "cannot be checked against the permission catalog"}},
		{name: "update adding a permission whose scope left the catalog", old: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = []string{"blogs", "wiki"} }),
			new: apiClient(func(c *latchkeyv1alpha1.ApiClient) {
				c.Spec.Scopes = []string{"blogs", "wiki"}
				c.Spec.Permissions = append(c.Spec.Permissions, "wiki.read")
			}), l: withCat,
			want: []string{`scope "wiki" of permission "wiki.read" is no longer in the permission catalog`}},
		{name: "removing permissions is always fine", old: apiClient(), new: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = nil }), l: broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, ValidateApiClient(tt.old, tt.new, tt.l), tt.want...)
		})
	}
}

func TestValidateApiClientDelete(t *testing.T) {
	requireInactive := func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.DeletionPolicy = latchkeyv1alpha1.DeletionPolicyRequireInactive
	}
	inactive := func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Active = new(false) }
	deleting := func(c *latchkeyv1alpha1.ApiClient) { c.DeletionTimestamp = &metav1.Time{Time: time.Now()} }
	tests := []struct {
		name        string
		c           *latchkeyv1alpha1.ApiClient
		terminating bool
		want        []string
	}{
		{name: "default policy", c: apiClient()},
		{name: "policy Delete", c: apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.DeletionPolicy = latchkeyv1alpha1.DeletionPolicyDelete })},
		{name: "RequireInactive and active (default)", c: apiClient(requireInactive),
			want: []string{"spec.active: Forbidden", `spec.deletionPolicy "RequireInactive" and is still active`, "set spec.active to false first"}},
		{name: "RequireInactive and active (explicit)", c: apiClient(requireInactive, func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Active = new(true) }), want: []string{"set spec.active to false first"}},
		{name: "RequireInactive and inactive", c: apiClient(requireInactive, inactive)},
		{name: "RequireInactive while the namespace is deleted", c: apiClient(requireInactive), terminating: true},
		{name: "RequireInactive, already being deleted", c: apiClient(requireInactive, deleting)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, ValidateApiClientDelete(tt.c, tt.terminating), tt.want...)
		})
	}
}

func TestValidateCredentialGrant(t *testing.T) {
	cat := mustCatalog(t, testCatalog)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	owner := apiClient()
	l := func(mut ...func(*CredentialGrantLookups)) CredentialGrantLookups {
		x := CredentialGrantLookups{catalogState: catalogState{Catalog: cat}, Client: owner, Now: now}
		for _, m := range mut {
			m(&x)
		}
		return x
	}
	noClient := func(x *CredentialGrantLookups) { x.Client = nil }
	maxDay := func(x *CredentialGrantLookups) { x.MaxLifetime = 24 * time.Hour }
	expires := func(d time.Duration) func(*latchkeyv1alpha1.CredentialGrant) {
		return func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = &metav1.Time{Time: now.Add(d)} }
	}
	perms := func(p ...string) func(*latchkeyv1alpha1.CredentialGrant) {
		return func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Permissions = p }
	}
	tests := []struct {
		name     string
		old, new *latchkeyv1alpha1.CredentialGrant
		l        CredentialGrantLookups
		want     []string
	}{
		{name: "subset of its client", new: grant(), l: l()},
		{name: "all of the client's permissions (empty)", new: grant(perms()), l: l()},
		{name: "client does not exist yet: admitted", new: grant(perms("blogs.read", "blogs.comments.moderate")), l: l(noClient)},
		{name: "wider than its client", new: grant(perms("blogs.read", "blogs.comments.moderate")), l: l(),
			want: []string{"spec.permissions[1]", `ApiClient "blog-bot" does not hold permission "blogs.comments.moderate"`, "only a subset of its client's permissions", "add it to the ApiClient's spec.permissions first"}},
		{name: "scope the client lacks", new: grant(perms("proposals.vote")), l: l(), want: []string{`does not hold permission "proposals.vote"`}},
		{name: "not in the catalog, client missing", new: grant(perms("blogs.delete")), l: l(noClient), want: []string{`permission "blogs.delete" is not in the permission catalog`}},
		{name: "malformed permission", new: grant(perms("blogs")), l: l(noClient), want: []string{"has no scope"}},
		{name: "catalog unavailable, client missing", new: grant(), l: l(noClient, func(x *CredentialGrantLookups) { x.Err = errors.New("not loaded yet") }),
			want: []string{"cannot be checked against the permission catalog"}},
		{name: "clientName immutable", old: grant(), new: grant(func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ClientName = "other" }), l: l(),
			want: []string{"spec.clientName: Forbidden", `create a new CredentialGrant for ApiClient "other"`}},
		{name: "type immutable", old: grant(), new: grant(func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = latchkeyv1alpha1.CredentialTypeKeyAuth }), l: l(),
			want: []string{"spec.type: Forbidden", `create a new CredentialGrant of type "key-auth"`}},
		{name: "type unset equals bearer", old: grant(func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = "" }), new: grant(), l: l()},
		{name: "update adding a permission the client lacks", old: grant(), new: grant(perms("blogs.read", "audit.read")), l: l(),
			want: []string{"spec.permissions[1]", `does not hold permission "audit.read"`}},
		{name: "update keeping a permission the client lost (ratcheting)", old: grant(perms("blogs.read", "blogs.comments.moderate")),
			new: grant(perms("blogs.read", "blogs.comments.moderate"), func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Description = "ci" }), l: l()},
		{name: "within the maximum lifetime", new: grant(expires(23 * time.Hour)), l: l(maxDay)},
		{name: "expiry in the past is fine", new: grant(expires(-time.Hour)), l: l(maxDay)},
		{name: "beyond the maximum lifetime", new: grant(expires(48 * time.Hour)), l: l(maxDay),
			want: []string{"spec.expiresAt", "48h0m0s from now", "at most 24h0m0s", "set spec.expiresAt to 2026-01-02T00:00:00Z or earlier"}},
		{name: "no expiry with a maximum lifetime", new: grant(), l: l(maxDay),
			want: []string{"spec.expiresAt: Required value", "set spec.expiresAt to 2026-01-02T00:00:00Z or earlier"}},
		{name: "no maximum lifetime", new: grant(expires(10 * 365 * 24 * time.Hour)), l: l()},
		{name: "unchanged old expiry is not re-checked", old: grant(expires(48 * time.Hour)), new: grant(expires(48*time.Hour), perms()), l: l(maxDay)},
		{name: "extending the expiry beyond the maximum", old: grant(expires(time.Hour)), new: grant(expires(100 * time.Hour)), l: l(maxDay),
			want: []string{"at most 24h0m0s"}},
		{name: "removing the expiry with a maximum", old: grant(expires(time.Hour)), new: grant(), l: l(maxDay), want: []string{"spec.expiresAt: Required value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, ValidateCredentialGrant(tt.old, tt.new, tt.l), tt.want...)
		})
	}
}

func TestClientIDsIndex(t *testing.T) {
	c := apiClient(func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID, c.Status.ClientID = "a", "a" })
	if got := clientIDs(c); len(got) != 1 || got[0] != "a" {
		t.Fatalf("clientIDs = %q", got)
	}
	c.Spec.ClientID = ""
	c.Status.ClientID = "id_x"
	if got := clientIDs(c); len(got) != 1 || got[0] != "id_x" {
		t.Fatalf("clientIDs = %q", got)
	}
	if got := clientIDs(grant()); got != nil {
		t.Fatalf("clientIDs(grant) = %q", got)
	}
}

func TestInvalidError(t *testing.T) {
	if invalid("ApiClient", "x", nil) != nil {
		t.Fatal("no errors must give a nil error")
	}
	err := invalid("ApiClient", "x", field.ErrorList{field.Forbidden(field.NewPath("spec", "a"), "do b")})
	if err == nil || !strings.Contains(err.Error(), `ApiClient.latchkey.dev "x" is invalid: spec.a: Forbidden: do b`) {
		t.Fatalf("invalid() = %v", err)
	}
	if got := list([]string{"a", "b", "c"}, 2); got != `"a", "b" and 1 more` {
		t.Fatalf("list = %s", got)
	}
}
