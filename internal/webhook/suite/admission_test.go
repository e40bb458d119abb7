package suite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, &env, testenv.Options{Webhooks: true})
}

const (
	catalogConfigMap = "latchkey-permission-catalog"
	maxLifetime      = 24 * time.Hour
	// configMapCatalog is the ConfigMap half of the catalog: the global
	// scopes. "stats" is global in the catalog, but the CRD's CEL rule only
	// knows "system": a catalog can make the tenant rule stricter, never
	// looser (docs/admission.md).
	configMapCatalog = `
scopes:
- name: system
  global: true
  permissions: [system.organizations.read, system.organizations.update]
- name: stats
  global: true
  permissions: [stats.read]
`
)

// rejector says which layer must reject: the webhook, or the CRD's schema and
// CEL rules, which run before it.
type rejector int

const (
	byWebhook rejector = iota
	bySchema
)

type rejection struct {
	name string
	by   rejector
	// eventually retries (with dry-run requests) while the manager's cache
	// catches up with objects created a moment ago.
	eventually bool
	do         func(ctx context.Context) error
	want       []string
}

func TestAdmission(t *testing.T) {
	ctx := context.Background()
	setCatalogConfigMap(t, configMapCatalog)
	env.StartManager(t, operator.Options{
		EnableWebhooks:             true,
		PermissionCatalogFile:      filepath.Join("testdata", "catalog.yaml"),
		PermissionCatalogConfigMap: catalogConfigMap,
		MaxCredentialLifetime:      maxLifetime,
	})
	ns := env.Namespace(t)
	other := env.Namespace(t)
	waitForWebhook(t, ns)
	// Client ids are cluster-wide: derive them from the namespace so that
	// reruns (-count) against the same API server do not collide.
	ownerID, crossID, uniqueID := ns+"-owner", ns+"-cross", ns+"-unique"

	// Fixtures the rules are checked against.
	owner := newClient(ns, "owner", func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = ownerID })
	crossNS := newClient(other, "cross", func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = crossID })
	holder := newClient(ns, "holder")
	guarded := newClient(ns, "guarded", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.DeletionPolicy = latchkeyv1alpha1.DeletionPolicyRequireInactive
	})
	guardedExplicit := newClient(ns, "guarded-explicit", func(c *latchkeyv1alpha1.ApiClient) {
		c.Spec.DeletionPolicy = latchkeyv1alpha1.DeletionPolicyRequireInactive
		c.Spec.Active = new(true)
	})
	g1 := newGrant(ns, "g1", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Permissions = []string{"blogs.read"} })
	for _, o := range []client.Object{owner, crossNS, holder, guarded, guardedExplicit, g1} {
		mustCreate(t, o)
	}

	rejections := []rejection{
		// ApiClient create: catalog.
		{name: "permission unknown for its scope (not in catalog)", do: create(newClient(ns, "c1", perms("blogs.read", "blogs.delete"))),
			want: []string{"spec.permissions[1]", `permission "blogs.delete" is not in the permission catalog`, `scope "blogs" has "blogs.read", "blogs.write", "blogs.comments.moderate"`}},
		{name: "permission of a ConfigMap scope not in catalog", do: create(newClient(ns, "c2", scopes("system"), perms("system.organizations.delete"), tenant(""))),
			want: []string{`permission "system.organizations.delete" is not in the permission catalog`}},
		{name: "scope not in catalog", do: create(newClient(ns, "c3", scopes("wiki"), perms("wiki.read"))),
			want: []string{"spec.scopes[0]", `scope "wiki" is not in the permission catalog: use one of "blogs", "proposals", "system", "stats"`}},
		{name: "one of several scopes not in catalog", do: create(newClient(ns, "c4", scopes("blogs", "wiki"))),
			want: []string{"spec.scopes[1]", `scope "wiki" is not in the permission catalog`}},
		{name: "several permissions not in catalog are all reported", do: create(newClient(ns, "c5", perms("blogs.delete", "blogs.publish"))),
			want: []string{"spec.permissions[0]", "spec.permissions[1]", `"blogs.publish" is not in the permission catalog`}},
		{name: "proposals permission not in catalog", do: create(newClient(ns, "c6", scopes("proposals"), perms("proposals.close"))),
			want: []string{`permission "proposals.close" is not in the permission catalog`}},
		// ApiClient create: rules the CRD's CEL already holds (webhook down or not).
		{name: "permission outside the client's scopes", by: bySchema, do: create(newClient(ns, "c7", perms("proposals.vote"))),
			want: []string{"spec.permissions", "each permission must start with one of spec.scopes"}},
		{name: "tenant missing for a tenant-bound scope", by: bySchema, do: create(newClient(ns, "c8", tenant(""))),
			want: []string{"spec.tenant is required unless every scope is global"}},
		{name: "catalog-global scope other than system still needs a tenant", by: bySchema, do: create(newClient(ns, "c9", scopes("stats"), perms("stats.read"), tenant(""))),
			want: []string{"spec.tenant is required unless every scope is global ('system')"}},
		{name: "clientSecretRef naming another namespace", by: bySchema, do: create(newClient(ns, "c10", func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: other + "/creds"}
		})), want: []string{"spec.clientSecretRef.name", "must be the name of a Secret in the ApiClient's namespace", "with no namespace and no '/'"}},
		// ApiClient create: unique client ids.
		{name: "clientID already in another client's spec (same namespace)", eventually: true, do: dryCreate(newClient(ns, "c11", clientID(ownerID))),
			want: []string{"spec.clientID", fmt.Sprintf(`client id %q is already used by ApiClient "owner" (its spec.clientID)`, ownerID), "choose another spec.clientID"}},
		{name: "clientID already in another namespace's client", eventually: true, do: dryCreate(newClient(ns, "c12", clientID(crossID))),
			want: []string{`already used by an ApiClient in another namespace (its spec.clientID)`}},
		{name: "clientID already a generated id (status.clientID)", eventually: true, do: func(ctx context.Context) error {
			var h latchkeyv1alpha1.ApiClient
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(holder), &h); err != nil {
				return err
			}
			if h.Status.ClientID == "" {
				// status.clientID is the controller's to write (a generated
				// id); set one if it has not yet, so the check has a
				// status-held id to find whether or not the controllers run.
				h.Status.ClientID = "id_heldinstatus"
				if err := env.Client.Status().Update(ctx, &h); err != nil {
					return err
				}
				return fmt.Errorf("set status.clientID, retrying")
			}
			return dryCreate(newClient(other, "c13", clientID(h.Status.ClientID)))(ctx)
		}, want: []string{"already used by an ApiClient in another namespace (its status.clientID)"}},
		// ApiClient update.
		{name: "scopes changed", by: bySchema, do: updateClient(owner, func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = []string{"blogs", "proposals"} }),
			want: []string{"spec.scopes is immutable", "create a new ApiClient"}},
		{name: "tenant changed", by: bySchema, do: updateClient(owner, tenant("globex")),
			want: []string{"spec.tenant is immutable", "create a new ApiClient"}},
		{name: "tenant removed", by: bySchema, do: updateClient(owner, tenant("")),
			want: []string{"spec.tenant is immutable and cannot be added or removed"}},
		{name: "clientID changed", by: bySchema, do: updateClient(owner, clientID("another-id")),
			want: []string{"spec.clientID is immutable"}},
		{name: "clientID added", by: bySchema, do: updateClient(holder, clientID("late-id")),
			want: []string{"spec.clientID is immutable and cannot be added or removed"}},
		{name: "update adds a permission not in catalog", do: updateClient(owner, perms("blogs.read", "blogs.write", "blogs.admin")),
			want: []string{"spec.permissions[2]", `permission "blogs.admin" is not in the permission catalog`}},
		{name: "update adds a permission outside the scopes", by: bySchema, do: updateClient(owner, perms("blogs.read", "proposals.vote")),
			want: []string{"each permission must start with one of spec.scopes"}},
		// ApiClient delete.
		{name: "RequireInactive delete while active by default", do: deleteObj(guarded),
			want: []string{"spec.active: Forbidden", `ApiClient "guarded" has spec.deletionPolicy "RequireInactive" and is still active`, "set spec.active to false first"}},
		{name: "RequireInactive delete while active: true", do: deleteObj(guardedExplicit),
			want: []string{`ApiClient "guarded-explicit" has spec.deletionPolicy "RequireInactive"`}},
		{name: "RequireInactive dry-run delete while active", do: func(ctx context.Context) error {
			return env.Client.Delete(ctx, guarded.DeepCopy(), client.DryRunAll)
		}, want: []string{"set spec.active to false first"}},
		// CredentialGrant create.
		{name: "grant wider than its existing client", do: create(newGrant(ns, "g-wide", "owner", gperms("blogs.read", "blogs.comments.moderate"))),
			want: []string{"spec.permissions[1]", `ApiClient "owner" does not hold permission "blogs.comments.moderate"`, "only a subset of its client's permissions", "add it to the ApiClient's spec.permissions first"}},
		{name: "grant with a scope its client lacks", do: create(newGrant(ns, "g-scope", "owner", gperms("proposals.vote"))),
			want: []string{`ApiClient "owner" does not hold permission "proposals.vote"`}},
		{name: "grant for a missing client with a permission not in catalog", do: create(newGrant(ns, "g-cat", "nobody", gperms("blogs.delete"))),
			want: []string{`permission "blogs.delete" is not in the permission catalog`}},
		{name: "grant living longer than the maximum", do: create(newGrant(ns, "g-long", "owner", expiresIn(72*time.Hour))),
			want: []string{"spec.expiresAt", "credentials may live at most 24h0m0s", "or earlier"}},
		{name: "grant without expiry under a maximum lifetime", do: create(newGrant(ns, "g-never", "owner", func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = nil })),
			want: []string{"spec.expiresAt: Required value", "--max-credential-lifetime"}},
		{name: "grant with a malformed permission", by: bySchema, do: create(newGrant(ns, "g-bad", "owner", gperms("blogs"))),
			want: []string{"spec.permissions", "each entry of spec.permissions must be a scope and an action joined by dots"}},
		// CredentialGrant update.
		{name: "grant clientName changed", by: bySchema, do: updateGrant(g1, func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ClientName = "holder" }),
			want: []string{"spec.clientName is immutable"}},
		{name: "grant type changed", by: bySchema, do: updateGrant(g1, func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Type = latchkeyv1alpha1.CredentialTypeBasicAuth }),
			want: []string{"spec.type is immutable"}},
		{name: "grant update adds a permission its client lacks", do: updateGrant(g1, gperms("blogs.read", "blogs.comments.moderate")),
			want: []string{"spec.permissions[1]", `does not hold permission "blogs.comments.moderate"`}},
		{name: "grant expiry extended beyond the maximum", do: updateGrant(g1, expiresIn(48*time.Hour)),
			want: []string{"credentials may live at most 24h0m0s"}},
		{name: "grant expiry removed under a maximum lifetime", do: updateGrant(g1, func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = nil }),
			want: []string{"spec.expiresAt: Required value"}},
	}
	if len(rejections) < 30 {
		t.Fatalf("only %d rejection cases", len(rejections))
	}
	t.Run("rejected", func(t *testing.T) {
		for _, tc := range rejections {
			t.Run(tc.name, func(t *testing.T) {
				if tc.eventually {
					testenv.Eventually(t, 30*time.Second, func() error { return checkRejected(tc, tc.do(ctx)) })
					return
				}
				if err := checkRejected(tc, tc.do(ctx)); err != nil {
					t.Fatal(err)
				}
			})
		}
	})

	t.Run("admitted", func(t *testing.T) {
		// Any apply order works: a grant before its client ...
		mustCreate(t, newGrant(ns, "early", "later", gperms("blogs.write")))
		mustCreate(t, newClient(ns, "later"))
		// ... and a client before the Secret its clientSecretRef names.
		mustCreate(t, newClient(ns, "own-secret", func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: "own-secret-creds", Key: "client_secret"}
		}))
		mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own-secret-creds"}, StringData: map[string]string{"client_secret": "s3cr3t-chosen-by-a-human"}})

		mustCreate(t, newClient(ns, "sysadmin", scopes("system"), perms("system.organizations.read"), tenant("")))
		mustCreate(t, newClient(ns, "multi", scopes("blogs", "system", "proposals"), perms("blogs.comments.moderate", "system.organizations.update", "proposals.vote")))
		mustCreate(t, newClient(ns, "no-perms", perms()))
		mustCreate(t, newClient(ns, "unique-id", clientID(uniqueID)))
		mustCreate(t, newGrant(ns, "all-of-client", "owner", gperms()))
		mustCreate(t, newGrant(ns, "exact", "owner", gperms("blogs.read", "blogs.write"), expiresIn(maxLifetime-time.Minute)))
		mustCreate(t, newGrant(ns, "expired-at-once", "owner", expiresIn(-time.Hour)))

		mustSucceed(t, updateClient(owner, perms("blogs.read", "blogs.write", "blogs.comments.moderate"))(ctx))
		mustSucceed(t, updateGrant(g1, gperms("blogs.read", "blogs.comments.moderate"))(ctx)) // the client holds it now
		mustSucceed(t, updateGrant(g1, func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Description = "CI pipeline" })(ctx))
		mustSucceed(t, updateClient(owner, perms("blogs.read"))(ctx)) // narrowing the client is always allowed
		mustSucceed(t, updateGrant(g1, func(g *latchkeyv1alpha1.CredentialGrant) { g.Labels = map[string]string{"team": "a"} })(ctx))

		// RequireInactive: deactivate, then delete.
		mustSucceed(t, updateClient(guarded, func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Active = new(false) })(ctx))
		mustSucceed(t, deleteObj(guarded)(ctx))
		mustSucceed(t, deleteObj(g1)(ctx))
	})

	t.Run("RequireInactive yields to namespace deletion", func(t *testing.T) {
		doomed := env.Namespace(t)
		c := newClient(doomed, "guarded", func(c *latchkeyv1alpha1.ApiClient) {
			c.Spec.DeletionPolicy = latchkeyv1alpha1.DeletionPolicyRequireInactive
		})
		mustCreate(t, c)
		if err := checkRejected(rejection{want: []string{"set spec.active to false first"}}, deleteObj(c)(ctx)); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: doomed}}); err != nil {
			t.Fatal(err)
		}
		mustSucceed(t, deleteObj(c)(ctx))
	})

	t.Run("catalog ConfigMap is live", func(t *testing.T) {
		sysClient := func(name string) *latchkeyv1alpha1.ApiClient {
			return newClient(ns, name, scopes("system"), perms("system.organizations.read"), tenant(""))
		}
		// The catalog binds "system" to a tenant: stricter than the CRD.
		setCatalogConfigMap(t, strings.Replace(configMapCatalog, "- name: system\n  global: true", "- name: system\n  global: false", 1))
		testenv.Eventually(t, 30*time.Second, func() error {
			return checkRejected(rejection{want: []string{"spec.tenant: Required value", `the permission catalog binds scope "system" to a tenant`}}, dryCreate(sysClient("sys-bound"))(ctx))
		})
		// A new permission appears in the catalog.
		setCatalogConfigMap(t, strings.Replace(configMapCatalog, "[stats.read]", "[stats.read, stats.export]", 1))
		testenv.Eventually(t, 30*time.Second, func() error {
			return dryCreate(newClient(ns, "exporter", scopes("stats", "blogs"), perms("stats.export")))(ctx)
		})
		// An invalid catalog fails closed for changes that need it, but
		// never blocks changes that do not (finalizers, deletion).
		setCatalogConfigMap(t, "scopes:\n- name: system\n  permissions: [blogs.read]\n")
		testenv.Eventually(t, 30*time.Second, func() error {
			return checkRejected(rejection{want: []string{"cannot be checked against the permission catalog", "is invalid", `belongs to scope "blogs"`, "fix the ConfigMap"}}, dryCreate(sysClient("sys-broken"))(ctx))
		})
		mustSucceed(t, updateClient(owner, func(c *latchkeyv1alpha1.ApiClient) { c.Annotations = map[string]string{"note": "catalog broken"} })(ctx))
		mustSucceed(t, updateClient(owner, perms())(ctx))
		// Restored: admitted again.
		setCatalogConfigMap(t, configMapCatalog)
		testenv.Eventually(t, 30*time.Second, func() error { return dryCreate(sysClient("sys-ok"))(ctx) })
	})
}

// waitForWebhook waits until the webhook answers with the catalog loaded.
func waitForWebhook(t *testing.T, ns string) {
	t.Helper()
	probe := newClient(ns, "probe", perms("blogs.delete"))
	testenv.Eventually(t, 30*time.Second, func() error {
		return checkRejected(rejection{want: []string{"not in the permission catalog"}}, dryCreate(probe)(context.Background()))
	})
}

func checkRejected(tc rejection, err error) error {
	if err == nil {
		return fmt.Errorf("admitted, want a rejection containing %q", tc.want)
	}
	msg := err.Error()
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
		return fmt.Errorf("want an Invalid or Forbidden error, got %v", err)
	}
	viaWebhook := strings.Contains(msg, `admission webhook "v`) && strings.Contains(msg, `.latchkey.dev" denied the request`)
	if (tc.by == byWebhook) != viaWebhook {
		return fmt.Errorf("want the rejection by the webhook: %v, got: %s", tc.by == byWebhook, msg)
	}
	for _, w := range tc.want {
		if !strings.Contains(msg, w) {
			return fmt.Errorf("want %q in the message, got: %s", w, msg)
		}
	}
	return nil
}

func setCatalogConfigMap(t *testing.T, data string) {
	t.Helper()
	ctx := context.Background()
	if err := env.EnsureNamespace(ctx, operator.DefaultNamespace); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operator.DefaultNamespace, Name: catalogConfigMap}}
	var existing corev1.ConfigMap
	switch err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), &existing); {
	case apierrors.IsNotFound(err):
		cm.Data = map[string]string{catalog.ConfigMapKey: data}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		existing.Data = map[string]string{catalog.ConfigMapKey: data}
		if err := env.Client.Update(ctx, &existing); err != nil {
			t.Fatal(err)
		}
	}
}

func newClient(ns, name string, mut ...func(*latchkeyv1alpha1.ApiClient)) *latchkeyv1alpha1.ApiClient {
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
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

func newGrant(ns, name, clientName string, mut ...func(*latchkeyv1alpha1.CredentialGrant)) *latchkeyv1alpha1.CredentialGrant {
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{
			ClientName: clientName,
			ExpiresAt:  &metav1.Time{Time: time.Now().Add(time.Hour)},
		},
	}
	for _, m := range mut {
		m(g)
	}
	return g
}

func scopes(s ...string) func(*latchkeyv1alpha1.ApiClient) {
	return func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Scopes = s }
}
func perms(p ...string) func(*latchkeyv1alpha1.ApiClient) {
	return func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Permissions = p }
}
func tenant(t string) func(*latchkeyv1alpha1.ApiClient) {
	return func(c *latchkeyv1alpha1.ApiClient) { c.Spec.Tenant = t }
}
func clientID(id string) func(*latchkeyv1alpha1.ApiClient) {
	return func(c *latchkeyv1alpha1.ApiClient) { c.Spec.ClientID = id }
}
func gperms(p ...string) func(*latchkeyv1alpha1.CredentialGrant) {
	return func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.Permissions = p }
}
func expiresIn(d time.Duration) func(*latchkeyv1alpha1.CredentialGrant) {
	return func(g *latchkeyv1alpha1.CredentialGrant) { g.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(d)} }
}

func create(o client.Object) func(context.Context) error {
	return func(ctx context.Context) error { return env.Client.Create(ctx, o.DeepCopyObject().(client.Object)) }
}

func dryCreate(o client.Object) func(context.Context) error {
	return func(ctx context.Context) error {
		return env.Client.Create(ctx, o.DeepCopyObject().(client.Object), client.DryRunAll)
	}
}

func deleteObj(o client.Object) func(context.Context) error {
	return func(ctx context.Context) error { return env.Client.Delete(ctx, o.DeepCopyObject().(client.Object)) }
}

func updateClient(c *latchkeyv1alpha1.ApiClient, mut func(*latchkeyv1alpha1.ApiClient)) func(context.Context) error {
	return func(ctx context.Context) error {
		// The controllers may write the object (finalizers) meanwhile.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur latchkeyv1alpha1.ApiClient
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c), &cur); err != nil {
				return err
			}
			mut(&cur)
			return env.Client.Update(ctx, &cur)
		})
	}
}

func updateGrant(g *latchkeyv1alpha1.CredentialGrant, mut func(*latchkeyv1alpha1.CredentialGrant)) func(context.Context) error {
	return func(ctx context.Context) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur latchkeyv1alpha1.CredentialGrant
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: g.Name}, &cur); err != nil {
				return err
			}
			mut(&cur)
			return env.Client.Update(ctx, &cur)
		})
	}
}

func mustCreate(t *testing.T, o client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), o); err != nil {
		t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
	}
}

func mustSucceed(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
