package install

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

// run runs a tool from the repository root and returns its stdout.
func run(t testing.TB, bin string, args ...string) string {
	t.Helper()
	out, err := runErr(bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	return out
}

func runErr(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = testenv.RepoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w\n%s", err, stderr.String())
	}
	return stdout.String(), nil
}

// helmTemplate renders the chart as release "latchkey" in namespace ns.
func helmTemplate(t testing.TB, ns string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "latchkey", "charts/latchkey", "--namespace", ns, "--include-crds"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, run(t, helmBin, args...))
}

// decode splits a multi-document YAML stream into objects.
func decode(t testing.TB, s string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("decoding %q: %v", doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// find returns the rendered object of that kind and name, or fails.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// toTyped converts a rendered object into its Go type.
func toTyped(t testing.TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// applyOrder puts namespaces and CRDs first, as kubectl and Helm do.
func applyOrder(o *unstructured.Unstructured) int {
	switch o.GetKind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	case "ServiceAccount", "ClusterRole", "Role":
		return 2
	default:
		return 3
	}
}

// serverSideApply applies every object as fieldManager, in a workable order,
// and returns them for deletion.
func serverSideApply(t testing.TB, c client.Client, fieldManager string, objs []*unstructured.Unstructured) {
	t.Helper()
	sorted := slices.Clone(objs)
	slices.SortStableFunc(sorted, func(a, b *unstructured.Unstructured) int { return applyOrder(a) - applyOrder(b) })
	for _, o := range sorted {
		if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner(fieldManager), client.ForceOwnership); err != nil {
			t.Fatalf("server-side apply of %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

// uninstall deletes what serverSideApply applied, except namespaces and
// CRDs (shared by the package's tests; envtest has no namespace controller).
func uninstall(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if k := o.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
			continue
		}
		if err := env.Client.Delete(context.Background(), o.DeepCopy()); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			t.Errorf("deleting %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
}

func ensureNamespace(t testing.TB, ns string) {
	t.Helper()
	if err := env.EnsureNamespace(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// serviceAccountUser is the user name a ServiceAccount authenticates as.
func serviceAccountUser(ns, name string) string {
	return "system:serviceaccount:" + ns + ":" + name
}

// impersonating returns the admin config acting as the ServiceAccount, with
// the groups its token would carry.
func impersonating(ns, sa string) *rest.Config {
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: serviceAccountUser(ns, sa),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return cfg
}

// writeKubeconfig writes a kubeconfig for cfg (admin credentials, with
// impersonation when set) for the manager binary.
func writeKubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	path, err := testenv.WriteKubeconfig(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// process is a running manager binary.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    *os.File
	done   chan struct{}
	exited error
	// verifier, probes and metrics are its local addresses; verifier is
	// empty when the rendered args disable the verification service.
	verifier, grpc, probes, metrics string
}

// managerArgs are the container args the chart or kustomize rendered for
// Deployment name, with its POD_NAMESPACE.
func managerArgs(t testing.TB, objs []*unstructured.Unstructured, name string) (args []string, namespace string) {
	t.Helper()
	var d appsv1.Deployment
	toTyped(t, find(t, objs, "Deployment", name), &d)
	c := d.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			namespace = d.Namespace
		}
	}
	if namespace == "" {
		t.Fatalf("Deployment %s does not pass its namespace in POD_NAMESPACE", name)
	}
	return append(slices.Clone(c.Command), c.Args...), namespace
}

// startManager runs the manager binary with the rendered args, made to run
// on this machine: local listen addresses (the verification service stays
// off when the args turn it off), the given kubeconfig and extra flags (a
// later flag wins).
func startManager(t testing.TB, name string, args []string, namespace, kubeconfig string, extra ...string) *process {
	t.Helper()
	p := &process{
		name:    name,
		probes:  net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		metrics: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		done:    make(chan struct{}),
	}
	all := append(slices.Clone(args),
		"--kubeconfig="+kubeconfig,
		"--health-probe-bind-address="+p.probes,
		"--metrics-bind-address="+p.metrics,
		"--zap-log-level=info",
	)
	if !slices.Contains(args, "--verifier-bind-address=0") {
		p.verifier = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		all = append(all, "--verifier-bind-address="+p.verifier)
		// Its gRPC port too: several replicas share this host.
		p.grpc = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		all = append(all, "--verifier-grpc-bind-address="+p.grpc)
	}
	all = append(all, extra...)
	var err error
	if p.log, err = os.Create(filepath.Join(t.TempDir(), name+".log")); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(managerBin, all...)
	p.cmd.Env = append(os.Environ(), "POD_NAMESPACE="+namespace, "KUBECONFIG="+kubeconfig)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(p.log.Name())
			t.Logf("%s log (last 6000 bytes):\n%s", name, tail(b, 6000))
		}
		_ = p.log.Close()
	})
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// stop terminates the process gracefully (SIGTERM), or kills it after 20s.
func (p *process) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once (SIGKILL): no Lease release, no cleanup.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) exitedEarly() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.exited)
	default:
		return nil
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// get returns the status code and body of GET http://addr/path.
func get(addr, path string, header http.Header) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// waitReady waits until the process is ready as the kubelet sees it:
// /readyz on the probe port answers 200 (the webhook serves, and the
// verifier, where it runs, has synced).
func (p *process) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		if err := p.exitedEarly(); err != nil {
			t.Fatal(err)
		}
		code, body, err := get(p.probes, "/readyz", nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s /readyz: %d %s", p.name, code, body)
		}
		return nil
	})
}

// metricsClient speaks HTTPS to the metrics servers, whose certificate is
// self-signed.
var metricsClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the metrics server's self-signed certificate
}}

// getMetrics returns the status code and body of GET https://addr/metrics
// with the bearer token (none when empty).
func getMetrics(addr, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// serviceAccountToken creates the ServiceAccount (if missing) and returns a
// token for it from the TokenRequest API, as a Pod's projected token.
func serviceAccountToken(t testing.TB, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(sa), sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := env.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// metricsReaderToken returns the token of a ServiceAccount in ns bound to
// the install's metrics-reader ClusterRole, as Prometheus's would be.
func metricsReaderToken(t testing.TB, ns, clusterRole string) string {
	t.Helper()
	ctx := context.Background()
	token := serviceAccountToken(t, ns, "prometheus")
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
	}
	if err := env.Client.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), crb) })
	return token
}

// mountSecret copies a Secret's data into dir as files, as the kubelet does
// for a Secret volume, until the test ends.
func mountSecret(t testing.TB, key types.NamespacedName, dir string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			var s corev1.Secret
			if err := env.Client.Get(ctx, key, &s); err == nil {
				for k, v := range s.Data {
					path := filepath.Join(dir, k)
					if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, v) {
						_ = os.WriteFile(path+".tmp", v, 0o600)
						_ = os.Rename(path+".tmp", path)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// conditionTrue reports whether the object's condition of that type is True.
func readyCondition(u *unstructured.Unstructured) (status, reason string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == latchkeyv1alpha1.ConditionReady {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			return s, r
		}
	}
	return "", ""
}

// latchkeyObjects lists the ApiClients and CredentialGrants of a namespace.
func latchkeyObjects(t testing.TB, ns string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, kind := range []string{"ApiClientList", "CredentialGrantList"} {
		l := &unstructured.UnstructuredList{}
		l.SetAPIVersion(latchkeyv1alpha1.GroupVersion.String())
		l.SetKind(kind)
		if err := env.Client.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out
}

// waitAllReady waits until every ApiClient and CredentialGrant in ns is Ready.
func waitAllReady(t testing.TB, ns string, want int, timeout time.Duration, procs ...*process) {
	t.Helper()
	testenv.Eventually(t, timeout, func() error {
		for _, p := range procs {
			if err := p.exitedEarly(); err != nil {
				t.Fatal(err)
			}
		}
		objs := latchkeyObjects(t, ns)
		if len(objs) != want {
			return fmt.Errorf("%d objects in %s, want %d", len(objs), ns, want)
		}
		for _, o := range objs {
			if s, r := readyCondition(o); s != "True" {
				return fmt.Errorf("%s %s: Ready=%q (%s)", o.GetKind(), o.GetName(), s, r)
			}
		}
		return nil
	})
}

// can asks the API server whether user may do verb on resource (a
// SubjectAccessReview, what `kubectl auth can-i --as` does).
func can(t testing.TB, user string, groups []string, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups, ResourceAttributes: &a,
	}}
	if err := env.Client.Create(context.Background(), sar); err != nil {
		t.Fatal(err)
	}
	return sar.Status.Allowed
}
