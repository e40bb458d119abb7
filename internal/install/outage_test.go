package install

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// apiProxy stands between the operator's processes and the API server: a TCP
// forwarder the test can cut (every open connection closed, every new one
// closed at once, as when the API server is down or partitioned away) and
// restore. etcd and the API server keep running, so the cluster's state is
// intact when it comes back, as after an API server restart.
type apiProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	// refused: the listener is closed until restore (refuse).
	refused bool
	t       testing.TB
}

func newAPIProxy(t testing.TB, target string) *apiProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, t: t}
	t.Cleanup(func() { p.refuse() })
	go p.serve(ln)
	return p
}

func (p *apiProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		go p.forward(c)
	}
}

func (p *apiProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
	go pipe(up, c)
	go pipe(c, up)
	<-done
	_ = c.Close()
	_ = up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes every connection through the proxy and refuses new ones.
func (p *apiProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// refuse is cut, and new connections are refused rather than closed once
// accepted, as when the API server's process is stopped: client-go retries
// a watch whose connection is refused from where it was (where an accepted
// and closed one makes it list again), so the watches it resumes after
// restore meet whatever happened to the server meanwhile.
func (p *apiProxy) refuse() {
	p.cut()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refused {
		p.refused = true
		_ = p.ln.Close()
	}
}

func (p *apiProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	if p.refused {
		ln, err := net.Listen("tcp", p.ln.Addr().String())
		if err != nil {
			p.t.Errorf("listening on the proxy's address again: %v", err)
			return
		}
		p.ln, p.refused = ln, false
		go p.serve(ln)
	}
}

// config is cfg reaching the API server through the proxy.
func (p *apiProxy) config(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	u, _ := url.Parse(cfg.Host)
	p.mu.Lock()
	u.Host = p.ln.Addr().String()
	p.mu.Unlock()
	cfg.Host = u.String()
	return cfg
}

// supervise restarts a process that exits, as the kubelet restarts a
// container, until the test ends; it returns the process running now.
type supervised struct {
	mu       sync.Mutex
	p        *process
	restarts int
}

func (s *supervised) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

func supervise(t *testing.T, name string, start func(name string) *process, stop <-chan struct{}) *supervised {
	s := &supervised{p: start(name)}
	go func() {
		for {
			p := s.current()
			select {
			case <-stop:
				return
			case <-p.done:
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second): // the kubelet's first back-off
			}
			s.mu.Lock()
			s.restarts++
			s.p = start(fmt.Sprintf("%s-restart-%d", name, s.restarts))
			s.mu.Unlock()
		}
	}()
	return s
}

// Issue 14, faults: the API server is unreachable for a while (short in
// `make test`, 30 s in `make chaos`), long enough for the leader to lose its
// lease, with two manager replicas under leader election as the chart runs
// them: with the verifier in its own Deployment (the chart's default), and
// served by the managers themselves (verifier.servedByManager). Throughout,
// every running verifier answers a valid token 200 and a revoked one 401 from
// its cache: verification never depends on leadership. Afterwards the
// operator converges what was created just before the outage.
func TestAPIServerOutage(t *testing.T) {
	t.Run("verifier Deployment", func(t *testing.T) { apiServerOutage(t, "lk-outage", false) })
	t.Run("verifier served by the manager", func(t *testing.T) { apiServerOutage(t, "lk-outage-m", true) })
}

func apiServerOutage(t *testing.T, ns string, servedByManager bool) {
	outage := time.Duration(chaosSize("OUTAGE_SECONDS", 12, 30)) * time.Second
	apps := "apps-" + ns
	ensureNamespace(t, ns)
	ensureNamespace(t, apps)
	var set []string
	if servedByManager {
		set = append(set, "verifier.servedByManager=true")
	}
	objs := helmTemplate(t, ns, set...)
	args, podNS := managerArgs(t, objs, "latchkey")
	ensureNamespace(t, flagValue(t, args, "--token-namespace"))
	if !strings.Contains(strings.Join(args, " "), "--leader-elect") {
		t.Fatalf("the chart's manager args lack --leader-elect: %v", args)
	}
	apiURL, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newAPIProxy(t, apiURL.Host)
	kubeconfig := writeKubeconfig(t, proxy.config(env.Config))

	stop := make(chan struct{})
	defer close(stop)
	var managers []*supervised
	for _, name := range []string{"replica-a", "replica-b"} {
		managers = append(managers, supervise(t, name, func(n string) *process {
			return startManager(t, n, args, podNS, kubeconfig, "--enable-webhooks=false")
		}, stop))
	}
	// The verifiers: the Deployment's, or each manager's.
	verifiers := func() []*process {
		var out []*process
		for _, m := range managers {
			out = append(out, m.current())
		}
		return out
	}
	if !servedByManager {
		vargs, vNS := managerArgs(t, objs, "latchkey-verifier")
		ver := startManager(t, "verifier", vargs, vNS, kubeconfig)
		verifiers = func() []*process { return []*process{ver} }
	}
	for _, v := range verifiers() {
		v.waitReady(t, 60*time.Second)
	}

	for _, n := range []string{"keep", "gone"} {
		issue(t, apps, n)
	}
	valid := secretValue(t, apps, "keep-token", "token")
	revoked := secretValue(t, apps, "gone-token", "token")
	for _, v := range verifiers() {
		assertVerifies(t, v, valid)
	}
	g := &latchkeyv1alpha1.CredentialGrant{}
	g.Namespace, g.Name = apps, "gone-token"
	if err := env.Client.Delete(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	verify := func(v *process, tok string) (int, error) {
		code, _, err := get(v.verifier, "/v1/verify", http.Header{"Authorization": {"Bearer " + tok}})
		return code, err
	}
	for _, v := range verifiers() {
		deadline := time.Now().Add(30 * time.Second)
		for code, _ := verify(v, revoked); code != http.StatusUnauthorized; code, _ = verify(v, revoked) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the deleted grant's token still gets %d", v.name, code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Poll every verifier through the outage and after it.
	var mu sync.Mutex
	var failures []string
	var answered int
	polling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-polling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, v := range verifiers() {
				for tok, want := range map[string]int{valid: http.StatusOK, revoked: http.StatusUnauthorized} {
					code, err := verify(v, tok)
					mu.Lock()
					answered++
					if err != nil || code != want {
						failures = append(failures, fmt.Sprintf("%s %s: /v1/verify %d (want %d) %v", time.Now().Format(time.StampMilli), v.name, code, want, err))
					}
					mu.Unlock()
				}
			}
		}
	})

	// Created just before the outage: converged after it.
	late := &latchkeyv1alpha1.ApiClient{}
	late.Namespace, late.Name = apps, "late"
	late.Spec = latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}
	lateGrant := &latchkeyv1alpha1.CredentialGrant{}
	lateGrant.Namespace, lateGrant.Name = apps, "late-token"
	lateGrant.Spec.ClientName = "late"
	for _, o := range []client.Object{late, lateGrant} {
		if err := env.Client.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	proxy.cut()
	t.Logf("API server unreachable for %s", outage)
	time.Sleep(outage)
	proxy.restore()
	t.Logf("API server reachable again")

	// keep, gone (the client), late and their grants, but gone-token.
	waitAllReady(t, apps, 5, 2*time.Minute)
	for _, v := range verifiers() {
		assertVerifies(t, v, secretValue(t, apps, "late-token", "token"))
	}
	close(polling)
	wg.Wait()
	restarts := 0
	for _, m := range managers {
		m.mu.Lock()
		restarts += m.restarts
		m.mu.Unlock()
	}
	for _, v := range verifiers() {
		if err := v.exitedEarly(); err != nil {
			t.Errorf("verifier %s exited: %v", v.name, err)
		}
	}
	if servedByManager {
		// The outage outlasted the lease: the leader lost it, and its
		// controllers stopped while its verifier served on.
		lost := false
		for _, m := range managers {
			b, _ := os.ReadFile(m.current().log.Name())
			lost = lost || strings.Contains(string(b), "Lost the leader lease")
		}
		if !lost {
			t.Errorf("no replica lost its lease during a %s outage: the test did not test leadership loss", outage)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d verify answers through a %s outage, %d wrong; manager restarts: %d", answered, outage, len(failures), restarts)
	if len(failures) > 0 {
		t.Fatalf("the verifier did not answer from its cache during the outage (%d of %d wrong):\n%s", len(failures), answered, strings.Join(failures, "\n"))
	}
}
