package controller

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// CredentialGrantReconciler issues a grant's token into its consumer Secret,
// keeps its hash in a backing token, expires it at spec.expiresAt, and
// deletes the backing token when the grant is deleted.
type CredentialGrantReconciler struct {
	store
	Recorder recorder.EventRecorder
	Now      func() time.Time
	outbox   outbox
}

// +kubebuilder:rbac:groups=latchkey.dev,resources=credentialgrants,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=latchkey.dev,resources=credentialgrants/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=latchkey.dev,resources=credentialgrants/finalizers,verbs=update

// Reconcile makes the grant's token, consumer Secret, backing token and
// status agree with its spec and its client.
func (r *CredentialGrantReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &latchkeyv1alpha1.CredentialGrant{}
	if err := r.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !g.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.revoke(ctx, g)
	}
	if _, behind := r.issued.behind(g); behind {
		// The cache has not seen this process's last status write yet,
		// which came after its finalizer: decide from that status.
		overlayStatus(r.issued, g, &g.Status)
	} else if err := ensureFinalizer(ctx, r.Client, g); err != nil {
		return ctrl.Result{}, err
	}
	st := &grantState{now: r.Now(), secretName: g.EffectiveSecretName()}
	res, err := r.reconcileToken(ctx, g, st)
	if errors.Is(err, errCacheBehind) {
		return ctrl.Result{RequeueAfter: cacheBehindRetry}, nil
	}
	if err != nil {
		st.notReadyReason, st.notReadyMessage = latchkeyv1alpha1.ReasonIssueFailed, err.Error()
	} else if waitsForNewClient(g, st) {
		return res, nil
	}
	status, effects := r.status(g, st)
	if serr := patchStatus(ctx, r.Client, r.issued, g, &g.Status, status); serr != nil {
		// Nothing is reported for an attempt whose status was lost: what it
		// issued or revoked is reported once a status write succeeds.
		r.outbox.hold(g.UID, st.effects)
		if err == nil {
			err = serr
		}
		return res, err
	}
	r.outbox.release(ctx, g.UID, append(st.effects, effects...))
	return res, err
}

// waitsForNewClient reports a grant that has never had a status and waits
// for a client its controller has not reconciled yet: the usual order when
// both are applied together. Its status is not written (ClientNotReady, then
// Ready a moment later: one write more per grant, a quarter of all status
// writes at scale); the client's first status write wakes it up
// (clientChangedForGrants). Until then kstatus reports it InProgress, as
// any object not reconciled yet (the CRD defaults observedGeneration to 0).
// A client that was reconciled and still has no id (a conflict, a failing
// issue) makes the grant say so.
func waitsForNewClient(g *latchkeyv1alpha1.CredentialGrant, st *grantState) bool {
	return st.notReadyReason == latchkeyv1alpha1.ReasonClientNotReady && st.client != nil &&
		st.client.Status.ObservedGeneration == 0 && len(st.client.Status.Conditions) == 0 &&
		g.Status.ObservedGeneration == 0 && len(g.Status.Conditions) == 0 && g.Status.TokenID == "" &&
		st.current == nil && len(st.effects) == 0
}

// grantState is what one reconcile learned, for the status.
type grantState struct {
	now        time.Time
	secretName string
	client     *latchkeyv1alpha1.ApiClient
	clientID   string
	current    *backing.Token
	expired    bool
	revoked    bool
	// notReadyReason/Message explain why the credential is not usable.
	notReadyReason, notReadyMessage string
	// effects report what was done (issue, revocations), once the status is
	// written.
	effects []effect
}

func (r *CredentialGrantReconciler) reconcileToken(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant, st *grantState) (ctrl.Result, error) {
	var sec *corev1.Secret
	o, p, err := r.decideConfirmed(st.now, g.UID, func(confirm bool) (o observed, err error) {
		sec, o, err = r.observe(ctx, g, st, confirm)
		return o, err
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	st.current = p.Current
	if o.RevokeAll && len(p.Delete) > 0 {
		reason := "client_deleted"
		if st.expired {
			reason = "expired"
		}
		n := float64(len(p.Delete))
		st.effects = append(st.effects, func(context.Context) {
			metricRevoked.WithLabelValues(latchkeyv1alpha1.CredentialGrantKind, reason).Add(n)
		})
	}
	if p.Action == actionKeep {
		if err := r.settle(ctx, p, st.now, o.Grace); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.refresh(ctx, g, st, sec, o); err != nil {
			return ctrl.Result{}, err
		}
	} else if err := r.issue(ctx, g, st, p, o); err != nil {
		return ctrl.Result{}, err
	}
	st.revoked = st.current == nil && (st.expired || st.client == nil)
	if st.current != nil {
		if err := r.pruneOldSecret(ctx, g, g.Status.SecretName, st.secretName); err != nil {
			return ctrl.Result{}, err
		}
	}

	_, untilExpiry := expiry(timePtr(g.Spec.ExpiresAt), st.now)
	if st.notReadyReason == latchkeyv1alpha1.ReasonSecretConflict {
		// A foreign Secret is not cached, so its deletion is not seen: look
		// again, less and less often.
		return ctrl.Result{RequeueAfter: minPositive(waitBackoff(waitedSince(g.Status.Conditions, st.now)), untilExpiry)}, nil
	}
	return ctrl.Result{RequeueAfter: minPositive(p.RequeueAfter, untilExpiry)}, nil
}

// observe gathers the client, the consumer Secret and the backing tokens.
func (r *CredentialGrantReconciler) observe(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant, st *grantState, confirm bool) (*corev1.Secret, observed, error) {
	o := observed{Now: st.now, RotateWanted: g.Annotations[latchkeyv1alpha1.AnnotationRotate], Grace: grace(g.Spec.Rotation),
		DeliveredTokenID: g.Status.TokenID}
	st.notReadyReason, st.notReadyMessage = "", ""
	st.client, st.clientID = nil, ""
	c := &latchkeyv1alpha1.ApiClient{}
	switch err := r.reader(confirm).Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: g.Spec.ClientName}, c); {
	case apierrors.IsNotFound(err) || err == nil && !c.DeletionTimestamp.IsZero():
		o.Blocked, o.RevokeAll = true, true
		st.notReadyReason = latchkeyv1alpha1.ReasonClientNotFound
		st.notReadyMessage = fmt.Sprintf("ApiClient %q does not exist in namespace %q: create it; the credential is issued as soon as it exists", g.Spec.ClientName, g.Namespace)
	case err != nil:
		return nil, o, fmt.Errorf("reading ApiClient %s: %w", g.Spec.ClientName, err)
	default:
		// The id the client holds, as its controller recorded it: never
		// spec.clientID alone, which a client in conflict asks for but does
		// not hold.
		st.client, o.ClientUID, st.clientID = c, c.UID, c.Status.ClientID
	}
	sec, foreign, err := r.currentSecret(ctx, g, st.secretName, g.Status.SecretName, confirm)
	if err != nil {
		return nil, o, err
	}
	if o.Tokens, err = r.tokens(ctx, g.UID, confirm); err != nil {
		return nil, o, err
	}
	if st.expired, _ = expiry(timePtr(g.Spec.ExpiresAt), st.now); st.expired {
		o.Blocked, o.RevokeAll = true, true
	}
	switch {
	case st.client != nil && st.clientID == "":
		o.Blocked = true
		st.notReadyReason = latchkeyv1alpha1.ReasonClientNotReady
		st.notReadyMessage = fmt.Sprintf("ApiClient %q has no client id yet: the credential is issued once the client is Ready", g.Spec.ClientName)
	case foreign:
		o.Blocked = true
		st.notReadyReason = latchkeyv1alpha1.ReasonSecretConflict
		st.notReadyMessage = fmt.Sprintf("Secret %q exists and is not managed by this CredentialGrant: delete it, or set spec.secretName to another name", st.secretName)
	}
	if sec != nil {
		o.SecretExists = true
		o.SecretTokenID = sec.Annotations[latchkeyv1alpha1.AnnotationTokenID]
		o.RotatedFor = sec.Annotations[latchkeyv1alpha1.AnnotationRotatedFor]
		o.SecretMatches = string(sec.Data[latchkeyv1alpha1.ClientIDKey]) == st.clientID && tokenMatches(sec, o.SecretTokenID, o.Tokens) &&
			r.derivedKeysMatch(g, st, sec)
		o.Tampered = o.tampered()
	}
	return sec, o, nil
}

// tokenMatches checks the Secret's token against its backing token's hash.
func tokenMatches(sec *corev1.Secret, id string, tokens []backing.Token) bool {
	tok, err := token.Parse(string(sec.Data[latchkeyv1alpha1.TokenKey]))
	if err != nil || tok.ID != id || string(sec.Data[latchkeyv1alpha1.TokenIDKey]) != id {
		return false
	}
	for _, t := range tokens {
		if t.ID == id {
			ok, _ := token.Verify(t.Hash, t.ID, tok.Secret)
			return ok
		}
	}
	return false
}

// derivedKeysMatch checks that the Secret holds exactly the keys issued for
// its token, with the values derived from it (expires_at aside: it follows
// spec.expiresAt and refresh rewrites it).
func (r *CredentialGrantReconciler) derivedKeysMatch(g *latchkeyv1alpha1.CredentialGrant, st *grantState, sec *corev1.Secret) bool {
	tok, err := token.Parse(string(sec.Data[latchkeyv1alpha1.TokenKey]))
	if err != nil {
		return false
	}
	want := r.secretSpec(g, st, tok, "").Data
	if len(want) != len(sec.Data) {
		return false
	}
	for k, v := range want {
		have, ok := sec.Data[k]
		if !ok || k != latchkeyv1alpha1.ExpiresAtKey && subtle.ConstantTimeCompare(have, v) != 1 {
			return false
		}
	}
	return true
}

// issue mints a token, creates its backing token, retires or deletes the old
// ones and writes the consumer Secret.
func (r *CredentialGrantReconciler) issue(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant, st *grantState, p plan, o observed) error {
	tok, err := token.New()
	if err != nil {
		return err
	}
	bt := backing.Token{
		ID: tok.ID, Hash: token.HashGenerated(tok.ID, tok.Secret), OwnerKind: backing.KindCredentialGrant,
		OwnerNamespace: g.Namespace, OwnerName: g.Name, OwnerUID: g.UID, ClientUID: st.client.UID,
		ClientID: st.clientID, Type: string(g.EffectiveType()), ExpiresAt: timePtr(g.Spec.ExpiresAt),
	}
	if st.current, err = r.rollOut(ctx, g, latchkeyv1alpha1.CredentialGrantKind, bt, r.secretSpec(g, st, tok, o.RotateWanted), p, o); err != nil {
		return err
	}
	st.effects = append(st.effects, issueEffect(r.Recorder, g, latchkeyv1alpha1.CredentialGrantKind, p.Action, tok.ID, len(p.Delete), o.Tampered))
	return nil
}

// refresh brings a kept credential's consumer Secret and backing token up to
// date with spec changes that do not need a new secret (expiresAt, template).
func (r *CredentialGrantReconciler) refresh(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant, st *grantState, sec *corev1.Secret, o observed) error {
	if st.current == nil || sec == nil {
		return nil
	}
	if want := timePtr(g.Spec.ExpiresAt); !sameTime(st.current.ExpiresAt, want) {
		if err := r.setTokenExpiry(ctx, st.current.ID, want); err != nil {
			return err
		}
	}
	tok, err := token.Parse(string(sec.Data[latchkeyv1alpha1.TokenKey]))
	if err != nil {
		return nil // decide saw it as consistent, so this cannot happen
	}
	d := r.secretSpec(g, st, tok, o.RotatedFor)
	if d.upToDate(sec, g, latchkeyv1alpha1.CredentialGrantKind) {
		return nil
	}
	return r.applySecret(ctx, g, latchkeyv1alpha1.GroupVersion.WithKind(latchkeyv1alpha1.CredentialGrantKind), d)
}

func (r *CredentialGrantReconciler) secretSpec(g *latchkeyv1alpha1.CredentialGrant, st *grantState, tok token.Token, rotatedFor string) consumerSecretSpec {
	data := map[string][]byte{
		latchkeyv1alpha1.TokenKey:     []byte(tok.String()),
		latchkeyv1alpha1.TokenIDKey:   []byte(tok.ID),
		latchkeyv1alpha1.ClientIDKey:  []byte(st.clientID),
		latchkeyv1alpha1.ExpiresAtKey: []byte(formatTime(timePtr(g.Spec.ExpiresAt))),
	}
	switch g.EffectiveType() {
	case latchkeyv1alpha1.CredentialTypeKeyAuth:
		data[latchkeyv1alpha1.KeyIDKey], data[latchkeyv1alpha1.KeySecretKey] = []byte(tok.ID), []byte(tok.Secret)
	case latchkeyv1alpha1.CredentialTypeBasicAuth:
		data[latchkeyv1alpha1.UsernameKey], data[latchkeyv1alpha1.PasswordKey] = []byte(tok.ID), []byte(tok.Secret)
	}
	return consumerSecretSpec{Name: st.secretName, Type: latchkeyv1alpha1.GrantSecretType, Data: data, TokenID: tok.ID,
		RotatedFor: rotatedFor, Template: g.Spec.SecretTemplate}
}

// revoke deletes the grant's backing tokens, then lets the object go.
func (r *CredentialGrantReconciler) revoke(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant) error {
	if !hasFinalizer(g) {
		return nil
	}
	if err := r.revokeAll(ctx, backing.OwnerSelector(g.UID)); err != nil {
		return err
	}
	r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, EventRevoked, "Revoke", "Deleted the backing token of %s", g.Status.TokenID)
	metricRevoked.WithLabelValues(latchkeyv1alpha1.CredentialGrantKind, "deleted").Inc()
	r.outbox.drop(g.UID)
	r.issued.forget(g.UID)
	forgetMetrics(latchkeyv1alpha1.CredentialGrantKind, g.Namespace, g.Name)
	return removeFinalizer(ctx, r.Client, g)
}

// status rebuilds the grant's status from what this reconcile observed, and
// returns the Events and metrics its changes call for, to be emitted once it
// is written.
func (r *CredentialGrantReconciler) status(g *latchkeyv1alpha1.CredentialGrant, st *grantState) (latchkeyv1alpha1.CredentialGrantStatus, []effect) {
	s := *g.Status.DeepCopy()
	s.ObservedGeneration = g.Generation
	s.SecretName = st.secretName
	s.ClientID = st.clientID
	s.ExpiresAt = g.Spec.ExpiresAt
	var effects []effect
	if st.current != nil {
		s.TokenID = st.current.ID
		s.IssuedAt = &metav1.Time{Time: st.current.CreatedAt.UTC().Truncate(time.Second)}
		tokenID := s.TokenID
		effects = append(effects, func(context.Context) {
			metricExpiration.DeletePartialMatch(map[string]string{"namespace": g.Namespace, "name": g.Name})
			if g.Spec.ExpiresAt != nil {
				metricExpiration.WithLabelValues(g.Namespace, g.Name, tokenID).Set(float64(g.Spec.ExpiresAt.Unix()))
			}
		})
	}
	f := grantFacts{SecretName: st.secretName, ClientName: g.Spec.ClientName,
		NotReadyReason: st.notReadyReason, NotReadyMessage: st.notReadyMessage,
		Expired: st.expired, ExpiresAt: formatTime(timePtr(g.Spec.ExpiresAt)),
		Issued: st.current != nil, Revoked: st.revoked, GrantPermissions: g.Spec.Permissions}
	if st.client != nil {
		f.ClientActive, f.ClientPermissions = st.client.IsActive(), st.client.Spec.Permissions
	}
	conds := grantConditions(f)
	if becameTrue(s.Conditions, conds, latchkeyv1alpha1.ConditionExpired) {
		tokenID := s.TokenID
		effects = append(effects, func(context.Context) {
			r.Recorder.Eventf(g, nil, corev1.EventTypeNormal, EventExpired, "Expire", "The credential %s expired and its backing token was deleted", tokenID)
			metricExpired.WithLabelValues(g.Namespace).Inc()
		})
	}
	setConditions(&s.Conditions, conds, g.Generation)
	ready := meta.IsStatusConditionTrue(conds, latchkeyv1alpha1.ConditionReady)
	effects = append(effects, func(context.Context) {
		setReadyMetric(latchkeyv1alpha1.CredentialGrantKind, g.Namespace, g.Name, ready)
	})
	return s, effects
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	return &t.Time
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Unix() == b.Unix()
}

func formatTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
