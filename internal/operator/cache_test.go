package operator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// Equality in these tests is reflect.DeepEqual: nil and empty maps and
// slices differ, pointers compare by what they point to, and a
// metav1.Time by its instant and its location.

// trimmedSecret is what the cache held of a Secret Latchkey does not own
// before consumer Secrets were held compact: the Secret, managedFields
// stripped, trimmed.
func trimmedSecret(in *corev1.Secret) *corev1.Secret {
	out, err := cache.TransformStripManagedFields()(in.DeepCopy())
	if err != nil {
		panic(err)
	}
	s := out.(*corev1.Secret)
	trimSecret(s)
	return s
}

// decoded is s as an informer receives it: through the API's encoding.
func decoded(t testing.TB, s *corev1.Secret) *corev1.Secret {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out corev1.Secret
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// sameAsSecret checks that every metav1.Object getter of got answers what
// want's does, and that got renders as want.
func sameAsSecret(t *testing.T, name string, got *backing.CachedSecret, want *corev1.Secret) {
	t.Helper()
	w := metav1.Object(want)
	for _, g := range []struct {
		field     string
		got, want any
	}{
		{"namespace", got.GetNamespace(), w.GetNamespace()},
		{"name", got.GetName(), w.GetName()},
		{"generateName", got.GetGenerateName(), w.GetGenerateName()},
		{"uid", got.GetUID(), w.GetUID()},
		{"resourceVersion", got.GetResourceVersion(), w.GetResourceVersion()},
		{"generation", got.GetGeneration(), w.GetGeneration()},
		{"selfLink", got.GetSelfLink(), w.GetSelfLink()},
		{"creationTimestamp", got.GetCreationTimestamp(), w.GetCreationTimestamp()},
		{"deletionTimestamp", got.GetDeletionTimestamp(), w.GetDeletionTimestamp()},
		{"deletionGracePeriodSeconds", got.GetDeletionGracePeriodSeconds(), w.GetDeletionGracePeriodSeconds()},
		{"labels", got.GetLabels(), w.GetLabels()},
		{"annotations", got.GetAnnotations(), w.GetAnnotations()},
		{"finalizers", got.GetFinalizers(), w.GetFinalizers()},
		{"ownerReferences", got.GetOwnerReferences(), w.GetOwnerReferences()},
		{"managedFields", got.GetManagedFields(), w.GetManagedFields()},
		{"type", got.Type(), want.Type},
	} {
		if !reflect.DeepEqual(g.got, g.want) {
			t.Errorf("%s: %s = %#v, the Secret's is %#v", name, g.field, g.got, g.want)
		}
	}
	for k, v := range want.Labels {
		if got.Label(k) != v {
			t.Errorf("%s: Label(%q) = %q, want %q", name, k, got.Label(k), v)
		}
	}
	for k, v := range want.Annotations {
		if got.Annotation(k) != v {
			t.Errorf("%s: Annotation(%q) = %q, want %q", name, k, got.Annotation(k), v)
		}
	}
	if got.Label("absent") != "" || got.Annotation("absent") != "" {
		t.Errorf("%s: an absent key has a value", name)
	}
	r := got.DeepCopyObject()
	if !reflect.DeepEqual(r, want) {
		t.Errorf("%s: renders as\n%#v\nthe trimmed Secret is\n%#v", name, r, want)
		return
	}
	// A rendering shares nothing with the record: changing it changes no
	// later rendering.
	s := r.(*corev1.Secret)
	for k := range s.Data {
		if len(s.Data[k]) > 0 {
			s.Data[k][0] ^= 1
		}
	}
	for k := range s.Labels {
		s.Labels[k] = "changed"
	}
	for i := range s.OwnerReferences {
		if c := s.OwnerReferences[i].Controller; c != nil {
			*c = !*c
		}
		if b := s.OwnerReferences[i].BlockOwnerDeletion; b != nil {
			*b = !*b
		}
	}
	if !reflect.DeepEqual(got.DeepCopyObject(), want) {
		t.Errorf("%s: changing a rendering changed the record", name)
	}
}

// consumerSecret is a consumer Secret as Latchkey writes it, with the
// given data, as the informer decodes it.
func consumerSecret(t testing.TB, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
	yes := true
	kind := latchkeyv1alpha1.ApiClientKind
	if typ == latchkeyv1alpha1.GrantSecretType {
		kind = latchkeyv1alpha1.CredentialGrantKind
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "blog-creds", UID: "0b5e5a8e-7c1f-4a53-9d2e-3f1c2b7a9e10",
			ResourceVersion: "48213", CreationTimestamp: metav1.NewTime(time.Unix(1764700000, 0)),
			Labels: map[string]string{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue, latchkeyv1alpha1.LabelKind: kind,
				latchkeyv1alpha1.LabelOwnerUID: "5a2d6f0e-1b3c-4d5e-8f70-91a2b3c4d5e6"},
			Annotations: map[string]string{latchkeyv1alpha1.AnnotationTokenID: "x7Kq2pLm9ZtR4vNw", latchkeyv1alpha1.AnnotationRotatedFor: ""},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: latchkeyv1alpha1.GroupVersion.String(), Kind: kind, Name: "blog",
				UID: "5a2d6f0e-1b3c-4d5e-8f70-91a2b3c4d5e6", Controller: &yes, BlockOwnerDeletion: &yes}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "latchkey", Operation: metav1.ManagedFieldsOperationApply}},
		},
		Type: typ, Data: data,
	}
}

// A consumer Secret in a tenant namespace is held compact, and reads as
// exactly the Secret the cache held before: rendered (what cache Get and
// List hand out) and through every metav1.Object getter (what informers,
// event handlers, predicates and index functions read). What the compact
// form cannot represent stays the trimmed Secret.
func TestConsumerSecretCachedCompact(t *testing.T) {
	yes, no := true, false
	grace := int64(0)
	tr := secretTransform(Options{Namespace: "lk", TokenNamespace: "lk-tokens"})
	client := map[string][]byte{latchkeyv1alpha1.ClientIDKey: []byte("id_P3OsKW8jmcsM174m"),
		latchkeyv1alpha1.ClientSecretKey: []byte("lks_9x2KfQ0bWmT4pR7vY1cN8zH3jL6dA5sE0gU2iO4")}
	grant := map[string][]byte{latchkeyv1alpha1.TokenKey: []byte("lk_x7Kq2pLm9ZtR4vNw_Hk3Jd8Qw2Zp5Rt7Yb1Nc4Vx6_3Fa9"),
		latchkeyv1alpha1.TokenIDKey: []byte("x7Kq2pLm9ZtR4vNw"), latchkeyv1alpha1.ClientIDKey: []byte("id_P3OsKW8jmcsM174m"),
		latchkeyv1alpha1.ExpiresAtKey: {}, latchkeyv1alpha1.KeyIDKey: []byte("x7Kq2pLm9ZtR4vNw"),
		latchkeyv1alpha1.KeySecretKey: []byte("Hk3Jd8Qw2Zp5Rt7Yb1Nc4Vx6")}
	for _, tc := range []struct {
		name    string
		typ     corev1.SecretType
		data    map[string][]byte
		edit    func(s *corev1.Secret)
		compact bool
	}{
		{"client", latchkeyv1alpha1.ClientSecretType, client, nil, true},
		{"grant", latchkeyv1alpha1.GrantSecretType, grant, nil, true},
		{"template labels and annotations", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) {
			s.Labels["team"], s.Labels["app.kubernetes.io/part-of"] = "blue", "shop"
			s.Annotations["note"], s.Annotations["latchkey.dev/rotated-for"] = "kept", "2026-01-01"
		}, true},
		{"extra keys and long values, elided", latchkeyv1alpha1.ClientSecretType, map[string][]byte{
			latchkeyv1alpha1.ClientIDKey: []byte("id_x"), latchkeyv1alpha1.ClientSecretKey: bytes.Repeat([]byte("s"), cacheMaxValue+1),
			"x1": bytes.Repeat([]byte("x"), 1<<20), "x2": []byte("y"), "x3": nil, "x4": {}, "x5": []byte("w"), "longer-extra": []byte("v"),
		}, nil, true},
		{"a value of exactly cacheMaxValue", latchkeyv1alpha1.ClientSecretType, map[string][]byte{
			latchkeyv1alpha1.ClientSecretKey: bytes.Repeat([]byte("s"), cacheMaxValue)}, nil, true},
		{"labels and annotations over budget", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) {
			s.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = strings.Repeat("a", cacheMaxAnnotation+1)
			for i := range 64 {
				s.Annotations[fmt.Sprintf("z%02d", i)] = strings.Repeat("b", cacheMaxAnnotation)
			}
			for i := range 2000 {
				s.Labels[fmt.Sprintf("a%04d.example.com/some-long-label-key-%d", i, i)] = strings.Repeat("c", 63)
			}
		}, true},
		{"several owner references", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			c := s.OwnerReferences[0]
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "a", UID: "1"}, c,
				{APIVersion: "apps/v1", Kind: "Deployment", Name: "c", UID: "3", Controller: &no}}
		}, true},
		{"owner references, none the controller", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{Name: "a", UID: "1", Controller: &no, BlockOwnerDeletion: &yes}, {Name: "b", UID: "2"}}
		}, true},
		{"controller without blockOwnerDeletion", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.OwnerReferences[0].BlockOwnerDeletion = nil
		}, true},
		{"controller, blockOwnerDeletion false", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.OwnerReferences[0].BlockOwnerDeletion = &no
		}, true},
		{"owner name and UID unlike anything else", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.OwnerReferences[0].Name, s.OwnerReferences[0].UID = "someone-else", "ffffffff-0000-4000-8000-000000000000"
		}, true},
		{"finalizers", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.Finalizers = []string{"example.com/one", "example.com/two"}
		}, true},
		{"nil maps", latchkeyv1alpha1.ClientSecretType, nil, func(s *corev1.Secret) {
			s.Labels, s.Annotations, s.OwnerReferences = nil, nil, nil
		}, true},
		{"empty maps", latchkeyv1alpha1.ClientSecretType, map[string][]byte{}, func(s *corev1.Secret) {
			s.Labels, s.Annotations, s.OwnerReferences = map[string]string{}, map[string]string{}, []metav1.OwnerReference{}
		}, false}, // an empty owner reference list is not nil: kept a Secret (the API's encoding makes it nil)
		{"empty maps, nil owners", latchkeyv1alpha1.ClientSecretType, map[string][]byte{}, func(s *corev1.Secret) {
			s.Labels, s.Annotations = map[string]string{}, map[string]string{}
		}, true},
		{"annotations all over budget", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.Annotations = map[string]string{"big": strings.Repeat("a", cacheMaxAnnotation+1)}
		}, true},
		{"no metadata at all", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) {
			s.UID, s.ResourceVersion, s.CreationTimestamp = "", "", metav1.Time{}
		}, true},
		{"type metadata", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) {
			s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}
		}, true},
		{"a long name and namespace", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) {
			s.Name, s.Namespace = strings.Repeat("n", 253), strings.Repeat("s", 63)
		}, true},

		// Kept as the trimmed Secret.
		{"a nil value of Latchkey's key", latchkeyv1alpha1.ClientSecretType, map[string][]byte{latchkeyv1alpha1.ClientIDKey: nil}, nil, false},
		{"deleting", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			now := metav1.NewTime(time.Unix(1764700100, 0))
			s.DeletionTimestamp, s.DeletionGracePeriodSeconds, s.Finalizers = &now, &grace, []string{"x"}
		}, false},
		{"generateName", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) { s.GenerateName = "blog-" }, false},
		{"generation", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) { s.Generation = 2 }, false},
		{"immutable", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) { s.Immutable = &yes }, false},
		{"other type metadata", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.TypeMeta = metav1.TypeMeta{APIVersion: "v2", Kind: "Secret"}
		}, false},
		{"creation time in fractions of a second", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.CreationTimestamp = metav1.NewTime(time.Unix(1764700000, 5))
		}, false},
		{"creation time in UTC", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) {
			s.CreationTimestamp = metav1.NewTime(time.Unix(1764700000, 0).UTC())
		}, false},
		{"another type", corev1.SecretTypeOpaque, client, nil, false},
		{"a backing-token type", backing.SecretType, client, nil, false},
		{"in the operator namespace", latchkeyv1alpha1.ClientSecretType, client, func(s *corev1.Secret) { s.Namespace = "lk" }, false},
		{"in the token namespace", latchkeyv1alpha1.GrantSecretType, grant, func(s *corev1.Secret) { s.Namespace = "lk-tokens" }, false},
	} {
		in := consumerSecret(t, tc.typ, tc.data)
		if tc.edit != nil {
			tc.edit(in)
		}
		for _, form := range []string{"built", "decoded"} {
			name := tc.name + " (" + form + ")"
			src := in.DeepCopy()
			if form == "decoded" {
				if strings.Contains(tc.name, "UTC") || strings.Contains(tc.name, "fractions") || strings.Contains(tc.name, "type metadata") {
					continue // the encoding does not carry these
				}
				src = decoded(t, in)
			}
			want := trimmedSecret(src)
			out, err := tr(src.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			c, isCompact := out.(*backing.CachedSecret)
			if isCompact != (tc.compact || form == "decoded" && tc.name == "empty maps") {
				t.Errorf("%s: held as %T", name, out)
			}
			if !isCompact {
				if !reflect.DeepEqual(out, want) {
					t.Errorf("%s: held as\n%#v\nwant the trimmed Secret\n%#v", name, out, want)
				}
				continue
			}
			sameAsSecret(t, name, c, want)
			if again, _ := tr(c); again != c {
				t.Errorf("%s: a resync does not hand the compact object back as is", name)
			}
			if again, _ := tr(c.DeepCopyObject()); !reflect.DeepEqual(again, c) {
				t.Errorf("%s: the rendered Secret transforms to another compact object", name)
			}
		}
	}
}

// Randomized: consumer Secrets of every shape (metadata and data drawn from
// Latchkey's keys, a tenant's, over-long values, nil and empty maps,
// owner references, the fields the compact form does not keep) read the
// same compact as trimmed.
func TestConsumerSecretCachedCompactRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x1a7c4e))
	tr := secretTransform(Options{Namespace: "lk"})
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	str := func(max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."[rng.IntN(65)]
		}
		return string(b)
	}
	long := func() int {
		switch rng.IntN(8) {
		case 0:
			return cacheMaxValue + 1 + rng.IntN(100)
		case 1:
			return cacheMaxAnnotation + rng.IntN(10)
		}
		return 40
	}
	strMap := func(keys ...string) map[string]string {
		switch rng.IntN(6) {
		case 0:
			return nil
		case 1:
			return map[string]string{}
		}
		m := map[string]string{}
		for range rng.IntN(12) {
			m[pick(append(keys, str(30), "latchkey.dev/"+str(10), "z")...)] = pick("", latchkeyv1alpha1.ManagedByValue, latchkeyv1alpha1.ApiClientKind, str(long()))
		}
		return m
	}
	boolPtr := func() *bool {
		if rng.IntN(3) == 0 {
			return nil
		}
		b := rng.IntN(2) == 0
		return &b
	}
	compacted := 0
	const n = 3000
	for i := range n {
		uid := types.UID(str(36))
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: pick("tenant", "team-a", "lk"), Name: pick("creds", str(60)), UID: uid, ResourceVersion: str(8),
				Labels: strMap(latchkeyv1alpha1.LabelManagedBy, latchkeyv1alpha1.LabelKind, latchkeyv1alpha1.LabelOwnerUID, backing.LabelComponent),
				Annotations: strMap(latchkeyv1alpha1.AnnotationTokenID, latchkeyv1alpha1.AnnotationRotatedFor,
					"kubectl.kubernetes.io/last-applied-configuration")},
			Type: corev1.SecretType(pick(string(latchkeyv1alpha1.ClientSecretType), string(latchkeyv1alpha1.GrantSecretType),
				string(latchkeyv1alpha1.GrantSecretType), string(corev1.SecretTypeOpaque))),
		}
		if rng.IntN(4) > 0 {
			s.CreationTimestamp = metav1.NewTime(time.Unix(1700000000+rng.Int64N(1e8), 0))
		}
		for range rng.IntN(4) {
			s.OwnerReferences = append(s.OwnerReferences, metav1.OwnerReference{APIVersion: pick(latchkeyv1alpha1.GroupVersion.String(), "v1"),
				Kind: pick(latchkeyv1alpha1.ApiClientKind, latchkeyv1alpha1.CredentialGrantKind, "X"), Name: pick(s.Name, str(20)),
				UID: types.UID(pick(string(uid), str(36))), Controller: boolPtr(), BlockOwnerDeletion: boolPtr()})
		}
		if rng.IntN(4) > 0 {
			s.Data = map[string][]byte{}
			for range rng.IntN(14) {
				k := pick(latchkeyv1alpha1.ClientIDKey, latchkeyv1alpha1.ClientSecretKey, latchkeyv1alpha1.TokenKey, latchkeyv1alpha1.TokenIDKey,
					latchkeyv1alpha1.ExpiresAtKey, latchkeyv1alpha1.KeyIDKey, latchkeyv1alpha1.KeySecretKey, latchkeyv1alpha1.UsernameKey,
					latchkeyv1alpha1.PasswordKey, str(12))
				s.Data[k] = []byte(str(long()))
			}
		}
		switch rng.IntN(40) {
		case 0:
			s.Finalizers = []string{"f"}
		case 1:
			now := metav1.NewTime(time.Unix(1764700100, 0))
			s.DeletionTimestamp = &now
		case 2:
			s.Generation = 1
		case 3:
			s.Data = map[string][]byte{latchkeyv1alpha1.TokenKey: nil}
		}
		if rng.IntN(2) == 0 {
			s = decoded(t, s)
		}
		want := trimmedSecret(s)
		out, err := tr(s.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("secret %d", i)
		c, ok := out.(*backing.CachedSecret)
		if !ok {
			if !reflect.DeepEqual(out, want) {
				t.Fatalf("%s: held as\n%#v\nwant\n%#v", name, out, want)
			}
			continue
		}
		compacted++
		if s.Namespace == "lk" || s.Type == corev1.SecretTypeOpaque || want.DeletionTimestamp != nil || want.Generation != 0 {
			t.Errorf("%s: held compact: %#v", name, want)
		}
		sameAsSecret(t, name, c, want)
		if t.Failed() {
			t.FailNow()
		}
	}
	// Those the form cannot represent aside (another type, the operator
	// namespace, deletion, generation, a nil value, an empty owner list).
	if compacted < n/3 {
		t.Errorf("%d of %d held compact", compacted, n)
	}
	t.Logf("%d of %d held compact", compacted, n)
}

// The point: a consumer Secret, as Latchkey writes it, costs the cache at
// most 512 bytes of heap (a trimmed *corev1.Secret: ~1.7 KB).
func TestConsumerSecretCachedSize(t *testing.T) {
	const n = 5000
	tr := secretTransform(Options{Namespace: "lk"})
	mk := func(i int) *corev1.Secret {
		id, _ := token.NewTokenID()
		tok, _ := token.New()
		cid, _ := token.NewClientID()
		var s *corev1.Secret
		if i%2 == 0 {
			cs, _ := token.NewClientSecret()
			s = consumerSecret(t, latchkeyv1alpha1.ClientSecretType, map[string][]byte{latchkeyv1alpha1.ClientIDKey: []byte(cid),
				latchkeyv1alpha1.ClientSecretKey: []byte(cs)})
		} else {
			s = consumerSecret(t, latchkeyv1alpha1.GrantSecretType, map[string][]byte{latchkeyv1alpha1.TokenKey: []byte(tok.String()),
				latchkeyv1alpha1.TokenIDKey: []byte(tok.ID), latchkeyv1alpha1.ClientIDKey: []byte(cid), latchkeyv1alpha1.ExpiresAtKey: {}})
			id = tok.ID
		}
		s.Name = fmt.Sprintf("svc-%05d-creds", i)
		s.UID = types.UID(fmt.Sprintf("0b5e5a8e-7c1f-4a53-9d2e-%012d", i))
		owner := types.UID(fmt.Sprintf("5a2d6f0e-1b3c-4d5e-8f70-%012d", i))
		s.Labels[latchkeyv1alpha1.LabelOwnerUID], s.OwnerReferences[0].UID, s.OwnerReferences[0].Name = string(owner), owner, fmt.Sprintf("svc-%05d", i)
		s.Annotations[latchkeyv1alpha1.AnnotationTokenID] = id
		s.ResourceVersion = fmt.Sprint(100000 + i)
		return decoded(t, s)
	}
	measure := func(hold func(s *corev1.Secret) any) float64 {
		held := make([]any, n)
		before := heap()
		for i := range held {
			held[i] = hold(mk(i))
		}
		after := heap()
		runtime.KeepAlive(held)
		return float64(int64(after)-int64(before)) / n
	}
	compact := measure(func(s *corev1.Secret) any {
		out, _ := tr(s)
		if _, ok := out.(*backing.CachedSecret); !ok {
			t.Fatalf("held as %T", out)
		}
		return out
	})
	trimmed := measure(func(s *corev1.Secret) any { return trimmedSecret(s) })
	t.Logf("heap per consumer Secret: compact %.0f B, trimmed Secret %.0f B", compact, trimmed)
	if compact > 512 {
		t.Errorf("a compact consumer Secret costs %.0f B of heap", compact)
	}
}

func heap() uint64 {
	var m runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
