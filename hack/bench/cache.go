package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/operator"
)

var tenantSecrets = flag.Int("tenant-secrets", 200, "tenant Secrets of 1 MiB labelled managed-by=latchkey for the cache figure; 0 skips it")

// cacheFigure is the heap a Secret cache holds for the tenant Secrets.
type cacheFigure struct {
	name         string
	growth, peak int64 // bytes over the baseline: after GC, and the highest seen
	took         time.Duration
}

// tenantSecretFigures measures what Secrets that tenants label
// app.kubernetes.io/managed-by=latchkey (in their own namespace, any content)
// cost the manager (issue 11, acceptance 5): the running manager's heap
// growth as they arrive through its watch, and a fresh Secret cache's heap
// (after GC, and its peak) when it starts with them present, with Latchkey's
// cache options and with the label selector alone (before the Secret
// transform). It prints its own section.
func tenantSecretFigures(ctx context.Context, c client.Client, cfg *rest.Config, mgr manager.Manager) error {
	n := *tenantSecrets
	if n <= 0 {
		return nil
	}
	const ns = "bench-tenant"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	managed := client.MatchingLabels{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}
	countIn := func(r client.Reader) int {
		var l corev1.SecretList
		if err := r.List(ctx, &l, client.InNamespace(ns), managed); err != nil {
			return -1
		}
		return len(l.Items)
	}

	// 1. The running manager: the Secrets arrive through its watch.
	before := heapAfterGC()
	start := time.Now()
	if err := createTenantSecrets(ctx, c, ns, n); err != nil {
		return err
	}
	for countIn(mgr.GetCache()) != n {
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the manager's cache did not see the %d tenant Secrets", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	running := cacheFigure{name: "running manager, Secrets created (watch)", growth: int64(heapAfterGC()) - int64(before), took: time.Since(start)}

	// 2. A fresh cache starting with the Secrets present (a restart, a new
	// replica): Latchkey's options, then the label selector alone.
	withOpts := func(name string, co cache.Options) (cacheFigure, error) {
		co.Scheme = mgr.GetScheme()
		co.Mapper = mgr.GetRESTMapper()
		base := heapAfterGC()
		peak := watchPeak()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t0 := time.Now()
		ca, err := cache.New(cfg, co)
		if err != nil {
			return cacheFigure{}, err
		}
		if _, err := ca.GetInformer(cctx, &corev1.Secret{}); err != nil {
			return cacheFigure{}, err
		}
		go func() { _ = ca.Start(cctx) }()
		if !ca.WaitForCacheSync(cctx) || countIn(ca) != n {
			return cacheFigure{}, fmt.Errorf("%s: the cache did not sync the %d tenant Secrets", name, n)
		}
		f := cacheFigure{name: name, took: time.Since(t0), peak: int64(peak()) - int64(base)}
		f.growth = int64(heapAfterGC()) - int64(base)
		runtime.KeepAlive(ca)
		return f, nil
	}
	opts := operator.Options{Namespace: "latchkey-system"}
	opts.Defaults()
	latchkey, err := withOpts("fresh cache, Latchkey's options (list on start)", operator.CacheOptions(opts))
	if err != nil {
		return err
	}
	labelOnly, err := withOpts("fresh cache, label selector only (before the transform)", cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{
			latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue})}},
	})
	if err != nil {
		return err
	}
	if err := c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}

	fmt.Printf("\n## Tenant Secrets carrying Latchkey's label (%d × 1 MiB, app.kubernetes.io/managed-by=latchkey)\n\n", n)
	fmt.Println("| Secret cache | heap growth after GC | peak heap over baseline | time to hold them |")
	fmt.Println("|---|---:|---:|---:|")
	for _, f := range []cacheFigure{running, latchkey, labelOnly} {
		peak := "—"
		if f.peak != 0 {
			peak = fmt.Sprintf("%.1f MiB", float64(f.peak)/(1<<20))
		}
		fmt.Printf("| %s | %+.1f MiB | %s | %v |\n", f.name, float64(f.growth)/(1<<20), peak, f.took.Round(time.Millisecond))
	}
	fmt.Println()
	worst := max(running.growth, latchkey.growth)
	mark := "met"
	if worst > 10<<20 {
		mark = "NOT met"
	}
	fmt.Printf("- manager heap growth ≤ 10 MiB with %d tenant Secrets of 1 MiB: %s (%+.1f MiB)\n", n, mark, float64(worst)/(1<<20))
	return nil
}

func createTenantSecrets(ctx context.Context, c client.Client, ns string, n int) error {
	payload := bytes.Repeat([]byte{'x'}, 1<<20)
	var (
		wg    sync.WaitGroup
		first atomic.Pointer[error]
		sem   = make(chan struct{}, 8)
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("tenant-%04d", i),
					Labels: map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}},
				Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"blob": payload},
			}
			if err := c.Create(ctx, s); err != nil {
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		return *err
	}
	return nil
}

// heapAfterGC is the live heap, in bytes, after full collections.
func heapAfterGC() uint64 {
	for range 3 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// watchPeak samples the heap's object bytes every 2 ms until the returned
// function is called, which stops sampling and returns the highest value.
func watchPeak() func() uint64 {
	var (
		peak atomic.Uint64
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}
