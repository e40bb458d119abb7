package operator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/heartbeat"
	"github.com/latchkey-dev/latchkey/internal/servingcert"
	"github.com/latchkey-dev/latchkey/internal/verifier"
	"github.com/latchkey-dev/latchkey/internal/webhook/certs"
)

// ByObject is keyed by pointer, so a kind configured twice is configured
// twice, and which entry wins depends on map order. Each mode must configure
// Secrets exactly once, label-selected: the manager cluster-wide (cluster
// mode) or in its namespaces and the token namespace (namespaced mode), the
// verifier only in the token namespace (its RBAC allows nothing else).
func TestCacheOptionsConfigureSecretsOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		namespaces []string
	}{
		{"operator", Options{Namespace: "lk"}, nil},
		{"operator, token namespace", Options{Namespace: "lk", TokenNamespace: "lk-tokens"}, nil},
		{"namespaced operator", Options{Namespace: "lk", WatchNamespaces: []string{"a"}}, []string{"lk", "a"}},
		{"namespaced operator, token namespace", Options{Namespace: "lk", TokenNamespace: "lk-tokens", WatchNamespaces: []string{"a", "b"}},
			[]string{"lk", "lk-tokens", "a", "b"}},
		{"verifier only", Options{Namespace: "lk", VerifierOnly: true}, []string{"lk"}},
		{"verifier only, token namespace", Options{Namespace: "lk", TokenNamespace: "lk-tokens", VerifierOnly: true}, []string{"lk-tokens"}},
		{"verifier only, namespaced", Options{Namespace: "lk", VerifierOnly: true, WatchNamespaces: []string{"a"}}, []string{"lk"}},
		{"verifier only, namespaced, token namespace", Options{Namespace: "lk", TokenNamespace: "lk-tokens", VerifierOnly: true, WatchNamespaces: []string{"a"}},
			[]string{"lk-tokens"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := CacheOptions(tc.opts)
			n := 0
			for obj, by := range co.ByObject {
				if _, ok := obj.(*corev1.Secret); !ok {
					continue
				}
				n++
				if by.Label == nil || by.Label.String() != "app.kubernetes.io/managed-by=latchkey" {
					t.Errorf("Secret cache selector = %v", by.Label)
				}
				if len(by.Namespaces) != len(tc.namespaces) {
					t.Fatalf("Secret cache namespaces = %v, want %v", by.Namespaces, tc.namespaces)
				}
				for _, ns := range tc.namespaces {
					if _, ok := by.Namespaces[ns]; !ok {
						t.Errorf("Secret cache namespaces = %v, want %v", by.Namespaces, tc.namespaces)
					}
				}
			}
			if n != 1 {
				t.Fatalf("Secrets configured %d times in ByObject, want once", n)
			}
		})
	}
}

// The token namespace holds Secrets only: Latchkey's resources are cached
// where they are managed, never there.
func TestCacheOptionsTokenNamespace(t *testing.T) {
	co := CacheOptions(Options{Namespace: "lk", TokenNamespace: "lk-tokens", WatchNamespaces: []string{"a"}})
	if _, ok := co.DefaultNamespaces["lk-tokens"]; ok || len(co.DefaultNamespaces) != 2 {
		t.Fatalf("DefaultNamespaces = %v, want lk and a", co.DefaultNamespaces)
	}
	if co := CacheOptions(Options{Namespace: "lk", TokenNamespace: "lk-tokens"}); co.DefaultNamespaces != nil {
		t.Fatalf("cluster mode: DefaultNamespaces = %v, want all", co.DefaultNamespaces)
	}
}

// Defaults: the token namespace defaults to the operator's (make run and
// existing installs keep their backing tokens), the verifier reads from it,
// and the access-token issuer still names the verifier Service in the
// operator's namespace.
func TestDefaultsTokenNamespace(t *testing.T) {
	o := Options{Namespace: "lk"}
	o.Defaults()
	if o.TokenNamespace != "lk" || o.Verifier.Namespace != "lk" {
		t.Fatalf("TokenNamespace %q, Verifier.Namespace %q, want lk", o.TokenNamespace, o.Verifier.Namespace)
	}
	o = Options{Namespace: "lk", TokenNamespace: "lk-tokens"}
	o.Defaults()
	if o.Verifier.Namespace != "lk-tokens" {
		t.Fatalf("Verifier.Namespace %q, want lk-tokens", o.Verifier.Namespace)
	}
	if want := "https://latchkey-verifier.lk.svc:8082"; o.Verifier.Issuer != want {
		t.Fatalf("Verifier.Issuer %q, want %q", o.Verifier.Issuer, want)
	}
}

// Metrics: HTTPS with authentication and authorization when MetricsSecure.
func TestMetricsOptions(t *testing.T) {
	if m := metricsOptions(Options{MetricsAddr: ":8443", MetricsSecure: true}, nil); !m.SecureServing || m.FilterProvider == nil {
		t.Fatalf("secure metrics: SecureServing %v, FilterProvider set %v", m.SecureServing, m.FilterProvider != nil)
	}
	if m := metricsOptions(Options{MetricsAddr: ":8080"}, nil); m.SecureServing || m.FilterProvider != nil {
		t.Fatal("insecure metrics: HTTPS or a filter")
	}
}

// Every mode's Secret informer trims what Latchkey does not own (and strips
// managedFields, since a ByObject transform replaces DefaultTransform).
func TestCacheOptionsTransformSecrets(t *testing.T) {
	for _, opts := range []Options{{Namespace: "lk"}, {Namespace: "lk", WatchNamespaces: []string{"a"}}, {Namespace: "lk", VerifierOnly: true}} {
		for obj, by := range CacheOptions(opts).ByObject {
			if _, ok := obj.(*corev1.Secret); ok && by.Transform == nil {
				t.Errorf("%+v: no Secret transform", opts)
			}
		}
	}
}

func transformed(t *testing.T, opts Options, s *corev1.Secret) *corev1.Secret {
	t.Helper()
	tr := secretTransform(opts)
	out, err := tr(s.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := out.(*backing.CachedSecret); ok {
		// A consumer Secret, held compact: a resync hands it back as is;
		// read, it is the trimmed Secret, which transforms to the same.
		if again, _ := tr(c); again != c {
			t.Fatal("the transform is not idempotent on a compact Secret")
		}
		out = c.DeepCopyObject()
		if again, _ := tr(out.(*corev1.Secret).DeepCopy()); !reflect.DeepEqual(again, c) {
			t.Fatalf("the transform is not idempotent:\n%+v\n%+v", c, again)
		}
		return out.(*corev1.Secret)
	}
	again, err := tr(out.(*corev1.Secret).DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, again) {
		t.Fatalf("the transform is not idempotent:\n%+v\n%+v", out, again)
	}
	return out.(*corev1.Secret)
}

func labelled(ns, name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "latchkey"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Type: typ, Data: data,
	}
}

// Secrets Latchkey writes in its own namespaces are cached whole; the same
// types elsewhere, and other Secrets there, keep no data.
func TestSecretTransformKeepsOwnSecrets(t *testing.T) {
	opts := Options{Namespace: "lk", TokenNamespace: "lk-tokens", Verifier: verifier.Options{TLSSecret: "verifier-tls"}}
	payload := map[string][]byte{"hash": bytes.Repeat([]byte("h"), 4<<10)}
	for _, tc := range []struct {
		ns, name string
		typ      corev1.SecretType
		kept     bool
	}{
		{"lk-tokens", "lk-abc", backing.SecretType, true},
		{"lk-tokens", "lkid-abc", backing.ClaimSecretType, true},
		{"lk-tokens", backing.SigningKeysSecretName, backing.SigningKeysSecretType, true},
		{"lk-tokens", heartbeat.Name, heartbeat.SecretType, true},
		{"lk-tokens", "verifier-tls", corev1.SecretTypeTLS, true},
		{"lk", servingcert.DefaultCASecretName, corev1.SecretTypeOpaque, true},
		{"lk", certs.DefaultSecretName, corev1.SecretTypeOpaque, true},
		{"lk", "lk-abc", backing.SecretType, true},
		{"lk", "verifier-tls", corev1.SecretTypeTLS, false}, // named in the token namespace only
		{"lk-tokens", "someone-elses", corev1.SecretTypeOpaque, false},
		{"tenant", "lk-abc", backing.SecretType, false},
		{"tenant", backing.SigningKeysSecretName, backing.SigningKeysSecretType, false},
		{"tenant", "verifier-tls", corev1.SecretTypeTLS, false},
	} {
		in := labelled(tc.ns, tc.name, tc.typ, payload)
		in.Annotations = map[string]string{"big": strings.Repeat("a", 8<<10)}
		out := transformed(t, opts, in)
		if out.ManagedFields != nil {
			t.Errorf("%s/%s: managedFields kept", tc.ns, tc.name)
		}
		if tc.kept {
			if !reflect.DeepEqual(out.Data, payload) || out.Annotations["big"] == "" {
				t.Errorf("%s/%s (%s): not kept whole", tc.ns, tc.name, tc.typ)
			}
		} else if out.Data != nil || out.Annotations["big"] != "" {
			t.Errorf("%s/%s (%s): kept %d data keys, annotation %d bytes", tc.ns, tc.name, tc.typ, len(out.Data), len(out.Annotations["big"]))
		}
	}
}

// A consumer Secret keeps the keys Latchkey writes (values capped) and shows
// that other keys exist, with empty values: the tamper checks see exactly
// what they would see uncached, except a value no issue can have.
func TestSecretTransformConsumerSecrets(t *testing.T) {
	for _, typ := range []corev1.SecretType{latchkeyv1alpha1.ClientSecretType, latchkeyv1alpha1.GrantSecretType} {
		in := labelled("tenant", "creds", typ, map[string][]byte{
			"client_id": []byte("id_P3OsKW8jmcsM174m"), "token": []byte("lk_abc"), "expires_at": {},
			"client_secret": bytes.Repeat([]byte("s"), cacheMaxValue+1),
			"x1":            bytes.Repeat([]byte("x"), 1<<20), "x2": []byte("y"), "x3": nil, "x4": []byte("z"), "x5": []byte("w"), "longer-extra": []byte("v"),
		})
		out := transformed(t, Options{Namespace: "lk"}, in)
		for _, k := range []string{"client_id", "token", "expires_at"} {
			if !bytes.Equal(out.Data[k], in.Data[k]) {
				t.Errorf("%s: %s = %q, want %q", typ, k, out.Data[k], in.Data[k])
			}
		}
		if v := out.Data["client_secret"]; len(v) == 0 || len(v) > cacheMaxValue || bytes.Equal(v, in.Data["client_secret"]) || !bytes.HasPrefix(v, []byte("latchkey.dev/elided-")) {
			t.Errorf("%s: an over-long value is cached as %d bytes %.40q", typ, len(v), v)
		}
		extra := 0
		for k, v := range out.Data {
			if !consumerKeys[k] {
				extra++
				if len(v) != 0 {
					t.Errorf("%s: extra key %s kept with %d bytes", typ, k, len(v))
				}
			}
		}
		if extra != cacheMaxExtraKeys {
			t.Errorf("%s: %d extra keys kept, want %d", typ, extra, cacheMaxExtraKeys)
		}
	}
}

// The metadata of a Secret Latchkey does not own is bounded: oversized
// annotations (kubectl's last-applied-configuration) and labels beyond the
// budget go, Latchkey's own keys first stay; only the controller owner
// reference and no finalizer are kept.
func TestSecretTransformBoundsMetadata(t *testing.T) {
	in := labelled("tenant", "mine", corev1.SecretTypeOpaque, map[string][]byte{"k": []byte("v")})
	in.Annotations = map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("a", cacheMaxAnnotation+1),
		"latchkey.dev/token-id":                            "abc",
		"latchkey.dev/rotated-for":                         "r1",
		"team":                                             "blue",
	}
	for i := range 64 {
		in.Annotations[fmt.Sprintf("z%02d", i)] = strings.Repeat("b", cacheMaxAnnotation)
	}
	in.Labels["latchkey.dev/owner-uid"] = "u"
	for i := range 2000 {
		in.Labels[fmt.Sprintf("a%04d.example.com/some-long-label-key-%d", i, i)] = strings.Repeat("c", 63)
	}
	yes := true
	in.OwnerReferences = []metav1.OwnerReference{{Name: "a", UID: "1"}, {Name: "b", UID: "2", Controller: &yes}, {Name: "c", UID: "3"}}
	in.Finalizers = []string{"example.com/one", "example.com/two"}
	out := transformed(t, Options{Namespace: "lk"}, in)

	if out.Data != nil {
		t.Errorf("data kept: %v", out.Data)
	}
	for _, k := range []string{"latchkey.dev/token-id", "latchkey.dev/rotated-for", "team"} {
		if out.Annotations[k] != in.Annotations[k] {
			t.Errorf("annotation %s dropped", k)
		}
	}
	if _, ok := out.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Error("an oversized annotation is kept")
	}
	if n := size(out.Annotations); n > cacheAnnotationBudget {
		t.Errorf("annotations: %d bytes kept", n)
	}
	for _, k := range []string{"app.kubernetes.io/managed-by", "latchkey.dev/owner-uid"} {
		if out.Labels[k] != in.Labels[k] {
			t.Errorf("label %s dropped", k)
		}
	}
	if n := size(out.Labels); n > cacheLabelBudget || len(out.Labels) < 10 {
		t.Errorf("labels: %d kept, %d bytes", len(out.Labels), n)
	}
	if len(out.OwnerReferences) != 1 || out.OwnerReferences[0].Name != "b" {
		t.Errorf("owner references = %v, want the controller only", out.OwnerReferences)
	}
	if out.Finalizers != nil {
		t.Errorf("finalizers = %v", out.Finalizers)
	}
}

func size(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	return n
}

// The manager's cache records its informers for the verifier, so that a
// namespace-restricted cache (whose informers expose no indexer) is still
// read through indexers (internal/verifier/suite
// TestVerifierServesFromInformerIndexers).
func TestDefaultsShareInformersWithVerifier(t *testing.T) {
	o := Options{Namespace: "lk", WatchNamespaces: []string{"a"}, VerifierOnly: true}
	o.Defaults()
	if o.Verifier.Informers == nil {
		t.Fatal("Defaults left Verifier.Informers nil")
	}
	if CacheOptions(o).NewInformer == nil {
		t.Fatal("the cache does not record its informers for the verifier")
	}
}

// Latchkey's caches store its backing tokens and claims in their compact
// forms (a tenant's Secret of the backing-token type never); a verifier-only
// cache keeps of ApiClients and CredentialGrants only what verification
// reads.
func TestVerifierOnlyCacheIsCompact(t *testing.T) {
	tok := backing.Token{ID: "abcdefghijklmnop", Hash: "h", OwnerKind: backing.KindApiClient, OwnerNamespace: "a",
		OwnerName: "blog", OwnerUID: "u1", ClientUID: "u1", ClientID: "id_abc", Type: backing.TypeClientSecret}
	only := secretTransform(Options{Namespace: "lk", VerifierOnly: true})
	out, err := only(tok.Secret("lk"))
	if err != nil {
		t.Fatal(err)
	}
	ct, ok := out.(*backing.CachedToken)
	if !ok || ct.Token.ID != tok.ID || ct.Token.Hash != "h" {
		t.Fatalf("verifier-only: %T %+v", out, out)
	}
	if again, _ := only(ct); again != ct {
		t.Fatal("the transform is not idempotent on a compact token")
	}
	claim := backing.Claim{ClientID: "id_abc", ClientUID: "u1", OwnerNamespace: "a", OwnerName: "blog"}
	if out, _ := only(claim.Secret("lk")); reflect.TypeOf(out) != reflect.TypeFor[*backing.CachedClaim]() {
		t.Fatalf("verifier-only claim: %T", out)
	}
	if out, _ := only(tok.Secret("tenant")); reflect.TypeOf(out) != reflect.TypeFor[*corev1.Secret]() || out.(*corev1.Secret).Data != nil {
		t.Fatalf("a tenant's Secret of the backing-token type: %T %+v", out, out)
	}
	if out, _ := secretTransform(Options{Namespace: "lk"})(tok.Secret("lk")); reflect.TypeOf(out) != reflect.TypeFor[*backing.CachedToken]() {
		t.Fatalf("full manager: %T", out)
	}

	yes := true
	c := &latchkeyv1alpha1.ApiClient{ObjectMeta: metav1.ObjectMeta{Name: "blog", Namespace: "a", UID: "u1", ResourceVersion: "7",
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}"}, Finalizers: []string{"f"}},
		Spec: latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"s"}, Permissions: []string{"p"}, Tenant: "2", Active: &yes,
			AllowLogin: true, AllowImpersonate: true, Attributes: map[string]latchkeyv1alpha1.AttributeValue{"k": "v"}, DisplayName: "Blog"},
		Status: latchkeyv1alpha1.ApiClientStatus{Conditions: []metav1.Condition{{Type: "Ready"}},
			UsageStatus: latchkeyv1alpha1.UsageStatus{LastUsedFrom: "10.0.0.1"}}}
	got, _ := verifierClientTransform(c.DeepCopy())
	gc := got.(*latchkeyv1alpha1.ApiClient)
	want := c.DeepCopy()
	want.Annotations, want.Finalizers, want.Status.Conditions, want.Spec.DisplayName = nil, nil, nil, ""
	if !reflect.DeepEqual(gc, want) {
		t.Fatalf("verifier-only ApiClient:\n got %+v\nwant %+v", gc, want)
	}
	exp := metav1.Now()
	g := &latchkeyv1alpha1.CredentialGrant{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "a", UID: "u2", Labels: map[string]string{"x": "y"}},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: "blog", Permissions: []string{"p"}, ExpiresAt: &exp, Description: "d",
			Type: latchkeyv1alpha1.CredentialTypeKeyAuth, AllowedRequests: []string{"GET /x"},
			Attributes: map[string]latchkeyv1alpha1.AttributeValue{"k": "v"}, SecretName: "other"},
		Status: latchkeyv1alpha1.CredentialGrantStatus{TokenID: "t", UsageStatus: latchkeyv1alpha1.UsageStatus{LastUsedFrom: "10.0.0.1"}}}
	got, _ = verifierGrantTransform(g.DeepCopy())
	wantG := g.DeepCopy()
	wantG.Labels, wantG.Spec.SecretName, wantG.Status.TokenID = nil, "", ""
	if !reflect.DeepEqual(got, wantG) {
		t.Fatalf("verifier-only CredentialGrant:\n got %+v\nwant %+v", got, wantG)
	}
}

// Run's result when the verifier's manager returned err: nothing when ctx
// ended, an error when the verifier stopped on its own.
func TestVerifierStopped(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		err     error
		wantErr bool
	}{
		{"ctx ended, verifier returned nil", done, nil, false},
		{"ctx ended, verifier canceled", done, context.Canceled, false},
		{"ctx ended, verifier failed", done, boom, true},
		{"ctx live, verifier returned nil", live, nil, true},
		{"ctx live, verifier failed", live, boom, true},
	} {
		if got := verifierStopped(tc.ctx, tc.err); (got != nil) != tc.wantErr {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}
