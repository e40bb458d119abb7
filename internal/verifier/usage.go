package verifier

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

type usageKey struct{ kind, namespace, name string }

type usage struct {
	at   time.Time
	from string
}

// usageRecorder keeps the last use of each credential in memory; its flusher
// writes status.lastUsedAt/lastUsedFrom at most once per object per interval,
// so a busy credential costs one API write a minute, not one per request.
type usageRecorder struct {
	mu       sync.Mutex
	pending  map[usageKey]usage
	now      func() time.Time
	client   client.Client
	interval time.Duration
	log      logr.Logger
}

func (u *usageRecorder) record(k usageKey, from string) {
	if u == nil || k.name == "" {
		return
	}
	if len(from) > 64 {
		from = from[:64]
	}
	u.mu.Lock()
	u.pending[k] = usage{at: u.now(), from: from}
	u.mu.Unlock()
}

// Start flushes every interval until ctx ends. It runs on every replica (no
// leader election): each records the uses it saw.
func (u *usageRecorder) Start(ctx context.Context) error {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			u.flush(context.Background())
			return nil
		case <-t.C:
			u.flush(ctx)
		}
	}
}

// NeedLeaderElection: every replica flushes what it saw.
func (u *usageRecorder) NeedLeaderElection() bool { return false }

func (u *usageRecorder) flush(ctx context.Context) {
	u.mu.Lock()
	batch := u.pending
	u.pending = map[usageKey]usage{}
	u.mu.Unlock()
	for k, v := range batch {
		if err := u.write(ctx, k, v); err != nil {
			u.log.V(1).Info("Could not record usage", "kind", k.kind, "namespace", k.namespace, "name", k.name, "error", err.Error())
		}
	}
}

// usageFieldOwner is the verifier's server-side apply field manager for
// status: it owns lastUsedAt and lastUsedFrom and nothing else; the
// controller owns the rest of the status as "latchkey-controller". Neither
// write can clobber the other's fields.
const usageFieldOwner = client.FieldOwner("latchkey-usage")

// write records a use at v.at unless the object already shows a use at the
// same second or later: several replicas (and a flush that raced another)
// write the same field, and lastUsedAt must never go backwards. The apply
// carries the resourceVersion the decision was made on, so a write that
// landed in between is a conflict rather than overwritten; then the object
// is read again from the API server and the write retried once, only if it
// is still newer.
func (u *usageRecorder) write(ctx context.Context, k usageKey, v usage) error {
	obj := newUsageObject(k)
	if err := u.client.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: k.name}, obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	for attempt := 0; ; attempt++ {
		if !usageNewer(lastUsedAt(obj), v.at) {
			return nil
		}
		at, _ := metav1.NewTime(v.at).MarshalQueryParameter()
		ac := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": latchkeyv1alpha1.GroupVersion.String(),
			"kind":       k.kind,
			"metadata":   map[string]any{"namespace": k.namespace, "name": k.name, "resourceVersion": obj.GetResourceVersion()},
			"status":     map[string]any{"lastUsedAt": at, "lastUsedFrom": v.from},
		}}
		err := u.client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(ac), usageFieldOwner, client.ForceOwnership)
		if !apierrors.IsConflict(err) || attempt > 0 {
			return client.IgnoreNotFound(err)
		}
		// The cache is behind the write that won: read the object itself.
		fresh := newUsageObject(k)
		if err := u.client.SubResource("status").Get(ctx, obj, fresh); err != nil {
			return client.IgnoreNotFound(err)
		}
		obj = fresh
	}
}

// usageNewer reports whether a use at at should replace the recorded
// lastUsedAt: only when nothing is recorded or at is in a later second
// (status times have one-second resolution, so a use within the recorded
// second changes nothing).
func usageNewer(recorded *metav1.Time, at time.Time) bool {
	return recorded == nil || recorded.Time.Before(at.Truncate(time.Second))
}

func newUsageObject(k usageKey) client.Object {
	var obj client.Object = &latchkeyv1alpha1.ApiClient{}
	if k.kind == backing.KindCredentialGrant {
		obj = &latchkeyv1alpha1.CredentialGrant{}
	}
	obj.SetNamespace(k.namespace)
	obj.SetName(k.name)
	return obj
}

func lastUsedAt(obj client.Object) *metav1.Time {
	switch o := obj.(type) {
	case *latchkeyv1alpha1.ApiClient:
		return o.Status.LastUsedAt
	case *latchkeyv1alpha1.CredentialGrant:
		return o.Status.LastUsedAt
	}
	return nil
}
