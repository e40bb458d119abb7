package verifier

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// abuseChosenSecret is the user-chosen secret of the client abuseServer adds.
const (
	abuseChosenID     = "chosen-client"
	abuseChosenSecret = "a-user-chosen-secret-of-32-chars"
)

// abuseServer is memServer plus an ApiClient with a user-chosen (argon2id)
// secret, an access-token signing key, and the handler Setup serves
// (withSource: the request's source reaches the failure limiter).
func abuseServer(t testing.TB) (*Server, http.Handler, string, *memWorld) {
	t.Helper()
	s, tok, w := memServer(t)
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "cc", Namespace: "ns", UID: "ccu"},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"system"}, Permissions: []string{"system.read"}}}
	id, _ := token.NewTokenID()
	hash, err := token.HashChosen(abuseChosenSecret)
	if err != nil {
		t.Fatal(err)
	}
	bt := backing.Token{ID: id, Hash: hash, OwnerKind: backing.KindApiClient, OwnerNamespace: "ns", OwnerName: "cc",
		OwnerUID: "ccu", ClientUID: "ccu", ClientID: abuseChosenID, Type: backing.TypeClientSecret}
	key, err := accesstoken.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := accesstoken.KeySet{Keys: []accesstoken.Key{key}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	keys := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backing.SigningKeysSecretName, Namespace: "latchkey-system", ResourceVersion: "1"},
		Type: backing.SigningKeysSecretType, Data: data}
	for _, err := range []error{w.clients.Add(c), w.secrets.Add(bt.Secret("latchkey-system")), w.secrets.Add(keys)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.auth.gate = newSlowHashGate(DefaultSlowHashMemoryBudget)
	return s, withSource(s), tok, w
}

func abuseBasic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// abuseTokenRequest is a client_credentials request from source (an
// X-Forwarded-For address; "" for the peer).
func abuseTokenRequest(h http.Handler, source, id, secret string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if source != "" {
		r.Header.Set("X-Forwarded-For", source)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func abuseVerifyRequest(h http.Handler, source, authorization string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
	r.Header.Set("Authorization", authorization)
	if source != "" {
		r.Header.Set("X-Forwarded-For", source)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A correct generated credential (grant token, key-auth style token id and
// secret over Basic, generated client secret) is never 429, whatever was
// sent before: generated secrets have no failure limiter.
func TestAbuseGeneratedSecretsNeverRateLimited(t *testing.T) {
	_, h, tok, w := abuseServer(t)
	parsed, err := token.Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := token.New()
	sameID := token.Token{ID: parsed.ID, Secret: other.Secret}.String() // right id, wrong secret, valid checksum
	wrong := map[string]string{
		"bearer, known token id":      "Bearer " + sameID,
		"basic, known token id":       abuseBasic(parsed.ID, other.Secret),
		"basic, known client id":      abuseBasic(w.clientID, "key_"+other.Secret),
		"x-api-key style, same route": abuseBasic(parsed.ID, "x"),
	}
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, a := range wrong {
				c := abuseVerifyRequest(h, "192.0.2.1", a).Code
				mu.Lock()
				codes[c]++
				mu.Unlock()
			}
			if i%4 == 0 {
				c := abuseTokenRequest(h, "192.0.2.1", w.clientID, "key_wrong").Code
				mu.Lock()
				codes[c]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] != 4250 || len(codes) != 1 {
		t.Fatalf("wrong generated secrets: %v, want only 401s", codes)
	}
	for name, a := range map[string]string{"grant token": "Bearer " + tok, "client id and generated secret": abuseBasic(w.clientID, w.clientSecret)} {
		for _, src := range []string{"192.0.2.1", "198.51.100.7", ""} {
			if c := abuseVerifyRequest(h, src, a).Code; c != http.StatusOK {
				t.Errorf("%s from %q after 4,250 failures: %d, want 200", name, src, c)
			}
		}
	}
	if c := abuseTokenRequest(h, "192.0.2.1", w.clientID, w.clientSecret).Code; c != http.StatusOK {
		t.Errorf("client_credentials with the generated secret after the failures: %d, want 200", c)
	}
}

// The failure limit of a user-chosen secret is taken before the hash: of 64
// concurrent wrong guesses from one source only the burst is hashed, the
// rest is 429 at once. The correct secret from a source that has not failed
// still gets 200 while that source is locked, and a correct secret once
// verified (the verified cache) passes even from the locked source.
func TestAbuseChosenSecretLimitReservedBeforeHash(t *testing.T) {
	s, h, _, _ := abuseServer(t)
	s.auth.gate = nil // the limiter alone
	frozen := time.Now()
	s.auth.limiter.now = func() time.Time { return frozen } // no refill during the test
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := abuseTokenRequest(h, "203.0.113.9", abuseChosenID, "wrong-guess-of-sixteen-chars").Code
			mu.Lock()
			codes[c]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusUnauthorized] != s.opts.FailureBurst || codes[http.StatusTooManyRequests] != 64-s.opts.FailureBurst {
		t.Fatalf("64 concurrent wrong guesses: %v, want %d hashed (401) and the rest 429", codes, s.opts.FailureBurst)
	}
	if c := abuseTokenRequest(h, "203.0.113.9", abuseChosenID, abuseChosenSecret).Code; c != http.StatusTooManyRequests {
		t.Errorf("correct secret from the source that failed, before it was ever verified: %d, want 429", c)
	}
	for _, src := range []string{"203.0.113.10", ""} {
		if c := abuseTokenRequest(h, src, abuseChosenID, abuseChosenSecret).Code; c != http.StatusOK {
			t.Errorf("correct secret from fresh source %q: %d, want 200", src, c)
		}
	}
	if c := abuseVerifyRequest(h, "203.0.113.9", abuseBasic(abuseChosenID, abuseChosenSecret)).Code; c != http.StatusOK {
		t.Errorf("correct, already verified secret from the locked source: %d, want 200 (verified cache before the limiter)", c)
	}
	// A success gives its token back: a source that alternates right and
	// wrong is limited by its failures only.
	if c := abuseVerifyRequest(h, "203.0.113.11", abuseBasic(abuseChosenID, "another-wrong-guess-here")).Code; c != http.StatusUnauthorized {
		t.Errorf("first wrong guess from a fresh source: %d, want 401", c)
	}
}

// Slow-hash checks are bounded by the memory budget: with spoofed sources
// (every guess a fresh limiter key) no more hashes run at once than fit in
// the half of the budget one client id may use, the rest is 503 with Retry-After (never 401 or 429), and a bearer token keeps
// verifying meanwhile.
func TestAbuseSlowHashMemoryBudget(t *testing.T) {
	s, h, tok, _ := abuseServer(t)
	perHash, ok := argon2Memory(abuseChosenHash(t, s))
	if !ok {
		t.Fatal("cannot read the argon2id memory parameter")
	}
	budget := 4 * perHash // one client id gets at most half: two at once
	s.auth.gate = newSlowHashGate(budget)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if u := s.auth.gate.inFlight(); u > peak.Load() {
				peak.Store(u)
			}
			runtime.Gosched()
		}
	}()
	codes := map[int]int{}
	retryAfter := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := abuseTokenRequest(h, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), abuseChosenID, fmt.Sprintf("wrong-guess-number-%04d", i))
			mu.Lock()
			codes[r.Code]++
			if r.Code == http.StatusServiceUnavailable && r.Header().Get("Retry-After") != "" {
				retryAfter++
			}
			mu.Unlock()
		}()
	}
	bearerOK := 0
	for range 200 {
		if abuseVerifyRequest(h, "", "Bearer "+tok).Code == http.StatusOK {
			bearerOK++
		}
	}
	wg.Wait()
	close(stop)
	<-sampled
	t.Logf("codes %v, peak in flight %d MiB (budget %d MiB)", codes, peak.Load()>>20, budget>>20)
	if p := peak.Load(); p > budget/2 {
		t.Errorf("%d bytes of argon2id in flight for one client id, budget %d (half for one client)", p, budget)
	}
	if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusUnauthorized] == 0 ||
		codes[http.StatusServiceUnavailable]+codes[http.StatusUnauthorized] != 48 {
		t.Errorf("48 concurrent wrong guesses from 48 sources: %v, want some hashed (401) and the rest 503", codes)
	}
	if retryAfter != codes[http.StatusServiceUnavailable] {
		t.Errorf("%d of %d 503 answers carry Retry-After", retryAfter, codes[http.StatusServiceUnavailable])
	}
	if bearerOK != 200 {
		t.Errorf("bearer token during the guesses: %d of 200 verified", bearerOK)
	}
	if s.auth.gate.inFlight() != 0 {
		t.Errorf("%d bytes still reserved after the guesses", s.auth.gate.inFlight())
	}
	// Nothing was evaluated for a 503: its limiter token was given back.
	if n := s.auth.limiter.size(); n != codes[http.StatusUnauthorized] {
		t.Errorf("failure limiter holds %d keys, want one per hashed guess (%d)", n, codes[http.StatusUnauthorized])
	}
}

func abuseChosenHash(t *testing.T, s *Server) string {
	t.Helper()
	tokens, err := s.auth.clientSecretTokens(t.Context(), abuseChosenID)
	if err != nil || len(tokens) != 1 {
		t.Fatalf("backing token of %s: %v %v", abuseChosenID, tokens, err)
	}
	return tokens[0].Hash
}

func TestAbuseSlowHashGate(t *testing.T) {
	g := newSlowHashGate(100)
	r1, ok := g.tryAcquire("a", 40, false)
	if !ok {
		t.Fatal("first acquire refused")
	}
	if _, ok := g.tryAcquire("a", 40, false); ok {
		t.Fatal("client a got more than half the budget")
	}
	r2, ok := g.tryAcquire("b", 40, false)
	if !ok {
		t.Fatal("client b refused while a holds 40 of 100")
	}
	if _, ok := g.tryAcquire("c", 40, false); ok {
		t.Fatal("acquired beyond the budget")
	}
	r1()
	r2()
	if g.inFlight() != 0 || len(g.per) != 0 {
		t.Fatalf("after release: %d in flight, %v", g.inFlight(), g.per)
	}
	// One computation always runs, even above the budget.
	r, ok := g.tryAcquire("a", 1000, true)
	if !ok {
		t.Fatal("a lone computation larger than the budget was refused")
	}
	if _, ok := g.tryAcquire("b", 1, false); ok {
		t.Fatal("acquired next to a computation that fills the budget")
	}
	r()
	var nilGate *slowHashGate
	if rel, ok := nilGate.tryAcquire("a", 1<<40, true); !ok {
		t.Fatal("nil gate refused")
	} else {
		rel()
	}

	// Suspects (sources that have failed): one per client id at a time, at
	// most half the budget in all; a clean source still finds room.
	g = newSlowHashGate(100)
	s1, ok := g.tryAcquire("a", 10, true)
	if !ok {
		t.Fatal("first suspect refused")
	}
	if _, ok := g.tryAcquire("a", 10, true); ok {
		t.Fatal("a second suspect computation for client a")
	}
	c1, ok := g.tryAcquire("a", 10, false)
	if !ok {
		t.Fatal("a clean source of client a refused while a suspect runs")
	}
	s2, ok := g.tryAcquire("b", 30, true)
	if !ok {
		t.Fatal("a suspect of client b refused")
	}
	if _, ok := g.tryAcquire("c", 20, true); ok {
		t.Fatal("suspects beyond half the budget")
	}
	c2, ok := g.tryAcquire("c", 20, false)
	if !ok {
		t.Fatal("a clean source refused with the budget not full")
	}
	for _, r := range []func(){s1, c1, s2, c2} {
		r()
	}
	if g.inFlight() != 0 || g.suspectUsed != 0 || len(g.suspect) != 0 || len(g.per) != 0 {
		t.Fatalf("after release: %d in flight, %d suspect, %v %v", g.inFlight(), g.suspectUsed, g.suspect, g.per)
	}

	// CPU: computations of one client id start at most
	// slowHashStartsPerSecond a second per class, after a burst.
	g = newSlowHashGate(1 << 40)
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	for _, suspect := range []bool{false, true} {
		burst := slowHashStartBurst
		if suspect {
			burst = slowHashSuspectStartBurst
		}
		for i := range burst {
			r, ok := g.tryAcquire("a", 1, suspect)
			if !ok {
				t.Fatalf("start %d (suspect %v) within the burst refused", i, suspect)
			}
			r()
		}
		if _, ok := g.tryAcquire("a", 1, suspect); ok {
			t.Fatalf("start beyond the burst (suspect %v)", suspect)
		}
	}
	if r, ok := g.tryAcquire("b", 1, false); !ok {
		t.Fatal("client b limited by client a's starts")
	} else {
		r()
	}
	now = now.Add(time.Second / slowHashStartsPerSecond)
	if r, ok := g.tryAcquire("a", 1, false); !ok {
		t.Fatal("no start after the refill interval")
	} else {
		r()
	}
	if _, ok := g.tryAcquire("a", 1, false); ok {
		t.Fatal("two starts after one refill interval")
	}
}

func TestAbuseFailureLimiterBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newFailureLimiter(1, 3)
	f.now = func() time.Time { return now }
	for i := range 3 {
		if ok, clean := f.reserve("k"); !ok || clean != (i == 0) {
			t.Fatalf("reserve %d: ok %v clean %v; want ok, clean only while the bucket was full", i, ok, clean)
		}
	}
	if ok, _ := f.reserve("k"); ok {
		t.Fatal("reserve beyond the burst")
	}
	if ok, clean := f.reserve("other"); !ok || !clean {
		t.Fatal("another key is limited by k's failures")
	}
	now = now.Add(1500 * time.Millisecond)
	if ok, _ := f.reserve("k"); !ok {
		t.Fatal("1.5 s at 1/s should refill one token")
	}
	if ok, _ := f.reserve("k"); ok {
		t.Fatal("1.5 s at 1/s should refill only one token")
	}
	// Giving back tokens until full drops the key.
	f.refund("other")
	if _, ok := f.keys["other"]; ok || f.size() != 1 {
		t.Fatalf("a full bucket is still held (%d keys)", f.size())
	}

	// Bounded: a spray of keys keeps at most maxKeys, least recent out.
	f = newFailureLimiter(1, 10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 3 * defaultLimiterKeys {
		f.reserve(fmt.Sprintf("id_%016d\x00%d.%d.%d.%d", i, i>>24&255, i>>16&255, i>>8&255, i&255))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if f.size() != defaultLimiterKeys || f.lru.Len() != defaultLimiterKeys {
		t.Fatalf("%d keys after a spray of %d, cap %d", f.size(), 3*defaultLimiterKeys, defaultLimiterKeys)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("failure limiter at its cap of %d keys: %.1f MiB of heap (%d bytes a key)", defaultLimiterKeys, float64(grown)/(1<<20), grown/defaultLimiterKeys)
	if grown > 32<<20 {
		t.Errorf("failure limiter at its cap holds %d MiB", grown>>20)
	}
	if _, ok := f.keys[fmt.Sprintf("id_%016d\x00%d.%d.%d.%d", 0, 0, 0, 0, 0)]; ok {
		t.Error("the oldest key was not evicted")
	}
	runtime.KeepAlive(f)
}

// withSource keys requests by remoteAddr: the first X-Forwarded-For
// address, else the peer; Bearer requests skip it.
func TestAbuseSourceOfRequest(t *testing.T) {
	var got string
	var had bool
	h := withSource(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got = sourceOf(r.Context())
		_, had = r.Context().Value(callerKey{}).(string)
	}))
	for _, tc := range []struct {
		xff, auth, want string
		has             bool
	}{
		{"", "", "192.0.2.1", true},
		{"203.0.113.5, 10.0.0.1", abuseBasic("a", "b"), "203.0.113.5", true},
		{"not-an-ip", "", "192.0.2.1", true},
		{"203.0.113.5", "Bearer lk_x", "", false},
		{"203.0.113.5", "bearer lk_x", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/verify", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.want || had != tc.has {
			t.Errorf("xff %q auth %q: source %q (recorded %v), want %q (%v)", tc.xff, tc.auth, got, had, tc.want, tc.has)
		}
	}
}

// While 1,000 concurrent wrong guesses from one source run against a
// user-chosen secret (default budget), the correct secret from a source
// that has not failed gets 200 at its first try: a source that has failed
// gets at most one computation per client id, leaving room for the others.
func TestAbuseFreshSourceDuringAttack(t *testing.T) {
	s, h, tok, _ := abuseServer(t)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c := abuseTokenRequest(h, "198.51.100.66", abuseChosenID, fmt.Sprintf("wrong-guess-number-%04d", i)).Code
			mu.Lock()
			codes[c]++
			mu.Unlock()
		}()
	}
	close(start)
	deadline := time.Now().Add(5 * time.Second)
	for s.auth.gate.inFlight() == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	fresh := abuseTokenRequest(h, "198.51.100.77", abuseChosenID, abuseChosenSecret)
	bearer := abuseVerifyRequest(h, "198.51.100.66", "Bearer "+tok).Code
	wg.Wait()
	t.Logf("attack answers %v", codes)
	if fresh.Code != http.StatusOK {
		t.Errorf("correct secret from a fresh source during the attack: %d %s, want 200", fresh.Code, fresh.Body)
	}
	if bearer != http.StatusOK {
		t.Errorf("bearer token during the attack: %d", bearer)
	}
	if codes[http.StatusUnauthorized] > s.opts.FailureBurst || codes[http.StatusUnauthorized]+codes[http.StatusTooManyRequests] != 1000 {
		t.Errorf("attack answers %v: want at most %d hashed (401), the rest 429", codes, s.opts.FailureBurst)
	}
}
