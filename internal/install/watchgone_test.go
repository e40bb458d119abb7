package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/operator"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"go.uber.org/zap/zapcore"
)

// Issue 14, faults: the API server restarted with a compacted etcd. The
// operator (one in-process manager with leader election and its verifier,
// reaching the API server only through apiProxy) is cut off; meanwhile an
// administrator revokes credentials every way there is (a grant deleted, a
// client deactivated, a grant expired, a backing token deleted by hand),
// unrelated writes move etcd's revision on, etcd is compacted at its current
// revision and kube-apiserver is restarted on it. When the operator reaches
// the API server again, every watch it resumes gets 410 Gone; it relists,
// and then:
//   - every revocation made during the gap takes effect (401 at /v1/verify);
//   - nothing is reissued: every consumer Secret holds the same data and
//     resourceVersion, no backing token is created, except the one the
//     design says: a backing token deleted by hand is reissued (a Reissued
//     Warning, docs/credentials.md), under a new token id;
//   - the credentials left alone answer 200.
//
// The operator runs in this process so that its API traffic can be watched
// (watchTraffic): the test fails unless each informer the verification
// depends on (Secrets, ApiClients, CredentialGrants) saw 410 Gone and
// relisted, so it cannot pass by a path that never met the fault. Leader
// election is on, with a lease longer than the gap: losing it is
// TestAPIServerOutage's subject, and a restarted manager would relist
// anyway, hiding what this test looks for.
func TestWatchGoneAfterCompaction(t *testing.T) {
	ctx := context.Background()
	// Fresh namespaces: the operator's, its tokens', the credentials',
	// and one for unrelated writes.
	ns, tokenNS, apps, churn := env.Namespace(t), env.Namespace(t), env.Namespace(t), env.Namespace(t)
	apiURL, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newAPIProxy(t, apiURL.Host)
	// The operator's logs (leader election and watches failing through the
	// gap are expected) are kept, and shown if the test fails.
	var logs syncBuffer
	prev := testenv.LogLevel.Level()
	testenv.LogLevel.SetLevel(zapcore.InfoLevel)
	untap := testenv.Logs.Tap(&logs)
	t.Cleanup(func() { // after the manager's own cleanup: it stops first
		untap()
		testenv.LogLevel.SetLevel(prev)
		if t.Failed() {
			t.Logf("operator log (last 8000 bytes):\n%s", tail(logs.Bytes(), 8000))
		}
	})
	traffic := &watchTraffic{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	verifierAddr := ln.Addr().String()
	opts := operator.Options{
		Namespace: ns, TokenNamespace: tokenNS, WatchNamespaces: []string{apps},
		MetricsAddr: "0", VerifierListener: ln, SkipControllerNameValidation: true,
		LeaderElection: true, LeaderElectionID: "latchkey-gone",
		LeaseDuration: 90 * time.Second, RenewDeadline: 60 * time.Second, RetryPeriod: 2 * time.Second,
	}
	opts.Defaults()
	mgr, err := operator.NewManager(traffic.wrap(proxy.config(env.Config)), opts)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RunManager(t, mgr)

	// Two clients; grants of which one stays valid and the others are
	// revoked during the gap, each in its own way.
	grants := map[string]string{ // grant -> client
		"keep-token": "keep", "off-token": "off", "deleted-token": "keep",
		"expired-token": "keep", "handdel-token": "keep",
	}
	for _, c := range []string{"keep", "off"} {
		o := &latchkeyv1alpha1.ApiClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: c},
			Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"},
		}
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for g, c := range grants {
		o := &latchkeyv1alpha1.CredentialGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: g},
			Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: c},
		}
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitAllReady(t, apps, 2+len(grants), 60*time.Second)
	tokens := map[string]string{} // grant -> its token
	for g := range grants {
		tokens[g] = secretValue(t, apps, g, "token")
	}
	verify := func(tok string) (int, error) {
		code, _, err := get(verifierAddr, "/v1/verify", http.Header{"Authorization": {"Bearer " + tok}})
		return code, err
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		for g, tok := range tokens {
			if code, err := verify(tok); code != http.StatusOK {
				return fmt.Errorf("%s before the gap: /v1/verify %d %v", g, code, err)
			}
		}
		return nil
	})
	secretsBefore := consumerSecrets(t, apps)
	backingBefore := backingTokens(t, tokenNS)
	if len(secretsBefore) != 2+len(grants) || len(backingBefore) != 2+len(grants) {
		t.Fatalf("%d consumer Secrets and %d backing tokens before the gap, want %d each", len(secretsBefore), len(backingBefore), 2+len(grants))
	}
	handdelID := secretsBefore["handdel-token"].tokenID
	var before corev1.SecretList
	if err := env.Client.List(ctx, &before, client.InNamespace(tokenNS)); err != nil {
		t.Fatal(err)
	}
	gapStart := before.ResourceVersion

	// The gap.
	proxy.refuse()
	gapBegan := time.Now()
	traffic.mark()
	revoke := []client.Object{}
	del := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: "deleted-token"}}
	if err := env.Client.Delete(ctx, del); err != nil {
		t.Fatal(err)
	}
	off := &latchkeyv1alpha1.ApiClient{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: apps, Name: "off"}, off); err != nil {
		t.Fatal(err)
	}
	off.Spec.Active = ptr.To(false)
	exp := &latchkeyv1alpha1.CredentialGrant{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: apps, Name: "expired-token"}, exp); err != nil {
		t.Fatal(err)
	}
	exp.Spec.ExpiresAt = &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)}
	revoke = append(revoke, off, exp)
	for _, o := range revoke {
		if err := env.Client.Update(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	hand := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tokenNS, Name: backing.Name(handdelID)}}
	if err := env.Client.Delete(ctx, hand); err != nil {
		t.Fatalf("deleting the backing token of handdel-token by hand: %v", err)
	}
	// Unrelated writes move the revision far past the operator's.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: churn, Name: "churn"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		cm.Data = map[string]string{"i": strconv.Itoa(i)}
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	compacted := compactEtcd(t, env.EtcdURL())
	if err := env.RestartAPIServer(); err != nil {
		t.Fatal(err)
	}
	// The fault is there: a watch from before the gap is 410 Gone.
	assertWatchGone(t, tokenNS, gapStart)
	proxy.restore()
	t.Logf("gap of %s: etcd compacted at revision %d (the operator's last view: %s or earlier), kube-apiserver restarted",
		time.Since(gapBegan).Round(100*time.Millisecond), compacted, gapStart)

	// The operator meets 410 Gone on every watch it resumes, and relists.
	testenv.Eventually(t, 60*time.Second, func() error {
		return traffic.goneAndRelisted("secrets", "apiclients", "credentialgrants")
	})
	// Revocations made during the gap take effect; the rest stays valid.
	testenv.Eventually(t, 60*time.Second, func() error {
		var e []string
		for g, tok := range tokens {
			want := http.StatusUnauthorized
			if g == "keep-token" {
				want = http.StatusOK
			}
			if code, err := verify(tok); code != want {
				e = append(e, fmt.Sprintf("%s: /v1/verify %d (want %d) %v", g, code, want, err))
			}
		}
		if len(e) > 0 {
			return errors.New(strings.Join(e, "; "))
		}
		return nil
	})
	// The operator finishes what the revocations ask of it: the deleted
	// grant's finalizer, the expiry, the deactivation, the reissue.
	testenv.Eventually(t, 60*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(del), del); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleted-token still there (finalizers %v): %v", del.Finalizers, err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(exp), exp); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(exp.Status.Conditions, latchkeyv1alpha1.ConditionExpired) {
			return fmt.Errorf("expired-token: not Expired: %v", exp.Status.Conditions)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(off), off); err != nil {
			return err
		}
		if !meta.IsStatusConditionFalse(off.Status.Conditions, latchkeyv1alpha1.ConditionActive) {
			return fmt.Errorf("off: still Active: %v", off.Status.Conditions)
		}
		hd := &latchkeyv1alpha1.CredentialGrant{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: apps, Name: "handdel-token"}, hd); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(hd.Status.Conditions, latchkeyv1alpha1.ConditionReady) || hd.Status.TokenID == handdelID {
			return fmt.Errorf("handdel-token: not reissued yet (token id %s, conditions %v)", hd.Status.TokenID, hd.Status.Conditions)
		}
		if code, err := verify(secretValue(t, apps, "handdel-token", "token")); code != http.StatusOK {
			return fmt.Errorf("handdel-token's reissued token: /v1/verify %d %v", code, err)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // any write still coming would land now

	var problems []string
	// Nothing reissued but the credential whose backing token was deleted.
	secretsAfter := consumerSecrets(t, apps)
	for name, b := range secretsBefore {
		a, ok := secretsAfter[name]
		switch {
		case name == "deleted-token":
			// Owned by the deleted grant: the garbage collector's (none
			// runs here). It must not have been rewritten either.
			if ok && a != b {
				problems = append(problems, fmt.Sprintf("Secret %s of the deleted grant rewritten: %+v, was %+v", name, a, b))
			}
		case name == "handdel-token":
			if !ok || a.tokenID == b.tokenID || a.data == b.data {
				problems = append(problems, fmt.Sprintf("Secret %s not reissued after its backing token was deleted by hand: %+v, was %+v", name, a, b))
			}
		case !ok:
			problems = append(problems, fmt.Sprintf("Secret %s is gone", name))
		case a != b:
			problems = append(problems, fmt.Sprintf("Secret %s rewritten after the relist: %+v, was %+v", name, a, b))
		}
	}
	// Backing tokens: those revoked are gone, exactly one was created
	// (handdel-token's new one), the others are the same.
	backingAfter := backingTokens(t, tokenNS)
	revokedIDs := map[string]bool{
		secretsBefore["deleted-token"].tokenID: true, secretsBefore["expired-token"].tokenID: true, handdelID: true,
	}
	for id, owner := range backingBefore {
		if _, live := backingAfter[id]; live == revokedIDs[id] {
			problems = append(problems, fmt.Sprintf("backing token %s (owner %s): live=%v after the gap, want %v", id, owner, live, !revokedIDs[id]))
		}
	}
	var created []string
	for id := range backingAfter {
		if _, ok := backingBefore[id]; !ok {
			created = append(created, id)
		}
	}
	if want := secretsAfter["handdel-token"].tokenID; len(created) != 1 || created[0] != want {
		problems = append(problems, fmt.Sprintf("backing tokens created after the gap: %v, want only handdel-token's new %s", created, want))
	}
	// Events: one Reissued Warning, for handdel-token (docs/credentials.md:
	// a backing token deleted by hand is Reissued, not SecretTampered: the
	// Secret was not touched); no other Warning.
	var events corev1.EventList
	if err := env.Client.List(ctx, &events, client.InNamespace(apps)); err != nil {
		t.Fatal(err)
	}
	reissued := 0
	for _, e := range events.Items {
		if e.Type != corev1.EventTypeWarning {
			continue
		}
		if e.Reason == "Reissued" && e.InvolvedObject.Name == "handdel-token" {
			reissued++
			continue
		}
		problems = append(problems, fmt.Sprintf("Event %s %s on %s: %s", e.Type, e.Reason, e.InvolvedObject.Name, e.Message))
	}
	if reissued == 0 {
		problems = append(problems, "no Warning Event for handdel-token's reissue, whose backing token was deleted by hand")
	}
	if len(problems) > 0 {
		t.Fatalf("after kube-apiserver restarted on a compacted etcd:\n%s", strings.Join(problems, "\n"))
	}
	t.Logf("410 Gone and relists after the gap:\n%s", traffic.table())
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// consumerSecret is what a consumer Secret holds, compared across the gap.
type consumerSecret struct {
	tokenID, resourceVersion string
	data                     [sha256.Size]byte
}

// consumerSecrets returns the Secrets Latchkey issued in ns, by name.
func consumerSecrets(t testing.TB, ns string) map[string]consumerSecret {
	t.Helper()
	var l corev1.SecretList
	if err := env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]consumerSecret{}
	for _, s := range l.Items {
		id := s.Annotations[latchkeyv1alpha1.AnnotationTokenID]
		if id == "" {
			continue
		}
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h := sha256.New()
		for _, k := range keys {
			h.Write(fmt.Appendf(nil, "%s=%x;", k, s.Data[k]))
		}
		out[s.Name] = consumerSecret{tokenID: id, resourceVersion: s.ResourceVersion, data: [sha256.Size]byte(h.Sum(nil))}
	}
	return out
}

// backingTokens returns the backing tokens in ns: token id -> owner UID.
func backingTokens(t testing.TB, ns string) map[string]string {
	t.Helper()
	var l corev1.SecretList
	if err := env.Client.List(context.Background(), &l, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := range l.Items {
		if l.Items[i].Type != backing.SecretType {
			continue
		}
		bt, err := backing.FromSecret(&l.Items[i])
		if err != nil {
			t.Fatalf("unreadable backing token %s: %v", l.Items[i].Name, err)
		}
		out[bt.ID] = string(bt.OwnerUID)
	}
	return out
}

// compactEtcd compacts etcd's history at its current revision (physically:
// the old revisions are gone from disk), through etcd's gRPC-JSON gateway,
// and returns that revision.
func compactEtcd(t testing.TB, etcdURL string) int64 {
	t.Helper()
	call := func(path string, in any) map[string]any {
		b, _ := json.Marshal(in)
		resp, err := http.Post(strings.TrimRight(etcdURL, "/")+path, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatalf("etcd %s: %v", path, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("etcd %s: %d %s", path, resp.StatusCode, body)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("etcd %s: %v: %s", path, err, body)
		}
		return out
	}
	// Any range answers with the store's current revision in its header.
	r := call("/v3/kv/range", map[string]any{"key": base64.StdEncoding.EncodeToString([]byte("/registry/health"))})
	header, _ := r["header"].(map[string]any)
	rev, err := strconv.ParseInt(fmt.Sprint(header["revision"]), 10, 64)
	if err != nil || rev == 0 {
		t.Fatalf("etcd's revision: %v (%v)", header["revision"], err)
	}
	call("/v3/kv/compaction", map[string]any{"revision": strconv.FormatInt(rev, 10), "physical": true})
	return rev
}

// assertWatchGone checks that a watch on ns's Secrets from resourceVersion rv
// is refused with 410 Gone, as the operator's resumed watches must be.
func assertWatchGone(t testing.TB, ns, rv string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := cs.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	if err != nil {
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return
		}
		t.Fatalf("a watch from resourceVersion %s after the restart: %v, want 410 Gone", rv, err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type != watch.Error {
			t.Fatalf("a watch from resourceVersion %s after the restart delivered %s: the test did not make the fault it is about", rv, ev.Type)
		}
		st := apierrors.FromObject(ev.Object)
		if apierrors.IsResourceExpired(st) || apierrors.IsGone(st) {
			return
		}
		t.Fatalf("a watch from resourceVersion %s after the restart: %v, want 410 Gone", rv, st)
	}
	t.Fatalf("a watch from resourceVersion %s after the restart ended without 410 Gone", rv)
}

// watchTraffic watches the operator's API requests: per resource, whether a
// watch was refused with 410 Gone after mark, and whether a relist (a LIST,
// or a watch that sends the initial state) followed it.
type watchTraffic struct {
	mu       sync.Mutex
	marked   bool
	goneAt   map[string]time.Time
	gone     map[string]int
	relisted map[string]int
}

// goneMarkers are what a 410 Gone on a watch says, in JSON and protobuf
// alike: the watch cache's message and etcd's.
var goneMarkers = [][]byte{[]byte("too old resource version"), []byte("resourceVersion for the provided watch is too old")}

// mark starts the watch: what came before is not counted.
func (w *watchTraffic) mark() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marked = true
	w.goneAt, w.gone, w.relisted = map[string]time.Time{}, map[string]int{}, map[string]int{}
}

func (w *watchTraffic) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(req *http.Request) (*http.Response, error) {
			resource, kind := classifyWatch(req)
			w.mu.Lock()
			_, afterGone := w.goneAt[resource]
			w.mu.Unlock()
			resp, err := rt.RoundTrip(req)
			if err != nil || resource == "" {
				return resp, err
			}
			if kind == "relist" && afterGone && resp.StatusCode == http.StatusOK {
				w.mu.Lock()
				w.relisted[resource]++
				w.mu.Unlock()
			}
			if resp.StatusCode == http.StatusGone {
				w.sawGone(resource)
			} else if kind == "watch" {
				resp.Body = &goneScanner{ReadCloser: resp.Body, found: func() { w.sawGone(resource) }}
			}
			return resp, err
		})
	})
	return cfg
}

func (w *watchTraffic) sawGone(resource string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.marked {
		return
	}
	w.gone[resource]++
	if _, ok := w.goneAt[resource]; !ok {
		w.goneAt[resource] = time.Now()
	}
}

// goneAndRelisted says which of the resources have not yet had a watch
// refused with 410 Gone followed by a relist.
func (w *watchTraffic) goneAndRelisted(resources ...string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var missing []string
	for _, r := range resources {
		if w.gone[r] == 0 || w.relisted[r] == 0 {
			missing = append(missing, fmt.Sprintf("%s (410 Gone %d, relists after it %d)", r, w.gone[r], w.relisted[r]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the operator's informers have not met 410 Gone and relisted: %s", strings.Join(missing, ", "))
	}
	return nil
}

func (w *watchTraffic) table() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var rows []string
	for r, n := range w.gone {
		rows = append(rows, fmt.Sprintf("  %-20s 410 Gone %d, relists after it %d", r, n, w.relisted[r]))
	}
	slices.Sort(rows)
	return strings.Join(rows, "\n")
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classifyWatch names the resource of a collection request and whether it
// is a "watch" resumed from a resourceVersion or a "relist" (a LIST, or a
// watch-list that sends the initial state first); "" for anything else.
func classifyWatch(r *http.Request) (resource, kind string) {
	if r.Method != http.MethodGet {
		return "", ""
	}
	parts := testenv.APIPath(r)
	if len(parts) != 1 {
		return "", "" // a named object, a namespace itself, discovery
	}
	q := r.URL.Query()
	switch {
	case q.Get("watch") != "true" && q.Get("watch") != "1":
		return parts[0], "relist"
	case q.Get("sendInitialEvents") == "true":
		return parts[0], "relist"
	default:
		return parts[0], "watch"
	}
}

// goneScanner reports once when a watch stream says 410 Gone.
type goneScanner struct {
	io.ReadCloser
	tail  []byte
	done  bool
	found func()
}

func (s *goneScanner) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if n > 0 && !s.done {
		buf := append(s.tail, p[:n]...)
		for _, m := range goneMarkers {
			if bytes.Contains(buf, m) {
				s.done = true
				s.found()
				break
			}
		}
		if keep := 64; len(buf) > keep {
			buf = buf[len(buf)-keep:]
		}
		s.tail = append(s.tail[:0], buf...)
	}
	return n, err
}
