package verifier

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
)

// Informers joins one indexer per namespace into one that answers keyed and
// indexed lookups from whichever namespace holds the object, without an
// allocation for a miss.
func TestInformersJoinNamespaces(t *testing.T) {
	r := &Informers{}
	if r.indexer(&corev1.Secret{}) != nil {
		t.Fatal("an indexer before any informer was made")
	}
	byLabel := toolscache.Indexers{"l": func(o any) ([]string, error) { return []string{o.(*corev1.Secret).Labels["l"]}, nil }}
	var infs []toolscache.SharedIndexInformer
	for range 3 {
		infs = append(infs, r.NewInformer(&toolscache.ListWatch{}, &corev1.Secret{}, time.Minute, byLabel))
	}
	r.NewInformer(&toolscache.ListWatch{}, &corev1.ConfigMap{}, time.Minute, nil)
	add := func(i int, ns, name, label string) {
		if err := infs[i].GetIndexer().Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"l": label}}}); err != nil {
			t.Fatal(err)
		}
	}
	add(0, "a", "x", "one")
	add(1, "b", "y", "one")
	add(2, "c", "z", "two")

	idx := r.indexer(&corev1.Secret{})
	for _, key := range []string{"a/x", "b/y", "c/z"} {
		if _, ok, err := idx.GetByKey(key); !ok || err != nil {
			t.Errorf("GetByKey(%s) = %v, %v", key, ok, err)
		}
	}
	if _, ok, _ := idx.GetByKey("a/y"); ok {
		t.Error("GetByKey(a/y) found an object in another namespace's indexer under another key")
	}
	if got, err := idx.ByIndex("l", "one"); err != nil || len(got) != 2 {
		t.Errorf("ByIndex(one) = %d objects, %v; want 2", len(got), err)
	}
	if got, err := idx.ByIndex("l", "two"); err != nil || len(got) != 1 {
		t.Errorf("ByIndex(two) = %d objects, %v; want 1", len(got), err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = idx.GetByKey("c/none") }); n != 0 {
		t.Errorf("GetByKey miss: %v allocations, want 0", n)
	}
	if single := r.indexer(&corev1.ConfigMap{}); single == nil {
		t.Error("no indexer for the one ConfigMap informer")
	}
}
