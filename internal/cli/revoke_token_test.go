package cli_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// hostIP is an address of this machine the API server may proxy to (its
// service proxy refuses loopback and link-local addresses).
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	// Not a skip: CI runs on a host with one, and a skipped test proves nothing.
	t.Fatal("no non-loopback IPv4 address on this host: the API server's service proxy refuses loopback, so it cannot reach a local verifier")
	return ""
}

// TestRevokeToken: kubectl latchkey revoke-token, with the user's kubeconfig,
// through the API server's service proxy to the verifier: a leaked grant
// token read from standard input, and a client secret read from --file, are
// rejected at once and replaced in their Secrets; the token is never taken
// from the command line; a user without services/proxy is told what to ask
// for.
func TestRevokeToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// The verifier-only Deployment behind a Service, as the chart runs it.
	ln, err := net.Listen("tcp", net.JoinHostPort(hostIP(t), "0"))
	if err != nil {
		t.Fatal(err)
	}
	env.StartManager(t, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true, VerifierListener: ln})
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("the verifier-only process is not ready: %d", resp.StatusCode)
		}
		return nil
	})
	host, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	// The API server proxies only to an address that a Pod of the
	// namespace reports as its own: a Pod (never scheduled here) whose
	// status carries this host's address.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "latchkey-verifier-0"},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "verifier", Image: "latchkey"}}}}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: host, PodIPs: []corev1.PodIP{{IP: host}}}
	if err := env.Client.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "latchkey-verifier"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8082, TargetPort: intstr.FromInt(port)}}}}
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// The proxy picks an address from the Service's EndpointSlices.
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "latchkey-verifier-1",
		Labels: map[string]string{discoveryv1.LabelServiceName: "latchkey-verifier"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: f.opNs, Name: pod.Name}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(port))}}}
	if err := env.Client.Create(ctx, slice); err != nil {
		t.Fatal(err)
	}
	secretOf := func(name string) map[string]string {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: name}, s); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out
	}

	gen := object(t, f.mustRun("create", "--scope", "system", "--name", "leaky"))
	clientID, clientSecret := gen["id"].(string), gen["secret"].(string)
	tok := object(t, f.mustRun("issue", "--id", clientID, "--name", "leaky-token"))
	leaked := tok["token"].(string)
	f.wantVerify("the token before", bearer(leaked), http.StatusOK)
	f.wantVerify("the client secret before", basic(clientID, clientSecret), http.StatusOK)

	// The token on the command line: refused, and not echoed.
	r := f.run("revoke-token", leaked, "--verifier-namespace", f.opNs)
	if r.code == 0 || !strings.Contains(r.stderr, "never from the command line") || strings.Contains(r.stderr, leaked) {
		t.Fatalf("a token in argv: exit %d, stderr %q", r.code, r.stderr)
	}
	f.wantVerify("a refused command revoked nothing", bearer(leaked), http.StatusOK)

	// A user who may not use the service proxy is told what to ask for.
	r = runCLIWithInput(leaked+"\n", "revoke-token", "--kubeconfig", f.kubeconfig, "-n", f.ns, "--verifier-namespace", f.opNs, "--as", "mallory")
	if r.code == 0 || !strings.Contains(r.stderr, "services/proxy") || strings.Contains(r.stderr, leaked) {
		t.Fatalf("without services/proxy: exit %d, stderr %q", r.code, r.stderr)
	}
	f.wantVerify("a refused proxy revoked nothing", bearer(leaked), http.StatusOK)

	// From standard input, through the API server's service proxy, as a
	// user who holds exactly the chart's token-revoker rule (no right on
	// ApiClients, CredentialGrants or Secrets).
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "latchkey-token-revoker"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"create"},
			ResourceNames: []string{"http:latchkey-verifier:8082", "https:latchkey-verifier:8082"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: f.opNs, Name: "latchkey-token-revoker"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "scanner"}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// The API server's authorizer learns of a new binding through its own
	// watch: wait until it says yes, as kubectl auth can-i would.
	testenv.Eventually(t, 30*time.Second, func() error {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: "scanner",
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: f.opNs, Verb: "create", Resource: "services",
				Subresource: "proxy", Name: "http:latchkey-verifier:8082"}}}
		if err := env.Client.Create(ctx, sar); err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("scanner may not use the service proxy yet")
		}
		return nil
	})
	r = runCLIWithInput(leaked+"\n", "revoke-token", "--kubeconfig", f.kubeconfig, "-n", f.ns, "--verifier-namespace", f.opNs, "--as", "scanner")
	if r.code != 0 {
		t.Fatalf("revoke-token: exit %d, stderr %s", r.code, r.stderr)
	}
	if out := object(t, r.stdout); out["revoked"] != true || out["token_id"] != tok["id"] {
		t.Fatalf("revoke-token printed %v, want revoked and token_id %v", out, tok["id"])
	}
	if strings.Contains(r.stdout+r.stderr, leaked) {
		t.Fatal("revoke-token printed the token")
	}
	start := time.Now()
	f.wantVerify("the revoked token", bearer(leaked), http.StatusUnauthorized)
	t.Logf("token rejected %v after revoke-token returned", time.Since(start))
	testenv.Eventually(t, 15*time.Second, func() error {
		fresh := secretOf("leaky-token")["token"]
		if fresh == leaked || fresh == "" {
			return fmt.Errorf("the Secret still holds the revoked token")
		}
		if code := f.verify(bearer(fresh)); code != http.StatusOK {
			return fmt.Errorf("the new token: %d", code)
		}
		return nil
	})
	f.wantVerify("the client secret is untouched", basic(clientID, clientSecret), http.StatusOK)

	// A client secret from --file, straight to the verifier (port-forward).
	file := filepath.Join(t.TempDir(), "leaked")
	if err := os.WriteFile(file, []byte(clientID+":"+clientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := f.mustRun("revoke-token", "--file", file, "--verifier", "http://"+ln.Addr().String(), "--format", "text")
	if !strings.Contains(out, "client secret of "+clientID) || strings.Contains(out, clientSecret) {
		t.Fatalf("revoke-token --format text: %q", out)
	}
	f.wantVerify("the revoked client secret", basic(clientID, clientSecret), http.StatusUnauthorized)
	testenv.Eventually(t, 15*time.Second, func() error {
		var list corev1.SecretList
		if err := env.Client.List(ctx, &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		var s map[string]string
		for _, sec := range list.Items {
			if string(sec.Data["client_id"]) == clientID && sec.Data["client_secret"] != nil {
				s = map[string]string{"client_id": clientID, "client_secret": string(sec.Data["client_secret"])}
			}
		}
		if s == nil {
			return fmt.Errorf("no Secret holds client id %s", clientID)
		}
		if s["client_secret"] == clientSecret {
			return fmt.Errorf("the Secret still holds the revoked client secret")
		}
		if code := f.verify(basic(s["client_id"], s["client_secret"])); code != http.StatusOK {
			return fmt.Errorf("the new client secret: %d", code)
		}
		return nil
	})

	// Nothing to read: a clear error.
	r = runCLIWithInput("", "revoke-token", "--kubeconfig", f.kubeconfig, "--verifier", "http://"+ln.Addr().String())
	if r.code == 0 || !strings.Contains(r.stderr, "no token on standard input") {
		t.Fatalf("empty input: exit %d, stderr %q", r.code, r.stderr)
	}
}
