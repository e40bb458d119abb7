package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// Event reasons.
const (
	EventIssued      = "Issued"
	EventReissued    = "Reissued"
	EventRotated     = "Rotated"
	EventRevoked     = "Revoked"
	EventExpired     = "Expired"
	EventDeactivated = "Deactivated"
	EventActivated   = "Activated"
	// EventTampered: the consumer Secret differed from what was issued
	// (edited by someone else); a new secret was issued and the old revoked.
	EventTampered = "SecretTampered"
	// EventClientIDConflict: the client id asked for is held by another
	// live ApiClient.
	EventClientIDConflict = "ClientIDConflict"
)

func hasFinalizer(o client.Object) bool { return controllerutil.ContainsFinalizer(o, finalizer) }

// ensureFinalizer adds the revoke finalizer before anything is issued, so no
// backing token can outlive its object.
func ensureFinalizer(ctx context.Context, c client.Client, o client.Object) error {
	if hasFinalizer(o) {
		return nil
	}
	orig := o.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(o, finalizer)
	if err := c.Patch(ctx, o, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

func removeFinalizer(ctx context.Context, c client.Client, o client.Object) error {
	orig := o.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(o, finalizer)
	if err := c.Patch(ctx, o, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// statusFieldOwner is the controller's server-side apply field manager for
// status: it owns every status field but the usage ones (lastUsedAt,
// lastUsedFrom), which the verifier owns as "latchkey-usage". Neither write
// can clobber the other's fields.
const statusFieldOwner = client.FieldOwner("latchkey-controller")

// usageFields are the status fields the verifier owns.
var usageFields = []string{"lastUsedAt", "lastUsedFrom"}

// patchStatus writes the controller's part of the status with server-side
// apply, once, and only when it changed: a resync of an unchanged object
// makes no write, and neither does a reconcile whose cached object predates
// the same status this process applied (the cache is behind its own write;
// see overlayStatus). cur points at obj's status.
func patchStatus[S any](ctx context.Context, c client.Client, e *expectations, obj client.Object, cur *S, want S) error {
	have, err := ownedStatus(cur)
	if err != nil {
		return err
	}
	apply, err := ownedStatus(&want)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(have, apply) || e.wroteStatus(obj, apply) {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": apply}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(obj.GetNamespace())
	u.SetName(obj.GetName())
	if err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), statusFieldOwner, client.ForceOwnership); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	*cur = want
	e.statusWritten(obj.GetUID(), u.GetResourceVersion(), apply, want)
	return nil
}

// ownedStatus is the status as the controller applies it: without the
// verifier's usage fields.
func ownedStatus(status any) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return nil, fmt.Errorf("converting status: %w", err)
	}
	for _, f := range usageFields {
		delete(m, f)
	}
	return m, nil
}

// effect is an Event or a metric update that reports what a reconcile did.
type effect func(ctx context.Context)

// outbox holds the effects of reconciles whose status write failed, per
// object, so that Events and metrics follow the status a person reads: they
// are emitted only once a status write succeeded (the issue that the status
// now records), never for an attempt whose status was lost, and never lost
// either (an issued secret is not issued again, so nothing else would report
// it). Effects that are recomputed from the status on the next attempt
// (transitions of a condition) are not held.
type outbox struct {
	mu      sync.Mutex
	pending map[types.UID][]effect
}

// hold keeps effects until a later status write of the object succeeds.
func (b *outbox) hold(uid types.UID, effects []effect) {
	if len(effects) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		b.pending = map[types.UID][]effect{}
	}
	b.pending[uid] = append(b.pending[uid], effects...)
}

// release runs what was held for the object, then effects: its status
// write has just succeeded.
func (b *outbox) release(ctx context.Context, uid types.UID, effects []effect) {
	b.mu.Lock()
	held := b.pending[uid]
	delete(b.pending, uid)
	b.mu.Unlock()
	for _, e := range append(held, effects...) {
		e(ctx)
	}
}

// drop forgets what was held for a deleted object.
func (b *outbox) drop(uid types.UID) {
	b.mu.Lock()
	delete(b.pending, uid)
	b.mu.Unlock()
}

// waitedSince is how long the Ready condition has been in its current state.
func waitedSince(conds []metav1.Condition, now time.Time) time.Duration {
	if c := meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionReady); c != nil {
		return now.Sub(c.LastTransitionTime.Time)
	}
	return 0
}

// issueEffect is the Event and the counts of an issue, emitted once the
// status records it. The token id is a non-secret handle; no secret value is
// ever passed here.
func issueEffect(rec recorder.EventRecorder, obj client.Object, kind string, a action, tokenID string, revoked int, tampered bool) effect {
	return func(ctx context.Context) {
		reason, note := EventIssued, "Issued a new secret with token id %s"
		switch {
		case a == actionReissue && tampered:
			reason, note = EventTampered, "The Secret was tampered with: its content differs from what Latchkey issued. Issued a new secret with token id %s under the recorded identity and revoked the old one"
		case a == actionReissue:
			reason, note = EventReissued, "The issued secret was lost or altered: issued a new one with token id %s and revoked the old one"
		case a == actionRotate:
			reason, note = EventRotated, "Rotated the secret: the new one has token id %s"
		}
		eventType := corev1.EventTypeNormal
		if a == actionReissue {
			eventType = corev1.EventTypeWarning
		}
		rec.Eventf(obj, nil, eventType, reason, "Issue", note, tokenID)
		ctrl.LoggerFrom(ctx).Info("Issued secret", "action", a.String(), "tokenID", tokenID, "revokedTokens", revoked)
		metricIssued.WithLabelValues(kind, a.String()).Inc()
		if revoked > 0 {
			metricRevoked.WithLabelValues(kind, a.String()).Add(float64(revoked))
		}
	}
}
