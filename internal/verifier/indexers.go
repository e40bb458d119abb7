package verifier

import (
	"reflect"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	toolscache "k8s.io/client-go/tools/cache"
)

// Informers records the informers a controller-runtime cache creates, so
// the verifier can read their indexers also where the cache hands out only
// a multi-namespace wrapper without one (a cache restricted to namespaces:
// --watch-namespaces, and --verifier-only, whose Secret cache is limited to
// the token namespace). Without it the verifier falls back to a cache Get,
// a deep copy, per lookup. Set NewInformer as the cache's
// cache.Options.NewInformer and pass the same Informers in Options.
type Informers struct {
	mu     sync.Mutex
	byType map[reflect.Type][]toolscache.Indexer
}

// NewInformer creates a shared index informer, as controller-runtime does by
// default, and records its indexer.
func (r *Informers) NewInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, idx toolscache.Indexers) toolscache.SharedIndexInformer {
	inf := toolscache.NewSharedIndexInformer(lw, obj, resync, idx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byType == nil {
		r.byType = map[reflect.Type][]toolscache.Indexer{}
	}
	t := reflect.TypeOf(obj)
	r.byType[t] = append(r.byType[t], inf.GetIndexer())
	return inf
}

// indexer returns one indexer over every recorded informer of obj's type
// (one per namespace), or nil when there is none.
func (r *Informers) indexer(obj runtime.Object) toolscache.Indexer {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	parts := r.byType[reflect.TypeOf(obj)]
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0]
	}
	return namespacesIndexer{Indexer: parts[0], parts: append([]toolscache.Indexer(nil), parts...)}
}

// namespacesIndexer reads several namespaces' indexers as one, for the
// lookups the verifier makes: by key (the one holding it answers) and by
// index (the results together). The keys and index values the verifier uses
// carry the namespace, so at most one part answers each, and a lookup costs
// one map read per namespace, with no allocation for a miss. Everything
// else (writes, scans) goes to the first part only: the verifier never
// calls them.
type namespacesIndexer struct {
	toolscache.Indexer
	parts []toolscache.Indexer
}

func (n namespacesIndexer) GetByKey(key string) (any, bool, error) {
	for _, p := range n.parts {
		if o, ok, err := p.GetByKey(key); ok || err != nil {
			return o, ok, err
		}
	}
	return nil, false, nil
}

func (n namespacesIndexer) ByIndex(name, value string) ([]any, error) {
	var out []any
	for _, p := range n.parts {
		objs, err := p.ByIndex(name, value)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = objs
		} else if len(objs) > 0 {
			out = append(append([]any(nil), out...), objs...)
		}
	}
	return out, nil
}
