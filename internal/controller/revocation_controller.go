package controller

import (
	"cmp"
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// Event reasons of revocations through POST /oauth2/revoke (RFC 7009).
const (
	// EventTokenRevoked: a grant token or client secret was revoked by
	// whoever held it; its backing token is deleted and the owner's
	// controller issues a fresh credential into the same Secret (its own
	// Reissued Event follows, naming the new token id).
	EventTokenRevoked = "TokenRevoked"
	// EventAccessTokenRevoked: one access token (by jti) was revoked; the
	// client's other access tokens keep working.
	EventAccessTokenRevoked = "AccessTokenRevoked"
)

// accessRecordSlack keeps an access token's record a little past its exp,
// for clocks that differ between replicas.
const accessRecordSlack = time.Minute

// RevocationReconciler acts on the revocation records the verifier writes
// (internal/backing, revocation.go): it deletes a revoked backing token,
// records an Event on the token's owner naming the token id and the source
// address of the request, and prunes each record once it has done its work.
// It runs on the leader only.
type RevocationReconciler struct {
	client.Client
	// APIReader confirms, uncached, whether a backing token still exists.
	APIReader client.Reader
	// Namespace is the token namespace.
	Namespace string
	Recorder  recorder.EventRecorder
	Now       func() time.Time
}

// Reconcile handles one revocation record.
func (r *RevocationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, req.NamespacedName, cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	rev, err := backing.RevocationFromConfigMap(cm)
	if err != nil {
		// Kept: the verifier denies by the record's name alone (fail
		// closed); only someone with write access to the token namespace
		// can have written it.
		ctrl.LoggerFrom(ctx).Info("Ignoring unreadable revocation record", "configMap", cm.Name, "error", err.Error())
		return ctrl.Result{}, nil
	}
	now := r.Now()
	if rev.Kind == backing.RevokedAccessToken {
		return r.accessToken(ctx, cm, rev, now)
	}
	return r.token(ctx, cm, rev, now)
}

// token deletes the revoked backing token, then keeps the record for
// backing.RevocationRetention after the deletion, so that no verifier sees
// the record go before it sees the backing token go.
func (r *RevocationReconciler) token(ctx context.Context, cm *corev1.ConfigMap, rev backing.Revocation, now time.Time) (ctrl.Result, error) {
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: backing.Name(rev.TokenID)}, sec)
	switch {
	case apierrors.IsNotFound(err):
		since := rev.At
		if at, err := time.Parse(time.RFC3339Nano, cm.Annotations[backing.AnnotationReported]); err == nil {
			since = at
		}
		if wait := since.Add(backing.RevocationRetention).Sub(now); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		return ctrl.Result{}, r.prune(ctx, cm)
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading backing token %s: %w", rev.TokenID, err)
	}
	// The Event first: at least once, even if the delete below fails.
	if !isReported(cm) {
		r.report(ctx, rev, corev1.EventTypeWarning, EventTokenRevoked,
			"Token %s was revoked through /oauth2/revoke by a request from %s: its backing token is deleted and a new credential is issued into the same Secret",
			rev.TokenID, sourceOrUnknown(rev.From))
	}
	if err := r.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return ctrl.Result{}, fmt.Errorf("deleting revoked backing token %s: %w", rev.TokenID, err)
	}
	ctrl.LoggerFrom(ctx).Info("Deleted revoked backing token", "tokenID", rev.TokenID,
		"owner", rev.OwnerNamespace+"/"+rev.OwnerName, "from", rev.From)
	metricRevoked.WithLabelValues(cmp.Or(rev.OwnerKind, "unknown"), "revoke-endpoint").Inc()
	if err := r.markReported(ctx, cm, now); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: backing.RevocationRetention}, nil
}

// accessToken records the Event once and prunes the record after the
// token's exp: from then on the token is rejected as expired.
func (r *RevocationReconciler) accessToken(ctx context.Context, cm *corev1.ConfigMap, rev backing.Revocation, now time.Time) (ctrl.Result, error) {
	if wait := rev.ExpiresAt.Add(accessRecordSlack).Sub(now); wait <= 0 {
		return ctrl.Result{}, r.prune(ctx, cm)
	}
	if !isReported(cm) {
		r.report(ctx, rev, corev1.EventTypeNormal, EventAccessTokenRevoked,
			"Access token %s (issued against token %s) was revoked through /oauth2/revoke by a request from %s; the client's other access tokens are unaffected",
			rev.JTI, rev.TokenID, sourceOrUnknown(rev.From))
		if err := r.markReported(ctx, cm, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{RequeueAfter: rev.ExpiresAt.Add(accessRecordSlack).Sub(now)}, nil
}

// report records the Event on the token's owner, if it is still the object
// the token was issued to.
func (r *RevocationReconciler) report(ctx context.Context, rev backing.Revocation, eventType, reason, note string, args ...any) {
	var owner client.Object
	switch rev.OwnerKind {
	case backing.KindApiClient:
		owner = &latchkeyv1alpha1.ApiClient{}
	case backing.KindCredentialGrant:
		owner = &latchkeyv1alpha1.CredentialGrant{}
	default:
		return
	}
	if err := r.Get(ctx, types.NamespacedName{Namespace: rev.OwnerNamespace, Name: rev.OwnerName}, owner); err != nil || owner.GetUID() != rev.OwnerUID {
		ctrl.LoggerFrom(ctx).Info("Revoked token's owner is gone: no Event", "tokenID", rev.TokenID, "owner", rev.OwnerNamespace+"/"+rev.OwnerName)
		return
	}
	r.Recorder.Eventf(owner, nil, eventType, reason, "Revoke", note, args...)
}

func isReported(cm *corev1.ConfigMap) bool { return cm.Annotations[backing.AnnotationReported] != "" }

// markReported stamps the record with when its work was done.
func (r *RevocationReconciler) markReported(ctx context.Context, cm *corev1.ConfigMap, now time.Time) error {
	if isReported(cm) {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, backing.AnnotationReported, now.UTC().Format(time.RFC3339Nano))
	if err := r.Patch(ctx, cm, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("marking revocation record %s: %w", cm.Name, err)
	}
	return nil
}

func (r *RevocationReconciler) prune(ctx context.Context, cm *corev1.ConfigMap) error {
	if err := r.Delete(ctx, cm, client.Preconditions{UID: &cm.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("pruning revocation record %s: %w", cm.Name, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Pruned revocation record", "configMap", cm.Name)
	return nil
}

func sourceOrUnknown(s string) string { return cmp.Or(s, "an unknown address") }

// setupRevocations registers the RevocationReconciler: the manager's cache
// holds only revocation records among ConfigMaps (internal/operator).
func setupRevocations(mgr ctrl.Manager, opts Options) error {
	r := &RevocationReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: opts.Namespace,
		Recorder: mgr.GetEventRecorder("latchkey-revocation"), Now: opts.Now}
	inTokens := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == opts.Namespace && o.GetLabels()[backing.LabelComponent] == backing.ComponentRevocation
	})
	if err := ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}, builder.WithPredicates(inTokens)).
		WithOptions(controller.Options{MaxConcurrentReconciles: opts.MaxConcurrentReconciles}).
		Named("revocation").
		Complete(r); err != nil {
		return fmt.Errorf("setting up the revocation controller: %w", err)
	}
	return nil
}
