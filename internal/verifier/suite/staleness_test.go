package suite_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// partitionProxy forwards TCP to the API server until partition() is
// called; from then on existing connections are cut and new ones hang (no
// answer, no refusal), as behind a network partition, until heal().
type partitionProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	conns   []net.Conn
	healed  chan struct{}
	stopped bool
}

func startPartitionProxy(t *testing.T, target string) *partitionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionProxy{ln: ln, target: target, healed: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		_ = ln.Close()
		p.closeAll()
	})
	return p
}

func (p *partitionProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // held: never answered until heal() closes it
		}
		go p.forward(c)
	}
}

func (p *partitionProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

func (p *partitionProxy) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// partition cuts every connection; new ones hang.
func (p *partitionProxy) partition() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// heal drops the hanging connections and forwards again.
func (p *partitionProxy) heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
	p.closeAll()
}

// Security II, acceptance 6: a verifier cut off from the API server (its
// watch stalled behind a proxy the test cuts) answers 503 once
// --max-staleness has passed, and 200 again once the watch recovers; a
// credential revoked during the cut is rejected after recovery.
func TestBoundedStaleness(t *testing.T) {
	f := newFixture(t, func(o *operator.Options) { o.HeartbeatInterval = 200 * time.Millisecond })
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	f.create(c)
	f.waitReady(c)
	keep, revoke := grant("keep", "app", latchkeyv1alpha1.CredentialTypeBearer), grant("revoke", "app", latchkeyv1alpha1.CredentialTypeBearer)
	for _, g := range []*latchkeyv1alpha1.CredentialGrant{keep, revoke} {
		f.create(g)
		f.waitReady(g)
	}
	keepTok, revokeTok := f.secret("keep")["token"], f.secret("revoke")["token"]

	// A verifier-only replica that reaches the API server through the proxy.
	apiURL, err := url.Parse(env.Config.Host)
	f.g.Expect(err).NotTo(HaveOccurred())
	px := startPartitionProxy(t, apiURL.Host)
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://" + px.ln.Addr().String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	f.g.Expect(err).NotTo(HaveOccurred())
	const maxStaleness = 2 * time.Second
	mgr, err := operator.NewManager(cfg, operator.Options{Namespace: f.opNs, WatchNamespaces: []string{f.ns}, VerifierOnly: true,
		VerifierListener: ln, Verifier: verifier.Options{MaxStaleness: maxStaleness}, MetricsAddr: "0", SkipControllerNameValidation: true})
	f.g.Expect(err).NotTo(HaveOccurred())
	testenv.RunManager(t, mgr)
	base := "http://" + ln.Addr().String()
	status := func(path string, h http.Header) int {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header = h
		resp, err := f.http.Do(req)
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	f.g.Eventually(func() []int {
		return []int{status("/readyz", nil), status("/v1/verify", bearer(keepTok)), status("/v1/verify", bearer(revokeTok))}
	}).Should(Equal([]int{200, 200, 200}))
	// It stays fresh while heartbeats flow.
	f.g.Consistently(func() int { return status("/v1/verify", bearer(keepTok)) }).WithTimeout(2 * maxStaleness).Should(Equal(200))

	// The cut, and a revocation the cut-off replica cannot see.
	px.partition()
	cutAt := time.Now()
	f.g.Expect(env.Client.Delete(f.ctx, revoke)).To(Succeed())
	f.g.Eventually(func() int { return f.verify(bearer(revokeTok), "") }).Should(Equal(401), "the connected verifier sees it")
	f.g.Eventually(func() []int { return []int{status("/v1/verify", bearer(keepTok)), status("/readyz", nil)} }).
		WithTimeout(maxStaleness + 10*time.Second).Should(Equal([]int{503, 503}))
	// Counted from the last heartbeat it saw, up to one interval before the cut.
	f.g.Expect(time.Since(cutAt)).To(BeNumerically(">=", maxStaleness-300*time.Millisecond), "not before --max-staleness")
	f.g.Expect(status("/v1/verify", bearer(revokeTok))).To(Equal(503), "fails closed: the revoked token is not accepted")

	// Recovery by itself once the watch is back.
	px.heal()
	f.g.Eventually(func() []int {
		return []int{status("/readyz", nil), status("/v1/verify", bearer(keepTok)), status("/v1/verify", bearer(revokeTok))}
	}).WithTimeout(60 * time.Second).Should(Equal([]int{200, 200, 401}))
}
