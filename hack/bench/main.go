// Command bench measures the verification service on this machine, in one
// run, against baselines under the same load (make bench):
//
//   - verify, valid and unknown credentials, driven by wrk (an external
//     load generator, pinned to CPU 1) against a child process pinned to
//     CPU 0 with GOMAXPROCS=1 that serves a verifier-only manager and two
//     null handlers behind the same http.Server (verifier.NewHTTPServer):
//     a bare one and one that sends the same six identity headers
//     (serve.go, wrk.go); req/s, p50, p99 and the verify/null ratios
//     against their goals;
//   - gRPC ext_authz (Authorization/Check), valid and unknown credentials,
//     against a null gRPC Authorization server in the same binary that
//     answers OK with the same headers (grpc.go);
//   - kube-apiserver TokenReview of a ServiceAccount token (what a gateway
//     would do with Kubernetes tokens instead);
//   - revocation latency (DELETE returned → verifier rejects) against a plain
//     informer's create→event latency, the floor of any watch-based system;
//   - waves of concurrent wrong guesses against a user-chosen secret (from
//     one source, and from spoofed sources): the heap peak against the
//     chart's memory limit, and a bearer token's req/s during them against
//     unloaded (abuse.go, -guesses);
//   - the heap that tenant Secrets carrying Latchkey's label cost the
//     manager's cache (cache.go, -tenant-secrets).
//
// It starts its own control plane (KUBEBUILDER_ASSETS) and operator and
// sends traffic only to loopback. Numbers go to stdout as a Markdown table.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/token"
)

var (
	duration    = flag.Duration("duration", 5*time.Second, "load duration per scenario")
	concurrency = flag.Int("concurrency", 16, "concurrent keep-alive connections")
	trials      = flag.Int("trials", 100, "revocation and informer-floor trials")
	rounds      = flag.Int("rounds", 5, "scenarios run interleaved in this many rounds, so background load on the machine hits them alike")
	cpuProfile  = flag.String("cpuprofile", "", "write CPU profiles of the server process while wrk drives each HTTP scenario (last round) to this path with the scenario's short name appended (.verify, .null, .headers, .unknown)")
	httpOnly    = flag.Bool("http-only", false, "run only the wrk scenarios (HTTP verify and the null handlers), for measuring a change of the hot path")
	serveMode   = flag.Bool("serve", false, "internal: be the child that serves the verifier and the null handlers (serve.go)")
	kubeconfig  = flag.String("serve-kubeconfig", "", "internal: the child's kubeconfig")
)

func main() {
	flag.Parse()
	run := run
	if *serveMode {
		run = func() error { return serve(*kubeconfig) }
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name string
	fn   func(hc *http.Client, i int) error
	// grpc, when set instead of fn, calls Authorization/Check at grpcAddr
	// (grpc.go).
	grpc     func(c authv3.AuthorizationClient, i int) error
	grpcAddr string
}

type result struct {
	name     string
	requests int
	errors   int
	elapsed  time.Duration
	lat      []time.Duration
	rps      float64
	p50, p99 time.Duration
}

func (r result) add(o result) result {
	r.name = o.name
	r.requests += o.requests
	r.errors += o.errors
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	return r
}

func (r *result) finish() {
	r.rps = float64(r.requests) / r.elapsed.Seconds()
	r.p50, r.p99 = percentiles(r.lat)
}

func run() error {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client
	for _, ns := range []string{"bench", "latchkey-system"} {
		if err := env.EnsureNamespace(ctx, ns); err != nil {
			return err
		}
	}

	vln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mgr, err := operator.NewManager(env.Config, operator.Options{Namespace: "latchkey-system", MetricsAddr: "0", VerifierListener: vln, VerifierGRPCListener: gln})
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: manager:", err)
			os.Exit(1)
		}
	}()
	verifyURL := "http://" + vln.Addr().String() + "/v1/verify"

	cl := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "bench"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
	if err := c.Create(ctx, cl); err != nil {
		return err
	}
	g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "bench-token", Namespace: "bench"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "bench"}}
	if err := c.Create(ctx, g); err != nil {
		return err
	}
	if err := waitReady(ctx, c, g); err != nil {
		return err
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "bench", Name: "bench-token"}, &sec); err != nil {
		return err
	}
	valid := string(sec.Data[latchkeyv1alpha1.TokenKey])
	if err := waitStatus(ctx, verifyURL, valid, http.StatusOK); err != nil {
		return err
	}
	unknown := make([]string, 1024)
	for i := range unknown {
		t, _ := token.New()
		unknown[i] = t.String()
	}

	// The HTTP scenarios' server: a child process pinned to CPU 0 (serve.go).
	kc, err := testenv.WriteKubeconfig(env.Config, "")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(kc) }()
	child, command, stopChild, err := serveChild(kc)
	if err != nil {
		return err
	}
	defer stopChild()
	if err := waitStatus(ctx, child.Verify, valid, http.StatusOK); err != nil {
		return fmt.Errorf("the pinned verifier: %w", err)
	}
	httpScenarios := []wrkScenario{
		{name: "verify, valid token (wrk)", short: "verify", url: child.Verify, auth: "Bearer " + valid, want: http.StatusOK},
		{name: "null handler (wrk)", short: "null", url: child.Null, auth: "Bearer " + valid, want: http.StatusOK},
		{name: "null handler + the six identity headers (wrk)", short: "headers", url: child.Headers, auth: "Bearer " + valid, want: http.StatusOK},
		{name: "verify, unknown token (wrk)", short: "unknown", url: child.Verify, auth: "Bearer " + unknown[0], want: http.StatusUnauthorized},
	}

	saToken, err := serviceAccountToken(ctx, env.Config)
	if err != nil {
		return err
	}
	kcfg := rest.CopyConfig(env.Config)
	kcfg.QPS, kcfg.Burst = -1, 0
	kube, err := kubernetes.NewForConfig(kcfg)
	if err != nil {
		return err
	}

	// The gRPC floor: a null Authorization server answering OK with the
	// same headers_to_set and headers_to_remove (grpc.go).
	nullGRPC, stopNullGRPC, err := startNullGRPC()
	if err != nil {
		return err
	}
	defer stopNullGRPC()
	checkValid, checkUnknown := checkRequests(valid, unknown)

	scenarios := []scenario{
		{name: "null gRPC Authorization server (OK + the same headers)", grpcAddr: nullGRPC, grpc: func(c authv3.AuthorizationClient, _ int) error {
			return check(c, checkValid, true)
		}},
		{name: "gRPC Check, valid token", grpcAddr: gln.Addr().String(), grpc: func(c authv3.AuthorizationClient, _ int) error {
			return check(c, checkValid, true)
		}},
		{name: "gRPC Check, unknown token", grpcAddr: gln.Addr().String(), grpc: func(c authv3.AuthorizationClient, i int) error {
			return check(c, checkUnknown[i%len(checkUnknown)], false)
		}},
		{name: "kube-apiserver TokenReview", fn: func(_ *http.Client, _ int) error {
			tr, err := kube.AuthenticationV1().TokenReviews().Create(context.Background(),
				&authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: saToken}}, metav1.CreateOptions{})
			if err == nil && !tr.Status.Authenticated {
				err = fmt.Errorf("token not authenticated: %s", tr.Status.Error)
			}
			return err
		}},
	}
	results := make([]result, len(scenarios))
	perRound := make([][]wrkResult, len(httpScenarios))
	per := *duration / time.Duration(*rounds)
	for round := range *rounds {
		for i, sc := range httpScenarios {
			profile := *cpuProfile != "" && round == *rounds-1
			if profile {
				if err := command("profile " + *cpuProfile + "." + sc.short); err != nil {
					return err
				}
			}
			cpu0, err := cpuTime(child.pid)
			if err != nil {
				return err
			}
			r, err := runWrk(sc.url, sc.auth, *concurrency, per)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			cpu1, err := cpuTime(child.pid)
			if err != nil {
				return err
			}
			r.serverCPU = cpu1 - cpu0
			if profile {
				if err := command("stop"); err != nil {
					return err
				}
			}
			perRound[i] = append(perRound[i], r)
		}
		for i, sc := range scenarios {
			if *httpOnly {
				break
			}
			var r result
			if sc.grpc != nil {
				r = loadGRPC(sc.name, per, sc.grpcAddr, sc.grpc)
			} else {
				r = load(sc.name, per, sc.fn)
			}
			results[i] = results[i].add(r)
		}
	}
	for i := range results {
		results[i].finish()
	}
	httpResults := make([]result, len(httpScenarios))
	for i, sc := range httpScenarios {
		httpResults[i] = sc.summary(perRound[i])
	}

	revP50, revP99, err := revocation(ctx, c, verifyURL)
	if err != nil {
		return err
	}
	floorP50, floorP99, err := informerFloor(ctx, env.Config)
	if err != nil {
		return err
	}

	pin := "unpinned (one CPU)"
	if pinned() {
		pin = "verifier and null handlers in one child process on CPU 0 with GOMAXPROCS 1, wrk -t1 on CPU 1"
	}
	fmt.Printf("\n## Verifier benchmark (%s, %d cores, %d connections, %v per scenario in %d interleaved rounds; HTTP: %s; gRPC and TokenReview: Go clients, in-process operator, GOMAXPROCS %d)\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), *concurrency, *duration, *rounds, pin, runtime.GOMAXPROCS(0))
	fmt.Println("| scenario | requests | errors | req/s | p50 | p99 |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	all := httpResults
	if !*httpOnly {
		all = append(all, results...)
	}
	for _, r := range all {
		fmt.Printf("| %s | %d | %d | %.0f | %v | %v |\n", r.name, r.requests, r.errors, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	}
	fmt.Println("\nHTTP figures: wrk's req/s summed over the rounds; p50 and p99: the median of the rounds' own.")
	fmt.Println()
	printRatios(perRound[0], perRound[1], perRound[2])
	printRounds(httpScenarios, perRound)
	if *httpOnly {
		return nil
	}
	validR, tr := httpResults[0], results[3]
	nullGRPCR, checkR := results[0], results[1]
	fmt.Printf("\n| revocation (%d trials) | p50 | p99 |\n|---|---:|---:|\n", *trials)
	fmt.Printf("| DELETE returned → verifier rejects | %v | %v |\n", revP50.Round(time.Microsecond), revP99.Round(time.Microsecond))
	fmt.Printf("| plain informer: Create returned → event | %v | %v |\n", floorP50.Round(time.Microsecond), floorP99.Round(time.Microsecond))
	fmt.Println()
	check := func(name string, ok bool, detail string) {
		mark := "met"
		if !ok {
			mark = "NOT met"
		}
		fmt.Printf("- %s: %s (%s)\n", name, mark, detail)
	}
	check("verify ≥ 10× TokenReview", validR.rps >= 10*tr.rps, fmt.Sprintf("%.1f×", validR.rps/tr.rps))
	check("gRPC Check ≥ 0.85× null gRPC Authorization server", checkR.rps >= 0.85*nullGRPCR.rps,
		fmt.Sprintf("%.2f×; p99 %v vs %v; gRPC Check / HTTP verify %.2f×", checkR.rps/nullGRPCR.rps,
			checkR.p99.Round(time.Microsecond), nullGRPCR.p99.Round(time.Microsecond), checkR.rps/validR.rps))
	check("revocation p99 ≤ informer floor p99 + 50 ms", revP99 <= floorP99+50*time.Millisecond,
		fmt.Sprintf("%v vs %v", revP99.Round(time.Microsecond), (floorP99+50*time.Millisecond).Round(time.Microsecond)))
	// Wrong guesses against a user-chosen secret: heap and bearer req/s (abuse.go).
	if err := abuseFigures(ctx, c, "http://"+vln.Addr().String(), valid); err != nil {
		return err
	}
	// Tenant Secrets carrying Latchkey's label: the manager's cache cost (cache.go).
	return tenantSecretFigures(ctx, c, env.Config, mgr)
}

// load runs fn from *concurrency workers for *duration, each with its own
// keep-alive connection.
func load(name string, d time.Duration, fn func(hc *http.Client, i int) error) result {
	return drive(name, d, func() (func(i int) error, func()) {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 10 * time.Second}
		return func(i int) error { return fn(hc, i) }, hc.CloseIdleConnections
	})
}

// drive runs *concurrency workers for d; newWorker gives each its request
// function and what closes its connection.
func drive(name string, d time.Duration, newWorker func() (call func(i int) error, done func())) result {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		errCount atomic.Int64
		n        atomic.Int64
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for w := range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call, done := newWorker()
			defer done()
			lat := make([]time.Duration, 0, 1<<16)
			for i := w; time.Now().Before(deadline); i += *concurrency {
				t0 := time.Now()
				if err := call(i); err != nil {
					errCount.Add(1)
				}
				lat = append(lat, time.Since(t0))
				n.Add(1)
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return result{name: name, requests: int(n.Load()), errors: int(errCount.Load()), elapsed: time.Since(start), lat: all}
}

func get(hc *http.Client, url, auth string, want int) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	return nil
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)]
}

// revocation measures DELETE-returned → first 401, over *trials grants.
func revocation(ctx context.Context, c client.Client, url string) (p50, p99 time.Duration, err error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	grants := make([]*latchkeyv1alpha1.CredentialGrant, *trials)
	for i := range grants {
		grants[i] = &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rev-%d", i), Namespace: "bench"},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "bench"}}
		if err := c.Create(ctx, grants[i]); err != nil {
			return 0, 0, err
		}
	}
	var lat []time.Duration
	for _, g := range grants {
		if err := waitReady(ctx, c, g); err != nil {
			return 0, 0, err
		}
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "bench", Name: g.Name}, &sec); err != nil {
			return 0, 0, err
		}
		tok := "Bearer " + string(sec.Data[latchkeyv1alpha1.TokenKey])
		if err := waitStatus(ctx, url, string(sec.Data[latchkeyv1alpha1.TokenKey]), http.StatusOK); err != nil {
			return 0, 0, err
		}
		if err := c.Delete(ctx, g); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		for get(hc, url, tok, http.StatusUnauthorized) != nil {
			if time.Since(t0) > 10*time.Second {
				return 0, 0, fmt.Errorf("grant %s still accepted 10 s after DELETE", g.Name)
			}
			time.Sleep(500 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 = percentiles(lat)
	return p50, p99, nil
}

// informerFloor measures a plain client-go informer's Create-returned →
// event-delivered latency on ConfigMaps.
func informerFloor(ctx context.Context, cfg *rest.Config) (p50, p99 time.Duration, err error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, 0, err
	}
	seen := make(chan string, 16)
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace("bench"))
	inf := f.Core().V1().ConfigMaps().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(o any) {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			seen <- cm.Name
		}
	}}); err != nil {
		return 0, 0, err
	}
	stop := make(chan struct{})
	defer close(stop)
	f.Start(stop)
	f.WaitForCacheSync(stop)
	var lat []time.Duration
	for i := range *trials {
		name := fmt.Sprintf("floor-%d", i)
		if _, err := kube.CoreV1().ConfigMaps("bench").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		for got := ""; got != name; {
			select {
			case got = <-seen:
			case <-time.After(10 * time.Second):
				return 0, 0, fmt.Errorf("no informer event for %s", name)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 = percentiles(lat)
	return p50, p99, nil
}

func serviceAccountToken(ctx context.Context, cfg *rest.Config) (string, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "gateway", Namespace: "bench"}}
	if _, err := kube.CoreV1().ServiceAccounts("bench").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	tr, err := kube.CoreV1().ServiceAccounts("bench").CreateToken(ctx, "gateway", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a ServiceAccount token: %w", err)
	}
	return tr.Status.Token, nil
}

func waitReady(ctx context.Context, c client.Client, g *latchkeyv1alpha1.CredentialGrant) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(g), g); err == nil && meta.IsStatusConditionTrue(g.Status.Conditions, latchkeyv1alpha1.ConditionReady) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("grant %s not Ready: %+v", g.Name, g.Status.Conditions)
}

func waitStatus(ctx context.Context, url, tok string, want int) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if get(hc, url, "Bearer "+tok, want) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("verifier never answered %d", want)
}
