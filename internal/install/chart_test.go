package install

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/latchkey-dev/latchkey/internal/testenv"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

// valueSets are the chart configurations the tests lint and render.
var valueSets = map[string][]string{
	"defaults":                  nil,
	"namespaced":                {"watchNamespaces={team-a,team-b}"},
	"verifier-in-manager-too":   {"verifier.servedByManager=true"},
	"verifier-in-manager-only":  {"verifier.servedByManager=true", "verifier.deployment.enabled=false"},
	"gateways":                  {"networkPolicy.gatewayNamespaces={ingress-nginx,gateways}", "verifier.servedByManager=true"},
	"token-namespace-given":     {"tokenNamespace.name=lk-secrets", "tokenNamespace.create=false"},
	"plain-metrics":             {"metrics.secure=false", "metrics.port=8080", "metrics.service.port=8080", "metrics.serviceMonitor.enabled=true", "networkPolicy.enabled=false"},
	"cert-manager":              {"certManager.enabled=true"},
	"cert-manager-issuer":       {"certManager.enabled=true", "certManager.issuerRef.name=ca", "certManager.issuerRef.kind=ClusterIssuer"},
	"servicemonitor":            {"metrics.serviceMonitor.enabled=true"},
	"verifier-tls":              {"verifier.tls.enabled=true"},
	"verifier-tls-cert-manager": {"verifier.tls.enabled=true", "verifier.tls.issuer=cert-manager"},
	"everything": {"watchNamespaces={team-a}", "verifier.servedByManager=true", "certManager.enabled=true",
		"metrics.serviceMonitor.enabled=true", "permissionCatalog.configMap=catalog", "maxCredentialLifetime=2160h",
		"networkPolicy.gatewayNamespaces={ingress-nginx}", "metrics.readerSubjects[0].kind=ServiceAccount",
		"metrics.readerSubjects[0].name=prometheus", "metrics.readerSubjects[0].namespace=monitoring"},
	"single-replica-no-webhook": {"replicaCount=1", "webhook.enabled=false", "leaderElection.enabled=false"},
}

func TestHelmLint(t *testing.T) {
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", "--strict", "charts/latchkey", "--namespace", "latchkey-system"}
			for _, s := range set {
				args = append(args, "--set", s)
			}
			run(t, helmBin, args...)
		})
	}
}

// TestHelmTemplate renders every configuration and checks what the issue asks
// of the Deployment, the webhook and the optional parts.
func TestHelmTemplate(t *testing.T) {
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			objs := helmTemplate(t, "latchkey-system", set...)
			again := helmTemplate(t, "latchkey-system", set...)
			if !reflect.DeepEqual(objs, again) {
				t.Fatal("two renders differ: Argo CD would see a diff on every refresh")
			}
			var d appsv1.Deployment
			toTyped(t, find(t, objs, "Deployment", "latchkey"), &d)
			assertHardened(t, &d)
			args := d.Spec.Template.Spec.Containers[0].Args
			webhook := !slices.Contains(set, "webhook.enabled=false")
			if webhook {
				assertVolume(t, &d, "/tmp/k8s-webhook-server/serving-certs", "latchkey-webhook-server-cert")
				assertWebhookMatchesGenerated(t, objs, slices.ContainsFunc(set, func(s string) bool { return strings.HasPrefix(s, "watchNamespaces=") }))
			} else if len(ofKind(objs, "ValidatingWebhookConfiguration")) != 0 || !slices.Contains(args, "--enable-webhooks=false") {
				t.Fatal("webhook.enabled=false still renders the webhook")
			}
			switch name {
			case "defaults":
				if *d.Spec.Replicas != 2 || !slices.Contains(args, "--leader-elect") {
					t.Fatalf("want 2 replicas with leader election, got %d %v", *d.Spec.Replicas, args)
				}
				find(t, objs, "PodDisruptionBudget", "latchkey")
				find(t, objs, "Service", "latchkey-webhook-service")
				find(t, objs, "Service", "latchkey-verifier")
				find(t, objs, "Service", "latchkey-metrics")
				find(t, objs, "ClusterRole", "latchkey-manager")
				if !slices.Contains(args, "--cert-management=self") {
					t.Fatalf("self-managed certificates are not the default: %v", args)
				}
				for _, k := range []string{"Certificate", "Issuer", "ServiceMonitor", "Role"} {
					if k == "Role" {
						// The operator-namespace Role, the manager's and the
						// verifier's in the token namespace, and the
						// token-revoker Role (kubectl latchkey revoke-token),
						// bound to nobody by default.
						if n := len(ofKind(objs, k)); n != 4 {
							t.Fatalf("%d Roles in cluster mode, want 4", n)
						}
						var revoker rbacv1.Role
						toTyped(t, find(t, objs, "Role", "latchkey-token-revoker"), &revoker)
						want := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"create"},
							ResourceNames: []string{"http:latchkey-verifier:8082", "https:latchkey-verifier:8082"}}}
						if !reflect.DeepEqual(revoker.Rules, want) {
							t.Fatalf("token-revoker Role rules %+v, want %+v", revoker.Rules, want)
						}
						for _, rb := range ofKind(objs, "RoleBinding") {
							if rb.GetName() == "latchkey-token-revoker" {
								t.Fatal("the token-revoker Role is bound by default")
							}
						}
						continue
					}
					if len(ofKind(objs, k)) != 0 {
						t.Fatalf("%s rendered by default", k)
					}
				}
			case "namespaced":
				if !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
					t.Fatalf("args %v", args)
				}
				for _, ns := range []string{"latchkey-system", "team-a", "team-b"} {
					found := false
					for _, r := range ofKind(objs, "Role") {
						found = found || (r.GetName() == "latchkey-manager" && r.GetNamespace() == ns)
					}
					if !found {
						t.Fatalf("no manager Role in %s", ns)
					}
				}
				// manager-cluster, verifier, metrics-reader, editor, viewer
				if len(ofKind(objs, "ClusterRole")) != 5 {
					t.Fatalf("ClusterRoles: %d", len(ofKind(objs, "ClusterRole")))
				}
			case "cert-manager", "cert-manager-issuer":
				if !slices.Contains(args, "--cert-management=cert-manager") {
					t.Fatalf("args %v", args)
				}
				c := find(t, objs, "Certificate", "latchkey-serving-cert")
				if sn, _, _ := unstructured.NestedString(c.Object, "spec", "secretName"); sn != "latchkey-webhook-server-cert" {
					t.Fatalf("Certificate secretName %q", sn)
				}
				vwc := find(t, objs, "ValidatingWebhookConfiguration", webhookv1alpha1.WebhookConfigurationName)
				if vwc.GetAnnotations()["cert-manager.io/inject-ca-from"] != "latchkey-system/latchkey-serving-cert" {
					t.Fatalf("no CA injection annotation: %v", vwc.GetAnnotations())
				}
				if wantIssuer := name == "cert-manager"; wantIssuer != (len(ofKind(objs, "Issuer")) == 1) {
					t.Fatalf("self-signed Issuer rendered: %v, want %v", !wantIssuer, wantIssuer)
				}
			case "verifier-tls", "verifier-tls-cert-manager":
				self := name == "verifier-tls"
				if !slices.Contains(args, "--verifier-tls-secret=latchkey-verifier-tls") ||
					!slices.Contains(args, fmt.Sprintf("--verifier-tls-self-signed=%v", self)) {
					t.Fatalf("the manager does not issue (or leave to cert-manager) the verifier's certificate: %v", args)
				}
				if c := ofKind(objs, "Certificate"); self == (len(c) == 1) || !self && c[0].GetNamespace() != "latchkey-system-tokens" {
					t.Fatalf("verifier Certificate rendered: %d, want one in the token namespace only with cert-manager", len(c))
				}
			case "servicemonitor":
				sm := find(t, objs, "ServiceMonitor", "latchkey")
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				ep, _ := eps[0].(map[string]any)
				if ep["scheme"] != "https" || ep["port"] != "https" || ep["bearerTokenFile"] == nil {
					t.Fatalf("the ServiceMonitor does not scrape over HTTPS with a bearer token: %v", ep)
				}
			case "plain-metrics":
				sm := find(t, objs, "ServiceMonitor", "latchkey")
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if ep, _ := eps[0].(map[string]any); ep["scheme"] != nil || ep["port"] != "http" {
					t.Fatalf("metrics.secure=false: ServiceMonitor endpoint %v", ep)
				}
				if !slices.Contains(args, "--metrics-secure=false") || len(ofKind(objs, "NetworkPolicy")) != 0 {
					t.Fatalf("metrics.secure=false, networkPolicy.enabled=false: args %v, %d NetworkPolicies", args, len(ofKind(objs, "NetworkPolicy")))
				}
			case "token-namespace-given":
				if !slices.Contains(args, "--token-namespace=lk-secrets") || len(ofKind(objs, "Namespace")) != 0 {
					t.Fatalf("tokenNamespace.name=lk-secrets, create=false: args %v, %d Namespaces", args, len(ofKind(objs, "Namespace")))
				}
				for _, name := range []string{"latchkey-manager-tokens", "latchkey-verifier-tokens"} {
					if r := find(t, objs, "Role", name); r.GetNamespace() != "lk-secrets" {
						t.Fatalf("Role %s in %s, want lk-secrets", name, r.GetNamespace())
					}
				}
			case "verifier-in-manager-too", "verifier-in-manager-only":
				var svc corev1.Service
				toTyped(t, find(t, objs, "Service", "latchkey-verifier"), &svc)
				pods := []appsv1.Deployment{d}
				if name == "verifier-in-manager-too" {
					var v appsv1.Deployment
					toTyped(t, find(t, objs, "Deployment", "latchkey-verifier"), &v)
					pods = append(pods, v)
				} else if len(ofKind(objs, "Deployment")) != 1 {
					t.Fatal("verifier.deployment.enabled=false still renders the verifier Deployment")
				}
				for _, pod := range pods {
					if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Spec.Template.Labels)) {
						t.Fatalf("the verifier Service does not select Deployment %s's Pods", pod.Name)
					}
				}
				if !slices.Contains(args, "--verifier-bind-address=:8082") {
					t.Fatalf("verifier.servedByManager: the manager does not serve the verifier: %v", args)
				}
			case "single-replica-no-webhook":
				if slices.ContainsFunc(ofKind(objs, "PodDisruptionBudget"), func(o *unstructured.Unstructured) bool { return o.GetName() == "latchkey" }) {
					t.Fatal("a PodDisruptionBudget with minAvailable 1 over 1 replica would block every drain")
				}
			}
		})
	}
}

// TestHelmSchemaRejects: values.schema.json catches mistakes at render time.
func TestHelmSchemaRejects(t *testing.T) {
	for name, set := range map[string]string{
		"unknown key":        "replicas=2",
		"negative replicas":  "replicaCount=-1",
		"bad namespace":      "watchNamespaces={Team_A}",
		"bad duration":       "leaderElection.leaseDuration=ten",
		"bad failure policy": "webhook.failurePolicy=Maybe",
		"extra arg":          "extraArgs={verbose}",
		"token ns watched":   "watchNamespaces={team-a},tokenNamespace.name=team-a",
		"no verifier at all": "verifier.deployment.enabled=false",
		"bad gateway ns":     "networkPolicy.gatewayNamespaces={Ingress_Nginx}",
		"bad token ns":       "tokenNamespace.name=Tokens",
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := runErr(helmBin, "template", "latchkey", "charts/latchkey", "--set", set); err == nil {
				t.Fatalf("--set %s rendered:\n%.300s", set, out)
			}
		})
	}
}

func assertHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("%s: Pod not non-root with seccomp RuntimeDefault: %+v", d.Name, pod.SecurityContext)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Fatalf("%s/%s: container not hardened: %+v", d.Name, c.Name, sc)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Fatalf("%s/%s: probes missing", d.Name, c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Fatalf("%s/%s: no resource requests", d.Name, c.Name)
		}
		found := false
		for _, e := range c.Env {
			found = found || (e.Name == "POD_NAMESPACE" && e.ValueFrom != nil)
		}
		if !found {
			t.Fatalf("%s/%s: no POD_NAMESPACE", d.Name, c.Name)
		}
	}
}

func assertVolume(t *testing.T, d *appsv1.Deployment, path, secret string) {
	t.Helper()
	var volume string
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.MountPath == path {
			volume = m.Name
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == volume && v.Secret != nil && v.Secret.SecretName == secret && v.Secret.Optional != nil && *v.Secret.Optional {
			return
		}
	}
	t.Fatalf("Secret %s is not mounted (optional) at %s", secret, path)
}

// assertWebhookMatchesGenerated compares the chart's webhooks with
// config/webhook/manifests.yaml (generated from the code's markers), except
// for the Service's name and namespace, which the chart sets.
func assertWebhookMatchesGenerated(t *testing.T, objs []*unstructured.Unstructured, namespaced bool) {
	t.Helper()
	var chart, generated admissionregistrationv1.ValidatingWebhookConfiguration
	toTyped(t, find(t, objs, "ValidatingWebhookConfiguration", webhookv1alpha1.WebhookConfigurationName), &chart)
	gen := decode(t, readFile(t, filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")))
	toTyped(t, find(t, gen, "ValidatingWebhookConfiguration", webhookv1alpha1.WebhookConfigurationName), &generated)
	if len(chart.Webhooks) != len(generated.Webhooks) {
		t.Fatalf("chart has %d webhooks, config/webhook %d", len(chart.Webhooks), len(generated.Webhooks))
	}
	for i := range generated.Webhooks {
		g, c := generated.Webhooks[i], chart.Webhooks[i]
		if namespaced == (c.NamespaceSelector == nil) {
			t.Fatalf("webhook %s: namespaceSelector %v in namespaced mode %v", c.Name, c.NamespaceSelector, namespaced)
		}
		c.NamespaceSelector = nil
		g.ClientConfig.Service.Name, g.ClientConfig.Service.Namespace = c.ClientConfig.Service.Name, c.ClientConfig.Service.Namespace
		if !reflect.DeepEqual(g, c) {
			t.Fatalf("the chart's webhook differs from config/webhook/manifests.yaml (regenerated from the markers):\nchart:     %+v\ngenerated: %+v", c, g)
		}
	}
}

// TestHelmLeastPrivilegeDefaults: with its default values the chart runs the
// verifier as its own Deployment, behind the verifier Service alone, under a
// ServiceAccount whose only Secret access is read in the token namespace
// (which the chart creates and keeps on uninstall); the manager serves no
// gateway traffic; metrics are HTTPS with authentication.
func TestHelmLeastPrivilegeDefaults(t *testing.T) {
	const ns, tokens = "latchkey-system", "latchkey-system-tokens"
	objs := helmTemplate(t, ns)

	nsObj := find(t, objs, "Namespace", tokens)
	if nsObj.GetAnnotations()["helm.sh/resource-policy"] != "keep" || nsObj.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("token Namespace: annotations %v, labels %v", nsObj.GetAnnotations(), nsObj.GetLabels())
	}

	var mgr, ver appsv1.Deployment
	toTyped(t, find(t, objs, "Deployment", "latchkey"), &mgr)
	toTyped(t, find(t, objs, "Deployment", "latchkey-verifier"), &ver)
	margs, vargs := mgr.Spec.Template.Spec.Containers[0].Args, ver.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--verifier-bind-address=0", "--token-namespace=" + tokens, "--metrics-secure=true"} {
		if !slices.Contains(margs, want) {
			t.Errorf("manager args lack %s: %v", want, margs)
		}
	}
	for _, want := range []string{"--verifier-only", "--token-namespace=" + tokens, "--metrics-secure=true"} {
		if !slices.Contains(vargs, want) {
			t.Errorf("verifier args lack %s: %v", want, vargs)
		}
	}
	if sa := ver.Spec.Template.Spec.ServiceAccountName; sa != "latchkey-verifier" {
		t.Errorf("the verifier runs as %q", sa)
	}
	if p := ver.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.String(); p != "probes" {
		t.Errorf("the verifier's readiness probe uses port %s, want probes (the NetworkPolicy opens it to the kubelet)", p)
	}
	var svc corev1.Service
	toTyped(t, find(t, objs, "Service", "latchkey-verifier"), &svc)
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if sel.Matches(labels.Set(mgr.Spec.Template.Labels)) || !sel.Matches(labels.Set(ver.Spec.Template.Labels)) {
		t.Errorf("the verifier Service %v must select the verifier's Pods only", svc.Spec.Selector)
	}
	var metrics corev1.Service
	toTyped(t, find(t, objs, "Service", "latchkey-metrics"), &metrics)
	if p := metrics.Spec.Ports[0]; p.Name != "https" || p.Port != 8443 {
		t.Errorf("metrics Service port %+v, want https 8443", p)
	}
	reader := find(t, objs, "ClusterRole", "latchkey-metrics-reader")
	var cr rbacv1.ClusterRole
	toTyped(t, reader, &cr)
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(cr.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("metrics-reader rules %+v", cr.Rules)
	}

	// Statically, from the rendered bindings: every Secret rule bound to the
	// verifier is a read-only Role in the token namespace.
	for _, r := range rulesBoundTo(t, objs, ns, "latchkey-verifier") {
		for _, pr := range r.rules {
			if !slices.Contains(pr.Resources, "secrets") && !slices.Contains(pr.Resources, "*") {
				continue
			}
			if r.namespace != tokens || !slices.Equal(pr.Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("%s %s/%s grants the verifier %v on Secrets", r.kind, r.namespace, r.name, pr.Verbs)
			}
		}
	}
}

// boundRules are the rules of one Role or ClusterRole bound to a subject,
// where they apply (namespace empty: cluster-wide).
type boundRules struct {
	kind, name, namespace string
	rules                 []rbacv1.PolicyRule
}

// rulesBoundTo lists, from the rendered objects, what is bound to the
// ServiceAccount.
func rulesBoundTo(t *testing.T, objs []*unstructured.Unstructured, ns, sa string) []boundRules {
	t.Helper()
	roles := map[string][]rbacv1.PolicyRule{}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			toTyped(t, o, &cr)
			roles["ClusterRole//"+cr.Name] = cr.Rules
		case "Role":
			var r rbacv1.Role
			toTyped(t, o, &r)
			roles["Role/"+r.Namespace+"/"+r.Name] = r.Rules
		}
	}
	var out []boundRules
	for _, o := range objs {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		where := ""
		switch o.GetKind() {
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			toTyped(t, o, &b)
			ref, subjects = b.RoleRef, b.Subjects
		case "RoleBinding":
			var b rbacv1.RoleBinding
			toTyped(t, o, &b)
			ref, subjects, where = b.RoleRef, b.Subjects, b.Namespace
		default:
			continue
		}
		if !slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == ns && s.Name == sa
		}) {
			continue
		}
		key := "ClusterRole//" + ref.Name
		if ref.Kind == "Role" {
			key = "Role/" + where + "/" + ref.Name
		}
		rules, ok := roles[key]
		if !ok {
			t.Fatalf("%s %s binds %s, which the chart does not render", o.GetKind(), o.GetName(), key)
		}
		out = append(out, boundRules{kind: ref.Kind, name: ref.Name, namespace: where, rules: rules})
	}
	if len(out) == 0 {
		t.Fatalf("nothing is bound to %s/%s", ns, sa)
	}
	return out
}

// TestNetworkPolicy: the NetworkPolicies of the chart (and of the kustomize
// install) admit the verification port only from the gateway namespaces (by
// kubernetes.io/metadata.name; kustomize: by the label
// latchkey.dev/gateway=true), the webhook and probe ports from anywhere,
// metrics from metricsFrom (the namespace monitoring), and nothing else.
func TestNetworkPolicy(t *testing.T) {
	const gw = "networkPolicy.gatewayNamespaces={ingress-nginx,gateways}"
	for _, tc := range []struct {
		name string
		set  []string
		// want: per policy, per port, the allowed sources ("*": anywhere).
		want map[string]map[int32]string
		// kustomize: render config/default instead of the chart.
		kustomize bool
	}{
		{"defaults: no gateway namespaces yet", nil, map[string]map[int32]string{
			"latchkey-manager":  {9443: "*", 8081: "*", 8443: "monitoring"},
			"latchkey-verifier": {8081: "*", 8443: "monitoring"},
		}, false},
		{"gateway namespaces", []string{gw}, map[string]map[int32]string{
			"latchkey-manager":  {9443: "*", 8081: "*", 8443: "monitoring"},
			"latchkey-verifier": {8082: "gateways,ingress-nginx", 8083: "gateways,ingress-nginx", 8081: "*", 8443: "monitoring"},
		}, false},
		{"served by the manager too", []string{gw, "verifier.servedByManager=true"}, map[string]map[int32]string{
			"latchkey-manager":  {9443: "*", 8081: "*", 8443: "monitoring", 8082: "gateways,ingress-nginx", 8083: "gateways,ingress-nginx"},
			"latchkey-verifier": {8082: "gateways,ingress-nginx", 8083: "gateways,ingress-nginx", 8081: "*", 8443: "monitoring"},
		}, false},
		{"gRPC off", []string{gw, "verifier.grpc.enabled=false"}, map[string]map[int32]string{
			"latchkey-manager":  {9443: "*", 8081: "*", 8443: "monitoring"},
			"latchkey-verifier": {8082: "gateways,ingress-nginx", 8081: "*", 8443: "monitoring"},
		}, false},
		{"kustomize config/default", nil, map[string]map[int32]string{
			"latchkey-manager":  {9443: "*", 8081: "*", 8443: "monitoring"},
			"latchkey-verifier": {8082: "latchkey.dev/gateway=true", 8081: "*", 8443: "monitoring"},
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var objs []*unstructured.Unstructured
			deployments := map[string]string{"latchkey-manager": "latchkey", "latchkey-verifier": "latchkey-verifier"}
			if tc.kustomize {
				objs = decode(t, run(t, kustomizeBin, "build", "config/default"))
				deployments["latchkey-manager"] = "latchkey-controller-manager"
			} else {
				objs = helmTemplate(t, "latchkey-system", tc.set...)
			}
			if n := len(ofKind(objs, "NetworkPolicy")); n != len(tc.want) {
				t.Fatalf("%d NetworkPolicies, want %d", n, len(tc.want))
			}
			for name, want := range tc.want {
				var np networkingv1.NetworkPolicy
				toTyped(t, find(t, objs, "NetworkPolicy", name), &np)
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
					t.Errorf("%s: policyTypes %v", name, np.Spec.PolicyTypes)
				}
				var d appsv1.Deployment
				toTyped(t, find(t, objs, "Deployment", deployments[name]), &d)
				podSel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
				if err != nil || !podSel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s does not select Deployment %s's Pods", name, d.Name)
				}
				got := map[int32]string{}
				for _, rule := range np.Spec.Ingress {
					from := "*"
					if len(rule.From) > 0 {
						var names []string
						for _, peer := range rule.From {
							if peer.NamespaceSelector == nil {
								t.Fatalf("%s: a peer without a namespaceSelector: %+v", name, peer)
							}
							if peer.PodSelector != nil || peer.IPBlock != nil {
								t.Fatalf("%s: a peer selects Pods or addresses: %+v", name, peer)
							}
							for k, v := range peer.NamespaceSelector.MatchLabels {
								if k == "kubernetes.io/metadata.name" {
									names = append(names, v)
								} else {
									names = append(names, k+"="+v)
								}
							}
							for _, e := range peer.NamespaceSelector.MatchExpressions {
								if e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpIn {
									names = append(names, e.Values...)
								}
							}
						}
						slices.Sort(names)
						from = strings.Join(slices.Compact(names), ",")
					}
					for _, p := range rule.Ports {
						if p.Port == nil || p.Port.Type != intstr.Int {
							t.Fatalf("%s: port %+v is not a number", name, p)
						}
						got[p.Port.IntVal] = from
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s admits %v, want %v", name, got, want)
				}
			}
		})
	}
}
