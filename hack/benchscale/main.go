// Command benchscale measures Latchkey at scale against a real API server
// (`make bench-scale N=5000`): N ApiClients with one grant each, against a
// floor that makes the same writes with the same client settings in the same
// run. It prints one table and writes it into docs/performance.md.
//
// Figures:
//   - time to converge (every object Ready), the operator against the floor;
//   - API requests by verb and resource, against the floor's;
//   - the operator's writes while idle after converging (the heartbeat and
//     the leader lease excluded: they are per interval, not per object);
//   - live heap per backing token (after GC) of a verifier-only manager and
//     of a full one, in this process, over the same process's baseline;
//   - restart to the first 200 at /v1/verify of the binary run as the
//     chart's verifier Deployment (--verifier-only) and as a manager that
//     serves the verifier too; the manager's RSS; both again with N
//     unrelated 100 KB Secrets in the cluster.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
)

var (
	n         = flag.Int("n", 1000, "ApiClients, each with one CredentialGrant")
	qps       = flag.Float64("qps", 50, "client QPS of the operator and of the floor (the manager's --kube-api-qps default is 50)")
	burst     = flag.Int("burst", 100, "client burst of the operator and of the floor")
	idle      = flag.Duration("idle", 5*time.Minute, "how long to count the operator's writes after it converged")
	unrelated = flag.Int("unrelated", -1, "unrelated 100 KB Secrets for the last figure (default: N)")
	profiles  = flag.String("heap-profiles", "", "directory to write the heap profiles of the heap figures into (go tool pprof)")
	cpuProf   = flag.String("cpu-profile", "", "file to write a CPU profile of this process (the operator) while it converges")
	docPath   = flag.String("doc", "docs/performance.md", "file to write the table into (between bench-scale markers); empty: print only")
	compress  = flag.Bool("compression", false, "run the operator with --kube-api-compression (gzip from the API server)")
	apiProf   = flag.String("apiserver-profiles", "", "directory to write CPU profiles of kube-apiserver into, taken while each side converges (go tool pprof)")
)

// floorLabel marks the floor's Secrets, so that they are deleted before the
// operator starts: the operator then works in a cluster as large as the one
// the floor worked in. No selector of the operator's matches it.
const floorLabel = "bench.latchkey.dev/floor"

func main() {
	flag.Parse()
	if *profiles != "" {
		// Fine-grained enough to tell what each token costs.
		runtime.MemProfileRate = 4096
	}
	if *unrelated < 0 {
		*unrelated = *n
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-scale:", err)
		os.Exit(1)
	}
}

type row struct{ what, measured, floor, ratio string }

func run() error {
	started := time.Now()
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	admin := fastClient(env.Config)
	for _, ns := range []string{"floor", "apps", "latchkey-system", "unrelated"} {
		if err := env.EnsureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	bin, err := buildManager()
	if err != nil {
		return err
	}
	var rows []row
	add := func(what, measured, floor, ratio string) {
		rows = append(rows, row{what, measured, floor, ratio})
		fmt.Fprintf(os.Stderr, "bench-scale: %s: %s (floor %s) %s\n", what, measured, floor, ratio)
	}

	// The floor: the objects exist, then the writes that converging them
	// needs, made once each, by workers as many as the operator's reconcilers.
	step("creating %d clients and %d grants for the floor", *n, *n)
	if err := createObjects(ctx, admin, "floor"); err != nil {
		return err
	}
	var floorLog testenv.Requests
	floorCfg := floorLog.Wrap(env.Config)
	floorCfg.QPS, floorCfg.Burst, floorCfg.DisableCompression = float32(*qps), *burst, !*compress
	floorClient, err := client.New(floorCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return err
	}
	api, err := apiServerProcess(env.Config)
	if err != nil {
		return err
	}
	step("floor writes")
	t0 := time.Now()
	floorProf := profileAPIServer(ctx, env.Config, "floor")
	apiCPU0 := api.cpu()
	if err := parallel(8, *n, func(i int) error { return floorWrites(ctx, floorClient, i) }); err != nil {
		return err
	}
	floorTime := time.Since(t0)
	floorAPICPU := api.cpu() - apiCPU0
	floorReqs := floorLog.Snapshot()
	if err := floorProf(); err != nil {
		return err
	}
	// The operator must not see the floor's objects. (Its Secrets carry no
	// label, so no cache of the operator's holds them: the label costs a
	// write nothing.) Deleted by collection: at N=50,000 one by one would
	// take long.
	step("deleting the floor's objects")
	for _, obj := range []client.Object{&latchkeyv1alpha1.ApiClient{}, &latchkeyv1alpha1.CredentialGrant{}} {
		if err := deleteAll(ctx, admin, obj, "floor"); err != nil {
			return err
		}
	}
	for _, ns := range []string{"floor", "latchkey-system"} {
		if err := deleteAll(ctx, admin, &corev1.Secret{}, ns, client.HasLabels{floorLabel}); err != nil {
			return err
		}
	}

	// The operator: the objects exist, then the manager starts.
	step("creating %d clients and %d grants for the operator", *n, *n)
	if err := createObjects(ctx, admin, "apps"); err != nil {
		return err
	}
	var opLog testenv.Requests
	opCfg := opLog.Wrap(env.Config)
	vln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mctx, stop := context.WithCancel(ctx)
	mgr, err := operator.NewManager(opCfg, operator.Options{Namespace: "latchkey-system", MetricsAddr: "0",
		QPS: float32(*qps), Burst: *burst, APICompression: *compress, VerifierListener: vln, SkipControllerNameValidation: true})
	if err != nil {
		stop()
		return err
	}
	// The operator's progress is read from a watch, started (and listed)
	// before the clock: polling a LIST of every object would cost the API
	// server a scan and an encoding of all 2N objects per poll while the
	// operator works, a cost the floor does not pay (at N=10000, polled
	// every 500 ms, such LISTs took 27 % of kube-apiserver's CPU).
	progress, err := watchReady(ctx, env.Config, "apps")
	if err != nil {
		stop()
		return err
	}
	step("operator converging")
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			stop()
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			stop()
			return err
		}
	}
	t0 = time.Now()
	opProf := profileAPIServer(ctx, env.Config, "operator")
	apiCPU0 = api.cpu()
	mdone := make(chan error, 1)
	go func() { mdone <- mgr.Start(mctx) }()
	err = waitReady(ctx, progress, 2**n, time.Hour)
	progress.stop()
	if err != nil {
		stop()
		return err
	}
	opTime := time.Since(t0)
	opAPICPU := api.cpu() - apiCPU0
	if err := opProf(); err != nil {
		stop()
		return err
	}
	if *cpuProf != "" {
		pprof.StopCPUProfile()
	}
	opReqs := opLog.Snapshot()
	step("counting writes while idle for %s", *idle)
	before := opLog.Snapshot()
	time.Sleep(*idle)
	idleWrites := 0
	for k, v := range opLog.Snapshot() {
		if !strings.HasPrefix(k, "get ") && !strings.HasPrefix(k, "list ") && !strings.HasPrefix(k, "watch ") &&
			!strings.Contains(k, "heartbeat") && !strings.Contains(k, "leases") {
			idleWrites += v - before[k]
		}
	}
	stop()
	if err := <-mdone; err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	token, err := grantToken(ctx, admin, "apps", "g00000")
	if err != nil {
		return err
	}

	add(fmt.Sprintf("converge %d clients + %d grants", *n, *n), dur(opTime), dur(floorTime), ratio(opTime.Seconds(), floorTime.Seconds(), 1.3))
	perPair := func(cpu float64) string { return fmt.Sprintf("%.1f ms", cpu/float64(*n)*1000) }
	add("kube-apiserver CPU per client and grant while converging", perPair(opAPICPU), perPair(floorAPICPU), fmt.Sprintf("%.2f×", opAPICPU/floorAPICPU))
	opTotal, floorTotal := testenv.RequestTotal(opReqs, "watch "), testenv.RequestTotal(floorReqs, "")
	add("API requests to converge", strconv.Itoa(opTotal), strconv.Itoa(floorTotal), ratio(float64(opTotal), float64(floorTotal), 1.5))
	perObject := []string{}
	for k, v := range opReqs {
		if (strings.HasPrefix(k, "list ") || strings.HasPrefix(k, "get ")) && v >= *n/10 {
			perObject = append(perObject, fmt.Sprintf("%s: %d", k, v))
		}
	}
	sort.Strings(perObject)
	add("per-object LIST or GET", orNone(perObject), "none", pass(len(perObject) == 0))
	add(fmt.Sprintf("writes while idle (%s, heartbeat excluded)", *idle), strconv.Itoa(idleWrites), "0", pass(idleWrites == 0))
	fmt.Fprintf(os.Stderr, "operator requests:\n%sfloor requests:\n%s", testenv.RequestTable(opReqs), testenv.RequestTable(floorReqs))

	// Heap per backing token, in this process: a verifier-only manager,
	// then a full one, each over the baseline measured just before it.
	tokens := 2 * *n
	for _, verifierOnly := range []bool{true, false} {
		heap, err := heapPerToken(ctx, env.Config, verifierOnly, token)
		if err != nil {
			return err
		}
		what, goal := "live heap per token, manager", 4096.0
		if verifierOnly {
			what, goal = "live heap per token, verifier-only", 2048.0
		}
		add(what, fmt.Sprintf("%.0f B", heap/float64(tokens)), fmt.Sprintf("goal ≤ %.0f B", goal), pass(heap/float64(tokens) <= goal))
	}

	// The binary: restart to the first 200, and RSS; then again with N
	// unrelated Secrets in the cluster.
	kubeconfig, err := testenv.WriteKubeconfig(env.Config, "")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(kubeconfig) }()
	// The chart's verifier Deployment (--verifier-only) is what gateways
	// call: its restart is the figure the goal is about. A manager that
	// serves the verifier itself (verifier.servedByManager, or make run)
	// answers once every informer synced, consumer Secrets included.
	vFirstOK, _, err := restarts(bin, kubeconfig, token, true)
	if err != nil {
		return err
	}
	add(fmt.Sprintf("restart to first 200, --verifier-only (%d tokens)", tokens), vFirstOK.String(), "goal ≤ 10s", pass(vFirstOK.median <= 10*time.Second))
	firstOK, rss, err := restarts(bin, kubeconfig, token, false)
	if err != nil {
		return err
	}
	add(fmt.Sprintf("restart to first 200, manager serving the verifier (%d tokens)", tokens), firstOK.String(), "", "")
	step("creating %d unrelated 100 KB Secrets", *unrelated)
	payload := bytes.Repeat([]byte{'x'}, 100<<10)
	if err := parallel(8, *unrelated, func(i int) error {
		return admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "unrelated", Name: fmt.Sprintf("s%06d", i)},
			Data: map[string][]byte{"blob": payload}})
	}); err != nil {
		return err
	}
	firstOK2, rss2, err := restarts(bin, kubeconfig, token, false)
	if err != nil {
		return err
	}
	add("manager RSS", mib(rss), "", "")
	add(fmt.Sprintf("manager RSS with %d unrelated 100 KB Secrets", *unrelated), mib(rss2), mib(rss), fmt.Sprintf("%.2f×", rss2/rss))
	add("restart to first 200 with them", firstOK2.String(), dur(firstOK.median), fmt.Sprintf("%.2f×", firstOK2.median.Seconds()/firstOK.median.Seconds()))

	out := render(rows, time.Since(started))
	fmt.Print(out)
	if *docPath != "" {
		return writeDoc(*docPath, out)
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-scale: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

// fastClient is an administrator client for set-up, not rate limited like
// the measured ones.
func fastClient(cfg *rest.Config) client.Client {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		panic(err)
	}
	return c
}

func createObjects(ctx context.Context, c client.Client, ns string) error {
	return parallel(16, *n, func(i int) error {
		ac := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%05d", i)},
			Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"}}
		g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("g%05d", i)},
			Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: ac.Name}}
		if err := c.Create(ctx, ac); err != nil {
			return err
		}
		return c.Create(ctx, g)
	})
}

// floorWrites makes by hand what converging client i and its grant writes:
// the id claim, two backing tokens and two consumer Secrets, two finalizers,
// two status writes.
func floorWrites(ctx context.Context, c client.Client, i int) error {
	for _, s := range floorSecrets(i) {
		if err := c.Create(ctx, s); err != nil {
			return err
		}
	}
	objs := []client.Object{
		&latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Namespace: "floor", Name: fmt.Sprintf("c%05d", i)}},
		&latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: "floor", Name: fmt.Sprintf("g%05d", i)}},
	}
	for _, o := range objs {
		// The operator's finalizer patch: a metadata merge patch, an
		// annotation here so that the floor's objects are deleted by
		// collection afterwards (same request, same write).
		if err := c.Patch(ctx, o, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"latchkey.dev/floor":"x"}}}`))); err != nil {
			return err
		}
		status := fmt.Sprintf(`{"status":{"tokenID":"floor","issuedAt":%q}}`, time.Now().UTC().Format(time.RFC3339))
		if err := c.Status().Patch(ctx, o, client.RawPatch(types.MergePatchType, []byte(status))); err != nil {
			return err
		}
	}
	return nil
}

// deleteAll deletes every obj-kind object in ns by collection, again until
// none is left (a collection delete of tens of thousands may outlast the
// request timeout while the API server goes on deleting).
func deleteAll(ctx context.Context, c client.Client, obj client.Object, ns string, opts ...client.DeleteAllOfOption) error {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return err
	}
	list, err := c.Scheme().New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return err
	}
	for range 60 {
		if err := c.DeleteAllOf(ctx, obj, append([]client.DeleteAllOfOption{client.InNamespace(ns)}, opts...)...); err != nil && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) {
			step("deleting %T in %s: %v (again)", obj, ns, err)
		}
		listOpts := []client.ListOption{client.InNamespace(ns), client.Limit(1)}
		for _, o := range opts {
			if lo, ok := o.(client.ListOption); ok {
				listOpts = append(listOpts, lo)
			}
		}
		if err := c.List(ctx, list.(client.ObjectList), listOpts...); err != nil {
			return err
		}
		if meta.LenList(list) == 0 {
			return nil
		}
		time.Sleep(5 * time.Second)
	}
	return fmt.Errorf("%T in %s: not all deleted", obj, ns)
}

// floorSecrets are the Secrets the floor writes for client i.
func floorSecrets(i int) []*corev1.Secret {
	secret := func(ns, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{floorLabel: "true"}},
			Data: map[string][]byte{"k": bytes.Repeat([]byte{'v'}, 64)}}
	}
	return []*corev1.Secret{
		secret("latchkey-system", fmt.Sprintf("floor-claim-%05d", i)), secret("latchkey-system", fmt.Sprintf("floor-c-%05d", i)),
		secret("latchkey-system", fmt.Sprintf("floor-g-%05d", i)), secret("floor", fmt.Sprintf("c%05d", i)), secret("floor", fmt.Sprintf("g%05d", i)),
	}
}

func parallel(workers, count int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= count {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// readyWatch counts the Ready ApiClients and grants of a namespace, from
// informers (a list, then a watch) that keep only their conditions. The
// count is kept by the informers' event handlers: nothing is listed or
// copied per poll, since the harness shares its process and the machine
// with the operator it measures.
type readyWatch struct {
	stop  context.CancelFunc
	mu    sync.Mutex
	ready map[string]bool
}

func watchReady(ctx context.Context, cfg *rest.Config, ns string) (*readyWatch, error) {
	keepConditions := func(in any) (any, error) {
		switch o := in.(type) {
		case *latchkeyv1alpha1.ApiClient:
			return &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, ResourceVersion: o.ResourceVersion},
				Status: latchkeyv1alpha1.ApiClientStatus{Conditions: o.Status.Conditions}}, nil
		case *latchkeyv1alpha1.CredentialGrant:
			return &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, ResourceVersion: o.ResourceVersion},
				Status: latchkeyv1alpha1.CredentialGrantStatus{Conditions: o.Status.Conditions}}, nil
		}
		return in, nil
	}
	c, err := cache.New(cfg, cache.Options{Scheme: operator.NewScheme(), DefaultNamespaces: map[string]cache.Config{ns: {}},
		DefaultTransform: keepConditions})
	if err != nil {
		return nil, err
	}
	w := &readyWatch{ready: map[string]bool{}}
	set := func(obj any, deleted bool) {
		var key string
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *latchkeyv1alpha1.ApiClient:
			key, conds = "c/"+o.Name, o.Status.Conditions
		case *latchkeyv1alpha1.CredentialGrant:
			key, conds = "g/"+o.Name, o.Status.Conditions
		default:
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if !deleted && meta.IsStatusConditionTrue(conds, latchkeyv1alpha1.ConditionReady) {
			w.ready[key] = true
		} else {
			delete(w.ready, key)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	w.stop = cancel
	for _, obj := range []client.Object{&latchkeyv1alpha1.ApiClient{}, &latchkeyv1alpha1.CredentialGrant{}} {
		inf, err := c.GetInformer(cctx, obj)
		if err == nil {
			_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
				AddFunc:    func(o any) { set(o, false) },
				UpdateFunc: func(_, o any) { set(o, false) },
				DeleteFunc: func(o any) {
					if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
						o = t.Obj
					}
					set(o, true)
				},
			})
		}
		if err != nil {
			cancel()
			return nil, err
		}
	}
	go func() { _ = c.Start(cctx) }()
	if !c.WaitForCacheSync(cctx) {
		cancel()
		return nil, fmt.Errorf("the harness's watch of %s did not sync", ns)
	}
	return w, nil
}

// waitReady waits until want objects are Ready, as the watch sees them.
func waitReady(ctx context.Context, w *readyWatch, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := time.Now()
	for {
		w.mu.Lock()
		ready := len(w.ready)
		w.mu.Unlock()
		if ready >= want {
			return nil
		}
		if time.Since(last) > 30*time.Second {
			step("%d of %d Ready", ready, want)
			last = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d objects Ready after %s", ready, want, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func grantToken(ctx context.Context, c client.Client, ns, name string) (string, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return "", err
	}
	return string(s.Data[latchkeyv1alpha1.TokenKey]), nil
}

// heapPerToken is the live heap (after GC) that a manager started in this
// process holds once it answers, over the baseline measured just before.
func heapPerToken(ctx context.Context, cfg *rest.Config, verifierOnly bool, token string) (float64, error) {
	base := liveHeap()
	vln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	mgr, err := operator.NewManager(cfg, operator.Options{Namespace: "latchkey-system", MetricsAddr: "0", VerifierOnly: verifierOnly,
		VerifierListener: vln, SkipControllerNameValidation: true, QPS: float32(*qps), Burst: *burst, APICompression: *compress})
	if err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	if _, err := firstOK("http://"+vln.Addr().String(), token, time.Minute); err != nil {
		return 0, err
	}
	if !verifierOnly {
		// The controllers reconcile every object once after a start: the
		// heap is measured when that is over, not while its work is in
		// flight (at N=50000 it was not over 2 s after the first 200).
		if err := waitQueuesEmpty(ctx, 30*time.Minute); err != nil {
			return 0, err
		}
	}
	time.Sleep(2 * time.Second)
	heap := liveHeap() - base
	if *profiles != "" {
		name := "manager.heap"
		if verifierOnly {
			name = "verifier-only.heap"
		}
		f, err := os.Create(filepath.Join(*profiles, name))
		if err != nil {
			return 0, err
		}
		err = pprof.Lookup("heap").WriteTo(f, 0)
		_ = f.Close()
		if err != nil {
			return 0, err
		}
	}
	stop()
	if err := <-done; err != nil {
		return 0, fmt.Errorf("manager: %w", err)
	}
	return heap, nil
}

// waitQueuesEmpty waits until the controllers' work queues (controller-
// runtime's workqueue metrics, in this process's registry) have held nothing,
// queued or in progress, for 5 s.
func waitQueuesEmpty(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var emptySince time.Time
	for time.Now().Before(deadline) {
		busy := 0.0
		families, err := ctrlmetrics.Registry.Gather()
		if err != nil {
			return err
		}
		for _, mf := range families {
			if mf.GetName() != "workqueue_depth" && mf.GetName() != "workqueue_unfinished_work_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				busy += m.GetGauge().GetValue()
			}
		}
		switch {
		case busy > 0:
			emptySince = time.Time{}
		case emptySince.IsZero():
			emptySince = time.Now()
		case time.Since(emptySince) >= 5*time.Second:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("the controllers' queues were not empty after %s", timeout)
}

func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

// firstOK polls verify with token until it answers 200.
func firstOK(base, token string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Since(start) < timeout {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/verify", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("no 200 at %s within %s", base, timeout)
}

func buildManager() (string, error) {
	dir, err := os.MkdirTemp("", "bench-scale-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd")
	cmd.Dir = testenv.RepoRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return bin, cmd.Run()
}

// spread is the median of three timings, with the least and the most.
type spread struct{ median, least, most time.Duration }

func (s spread) String() string {
	return fmt.Sprintf("%s (%s–%s)", dur(s.median), dur(s.least), dur(s.most))
}

// restarts times three restarts (restart), each after a 10 s pause so that
// the API server has settled from what came before. It returns the spread of
// their times to the first 200 and the median RSS.
func restarts(bin, kubeconfig, token string, verifierOnly bool) (spread, float64, error) {
	var took []time.Duration
	var rss []float64
	for range 3 {
		time.Sleep(10 * time.Second)
		t, r, err := restart(bin, kubeconfig, token, verifierOnly)
		if err != nil {
			return spread{}, 0, err
		}
		took, rss = append(took, t), append(rss, r)
	}
	slices.Sort(took)
	slices.Sort(rss)
	return spread{took[1], took[0], took[2]}, rss[1], nil
}

// restart runs the manager binary (controllers and verifier, no webhook, no
// leader election; or, verifierOnly, the verifier alone, as the chart's
// verifier Deployment runs it) and measures the time from exec to the first
// 200 for token, then its RSS once settled. It stops it again.
func restart(bin, kubeconfig, token string, verifierOnly bool) (time.Duration, float64, error) {
	ports := make([]string, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ports[i] = l.Addr().String()
		_ = l.Close()
	}
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--namespace=latchkey-system", "--enable-webhooks=false",
		"--verifier-bind-address="+ports[0], "--verifier-grpc-bind-address=0", "--metrics-bind-address="+ports[1], "--metrics-secure=false",
		"--health-probe-bind-address="+ports[2], fmt.Sprintf("--kube-api-qps=%g", *qps), fmt.Sprintf("--kube-api-burst=%d", *burst),
		fmt.Sprintf("--kube-api-compression=%t", *compress))
	if verifierOnly {
		cmd.Args = append(cmd.Args, "--verifier-only")
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	took, err := firstOK("http://"+ports[0], token, 5*time.Minute)
	if err != nil {
		return 0, 0, fmt.Errorf("%w; manager log:\n%s", err, tail(logs.String(), 3000))
	}
	time.Sleep(5 * time.Second)
	rss, err := metric("http://"+ports[1]+"/metrics", "process_resident_memory_bytes")
	return took, rss, err
}

func metric(u, name string) (float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("no %s at %s", name, u)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func dur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
func mib(b float64) string       { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func ratio(a, b, goal float64) string {
	r := a / b
	return fmt.Sprintf("%.2f× (goal ≤ %.1f×) %s", r, goal, pass(r <= goal))
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func render(rows []row, took time.Duration) string {
	host, _ := os.Hostname()
	var b strings.Builder
	gzip := "off"
	if *compress {
		gzip = "on"
	}
	fmt.Fprintf(&b, "### N = %d (%s, %s, %d cores, %s; the run took %s; client QPS %g, burst %d, API compression %s)\n\n",
		*n, time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU(), runtime.Version(), took.Round(time.Second), *qps, *burst, gzip)
	b.WriteString("| figure | measured | floor / goal | |\n|---|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.what, r.measured, r.floor, r.ratio)
	}
	return b.String()
}

// writeDoc replaces this N's section between the bench-scale markers of
// path (adding the markers at the end when missing).
func writeDoc(path, section string) error {
	const begin, end = "<!-- bench-scale:begin -->", "<!-- bench-scale:end -->"
	p := filepath.Join(testenv.RepoRoot(), path)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		doc += "\n" + begin + "\n" + end + "\n"
		i, j = strings.Index(doc, begin), strings.Index(doc, end)
	}
	inner := doc[i+len(begin) : j]
	head := fmt.Sprintf("### N = %d ", *n)
	var kept []string
	for _, s := range strings.Split(inner, "\n### ") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.HasPrefix(s, "### ") {
			s = "### " + s
		}
		if !strings.HasPrefix(s, head) {
			kept = append(kept, s)
		}
	}
	kept = append(kept, strings.TrimSpace(section))
	sort.Strings(kept)
	doc = doc[:i+len(begin)] + "\n" + strings.Join(kept, "\n\n") + "\n" + doc[j:]
	return os.WriteFile(p, []byte(doc), 0o644)
}

// apiProcess is kube-apiserver's process, for its CPU time.
type apiProcess int

// apiServerProcess finds the kube-apiserver serving cfg (by its port).
func apiServerProcess(cfg *rest.Config) (apiProcess, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return 0, err
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, "--secure-port="+u.Port()) {
			pid, err := strconv.Atoi(strings.Split(p, "/")[2])
			return apiProcess(pid), err
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with --secure-port=%s", u.Port())
}

// cpu is the process's user and system CPU time so far, in seconds.
func (p apiProcess) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return 0
	}
	// The fields after the command name: utime and stime are the 12th
	// and 13th, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

// profileAPIServer takes a CPU profile of kube-apiserver (its
// /debug/pprof/profile), from 30 s after now for 120 s, into
// -apiserver-profiles/<name>.apiserver.cpu. The function it returns waits
// for it. Without -apiserver-profiles it does nothing.
func profileAPIServer(ctx context.Context, cfg *rest.Config, name string) func() error {
	if *apiProf == "" {
		return func() error { return nil }
	}
	errc := make(chan error, 1)
	go func() {
		errc <- func() error {
			time.Sleep(30 * time.Second)
			hc, err := rest.HTTPClientFor(cfg)
			if err != nil {
				return err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/debug/pprof/profile?seconds=120", nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("kube-apiserver profile: %s", resp.Status)
			}
			f, err := os.Create(filepath.Join(*apiProf, name+".apiserver.cpu"))
			if err != nil {
				return err
			}
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}()
	}()
	return func() error { return <-errc }
}
