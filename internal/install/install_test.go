package install

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

// installation is one way of installing Latchkey, rendered and ready to apply.
type installation struct {
	objs         []*unstructured.Unstructured
	fieldManager string
	// namespace is the operator's, tokenNamespace the backing tokens';
	// manager and verifier are the Deployment names, managerSA and
	// verifierSA their ServiceAccounts (verifier empty when the install has
	// no verifier-only Deployment).
	namespace, tokenNamespace string
	manager, managerSA        string
	verifier, verifierSA      string
	// release is the Helm release name (its release Secrets are
	// sh.helm.release.v1.<release>.v<n>); metricsReader the ClusterRole
	// that allows GET /metrics.
	release, metricsReader string
	watch                  []string // namespaced mode
	sampleNamespace        string
	tightRBAC              bool // the chart's hand-written RBAC, tighter than the generated role
	outsideNamespace       string
}

// TestInstall renders the Helm chart with its defaults (cluster and
// namespaced mode) and the kustomize install, applies each with server-side
// apply to a real API server with RBAC authorization on, runs the manager
// binary (and the verifier-only Deployment's) with the rendered args as the
// install's ServiceAccounts, and checks that the samples become Ready and
// verifiable: the RBAC is sufficient. Then it checks, with
// SubjectAccessReviews, the table of what those ServiceAccounts can and
// cannot do, and that metrics answer only an authorized token.
func TestInstall(t *testing.T) {
	t.Run("helm cluster mode", func(t *testing.T) {
		ns := "lk-helm"
		runInstall(t, installation{
			objs:         helmTemplate(t, ns),
			fieldManager: "helm",
			namespace:    ns, tokenNamespace: ns + "-tokens",
			manager: "latchkey", managerSA: "latchkey",
			verifier: "latchkey-verifier", verifierSA: "latchkey-verifier",
			release: "latchkey", metricsReader: "latchkey-metrics-reader",
			sampleNamespace: "apps-helm",
			tightRBAC:       true,
		})
	})
	t.Run("helm namespaced mode", func(t *testing.T) {
		ns := "lk-helm-ns"
		runInstall(t, installation{
			objs:         helmTemplate(t, ns, "watchNamespaces={team-a,team-b}"),
			fieldManager: "helm",
			namespace:    ns, tokenNamespace: ns + "-tokens",
			manager: "latchkey", managerSA: "latchkey",
			verifier: "latchkey-verifier", verifierSA: "latchkey-verifier",
			release: "latchkey", metricsReader: "latchkey-metrics-reader",
			watch:            []string{"team-a", "team-b"},
			sampleNamespace:  "team-a",
			outsideNamespace: "team-outside",
			tightRBAC:        true,
		})
	})
	t.Run("kustomize config/default", func(t *testing.T) {
		runInstall(t, installation{
			objs:         decode(t, run(t, kustomizeBin, "build", "config/default")),
			fieldManager: "kustomize",
			namespace:    "latchkey-system", tokenNamespace: "latchkey-system-tokens",
			manager: "latchkey-controller-manager", managerSA: "latchkey-controller-manager",
			verifier: "latchkey-verifier", verifierSA: "latchkey-verifier",
			metricsReader:   "latchkey-metrics-reader",
			sampleNamespace: "apps-kustomize",
		})
	})
}

func runInstall(t *testing.T, in installation) {
	ctx := context.Background()
	for _, ns := range append([]string{in.namespace, in.sampleNamespace, in.outsideNamespace}, in.watch...) {
		if ns != "" {
			ensureNamespace(t, ns)
		}
	}
	t.Cleanup(func() { uninstall(t, in.objs) })
	serverSideApply(t, env.Client, in.fieldManager, in.objs)

	// The API server reaches the webhook on this machine, by URL, with the
	// certificate the operator issues for "localhost" (no Service, no
	// kubelet here: the Secret is "mounted" by copying it).
	webhookPort := freePort(t)
	pointWebhookAt(t, webhookPort)
	args, ns := managerArgs(t, in.objs, in.manager)
	certDir := t.TempDir()
	mountSecret(t, types.NamespacedName{Namespace: ns, Name: flagValue(t, args, "--webhook-cert-secret")}, certDir)

	// The manager, as the install's ServiceAccount.
	mgr := startManager(t, "manager", args, ns, writeKubeconfig(t, impersonating(in.namespace, in.managerSA)),
		fmt.Sprintf("--webhook-port=%d", webhookPort), "--webhook-cert-dir="+certDir, "--webhook-cert-dns-name=localhost")
	mgr.waitReady(t, 60*time.Second)

	samples := decode(t, run(t, kustomizeBin, "build", "config/samples"))
	for _, o := range samples {
		o.SetNamespace(in.sampleNamespace)
	}
	// Deleted while the manager still runs (cleanups run last-in first-out),
	// so its finalizers revoke the credentials and nothing is left behind.
	t.Cleanup(func() { deleteAndWait(t, samples) })
	testenv.Eventually(t, 90*time.Second, func() error {
		if err := mgr.exitedEarly(); err != nil {
			t.Fatal(err)
		}
		for _, o := range samples {
			if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("gitops"), client.ForceOwnership); err != nil {
				return fmt.Errorf("applying sample %s %s (the webhook may not serve yet): %w", o.GetKind(), o.GetName(), err)
			}
		}
		return nil
	})
	var outside *latchkeyv1alpha1.ApiClient
	if in.outsideNamespace != "" {
		// Namespaced mode: a client outside the watched namespaces is not
		// Latchkey's (the webhook's namespaceSelector skips it too).
		outside = &latchkeyv1alpha1.ApiClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: in.outsideNamespace, Name: "not-managed"},
			Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}},
		}
		if err := env.Client.Create(ctx, outside); err != nil {
			t.Fatal(err)
		}
	}
	latchkeyCount := len(ofKind(samples, "ApiClient")) + len(ofKind(samples, "CredentialGrant"))
	waitAllReady(t, in.sampleNamespace, latchkeyCount, 120*time.Second, mgr)

	token := secretValue(t, in.sampleNamespace, "blog-mirror-token", "token")
	if mgr.verifier != "" {
		t.Run("manager verifies", func(t *testing.T) { assertVerifies(t, mgr, token) })
	} else {
		t.Run("manager serves no gateway traffic", func(t *testing.T) { assertManagerNotBehindVerifierService(t, in) })
	}
	t.Run("backing tokens live in the token namespace", func(t *testing.T) { assertTokenNamespace(t, in) })
	var v *process
	if in.verifier != "" {
		vargs, vns := managerArgs(t, in.objs, in.verifier)
		if !slices.Contains(vargs, "--verifier-only") {
			t.Fatalf("the verifier Deployment does not run --verifier-only: %v", vargs)
		}
		if got := flagValue(t, vargs, "--token-namespace"); got != in.tokenNamespace {
			t.Fatalf("the verifier Deployment reads tokens in %q, want %q", got, in.tokenNamespace)
		}
		v = startManager(t, "verifier", vargs, vns, writeKubeconfig(t, impersonating(in.namespace, in.verifierSA)))
		t.Run("verifier-only Deployment verifies", func(t *testing.T) {
			v.waitReady(t, 60*time.Second)
			assertVerifies(t, v, token)
			assertIssuesAccessTokens(t, v, in.sampleNamespace)
		})
	}
	t.Run("metrics need a token allowed GET /metrics", func(t *testing.T) {
		reader := metricsReaderToken(t, in.namespace, in.metricsReader)
		stranger := serviceAccountToken(t, in.namespace, "not-prometheus")
		for _, p := range []*process{mgr, v} {
			if p != nil {
				assertMetricsAuth(t, p, reader, stranger)
			}
		}
	})
	if outside != nil {
		t.Run("objects outside the watched namespaces are left alone", func(t *testing.T) {
			var got latchkeyv1alpha1.ApiClient
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(outside), &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Status.Conditions) != 0 || len(got.Finalizers) != 0 {
				t.Fatalf("ApiClient %s/%s outside the watched namespaces was reconciled: %+v", got.Namespace, got.Name, got.Status)
			}
		})
	}
	t.Run("kstatus Current when Ready", func(t *testing.T) {
		for _, o := range latchkeyObjects(t, in.sampleNamespace) {
			res, err := status.Compute(o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != status.CurrentStatus {
				t.Errorf("%s %s: kstatus %s (%s), want Current", o.GetKind(), o.GetName(), res.Status, res.Message)
			}
		}
	})
	t.Run("the operator writes no field under spec", func(t *testing.T) {
		for _, o := range latchkeyObjects(t, in.sampleNamespace) {
			assertOnlyStatusAndFinalizers(t, o, "gitops")
		}
	})
	t.Run("RBAC covers config/rbac/role.yaml", func(t *testing.T) { assertCoversGeneratedRole(t, in) })
	t.Run("what the ServiceAccounts can and cannot do", func(t *testing.T) { assertAccessTable(t, in) })
}

// pointWebhookAt makes the installed webhooks call https://localhost:port
// with no CA bundle: only the one the operator injects can make them work.
func pointWebhookAt(t *testing.T, port int) {
	t.Helper()
	ctx := context.Background()
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := env.Client.Get(ctx, types.NamespacedName{Name: webhookv1alpha1.WebhookConfigurationName}, &vwc); err != nil {
		t.Fatalf("the install has no %s: %v", webhookv1alpha1.WebhookConfigurationName, err)
	}
	for i := range vwc.Webhooks {
		cc := &vwc.Webhooks[i].ClientConfig
		if cc.Service == nil || cc.Service.Path == nil {
			t.Fatalf("webhook %s has no service path", vwc.Webhooks[i].Name)
		}
		u := fmt.Sprintf("https://localhost:%d%s", port, *cc.Service.Path)
		cc.Service, cc.URL, cc.CABundle = nil, &u, nil
	}
	if err := env.Client.Update(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
}

func flagValue(t testing.TB, args []string, name string) string {
	t.Helper()
	v := ""
	for _, a := range args {
		if after, ok := strings.CutPrefix(a, name+"="); ok {
			v = after
		}
	}
	if v == "" {
		t.Fatalf("no %s in %v", name, args)
	}
	return v
}

func secretValue(t testing.TB, ns, name, key string) string {
	t.Helper()
	var s corev1.Secret
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Data[key]) == 0 {
		t.Fatalf("Secret %s/%s has no %s", ns, name, key)
	}
	return string(s.Data[key])
}

func assertVerifies(t *testing.T, p *process, token string) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	testenv.Eventually(t, 30*time.Second, func() error {
		code, body, err := get(p.verifier, "/v1/verify?permission=blogs.read", h)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s /v1/verify: %d %s", p.name, code, body)
		}
		return nil
	})
	if code, _, err := get(p.verifier, "/v1/verify", http.Header{"Authorization": {"Bearer " + token + "x"}}); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("%s /v1/verify with a wrong token: %d %v, want 401", p.name, code, err)
	}
}

func deleteAndWait(t testing.TB, objs []*unstructured.Unstructured) {
	ctx := context.Background()
	for _, o := range objs {
		if err := env.Client.Delete(ctx, o.DeepCopy()); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting sample %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, o := range objs {
		for {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy())
			if client.IgnoreNotFound(err) == nil && err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("sample %s %s was not deleted within 60s (finalizer not removed?)", o.GetKind(), o.GetName())
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// assertOnlyStatusAndFinalizers checks, from managedFields, that every field
// manager but the applier owns only status fields and finalizers, that the
// operator did write status (so the check is not vacuous), and that the
// generation never moved (any spec write would bump it).
func assertOnlyStatusAndFinalizers(t *testing.T, o *unstructured.Unstructured, applier string) {
	t.Helper()
	if g := o.GetGeneration(); g != 1 {
		t.Errorf("%s %s: generation %d after reconciling, want 1: something wrote spec", o.GetKind(), o.GetName(), g)
	}
	statusWriters := 0
	for _, mf := range o.GetManagedFields() {
		if mf.Manager == applier {
			continue
		}
		var fields map[string]any
		if mf.FieldsV1 == nil {
			continue
		}
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			t.Fatal(err)
		}
		for top, sub := range fields {
			switch top {
			case "f:status":
				statusWriters++
			case "f:metadata":
				for k := range sub.(map[string]any) {
					if k != "f:finalizers" {
						t.Errorf("%s %s: manager %q (%s %s) owns metadata field %s", o.GetKind(), o.GetName(), mf.Manager, mf.Operation, mf.Subresource, k)
					}
				}
			default:
				t.Errorf("%s %s: manager %q (%s %s) owns %s: the operator must write only status and finalizers", o.GetKind(), o.GetName(), mf.Manager, mf.Operation, mf.Subresource, top)
			}
		}
	}
	if statusWriters == 0 {
		t.Errorf("%s %s: no manager but %q owns any field: the check saw no operator write", o.GetKind(), o.GetName(), applier)
	}
}

// access is one row of a can-i table.
type access struct {
	verb, group, resource, subresource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.name != "" {
		r += "/" + a.name
	}
	ns := a.namespace
	if ns == "" {
		ns = "(cluster)"
	}
	return fmt.Sprintf("%-17s %-55s in %s", a.verb, r, ns)
}

func (a access) attributes() authorizationv1.ResourceAttributes {
	return authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name}
}

func saCan(t *testing.T, ns, sa string, a access) bool {
	return can(t, serviceAccountUser(ns, sa), []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}, a.attributes())
}

// clusterScoped are the cluster-scoped resources config/rbac/role.yaml names.
var clusterScoped = map[string]bool{
	"namespaces": true, "validatingwebhookconfigurations": true,
	"tokenreviews": true, "subjectaccessreviews": true,
}

// assertCoversGeneratedRole checks that the install grants every rule of the
// generated role (what the code's +kubebuilder:rbac markers say it does)
// wherever the manager does it, so a new marker without a chart change fails.
func assertCoversGeneratedRole(t *testing.T, in installation) {
	managed := []string{in.sampleNamespace, in.namespace}
	if len(in.watch) > 0 {
		managed = append(slices.Clone(in.watch), in.namespace)
	}
	generated := decode(t, readFile(t, filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml")))
	rows := 0
	for _, r := range generated {
		var rules []rbacv1.PolicyRule
		switch r.GetKind() {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			toTyped(t, r, &cr)
			rules = cr.Rules
		case "Role":
			var role rbacv1.Role
			toTyped(t, r, &role)
			rules = role.Rules
		}
		for _, rule := range rules {
			for _, group := range rule.APIGroups {
				for _, res := range rule.Resources {
					resource, sub, _ := strings.Cut(res, "/")
					for _, verb := range rule.Verbs {
						var where []access
						switch {
						case resource == "secrets" && verb == "deletecollection" && (in.tightRBAC || r.GetKind() == "Role"):
							// Used only on backing tokens in the token
							// namespace (revoking a client and its grants).
							where = []access{{namespace: in.tokenNamespace}}
						case r.GetKind() == "Role":
							where = []access{{namespace: in.namespace}}
						case resource == "namespaces":
							for _, ns := range managed {
								where = append(where, access{name: ns})
							}
						case resource == "validatingwebhookconfigurations" && verb == "update":
							where = []access{{name: webhookv1alpha1.WebhookConfigurationName}}
						case clusterScoped[resource]:
							where = []access{{}}
						default:
							for _, ns := range managed {
								where = append(where, access{namespace: ns})
							}
						}
						for _, w := range where {
							w.verb, w.group, w.resource, w.subresource = verb, group, resource, sub
							rows++
							if !saCan(t, in.namespace, in.managerSA, w) {
								t.Errorf("the manager's ServiceAccount cannot %s, which %s %s grants", w, r.GetKind(), r.GetName())
							}
						}
					}
				}
			}
		}
	}
	if rows < 20 {
		t.Fatalf("only %d checks from config/rbac/role.yaml: did it parse?", rows)
	}
	t.Logf("%d grants of config/rbac/role.yaml checked for %s", rows, serviceAccountUser(in.namespace, in.managerSA))
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rule is one row of the SubjectAccessReview table: what a ServiceAccount
// asks for, whether it must be allowed, and why.
type rule struct {
	access
	want bool
	why  string
}

func allow(why string, rows ...access) []rule { return rows2(true, why, rows) }
func deny(why string, rows ...access) []rule  { return rows2(false, why, rows) }

func rows2(want bool, why string, rows []access) []rule {
	out := make([]rule, len(rows))
	for i, a := range rows {
		out[i] = rule{access: a, want: want, why: why}
	}
	return out
}

// verbsOn is one access per verb on the same resource.
func verbsOn(a access, verbs ...string) []access {
	out := make([]access, len(verbs))
	for i, v := range verbs {
		out[i] = a
		out[i].verb = v
	}
	return out
}

var writeVerbs = []string{"create", "update", "patch", "delete", "deletecollection"}

// managerTable is what the manager's ServiceAccount must and must not be
// able to do.
func managerTable(in installation) []rule {
	op, tokens, apps := in.namespace, in.tokenNamespace, in.sampleNamespace
	secret := func(ns, name string) access { return access{resource: "secrets", namespace: ns, name: name} }
	var rows []rule
	rows = append(rows, allow("backing tokens, claims, signing keys, heartbeat",
		verbsOn(access{resource: "secrets", namespace: tokens}, "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")...)...)
	rows = append(rows, allow("consumer Secrets; clientSecretRef (read uncached)",
		verbsOn(access{resource: "secrets", namespace: apps}, "get", "list", "watch", "create", "update", "patch", "delete")...)...)
	rows = append(rows, allow("self-managed webhook certificate",
		verbsOn(secret(op, "latchkey-webhook-server-cert"), "get", "update")...)...)
	rows = append(rows, allow("reconcile", verbsOn(access{group: "latchkey.dev", resource: "apiclients", namespace: apps}, "get", "list", "watch", "update", "patch")...)...)
	rows = append(rows, allow("status", access{verb: "patch", group: "latchkey.dev", resource: "credentialgrants", subresource: "status", namespace: apps})...)
	rows = append(rows, allow("leader election", verbsOn(access{group: "coordination.k8s.io", resource: "leases", namespace: op}, "get", "create", "update")...)...)
	rows = append(rows, allow("permission catalog", verbsOn(access{resource: "configmaps", namespace: op}, "get", "list", "watch")...)...)
	rows = append(rows, allow("revocation records (POST /oauth2/revoke): its verifier creates them, the leader acts on and prunes them",
		verbsOn(access{resource: "configmaps", namespace: tokens}, "get", "list", "watch", "create", "patch", "delete")...)...)
	rows = append(rows, allow("CA injection", access{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: webhookv1alpha1.WebhookConfigurationName})...)
	rows = append(rows, allow("authenticated metrics",
		access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
		access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"})...)
	if len(in.watch) == 0 {
		rows = append(rows, allow("cluster mode: its cache of Latchkey's Secrets in every namespace (RBAC cannot select by label)",
			access{verb: "list", resource: "secrets"}, access{verb: "watch", resource: "secrets"})...)
	}

	rows = append(rows, deny("no writes to what users declare",
		access{verb: "create", group: "latchkey.dev", resource: "apiclients", namespace: apps},
		access{verb: "delete", group: "latchkey.dev", resource: "apiclients", namespace: apps},
		access{verb: "create", group: "latchkey.dev", resource: "credentialgrants", namespace: apps},
		access{verb: "delete", group: "latchkey.dev", resource: "credentialgrants", namespace: apps},
		access{verb: "update", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
		access{verb: "create", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
		access{verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: webhookv1alpha1.WebhookConfigurationName},
		access{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"},
	)...)
	rows = append(rows, deny("no escalation: no workloads, RBAC, impersonation or tokens",
		access{verb: "create", resource: "pods", namespace: op},
		access{verb: "create", resource: "pods", subresource: "exec", namespace: op},
		access{verb: "create", group: "apps", resource: "deployments", namespace: op},
		access{verb: "create", group: "rbac.authorization.k8s.io", resource: "roles", namespace: tokens},
		access{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: op},
		access{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		access{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		access{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		access{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		access{verb: "impersonate", resource: "users"},
		access{verb: "impersonate", resource: "serviceaccounts", namespace: op},
		access{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: op},
	)...)
	rows = append(rows, deny("nothing else of the cluster",
		access{verb: "list", resource: "nodes"},
		access{verb: "list", resource: "namespaces"},
		access{verb: "delete", resource: "namespaces", name: tokens},
		access{verb: "get", resource: "configmaps", namespace: apps},
		access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: apps},
		access{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: op},
	)...)
	if in.tightRBAC {
		rows = append(rows, deny("revocation by label only among backing tokens; CA injection into its own webhook only",
			access{verb: "deletecollection", resource: "secrets", namespace: apps},
			access{verb: "deletecollection", resource: "secrets", namespace: op},
			access{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "someone-elses-webhook"},
		)...)
	}
	if len(in.watch) > 0 {
		out := in.outsideNamespace
		rows = append(rows, deny("namespaced mode: nothing outside its namespaces",
			access{verb: "get", resource: "secrets", namespace: out},
			access{verb: "list", resource: "secrets", namespace: out},
			access{verb: "list", resource: "secrets"},
			access{verb: "create", resource: "secrets", namespace: out},
			access{verb: "list", group: "latchkey.dev", resource: "apiclients"},
			access{verb: "update", group: "latchkey.dev", resource: "apiclients", subresource: "status", namespace: out},
			access{verb: "get", resource: "namespaces", name: out},
		)...)
	}
	return rows
}

// verifierTable is what the verifier-only Deployment's ServiceAccount must
// and must not be able to do: read backing tokens, claims and signing keys
// (the token namespace) and Latchkey's resources, and nothing else.
func verifierTable(in installation) []rule {
	op, tokens, apps := in.namespace, in.tokenNamespace, in.sampleNamespace
	var rows []rule
	rows = append(rows, allow("backing tokens, claims, signing keys: read",
		verbsOn(access{resource: "secrets", namespace: tokens}, "get", "list", "watch")...)...)
	rows = append(rows, allow("the access-token signing keys",
		access{verb: "get", resource: "secrets", namespace: tokens, name: "latchkey-access-token-keys"})...)
	rows = append(rows, allow("ApiClients and CredentialGrants: read",
		verbsOn(access{group: "latchkey.dev", resource: "apiclients", namespace: apps}, "get", "list", "watch")...)...)
	rows = append(rows, allow("ApiClients and CredentialGrants: read",
		verbsOn(access{group: "latchkey.dev", resource: "credentialgrants", namespace: apps}, "get", "list", "watch")...)...)
	rows = append(rows, allow("authenticated metrics",
		access{verb: "create", group: "authentication.k8s.io", resource: "tokenreviews"},
		access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"})...)
	// POST /oauth2/revoke: the verifier records a revocation (a ConfigMap in
	// the token namespace, which can only deny) and deletes nothing; the
	// operator's leader deletes the backing token.
	rows = append(rows, allow("revocation records: read and create",
		verbsOn(access{resource: "configmaps", namespace: tokens}, "get", "list", "watch", "create")...)...)

	rows = append(rows, deny("not the webhook CA key, not Helm's release Secrets, no other Secret of the release namespace",
		access{verb: "get", resource: "secrets", namespace: op, name: "latchkey-webhook-server-cert"},
		access{verb: "get", resource: "secrets", namespace: op, name: "sh.helm.release.v1." + cmp.Or(in.release, "latchkey") + ".v1"},
		access{verb: "get", resource: "secrets", namespace: op},
		access{verb: "list", resource: "secrets", namespace: op},
		access{verb: "watch", resource: "secrets", namespace: op},
	)...)
	rows = append(rows, deny("no consumer Secret (plaintext), no Secret cluster-wide",
		access{verb: "get", resource: "secrets", namespace: apps},
		access{verb: "list", resource: "secrets", namespace: apps},
		access{verb: "list", resource: "secrets"},
		access{verb: "watch", resource: "secrets"},
	)...)
	var writes []access
	for _, ns := range []string{tokens, op, apps} {
		for _, verb := range writeVerbs {
			writes = append(writes,
				access{verb: verb, resource: "secrets", namespace: ns},
				access{verb: verb, group: "latchkey.dev", resource: "apiclients", namespace: ns},
				access{verb: verb, group: "latchkey.dev", resource: "credentialgrants", namespace: ns})
			if ns != tokens || verb != "create" { // revocation records
				writes = append(writes, access{verb: verb, resource: "configmaps", namespace: ns})
			}
			writes = append(writes,
				access{verb: verb, resource: "events", namespace: ns},
				access{verb: verb, group: "events.k8s.io", resource: "events", namespace: ns},
				access{verb: verb, group: "coordination.k8s.io", resource: "leases", namespace: ns},
			)
		}
	}
	// Usage (lastUsedAt) is its one write: a patch of the status subresource.
	rows = append(rows, allow("usage: patch status",
		access{verb: "patch", group: "latchkey.dev", resource: "apiclients", subresource: "status", namespace: apps},
		access{verb: "patch", group: "latchkey.dev", resource: "credentialgrants", subresource: "status", namespace: apps},
	)...)
	writes = append(writes,
		access{verb: "update", group: "latchkey.dev", resource: "apiclients", subresource: "status", namespace: apps},
		access{verb: "update", group: "latchkey.dev", resource: "credentialgrants", subresource: "status", namespace: apps},
	)
	for _, verb := range []string{"update", "patch"} {
		writes = append(writes,
			access{verb: verb, group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: webhookv1alpha1.WebhookConfigurationName},
		)
	}
	writes = append(writes, access{verb: "update", group: "latchkey.dev", resource: "apiclients", subresource: "finalizers", namespace: apps})
	rows = append(rows, deny("writes nothing else: no Secret (no forged or deleted backing token), no update or delete of a record", writes...)...)
	rows = append(rows, deny("no escalation, nothing else of the cluster",
		access{verb: "get", resource: "configmaps", namespace: op},
		access{verb: "create", resource: "pods", subresource: "exec", namespace: op},
		access{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: tokens},
		access{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		access{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		access{verb: "impersonate", resource: "serviceaccounts", namespace: op},
		access{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: op},
		access{verb: "list", resource: "namespaces"},
		access{verb: "list", resource: "nodes"},
	)...)
	if len(in.watch) > 0 {
		out := in.outsideNamespace
		rows = append(rows, deny("namespaced mode: nothing outside its namespaces",
			access{verb: "list", group: "latchkey.dev", resource: "apiclients"},
			access{verb: "list", group: "latchkey.dev", resource: "apiclients", namespace: out},
			access{verb: "get", resource: "secrets", namespace: out},
		)...)
	} else {
		rows = append(rows, allow("cluster mode: Latchkey's resources everywhere",
			access{verb: "list", group: "latchkey.dev", resource: "apiclients"},
			access{verb: "watch", group: "latchkey.dev", resource: "credentialgrants"})...)
	}
	return rows
}

// assertAccessTable asks the API server, with a SubjectAccessReview per row
// (what `kubectl auth can-i --as=system:serviceaccount:<ns>:<name>` does),
// whether the install's ServiceAccounts may do each thing, and logs the
// table with the rows that are wrong marked.
func assertAccessTable(t *testing.T, in installation) {
	table(t, in.namespace, in.managerSA, managerTable(in))
	if in.verifierSA != "" {
		table(t, in.namespace, in.verifierSA, verifierTable(in))
	}
}

func table(t *testing.T, ns, sa string, rows []rule) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl auth can-i --as=%s (want, got):\n", serviceAccountUser(ns, sa))
	yesNo := map[bool]string{true: "yes", false: "no"}
	why := ""
	for _, r := range rows {
		if r.why != why {
			why = r.why
			fmt.Fprintf(&b, "  # %s\n", why)
		}
		got := saCan(t, ns, sa, r.access)
		mark := ""
		if got != r.want {
			mark = "   <-- WRONG"
			t.Errorf("%s can %s: %v, want %v (%s)", sa, r.access, got, r.want, r.why)
		}
		fmt.Fprintf(&b, "  %-3s %-3s %s%s\n", yesNo[r.want], yesNo[got], r.access, mark)
	}
	t.Log(b.String())
}

// assertManagerNotBehindVerifierService: by default the manager's Pods are
// not selected by the verifier Service (no gateway traffic reaches the
// process with cluster-wide Secret access) and the manager runs no verifier.
func assertManagerNotBehindVerifierService(t *testing.T, in installation) {
	var mgr, ver appsv1.Deployment
	toTyped(t, find(t, in.objs, "Deployment", in.manager), &mgr)
	toTyped(t, find(t, in.objs, "Deployment", in.verifier), &ver)
	var svc corev1.Service
	toTyped(t, find(t, in.objs, "Service", in.verifier), &svc)
	selects := func(d appsv1.Deployment) bool {
		return labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels))
	}
	if selects(mgr) {
		t.Errorf("the verifier Service %v selects the manager's Pods %v", svc.Spec.Selector, mgr.Spec.Template.Labels)
	}
	if !selects(ver) {
		t.Errorf("the verifier Service %v does not select the verifier's Pods %v", svc.Spec.Selector, ver.Spec.Template.Labels)
	}
	for _, p := range mgr.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "verifier" {
			t.Errorf("the manager's container exposes the verifier port %d", p.ContainerPort)
		}
	}
}

// assertTokenNamespace: the manager wrote backing tokens, claims and the
// signing keys to the token namespace, and none to the operator's.
func assertTokenNamespace(t *testing.T, in installation) {
	ctx := context.Background()
	kinds := func(ns string) map[string]int {
		var list corev1.SecretList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, s := range list.Items {
			switch {
			case s.Name == "latchkey-access-token-keys":
				out["signing keys"]++
			case strings.HasPrefix(s.Name, "lkid-"):
				out["claims"]++
			case strings.HasPrefix(s.Name, "lk-"):
				out["backing tokens"]++
			}
		}
		return out
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		got := kinds(in.tokenNamespace)
		for _, k := range []string{"backing tokens", "claims", "signing keys"} {
			if got[k] == 0 {
				return fmt.Errorf("no %s in the token namespace %s: %v", k, in.tokenNamespace, got)
			}
		}
		return nil
	})
	if in.tokenNamespace != in.namespace {
		if got := kinds(in.namespace); len(got) != 0 {
			t.Errorf("the operator namespace %s holds %v: they belong in %s", in.namespace, got, in.tokenNamespace)
		}
	}
}

// assertIssuesAccessTokens: the verifier signs a client_credentials access
// token with the key it reads from the token namespace, and verifies it.
func assertIssuesAccessTokens(t *testing.T, p *process, ns string) {
	t.Helper()
	id := secretValue(t, ns, "decidim-blogs-reader", "client_id")
	secret := secretValue(t, ns, "decidim-blogs-reader", "client_secret")
	var accessToken string
	testenv.Eventually(t, 30*time.Second, func() error {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
		resp, err := httpClient.PostForm("http://"+p.verifier+"/oauth2/token", form)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return fmt.Errorf("%s /oauth2/token: %d: %w", p.name, resp.StatusCode, err)
		}
		if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
			return fmt.Errorf("%s /oauth2/token: %d %s", p.name, resp.StatusCode, body.Error)
		}
		accessToken = body.AccessToken
		return nil
	})
	code, body, err := get(p.verifier, "/v1/verify?permission=blogs.read", http.Header{"Authorization": {"Bearer " + accessToken}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /v1/verify with an access token: %d %s %v", p.name, code, body, err)
	}
}

// assertMetricsAuth: metrics are HTTPS, 401 without a token, 403 for a
// ServiceAccount without GET /metrics, 200 for one bound to the install's
// metrics-reader ClusterRole (as Prometheus's would be).
func assertMetricsAuth(t *testing.T, p *process, reader, stranger string) {
	t.Helper()
	for _, c := range []struct {
		who, token string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a token without GET /metrics", stranger, http.StatusForbidden},
		{"a metrics-reader token", reader, http.StatusOK},
	} {
		testenv.Eventually(t, 30*time.Second, func() error {
			code, body, err := getMetrics(p.metrics, c.token)
			if err != nil {
				return fmt.Errorf("%s metrics: %w", p.name, err)
			}
			if code != c.want {
				return fmt.Errorf("%s metrics with %s: %d, want %d: %.200s", p.name, c.who, code, c.want, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "rest_client_requests_total") {
				return fmt.Errorf("%s metrics: no rest_client_requests_total in %.300s", p.name, body)
			}
			return nil
		})
	}
	if code, _, err := get(p.metrics, "/metrics", nil); err == nil && code == http.StatusOK {
		t.Errorf("%s serves metrics over plain HTTP", p.name)
	}
}
