package install

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
	// namespace is the operator's; manager and verifier are the Deployment
	// names, managerSA and verifierSA their ServiceAccounts (verifier empty
	// when the install has no verifier-only Deployment).
	namespace            string
	manager, managerSA   string
	verifier, verifierSA string
	watch                []string // namespaced mode
	sampleNamespace      string
	tightRBAC            bool // the chart's hand-written RBAC, tighter than the generated role
	outsideNamespace     string
}

// TestInstall renders the Helm chart (cluster and namespaced mode) and the
// kustomize install, applies each with server-side apply to a real API server
// with RBAC authorization on, runs the manager binary (and the verifier-only
// Deployment's) with the rendered args as the install's ServiceAccounts, and
// checks that the samples become Ready and verifiable: the RBAC is sufficient.
// Then it checks what those ServiceAccounts cannot do.
func TestInstall(t *testing.T) {
	t.Run("helm cluster mode", func(t *testing.T) {
		ns := "lk-helm"
		runInstall(t, installation{
			objs:         helmTemplate(t, ns, "verifier.deployment.enabled=true"),
			fieldManager: "helm",
			namespace:    ns, manager: "latchkey", managerSA: "latchkey",
			verifier: "latchkey-verifier", verifierSA: "latchkey-verifier",
			sampleNamespace: "apps-helm",
			tightRBAC:       true,
		})
	})
	t.Run("helm namespaced mode", func(t *testing.T) {
		ns := "lk-helm-ns"
		runInstall(t, installation{
			objs:         helmTemplate(t, ns, "verifier.deployment.enabled=true", "watchNamespaces={team-a,team-b}"),
			fieldManager: "helm",
			namespace:    ns, manager: "latchkey", managerSA: "latchkey",
			verifier: "latchkey-verifier", verifierSA: "latchkey-verifier",
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
			namespace:    "latchkey-system", manager: "latchkey-controller-manager", managerSA: "latchkey-controller-manager",
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
	t.Run("manager verifies", func(t *testing.T) { assertVerifies(t, mgr, token) })
	if in.verifier != "" {
		vargs, vns := managerArgs(t, in.objs, in.verifier)
		if !slices.Contains(vargs, "--verifier-only") {
			t.Fatalf("the verifier Deployment does not run --verifier-only: %v", vargs)
		}
		v := startManager(t, "verifier", vargs, vns, writeKubeconfig(t, impersonating(in.namespace, in.verifierSA)))
		t.Run("verifier-only Deployment verifies", func(t *testing.T) {
			v.waitReady(t, 60*time.Second)
			assertVerifies(t, v, token)
		})
	}
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
	t.Run("what the ServiceAccounts cannot do", func(t *testing.T) { assertCannot(t, in) })
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
var clusterScoped = map[string]bool{"namespaces": true, "validatingwebhookconfigurations": true}

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
						case resource == "secrets" && verb == "deletecollection" && in.tightRBAC:
							// Used only on backing tokens in the operator's
							// namespace (revoking a client and its grants).
							where = []access{{namespace: in.namespace}}
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

// assertCannot is the `kubectl auth can-i --as=<ServiceAccount>` table of
// what the install's ServiceAccounts must not be able to do.
func assertCannot(t *testing.T, in installation) {
	op, apps := in.namespace, in.sampleNamespace
	denied := []access{
		{verb: "create", group: "latchkey.dev", resource: "apiclients", namespace: apps},
		{verb: "delete", group: "latchkey.dev", resource: "apiclients", namespace: apps},
		{verb: "create", group: "latchkey.dev", resource: "credentialgrants", namespace: apps},
		{verb: "delete", group: "latchkey.dev", resource: "credentialgrants", namespace: apps},
		{verb: "update", group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
		{verb: "create", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
		{verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: webhookv1alpha1.WebhookConfigurationName},
		{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"},
		{verb: "create", resource: "pods", namespace: op},
		{verb: "create", resource: "pods", subresource: "exec", namespace: op},
		{verb: "create", group: "apps", resource: "deployments", namespace: op},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: op},
		{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles"},
		{verb: "impersonate", resource: "users"},
		{verb: "impersonate", resource: "serviceaccounts", namespace: op},
		{verb: "create", resource: "serviceaccounts", subresource: "token", namespace: op},
		{verb: "list", resource: "nodes"},
		{verb: "list", resource: "namespaces"},
		{verb: "delete", resource: "namespaces", name: apps},
		{verb: "get", resource: "configmaps", namespace: apps},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: apps},
		{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: op},
	}
	if in.tightRBAC {
		denied = append(denied,
			access{verb: "deletecollection", resource: "secrets", namespace: apps},
			access{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "someone-elses-webhook"},
		)
	}
	if len(in.watch) > 0 {
		out := in.outsideNamespace
		denied = append(denied,
			access{verb: "get", resource: "secrets", namespace: out},
			access{verb: "list", resource: "secrets", namespace: out},
			access{verb: "list", resource: "secrets"},
			access{verb: "create", resource: "secrets", namespace: out},
			access{verb: "list", group: "latchkey.dev", resource: "apiclients"},
			access{verb: "update", group: "latchkey.dev", resource: "apiclients", subresource: "status", namespace: out},
			access{verb: "get", resource: "namespaces", name: out},
		)
	}
	table(t, in.namespace, in.managerSA, denied, false)

	if in.verifierSA == "" {
		return
	}
	var writes []access
	for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
		for _, ns := range []string{op, apps} {
			writes = append(writes,
				access{verb: verb, group: "latchkey.dev", resource: "apiclients", namespace: ns},
				access{verb: verb, group: "latchkey.dev", resource: "credentialgrants", namespace: ns},
				access{verb: verb, resource: "secrets", namespace: ns},
				access{verb: verb, resource: "configmaps", namespace: ns},
				access{verb: verb, resource: "events", namespace: ns},
				access{verb: verb, group: "events.k8s.io", resource: "events", namespace: ns},
				access{verb: verb, group: "coordination.k8s.io", resource: "leases", namespace: ns},
			)
		}
		writes = append(writes,
			access{verb: verb, group: "latchkey.dev", resource: "apiclients", subresource: "status", namespace: apps},
			access{verb: verb, group: "latchkey.dev", resource: "credentialgrants", subresource: "status", namespace: apps},
			access{verb: verb, group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: webhookv1alpha1.WebhookConfigurationName},
		)
	}
	writes = append(writes,
		access{verb: "update", group: "latchkey.dev", resource: "apiclients", subresource: "finalizers", namespace: apps},
		// No Secret outside the operator's namespace: consumer Secrets hold
		// plaintext; the verifier needs only the backing tokens' hashes.
		access{verb: "get", resource: "secrets", namespace: apps},
		access{verb: "list", resource: "secrets", namespace: apps},
		access{verb: "list", resource: "secrets"},
		access{verb: "watch", resource: "secrets"},
	)
	table(t, in.namespace, in.verifierSA, writes, false)
	verifierReads := []access{
		{verb: "list", resource: "secrets", namespace: op},
		{verb: "watch", resource: "secrets", namespace: op},
		{verb: "list", group: "latchkey.dev", resource: "apiclients", namespace: apps},
		{verb: "watch", group: "latchkey.dev", resource: "credentialgrants", namespace: apps},
	}
	table(t, in.namespace, in.verifierSA, verifierReads, true)
}

func table(t *testing.T, ns, sa string, rows []access, want bool) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "kubectl auth can-i --as=%s:\n", serviceAccountUser(ns, sa))
	for _, a := range rows {
		got := saCan(t, ns, sa, a)
		answer := "no"
		if got {
			answer = "yes"
		}
		mark := ""
		if got != want {
			mark = "   <-- WRONG"
			t.Errorf("%s can %s: %v, want %v", sa, a, got, want)
		}
		fmt.Fprintf(&b, "  %-3s %s%s\n", answer, a, mark)
	}
	t.Log(b.String())
}
