package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// patchStatus writes the status once, and only when it changed: a resync of
// an unchanged object makes no write, and neither does a reconcile whose
// cached object predates the same status this process wrote (the cache is
// behind its own write). cur points at obj's status.
func patchStatus[S any](ctx context.Context, c client.Client, e *expectations, obj client.Object, cur *S, want S) error {
	if equality.Semantic.DeepEqual(*cur, want) || e.wroteStatus(obj, want) {
		return nil
	}
	orig := obj.DeepCopyObject().(client.Object)
	*cur = want
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(orig)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	e.statusWritten(obj, want)
	return nil
}

// setCondition sets a condition, keeping its transition time when its status
// does not change.
func setCondition(conds *[]metav1.Condition, c metav1.Condition, generation int64) {
	c.ObservedGeneration = generation
	meta.SetStatusCondition(conds, c)
}

// stalledReasons are the Ready=False reasons that no retry can resolve:
// only a person can (delete a foreign Secret, pick another client id, set a
// later expiresAt).
var stalledReasons = map[string]bool{
	latchkeyv1alpha1.ReasonSecretConflict:   true,
	latchkeyv1alpha1.ReasonClientIDConflict: true,
	latchkeyv1alpha1.ReasonExpired:          true,
}

// setStalled sets Stalled=True with the reason and message (what to do) when
// reason is one that only a person can resolve, and removes Stalled
// otherwise, so kstatus reports Failed instead of InProgress forever.
func setStalled(conds *[]metav1.Condition, reason, message string, generation int64) {
	if !stalledReasons[reason] {
		meta.RemoveStatusCondition(conds, latchkeyv1alpha1.ConditionStalled)
		return
	}
	setCondition(conds, metav1.Condition{Type: latchkeyv1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
		Reason: reason, Message: message}, generation)
}

// waitedSince is how long the Ready condition has been in its current state.
func waitedSince(conds []metav1.Condition, now time.Time) time.Duration {
	if c := meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionReady); c != nil {
		return now.Sub(c.LastTransitionTime.Time)
	}
	return 0
}

// recordIssue emits the Event and counts the issue. The token id is a
// non-secret handle; no secret value is ever passed here.
func recordIssue(ctx context.Context, rec recorder.EventRecorder, obj client.Object, kind string, a action, tokenID string, revoked int, tampered bool) {
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
