package suite_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env, testenv.Options{}) }

// fixture runs the operator with its verifier on a loopback port.
type fixture struct {
	t    *testing.T
	g    Gomega
	ctx  context.Context
	ns   string
	opNs string
	url  string // the verifier's base URL
	http *http.Client
}

func newFixture(t *testing.T, mutate ...func(*operator.Options)) *fixture {
	f := &fixture{t: t, g: NewWithT(t), ctx: context.Background(), ns: env.Namespace(t), opNs: env.Namespace(t),
		http: &http.Client{Timeout: 5 * time.Second}}
	f.g.SetDefaultEventuallyTimeout(20 * time.Second)
	f.g.SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	f.url = "http://" + ln.Addr().String()
	opts := operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierListener: ln,
		Verifier: verifier.Options{UsageInterval: 200 * time.Millisecond}}
	for _, m := range mutate {
		m(&opts)
	}
	env.StartManager(t, opts)
	f.g.Eventually(func() int { return f.get("/readyz", nil).StatusCode }).Should(Equal(http.StatusOK))
	return f
}

func (f *fixture) create(obj client.Object) {
	f.t.Helper()
	obj.SetNamespace(f.ns)
	f.g.Expect(env.Client.Create(f.ctx, obj)).To(Succeed())
}

func (f *fixture) waitReady(obj client.Object) {
	f.t.Helper()
	f.g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *latchkeyv1alpha1.ApiClient:
			conds = o.Status.Conditions
		case *latchkeyv1alpha1.CredentialGrant:
			conds = o.Status.Conditions
		}
		g.Expect(meta.IsStatusConditionTrue(conds, latchkeyv1alpha1.ConditionReady)).To(BeTrue(), "%s not Ready: %v", obj.GetName(), conds)
	}).Should(Succeed())
}

func (f *fixture) secret(name string) map[string]string {
	f.t.Helper()
	s := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: name}, s)).To(Succeed())
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func (f *fixture) get(path string, h http.Header) *http.Response {
	req, _ := http.NewRequest(http.MethodGet, f.url+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return &http.Response{StatusCode: -1, Body: io.NopCloser(strings.NewReader(err.Error()))}
	}
	return resp
}

// status of a verification with the given headers.
func (f *fixture) verify(h http.Header, query string) int {
	resp := f.get("/v1/verify/some/original/path"+query, h)
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func (f *fixture) postForm(path string, form url.Values, h http.Header) (int, map[string]any) {
	req, _ := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	f.g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func bearer(t string) http.Header { return http.Header{"Authorization": {"Bearer " + t}} }
func apiKey(t string) http.Header { return http.Header{"X-Api-Key": {t}} }
func basic(u, p string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}}
}

func with(h http.Header, k, v string) http.Header {
	c := h.Clone()
	c.Add(k, v)
	return c
}

// sub is the fixture for a subtest: failures belong to the subtest.
func (f *fixture) sub(t *testing.T) *fixture {
	c := *f
	c.t, c.g = t, NewWithT(t)
	c.g.SetDefaultEventuallyTimeout(20 * time.Second)
	c.g.SetDefaultEventuallyPollingInterval(20 * time.Millisecond)
	return &c
}
