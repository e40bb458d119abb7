package install

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/latchkey-dev/latchkey/internal/testenv"
	webhookv1alpha1 "github.com/latchkey-dev/latchkey/internal/webhook/v1alpha1"
)

// valueSets are the chart configurations the tests lint and render.
var valueSets = map[string][]string{
	"defaults":            nil,
	"namespaced":          {"watchNamespaces={team-a,team-b}"},
	"verifier":            {"verifier.deployment.enabled=true"},
	"cert-manager":        {"certManager.enabled=true"},
	"cert-manager-issuer": {"certManager.enabled=true", "certManager.issuerRef.name=ca", "certManager.issuerRef.kind=ClusterIssuer"},
	"servicemonitor":      {"metrics.serviceMonitor.enabled=true"},
	"everything": {"watchNamespaces={team-a}", "verifier.deployment.enabled=true", "certManager.enabled=true",
		"metrics.serviceMonitor.enabled=true", "permissionCatalog.configMap=catalog", "maxCredentialLifetime=2160h"},
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
						if n := len(ofKind(objs, k)); n != 1 { // the operator-namespace Role only
							t.Fatalf("%d Roles in cluster mode, want 1", n)
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
				if len(ofKind(objs, "ClusterRole")) != 3 { // manager-cluster, editor, viewer
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
			case "servicemonitor":
				find(t, objs, "ServiceMonitor", "latchkey")
			case "verifier":
				var v appsv1.Deployment
				toTyped(t, find(t, objs, "Deployment", "latchkey-verifier"), &v)
				assertHardened(t, &v)
				vargs := v.Spec.Template.Spec.Containers[0].Args
				if !slices.Contains(vargs, "--verifier-only") || v.Spec.Template.Spec.ServiceAccountName != "latchkey-verifier" {
					t.Fatalf("verifier Deployment: %v as %s", vargs, v.Spec.Template.Spec.ServiceAccountName)
				}
				var svc corev1.Service
				toTyped(t, find(t, objs, "Service", "latchkey-verifier"), &svc)
				for _, pod := range []appsv1.Deployment{d, v} {
					for k, val := range svc.Spec.Selector {
						if pod.Spec.Template.Labels[k] != val {
							t.Fatalf("the verifier Service does not select Deployment %s's Pods", pod.Name)
						}
					}
				}
			case "single-replica-no-webhook":
				if len(ofKind(objs, "PodDisruptionBudget")) != 0 {
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
