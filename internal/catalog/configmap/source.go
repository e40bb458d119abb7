// Package configmap serves the permission catalog from a ConfigMap in the
// operator's namespace, watched by its own one-object informer and reloaded
// live. It is apart from package catalog so that the parser stays free of
// Kubernetes client dependencies (and quick to fuzz).
package configmap

import (
	"context"
	"fmt"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/latchkey-dev/latchkey/internal/catalog"
)

// +kubebuilder:rbac:groups="",namespace=latchkey-system,resources=configmaps,verbs=get;list;watch

type loaded struct {
	catalog *catalog.Catalog
	err     error
}

// Source is a catalog.Source backed by a ConfigMap in the operator's
// namespace, merged with an optional base catalog from a file. It runs its
// own informer on that one ConfigMap (a field selector on its name), so the
// manager's cache need not watch ConfigMaps, and reloads on every change.
// A ConfigMap with an invalid catalog is not used: Get reports its error
// until it is fixed, so a typo never silently admits everything.
type Source struct {
	base  *catalog.Catalog
	key   types.NamespacedName
	state atomic.Pointer[loaded]
	cache cache.Cache
	ready chan struct{}
}

// NewSource returns a source for the catalog in key catalog.ConfigMapKey of
// ConfigMap namespace/name, merged with base (nil for none). Add it to the
// manager with SetupWithManager.
func NewSource(base *catalog.Catalog, namespace, name string) *Source {
	s := &Source{base: base, key: types.NamespacedName{Namespace: namespace, Name: name}, ready: make(chan struct{})}
	s.state.Store(&loaded{err: fmt.Errorf("the permission catalog in ConfigMap %s is not loaded yet: retry in a moment", s.key)})
	return s
}

var _ catalog.Source = &Source{}

// SetupWithManager creates the informer and adds the source to the manager.
// It runs on every replica: each one serves admission requests.
func (s *Source) SetupWithManager(mgr ctrl.Manager) error {
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{s.key.Namespace: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Field: fields.OneTermEqualSelector("metadata.name", s.key.Name)},
		},
	})
	if err != nil {
		return fmt.Errorf("creating the permission catalog informer: %w", err)
	}
	s.cache = c
	return mgr.Add(s)
}

// NeedLeaderElection is false: every replica validates admission requests.
func (s *Source) NeedLeaderElection() bool { return false }

// Start runs the informer until ctx ends.
func (s *Source) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("permission-catalog").WithValues("configMap", s.key.String())
	inf, err := s.cache.GetInformer(ctx, &corev1.ConfigMap{})
	if err != nil {
		return fmt.Errorf("getting the ConfigMap informer: %w", err)
	}
	reload := func() { s.reload(ctx, log.Info, log.Error) }
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { reload() },
		UpdateFunc: func(any, any) { reload() },
		DeleteFunc: func(any) { reload() },
	}); err != nil {
		return fmt.Errorf("watching the permission catalog ConfigMap: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.cache.Start(ctx) }()
	if !s.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("the permission catalog informer did not sync")
	}
	reload()
	close(s.ready)
	return <-errc
}

// Ready is closed once the ConfigMap has been read for the first time
// (found or not); webhooks are served only after it.
func (s *Source) Ready() <-chan struct{} { return s.ready }

func (s *Source) reload(ctx context.Context, info func(string, ...any), fail func(error, string, ...any)) {
	var cm corev1.ConfigMap
	err := s.cache.Get(ctx, s.key, &cm)
	var next loaded
	switch {
	case apierrors.IsNotFound(err):
		next.err = fmt.Errorf("the permission catalog ConfigMap %s does not exist: create it with the catalog under key %q, or remove --permission-catalog-configmap", s.key, catalog.ConfigMapKey)
	case err != nil:
		next.err = fmt.Errorf("reading the permission catalog ConfigMap %s: %w", s.key, err)
	default:
		next = s.parse(&cm)
	}
	prev := s.state.Swap(&next)
	if next.err != nil {
		if prev == nil || prev.err == nil || prev.err.Error() != next.err.Error() {
			fail(next.err, "Permission catalog unusable; admission of changes that need it is refused")
		}
		return
	}
	info("Permission catalog loaded", "scopes", next.catalog.ScopeNames(), "resourceVersion", cm.ResourceVersion)
}

func (s *Source) parse(cm *corev1.ConfigMap) loaded {
	data, ok := cm.Data[catalog.ConfigMapKey]
	if !ok {
		return loaded{err: fmt.Errorf("the permission catalog ConfigMap %s has no key %q: put the catalog under that key", s.key, catalog.ConfigMapKey)}
	}
	c, err := catalog.Load([]byte(data))
	if err != nil {
		return loaded{err: fmt.Errorf("the permission catalog in ConfigMap %s is invalid: %w; fix the ConfigMap", s.key, err)}
	}
	merged, err := catalog.Merge(s.base, c)
	if err != nil {
		return loaded{err: fmt.Errorf("the permission catalog in ConfigMap %s: %w", s.key, err)}
	}
	return loaded{catalog: merged}
}

// Get returns the catalog in effect or why there is none.
func (s *Source) Get() (*catalog.Catalog, error) {
	l := s.state.Load()
	return l.catalog, l.err
}
