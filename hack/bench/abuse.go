package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

var (
	guesses   = flag.Int("guesses", 1000, "concurrent wrong guesses per wave against the user-chosen secret (the abuse figures); 0 skips them")
	guessWave = flag.Duration("guess-wave", time.Second, "a wave of -guesses concurrent wrong guesses starts this often (or as soon as the last one is answered, if later)")
)

// attackKind is where the wrong guesses come from.
type attackKind struct {
	name   string
	source func(wave, i int) string // X-Forwarded-For of guess i of a wave
}

// abuseResult is one attack's figures, summed over the rounds.
type abuseResult struct {
	attackKind
	bearer               result
	sent                 int64
	answers              map[int]int64
	heapAlloc, heapInuse uint64
}

// abuseFigures measures issue 11, acceptance 2, in figures: waves of
// -guesses concurrent wrong client_credentials guesses against a client
// with a user-chosen (argon2id) secret, from one source and from spoofed
// sources (every guess a new X-Forwarded-For: the failure limiter cannot
// tell them apart, only the slow-hash memory budget stands). It reports the
// heap peak of this process, which hosts the operator and its verifier,
// against the chart's memory limit, and a bearer token's req/s during each
// attack against its req/s unloaded, in interleaved rounds. It prints its
// own section.
func abuseFigures(ctx context.Context, c client.Client, baseURL, bearerToken string) error {
	if *guesses <= 0 {
		return nil
	}
	const secret = "bench-user-chosen-secret-0123456789"
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "victim-chosen", Namespace: "bench"},
		StringData: map[string]string{latchkeyv1alpha1.ClientSecretKey: secret}}); err != nil {
		return err
	}
	victim := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "bench"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}, ClientSecretRef: &latchkeyv1alpha1.SecretKeyReference{Name: "victim-chosen"}}}
	if err := c.Create(ctx, victim); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for !meta.IsStatusConditionTrue(victim.Status.Conditions, latchkeyv1alpha1.ConditionReady) {
		if time.Now().After(deadline) {
			return fmt.Errorf("client victim not Ready: %+v", victim.Status.Conditions)
		}
		time.Sleep(20 * time.Millisecond)
		if err := c.Get(ctx, client.ObjectKeyFromObject(victim), victim); err != nil {
			return err
		}
	}
	clientID := victim.Status.ClientID
	limit, err := chartMemoryLimit()
	if err != nil {
		return err
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	guess := func(source, secret string) int {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}}
		req, _ := http.NewRequest(http.MethodPost, baseURL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", source)
		resp, err := hc.Do(req)
		if err != nil {
			return -1
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := guess("192.0.2.10", secret); code != http.StatusOK {
		return fmt.Errorf("the victim's correct secret got %d before the attack", code)
	}

	// The guesses go over persistent connections, written and read by hand:
	// the attacker's own CPU (it shares the machine) stays small next to the
	// verifier's.
	host := strings.TrimPrefix(baseURL, "http://")
	conns := make([]*rawConn, *guesses)
	for i := range conns {
		conns[i] = &rawConn{addr: host}
	}
	defer func() {
		for _, rc := range conns {
			rc.close()
		}
	}()
	// run sends waves of concurrent wrong guesses until stop is closed.
	run := func(a attackKind, r *abuseResult, stop <-chan struct{}) (done <-chan struct{}) {
		d := make(chan struct{})
		var mu sync.Mutex
		go func() {
			defer close(d)
			for wave := 0; ; wave++ {
				next := time.Now().Add(*guessWave)
				var wg sync.WaitGroup
				for i := range *guesses {
					wg.Add(1)
					go func() {
						defer wg.Done()
						code := conns[i].post("/oauth2/token", a.source(wave, i),
							"grant_type=client_credentials&client_id="+url.QueryEscape(clientID)+"&client_secret="+fmt.Sprintf("wrong-guess-%d-%d-padding", wave, i))
						mu.Lock()
						r.answers[code]++
						r.sent++
						mu.Unlock()
					}()
				}
				wg.Wait()
				select {
				case <-stop:
					return
				case <-time.After(time.Until(next)):
				}
			}
		}()
		return d
	}

	attacks := []attackKind{
		{"one source", func(int, int) string { return "198.51.100.66" }},
		{fmt.Sprintf("%d spoofed sources a wave", *guesses), func(wave, i int) string {
			return fmt.Sprintf("10.%d.%d.%d", wave&255, i>>8&255, i&255)
		}},
	}
	unloaded := &abuseResult{answers: map[int]int64{}}
	results := make([]*abuseResult, len(attacks))
	for i, a := range attacks {
		results[i] = &abuseResult{attackKind: a, answers: map[int]int64{}}
	}
	bearerFn := func(hc *http.Client, _ int) error {
		return get(hc, baseURL+"/v1/verify", "Bearer "+bearerToken, http.StatusOK)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	per := *duration / time.Duration(*rounds)
	for range *rounds {
		runtime.GC() // each scenario's heap peak starts from the same floor
		s := sampleHeap()
		unloaded.bearer = unloaded.bearer.add(load("bearer token, unloaded", per, bearerFn))
		unloaded.heapAlloc, unloaded.heapInuse = s.stopAt(unloaded.heapAlloc, unloaded.heapInuse)
		for i, a := range attacks {
			r := results[i]
			stop := make(chan struct{})
			runtime.GC()
			s := sampleHeap()
			done := run(a, r, stop)
			r.bearer = r.bearer.add(load("bearer token during the attack", per, bearerFn))
			close(stop)
			<-done
			r.heapAlloc, r.heapInuse = s.stopAt(r.heapAlloc, r.heapInuse)
		}
	}
	unloaded.bearer.finish()
	for _, r := range results {
		r.bearer.finish()
	}

	fmt.Printf("\n## Wrong guesses against a user-chosen secret (issue 11; %d concurrent guesses at /oauth2/token every %v, %d connections of bearer load, %v per scenario in %d interleaved rounds)\n\n",
		*guesses, *guessWave, *concurrency, *duration, *rounds)
	fmt.Printf("Heap of this process (operator and verifier) before: %d MiB. Chart memory limit (charts/latchkey/values.yaml resources.limits.memory): %d MiB.\n\n", base.HeapAlloc>>20, limit>>20)
	fmt.Println("| wrong guesses | bearer req/s | × unloaded | bearer p50 | bearer p99 | bearer errors | guesses sent | their answers | heap peak (HeapAlloc / HeapInuse) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|---:|")
	row := func(name string, r *abuseResult) {
		sent, answers := "–", "–"
		if r.sent > 0 {
			sent = fmt.Sprint(r.sent)
			answers = answerList(r.answers)
		}
		fmt.Printf("| %s | %.0f | %.2f× | %v | %v | %d | %s | %s | %d / %d MiB |\n", name, r.bearer.rps, r.bearer.rps/unloaded.bearer.rps,
			r.bearer.p50.Round(time.Microsecond), r.bearer.p99.Round(time.Microsecond), r.bearer.errors, sent, answers, r.heapAlloc>>20, r.heapInuse>>20)
	}
	row("none", unloaded)
	for _, r := range results {
		row(r.name, r)
	}
	fmt.Println()
	check := func(name string, ok bool, detail string) {
		mark := "met"
		if !ok {
			mark = "NOT met"
		}
		fmt.Printf("- %s: %s (%s)\n", name, mark, detail)
	}
	for _, r := range results {
		check(fmt.Sprintf("heap peak under the chart's memory limit, %s", r.name), int64(r.heapInuse) < limit && int64(r.heapAlloc) < limit,
			fmt.Sprintf("%d MiB of %d MiB", max(r.heapAlloc, r.heapInuse)>>20, limit>>20))
		check(fmt.Sprintf("bearer token during the attack ≥ 0.8× unloaded, %s", r.name), r.bearer.rps >= 0.8*unloaded.bearer.rps,
			fmt.Sprintf("%.2f×", r.bearer.rps/unloaded.bearer.rps))
	}
	if code := guess("192.0.2.11", secret); code != http.StatusOK {
		fmt.Printf("- the victim's correct secret from a fresh source after the attacks: NOT met (%d)\n", code)
	}
	return nil
}

func answerList(m map[int]int64) string {
	var parts []string
	for _, code := range []int{200, 401, 429, 503, -1} {
		if n := m[code]; n > 0 {
			name := fmt.Sprint(code)
			if code == -1 {
				name = "no answer"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", name, n))
		}
	}
	for code, n := range m {
		switch code {
		case 200, 401, 429, 503, -1:
		default:
			parts = append(parts, fmt.Sprintf("%d: %d", code, n))
		}
	}
	return strings.Join(parts, ", ")
}

// heapSampler records the peak HeapAlloc and HeapInuse of this process.
type heapSampler struct {
	alloc, inuse atomic.Uint64
	stop, done   chan struct{}
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			h.alloc.Store(max(h.alloc.Load(), m.HeapAlloc))
			h.inuse.Store(max(h.inuse.Load(), m.HeapInuse))
			select {
			case <-h.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return h
}

// stopAt stops sampling and returns the peaks, at least alloc and inuse.
func (h *heapSampler) stopAt(alloc, inuse uint64) (uint64, uint64) {
	close(h.stop)
	<-h.done
	return max(alloc, h.alloc.Load()), max(inuse, h.inuse.Load())
}

// chartMemoryLimit is resources.limits.memory of the Helm chart's values:
// the manager's limit (the verifier runs in its process when
// verifier.servedByManager is set).
func chartMemoryLimit() (int64, error) {
	b, err := os.ReadFile("charts/latchkey/values.yaml")
	if err != nil {
		return 0, fmt.Errorf("reading the chart's memory limit (run from the repository root): %w", err)
	}
	var v struct {
		Resources struct {
			Limits struct {
				Memory string `json:"memory"`
			} `json:"limits"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		return 0, err
	}
	q, err := resource.ParseQuantity(v.Resources.Limits.Memory)
	if err != nil {
		return 0, fmt.Errorf("charts/latchkey/values.yaml resources.limits.memory %q: %w", v.Resources.Limits.Memory, err)
	}
	return q.Value(), nil
}

// rawConn is one keep-alive HTTP/1.1 connection that posts forms.
type rawConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	buf  []byte
}

// post sends a form body from source (X-Forwarded-For) and returns the
// status code, -1 on a transport error (the connection is then redialled).
func (rc *rawConn) post(path, source, body string) int {
	if rc.c == nil {
		c, err := net.Dial("tcp", rc.addr)
		if err != nil {
			return -1
		}
		rc.c, rc.r = c, bufio.NewReaderSize(c, 1024)
	}
	b := append(rc.buf[:0], "POST "...)
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, rc.addr...)
	b = append(b, "\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: "...)
	b = append(b, source...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	rc.buf = b
	_ = rc.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		rc.close()
		return -1
	}
	resp, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.close()
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.Close {
		rc.close()
	}
	return resp.StatusCode
}

func (rc *rawConn) close() {
	if rc.c != nil {
		_ = rc.c.Close()
		rc.c = nil
	}
}
