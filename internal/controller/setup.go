package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/index"
)

// IndexGrantClientName indexes CredentialGrants by spec.clientName, so a
// change to an ApiClient reaches its grants without a List of all grants.
const IndexGrantClientName = "spec.clientName"

// IndexClientSpecClientID indexes ApiClients by spec.clientID, so a client
// waiting for an id (ClientIDConflict) is reconciled as soon as the id's
// claim is released.
const IndexClientSpecClientID = "latchkey.dev/spec-client-id"

// IndexBackingTokenOwner indexes backing tokens by the UID of the object
// they belong to, so a reconcile finds its tokens by lookup instead of
// scanning every token in the namespace.
const IndexBackingTokenOwner = "latchkey.dev/backing-token-owner"

// cacheBehindRetry is how soon a reconcile that found the cache behind the
// operator's own writes looks again (the watch usually brings it back first).
const cacheBehindRetry = 250 * time.Millisecond

// Options configure the controllers.
type Options struct {
	// Namespace is the operator's namespace, where backing tokens live.
	Namespace string
	// MaxConcurrentReconciles per controller.
	MaxConcurrentReconciles int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Setup registers Latchkey's controllers with the manager.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := store{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: opts.Namespace, issued: newExpectations()}
	if err := index.Namespaced(context.Background(), mgr.GetCache(), &corev1.Secret{}, IndexBackingTokenOwner,
		func(o any) []string {
			// The same Secrets as backing.OwnerSelector selects; the cache
			// holds those it can read compact (backing.Cached).
			if t, ok := o.(*backing.CachedToken); ok && t.Namespace == opts.Namespace && t.Token.OwnerUID != "" {
				return []string{string(t.Token.OwnerUID)}
			}
			if s, ok := o.(*corev1.Secret); ok && s.Namespace == opts.Namespace && s.Labels[backing.LabelComponent] == backing.ComponentValue {
				if uid := s.Labels[backing.LabelOwnerUID]; uid != "" {
					return []string{uid}
				}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing backing tokens by owner: %w", err)
	}
	// Listed only within the grant's namespace (grantsOfClient).
	if err := index.Namespaced(context.Background(), mgr.GetCache(), &latchkeyv1alpha1.CredentialGrant{}, IndexGrantClientName,
		func(o any) []string {
			if g, ok := o.(*latchkeyv1alpha1.CredentialGrant); ok {
				return []string{g.Spec.ClientName}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing CredentialGrants by client: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &latchkeyv1alpha1.ApiClient{}, IndexClientSpecClientID,
		func(o client.Object) []string {
			if id := o.(*latchkeyv1alpha1.ApiClient).Spec.ClientID; id != "" {
				return []string{id}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing ApiClients by spec.clientID: %w", err)
	}
	copts := controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}

	clients := &ApiClientReconciler{store: st, Recorder: mgr.GetEventRecorder("latchkey-apiclient"), Now: opts.Now}
	if err := ctrl.NewControllerManagedBy(mgr).
		For(&latchkeyv1alpha1.ApiClient{}, builder.WithPredicates(specOrMetadataChanged)).
		// The cache holds only Latchkey's Secrets (label-selected), so this
		// does not cache the cluster's Secrets.
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, backingTokenOwner(opts.Namespace, backing.KindApiClient)).
		Watches(&corev1.Secret{}, claimWaiters(mgr.GetClient(), opts.Namespace)).
		WithOptions(copts).
		Named("apiclient").
		Complete(clients); err != nil {
		return fmt.Errorf("setting up the ApiClient controller: %w", err)
	}

	grants := &CredentialGrantReconciler{store: st, Recorder: mgr.GetEventRecorder("latchkey-credentialgrant"), Now: opts.Now}
	if err := ctrl.NewControllerManagedBy(mgr).
		For(&latchkeyv1alpha1.CredentialGrant{}, builder.WithPredicates(specOrMetadataChanged)).
		Owns(&corev1.Secret{}).
		Watches(&corev1.Secret{}, backingTokenOwner(opts.Namespace, backing.KindCredentialGrant)).
		Watches(&latchkeyv1alpha1.ApiClient{}, handler.EnqueueRequestsFromMapFunc(grantsOfClient(mgr.GetClient())),
			builder.WithPredicates(clientChangedForGrants)).
		WithOptions(copts).
		Named("credentialgrant").
		Complete(grants); err != nil {
		return fmt.Errorf("setting up the CredentialGrant controller: %w", err)
	}
	return setupRevocations(mgr, opts)
}

// specOrMetadataChanged lets through creates, deletes, spec changes
// (generation), annotation changes (latchkey.dev/rotate) and the start of a
// deletion, but not the controller's own status writes or a resync of an
// unchanged object.
var specOrMetadataChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetGeneration() != n.GetGeneration() ||
			!maps.Equal(o.GetAnnotations(), n.GetAnnotations()) ||
			(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
	},
}

// clientChangedForGrants: what a grant depends on of its client is its spec
// (permissions, active), its client id in status, its UID and its deletion;
// and its first status write, which a grant waiting for a new client waits
// for (waitsForNewClient).
var clientChangedForGrants = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*latchkeyv1alpha1.ApiClient), e.ObjectNew.(*latchkeyv1alpha1.ApiClient)
		return o.Generation != n.Generation || o.Status.ClientID != n.Status.ClientID ||
			o.Status.ObservedGeneration == 0 && n.Status.ObservedGeneration != 0 ||
			(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil)
	},
}

func grantsOfClient(c client.Client) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list latchkeyv1alpha1.CredentialGrantList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{IndexGrantClientName: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing grants of client", "apiClient", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, g := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: g.Namespace, Name: g.Name}})
		}
		return reqs
	}
}

// backingTokenOwner maps a backing token in the operator namespace back to
// its owner, so a deleted or edited backing token is repaired at once.
func backingTokenOwner(namespace, kind string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() != namespace || o.GetLabels()[backing.LabelOwnerKind] != kind {
			return nil
		}
		a := o.GetAnnotations()
		if a[backing.AnnotationOwnerName] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{
			Namespace: a[backing.AnnotationOwnerNamespace], Name: a[backing.AnnotationOwnerName]}}}
	})
}

// claimWaiters maps a client-id claim in the operator namespace to every
// ApiClient that asks for that id, so when the holder is deleted the next in
// line takes the id at once (and a damaged claim is repaired).
func claimWaiters(c client.Client, namespace string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		if o.GetNamespace() != namespace || o.GetLabels()[backing.LabelComponent] != backing.ComponentClaim {
			return nil
		}
		a := o.GetAnnotations()
		reqs := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: a[backing.AnnotationOwnerNamespace], Name: a[backing.AnnotationOwnerName]}}}
		var list latchkeyv1alpha1.ApiClientList
		if err := c.List(ctx, &list, client.MatchingFields{IndexClientSpecClientID: a[backing.AnnotationClientID]}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing ApiClients that ask for a client id")
			return reqs
		}
		for _, w := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: w.Namespace, Name: w.Name}})
		}
		return reqs
	})
}
