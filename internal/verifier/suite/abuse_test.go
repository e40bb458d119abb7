package suite_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// chartMemoryLimit is the manager's memory limit in the Helm chart: the
// verifier runs in its process when verifier.servedByManager is set.
func chartMemoryLimit(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("../../../charts/latchkey/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Resources struct {
			Limits struct {
				Memory string `json:"memory"`
			} `json:"limits"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	q, err := resource.ParseQuantity(v.Resources.Limits.Memory)
	if err != nil || q.Value() <= 0 {
		t.Fatalf("charts/latchkey/values.yaml resources.limits.memory %q: %v", v.Resources.Limits.Memory, err)
	}
	return q.Value()
}

// chosenClient creates an ApiClient whose secret is user-chosen (argon2id)
// and returns its client id.
func (f *fixture) chosenClient(name, secret string) string {
	f.t.Helper()
	f.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-chosen"}, StringData: map[string]string{"client_secret": secret}})
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, Permissions: []string{"system.organizations.read"},
		ClientSecretRef: &latchkeyv1alpha1.SecretKeyReference{Name: name + "-chosen"}}}
	f.create(c)
	f.waitReady(c)
	return f.secret(name)["client_id"]
}

// tokenStatus posts a client_credentials request from source (sent as
// X-Forwarded-For, which the verifier keys its failure limiter by).
func (f *fixture) tokenStatus(hc *http.Client, source, id, secret string) (int, string) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	req, _ := http.NewRequest(http.MethodPost, f.url+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if source != "" {
		req.Header.Set("X-Forwarded-For", source)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return -1, ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// heapSampler records the peak HeapAlloc and HeapInuse of this process,
// which hosts the operator and its verifier.
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
			if m.HeapAlloc > h.alloc.Load() {
				h.alloc.Store(m.HeapAlloc)
			}
			if m.HeapInuse > h.inuse.Load() {
				h.inuse.Store(m.HeapInuse)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapSampler) peak() (alloc, inuse uint64) {
	close(h.stop)
	<-h.done
	return h.alloc.Load(), h.inuse.Load()
}

// Acceptance 2 of issue 11: 1,000 concurrent wrong guesses against one
// user-chosen-secret client keep the heap under the chart's memory limit,
// the correct secret still gets 200 from a fresh source, and a bearer token
// of another client keeps verifying throughout. Two attacks: from one source
// (the failure limiter answers most of them before any hash), and from
// 1,000 spoofed sources (every guess a fresh limiter key: only the slow-hash
// memory budget stands).
func TestAbuseConcurrentWrongGuessesAgainstChosenSecret(t *testing.T) {
	f := newFixture(t)
	limit := chartMemoryLimit(t)
	const n = 1000
	secret1, secret2 := "victim-one-chosen-secret-0123456789", "victim-two-chosen-secret-0123456789"
	victim1, victim2 := f.chosenClient("victim1", secret1), f.chosenClient("victim2", secret2)
	other := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(other)
	g := grant("other-token", "other", latchkeyv1alpha1.CredentialTypeBearer)
	f.create(g)
	f.waitReady(g)
	otherBearer := bearer(f.secret("other-token")["token"])
	f.g.Eventually(func() int { return f.verify(otherBearer, "") }).Should(Equal(200))

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, DisableCompression: true}}
	defer hc.CloseIdleConnections()

	// The bearer token of another client, throughout both attacks.
	var bearerOK, bearerOther atomic.Int64
	stopBearer, bearerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(bearerDone)
		for {
			select {
			case <-stopBearer:
				return
			default:
			}
			if c := f.verify(otherBearer, ""); c == 200 {
				bearerOK.Add(1)
			} else {
				bearerOther.Add(1)
				t.Errorf("bearer token of another client during the attack: %d", c)
			}
		}
	}()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	heap := sampleHeap()

	attack := func(victim string, source func(i int) string) map[int]int {
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, _ := f.tokenStatus(hc, source(i), victim, fmt.Sprintf("wrong-guess-%04d-of-sixteen-chars", i))
				mu.Lock()
				codes[c]++
				mu.Unlock()
			}()
		}
		close(start)
		time.Sleep(20 * time.Millisecond) // the guesses are in flight
		// The correct secret from a source that has not failed.
		code, _ := f.tokenStatus(hc, "198.51.100.77", victim, map[string]string{victim1: secret1, victim2: secret2}[victim])
		if victim == victim1 {
			// The attacker's source holds at most one check of this client
			// at a time: a fresh source finds room at once.
			f.g.Expect(code).To(Equal(200), "correct secret from a fresh source during the one-source attack")
		} else {
			// Spoofed sources look fresh too: the budget may be full, and the
			// answer is then 503 with Retry-After, never 401 or 429.
			var codes []int
			for code != 200 && len(codes) < 100 {
				codes = append(codes, code)
				f.g.Expect(code).To(Equal(503), "correct secret from a fresh source during the spoofed attack: %v", codes)
				time.Sleep(50 * time.Millisecond)
				code, _ = f.tokenStatus(hc, "198.51.100.77", victim, secret2)
			}
			f.g.Expect(code).To(Equal(200), "correct secret from a fresh source during the spoofed attack, after %d × 503", len(codes))
			t.Logf("spoofed attack: the correct secret got 200 after %d × 503", len(codes))
		}
		wg.Wait()
		return codes
	}

	one := attack(victim1, func(int) string { return "198.51.100.66" })
	t.Logf("1,000 concurrent wrong guesses from one source: %v", one)
	f.g.Expect(one[401]).To(BeNumerically("<=", 10), "at most the burst is hashed: %v", one)
	f.g.Expect(one[401]+one[429]).To(Equal(n), "the rest is refused before hashing: %v", one)

	spoofed := attack(victim2, func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255+1) })
	t.Logf("1,000 concurrent wrong guesses from 1,000 sources: %v", spoofed)
	f.g.Expect(spoofed[401]+spoofed[503]).To(Equal(n), "each guess is hashed (401) or refused for the budget (503): %v", spoofed)

	alloc, inuse := heap.peak()
	close(stopBearer)
	<-bearerDone
	t.Logf("heap before %d MiB; peak during the attacks: HeapAlloc %d MiB, HeapInuse %d MiB; chart limit %d MiB; bearer token: %d × 200, %d other",
		base.HeapAlloc>>20, alloc>>20, inuse>>20, limit>>20, bearerOK.Load(), bearerOther.Load())
	f.g.Expect(int64(inuse)).To(BeNumerically("<", limit), "heap in use stays under the chart's memory limit")
	f.g.Expect(int64(alloc)).To(BeNumerically("<", limit), "heap stays under the chart's memory limit")
	f.g.Expect(bearerOK.Load()).To(BeNumerically(">", 0))
	f.g.Expect(bearerOther.Load()).To(BeZero())

	// After the attacks, the attacked clients' correct secrets verify from
	// anywhere, the attackers' sources included (verified once: cached).
	for _, src := range []string{"198.51.100.66", "10.0.0.1", ""} {
		f.g.Expect(f.verify(with(basic(victim1, secret1), "X-Forwarded-For", src), "")).To(Equal(200))
		f.g.Expect(f.verify(with(basic(victim2, secret2), "X-Forwarded-For", src), "")).To(Equal(200))
	}
}

// Acceptance 3 of issue 11: a correct generated credential is never 429,
// whatever was sent before: no failure limiter guards generated secrets.
func TestAbuseGeneratedCredentialsNeverRateLimited(t *testing.T) {
	f := newFixture(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}}}
	f.create(c)
	grants := map[latchkeyv1alpha1.CredentialType]*latchkeyv1alpha1.CredentialGrant{}
	for _, typ := range []latchkeyv1alpha1.CredentialType{latchkeyv1alpha1.CredentialTypeBearer, latchkeyv1alpha1.CredentialTypeKeyAuth, latchkeyv1alpha1.CredentialTypeBasicAuth} {
		g := grant("g-"+string(typ), "c", typ)
		f.create(g)
		grants[typ] = g
	}
	for _, g := range grants {
		f.waitReady(g)
	}
	f.waitReady(c)
	cs := f.secret("c")
	bt := f.secret("g-bearer")["token"]
	parsed, err := token.Parse(bt)
	f.g.Expect(err).NotTo(HaveOccurred())
	wrongSecret, _ := token.New()
	ka, ba := f.secret("g-key-auth"), f.secret("g-basic-auth")
	correct := map[string]http.Header{"bearer token": bearer(bt), "bearer token as X-API-Key": apiKey(bt),
		"client id and generated secret": basic(cs["client_id"], cs["client_secret"]),
		"key-auth":                       basic(ka["key_id"], ka["key_secret"]),
		"basic-auth":                     basic(ba["username"], ba["password"])}
	wrong := []http.Header{
		bearer(token.Token{ID: parsed.ID, Secret: wrongSecret.Secret}.String()), // its token id, a wrong secret
		basic(parsed.ID, wrongSecret.Secret),
		basic(cs["client_id"], "key_"+wrongSecret.Secret),
		basic(ka["key_id"], strings.Repeat("B", 43)),
		apiKey(ka["key_id"] + ":" + strings.Repeat("C", 43)),
		basic(ba["username"], "x"+ba["password"]),
	}
	f.g.Expect(correct).To(HaveLen(5), "credentials of every generated kind")

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				h := wrong[(i+j)%len(wrong)]
				req, _ := http.NewRequest(http.MethodGet, f.url+"/v1/verify", nil)
				for k, v := range h {
					req.Header[k] = v
				}
				req.Header.Set("X-Forwarded-For", "203.0.113.9")
				code := -1
				if resp, err := hc.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					code = resp.StatusCode
				}
				tc, _ := f.tokenStatus(hc, "203.0.113.9", cs["client_id"], "key_wrong")
				mu.Lock()
				codes[code]++
				codes[tc]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.g.Expect(codes).To(Equal(map[int]int{401: 64 * 20 * 2}), "wrong generated secrets: only 401")
	for name, h := range correct {
		for _, src := range []string{"203.0.113.9", "198.51.100.1"} {
			f.g.Expect(f.verify(with(h, "X-Forwarded-For", src), "")).To(Equal(200), "%s from %s after 2,560 failures", name, src)
		}
	}
	code, _ := f.tokenStatus(hc, "203.0.113.9", cs["client_id"], cs["client_secret"])
	f.g.Expect(code).To(Equal(200), "client_credentials with the generated secret after the failures")
}

// Failed guesses of a user-chosen secret from one source are limited (10,
// then 1 a second) and counted by result; the right secret works at once
// from another source, and from the limited one once its bucket refilled.
func TestAbuseFailedGuessesLimitedAndCounted(t *testing.T) {
	f := newFixture(t)
	const secret = "a-user-chosen-secret-for-counting"
	id := f.chosenClient("c", secret)
	before := map[string]float64{}
	for _, r := range []string{"rate_limited", "wrong_secret", "valid"} {
		before[r] = counter("verify", r)
	}
	codes := map[int]int{}
	for range 15 {
		codes[f.verify(with(basic(id, "a-wrong-guess-of-16-chars"), "X-Forwarded-For", "203.0.113.9"), "")]++
	}
	f.g.Expect(codes[401]).To(BeNumerically(">=", 9))
	f.g.Expect(codes[429]).To(BeNumerically(">=", 4), "guessing is slowed down: %v", codes)
	f.g.Expect(counter("verify", "rate_limited") - before["rate_limited"]).To(BeNumerically(">=", 4))
	f.g.Expect(counter("verify", "wrong_secret") - before["wrong_secret"]).To(BeNumerically(">=", 9))
	// Another source is not limited by these failures.
	f.g.Expect(f.verify(with(basic(id, secret), "X-Forwarded-For", "198.51.100.1"), "")).To(Equal(200))
	// The limited source: its bucket refills, and the secret, verified once
	// by then, is remembered (the verified cache comes before the limiter).
	f.g.Eventually(func() int { return f.verify(with(basic(id, secret), "X-Forwarded-For", "203.0.113.9"), "") }).WithTimeout(5 * time.Second).Should(Equal(200))
	f.g.Expect(counter("verify", "valid") - before["valid"]).To(BeNumerically(">=", 2))
}

// A user-chosen secret shorter than 16 characters that reaches the
// controller (no webhook here, as when the Secret is written after the
// ApiClient) is not issued: Ready=False with advice, until it is long
// enough. A client already issued keeps its credential while its Secret is
// too short, and reports it.
func TestAbuseShortChosenSecretNotIssued(t *testing.T) {
	f := newFixture(t)
	f.create(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "short-chosen"}, StringData: map[string]string{"client_secret": "s3cret-pass"}})
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "short"}, Spec: latchkeyv1alpha1.ApiClientSpec{
		Scopes: []string{"system"}, ClientSecretRef: &latchkeyv1alpha1.SecretKeyReference{Name: "short-chosen"}}}
	f.create(c)
	notReady := func(g Gomega) {
		g.Expect(env.Client.Get(f.ctx, client.ObjectKeyFromObject(c), c)).To(Succeed())
		cond := meta.FindStatusCondition(c.Status.Conditions, latchkeyv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(latchkeyv1alpha1.ReasonSecretRefNotFound))
		g.Expect(cond.Message).To(And(ContainSubstring("fewer than 16 characters"), ContainSubstring("openssl rand -base64 32"),
			ContainSubstring("remove spec.clientSecretRef"), Not(ContainSubstring("s3cret-pass"))))
	}
	f.g.Eventually(notReady).Should(Succeed())
	f.g.Expect(c.Status.TokenID).To(BeEmpty(), "nothing issued")

	const long = "now-long-enough-chosen-secret-0123"
	sec := &corev1.Secret{}
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "short-chosen"}, sec)).To(Succeed())
	sec.Data = map[string][]byte{"client_secret": []byte(long)}
	f.g.Expect(env.Client.Update(f.ctx, sec)).To(Succeed())
	f.waitReady(c)
	id := f.secret("short")["client_id"]
	f.g.Eventually(func() int { return f.verify(basic(id, long), "") }).Should(Equal(200))

	// Made short again: reported at the next reconcile (user Secrets are not
	// watched; a change of the ApiClient triggers one here), and the issued
	// secret is kept.
	f.g.Expect(env.Client.Get(f.ctx, types.NamespacedName{Namespace: f.ns, Name: "short-chosen"}, sec)).To(Succeed())
	sec.Data = map[string][]byte{"client_secret": []byte("s3cret-pass")}
	f.g.Expect(env.Client.Update(f.ctx, sec)).To(Succeed())
	f.g.Expect(env.Client.Patch(f.ctx, c, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"example.com/touch":"1"}}}`)))).To(Succeed())
	f.g.Eventually(notReady).Should(Succeed())
	f.g.Consistently(func() int { return f.verify(basic(id, long), "") }).WithTimeout(time.Second).Should(Equal(200))
	f.g.Expect(f.verify(basic(id, "s3cret-pass"), "")).To(Equal(401))
}
