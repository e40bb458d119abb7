// Package index registers field indexes on controller-runtime informers
// that cost half what mgr.GetFieldIndexer().IndexField costs.
//
// IndexField indexes every object under two values, namespace/value and
// __all_namespaces/value (for lists across namespaces), and client-go keeps
// a set per value: two maps per indexed object where each value is unique
// (a backing token's owner, a client id). Latchkey only ever lists by such a
// field within one namespace, so Namespaced indexes the first alone. A
// cached List with client.MatchingFields and client.InNamespace reads it
// exactly as it reads IndexField's index; a List across namespaces finds
// nothing (none is made).
package index

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Name is the informer index name of field, as controller-runtime's cache
// reader looks it up.
func Name(field string) string { return "field:" + field }

// Key is the index value of value in namespace.
func Key(namespace, value string) string { return namespace + "/" + value }

// Namespaced adds to obj's informer the index field: fn's values of each
// namespaced object, under Key(namespace, value). fn receives every object
// the informer stores, whatever its transform made of it.
func Namespaced(ctx context.Context, informers cache.Informers, obj client.Object, field string, fn func(o any) []string) error {
	inf, err := informers.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("index %s: %w", field, err)
	}
	return inf.AddIndexers(toolscache.Indexers{Name(field): func(o any) ([]string, error) {
		m, ok := o.(interface{ GetNamespace() string })
		if !ok || m.GetNamespace() == "" {
			return nil, nil
		}
		vals := fn(o)
		for i, v := range vals {
			vals[i] = Key(m.GetNamespace(), v)
		}
		return vals, nil
	}})
}
