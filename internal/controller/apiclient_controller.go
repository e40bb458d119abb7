package controller

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
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

// Condition messages.
const (
	reasonSecretRefNotFoundFmt    = "Secret %q (spec.clientSecretRef) does not exist in namespace %q: create it with key %q; the client is issued as soon as it exists"
	reasonSecretRefKeyNotFoundFmt = "Secret %q (spec.clientSecretRef) in namespace %q has no key %q, or it is empty: add the key with the client secret; the client is issued as soon as it exists"
)

// ApiClientReconciler issues an ApiClient's client id and secret into its
// consumer Secret, keeps a hash of the secret in a backing token, and deletes
// the client's backing tokens (and those of its grants) when it is deleted.
type ApiClientReconciler struct {
	store
	Recorder recorder.EventRecorder
	Now      func() time.Time
	outbox   outbox
}

// +kubebuilder:rbac:groups=latchkey.dev,resources=apiclients,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=latchkey.dev,resources=apiclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=latchkey.dev,resources=apiclients/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=latchkey-system,resources=secrets,verbs=deletecollection
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes the client's issued secret, consumer Secret, backing token
// and status agree with its spec.
func (r *ApiClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	c := &latchkeyv1alpha1.ApiClient{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.revoke(ctx, c)
	}
	if _, behind := r.issued.behind(c); behind {
		// The cache has not seen this process's last status write yet,
		// which came after its finalizer: decide from that status.
		overlayStatus(r.issued, c, &c.Status)
	} else if err := ensureFinalizer(ctx, r.Client, c); err != nil {
		return ctrl.Result{}, err
	}
	st := &clientState{now: r.Now()}
	res, err := r.reconcileSecret(ctx, c, st)
	if errors.Is(err, errCacheBehind) {
		return ctrl.Result{RequeueAfter: cacheBehindRetry}, nil
	}
	if err != nil {
		st.fail(err)
	}
	status, effects := r.status(c, st)
	if serr := patchStatus(ctx, r.Client, r.issued, c, &c.Status, status); serr != nil {
		// Nothing is reported for an attempt whose status was lost: what it
		// issued is reported once a status write succeeds.
		r.outbox.hold(c.UID, st.effects)
		if err == nil {
			err = serr
		}
		return res, err
	}
	r.outbox.release(ctx, c.UID, append(st.effects, effects...))
	return res, err
}

// clientState is what one reconcile learned, for the status.
type clientState struct {
	now        time.Time
	clientID   string
	claim      claimState
	current    *backing.Token
	secretName string
	// keepTokenID: nothing is current (blocked, consumer Secret gone) but
	// the backing token status records as delivered is kept: status goes on
	// recording it, so that a later new secret is a Reissue (a warning).
	keepTokenID bool
	// notReadyReason/Message explain why no secret is issued now.
	notReadyReason, notReadyMessage string
	// effects report what was done (an issue), once the status is written.
	effects []effect
}

func (s *clientState) fail(err error) {
	s.notReadyReason, s.notReadyMessage = latchkeyv1alpha1.ReasonIssueFailed, err.Error()
}

// conflict records that the client id is held by another live client. The
// client holds no id: its status shows none and its grants get none.
func (s *clientState) conflict(clientID, holder string) {
	s.claim = claimTaken
	s.notReadyReason = latchkeyv1alpha1.ReasonClientIDConflict
	s.notReadyMessage = fmt.Sprintf("client id %q is already held by ApiClient %s: client ids are unique in the cluster; "+
		"create this client again with another spec.clientID (or none, for a generated id), or delete the other client to free the id", clientID, holder)
	s.clientID = ""
}

func (r *ApiClientReconciler) reconcileSecret(ctx context.Context, c *latchkeyv1alpha1.ApiClient, st *clientState) (ctrl.Result, error) {
	st.secretName = c.EffectiveSecretName()
	var (
		sec    *corev1.Secret
		source []byte
	)
	o, p, err := r.decideConfirmed(st.now, c.UID, func(confirm bool) (o observed, err error) {
		sec, source, o, err = r.observe(ctx, c, st, confirm)
		return o, err
	})
	if err != nil {
		return ctrl.Result{}, err
	}
	if st.claim == claimFree && !o.Blocked {
		// The one write that decides who holds the id: a lost race turns
		// into a conflict before anything carries the id.
		won, err := r.takeClaim(ctx, c, st.clientID)
		if err != nil {
			return ctrl.Result{}, err
		}
		if won {
			st.claim = claimHeld
		} else {
			st.conflict(st.clientID, "another ApiClient")
			o.Blocked, o.RevokeAll = true, true
			p = decide(o)
		}
	}
	st.current = p.Current
	st.keepTokenID = p.Action == actionKeep && p.Current == nil && c.Status.TokenID != "" &&
		slices.ContainsFunc(o.Tokens, func(t backing.Token) bool { return t.ID == c.Status.TokenID }) && !slices.Contains(p.Delete, c.Status.TokenID)
	switch p.Action {
	case actionKeep:
		if err := r.settle(ctx, p, st.now, o.Grace); err != nil {
			return ctrl.Result{}, err
		}
		if st.notReadyReason == "" && st.current != nil {
			d := r.secretSpec(c, st, sec.Data[latchkeyv1alpha1.ClientSecretKey], st.current.ID, o.RotatedFor)
			if !d.upToDate(sec, c, latchkeyv1alpha1.ApiClientKind) {
				if err := r.applySecret(ctx, c, latchkeyv1alpha1.GroupVersion.WithKind(latchkeyv1alpha1.ApiClientKind), d); err != nil {
					return ctrl.Result{}, err
				}
			}
		}
	default:
		if err := r.issue(ctx, c, st, p, o, source); err != nil {
			return ctrl.Result{}, err
		}
	}
	if st.current != nil {
		if err := r.pruneOldSecret(ctx, c, c.Status.SecretName, st.secretName); err != nil {
			return ctrl.Result{}, err
		}
	}
	switch st.notReadyReason {
	case latchkeyv1alpha1.ReasonSecretRefNotFound, latchkeyv1alpha1.ReasonClientIDConflict, latchkeyv1alpha1.ReasonSecretConflict:
		// Nothing watched tells when the person acted (a foreign Secret is
		// not cached): look again, less and less often.
		return ctrl.Result{RequeueAfter: waitBackoff(waitedSince(c.Status.Conditions, st.now))}, nil
	}
	return ctrl.Result{RequeueAfter: p.RequeueAfter}, nil
}

// observe gathers the consumer Secret, the backing tokens and the referenced
// Secret, and turns them into the facts decide needs.
func (r *ApiClientReconciler) observe(ctx context.Context, c *latchkeyv1alpha1.ApiClient, st *clientState, confirm bool) (*corev1.Secret, []byte, observed, error) {
	o := observed{Now: st.now, ClientUID: c.UID, RotateWanted: c.Annotations[latchkeyv1alpha1.AnnotationRotate], Grace: grace(c.Spec.Rotation),
		DeliveredTokenID: c.Status.TokenID}
	sec, foreign, err := r.currentSecret(ctx, c, st.secretName, c.Status.SecretName, confirm)
	if err != nil {
		return nil, nil, o, err
	}
	if o.Tokens, err = r.tokens(ctx, c.UID, confirm); err != nil {
		return nil, nil, o, err
	}
	st.clientID = effectiveClientID(c, o.Tokens)
	st.notReadyReason, st.notReadyMessage = "", ""
	var holder string
	if st.claim, holder, err = r.clientIDClaim(ctx, c, st.clientID, confirm); err != nil {
		return nil, nil, o, err
	}
	if st.claim == claimTaken {
		// Another live client holds the id: nothing of this client may carry
		// it, so whatever it has goes.
		st.conflict(st.clientID, holder)
		o.Blocked, o.RevokeAll = true, true
		return sec, nil, o, nil
	}
	if foreign {
		o.Blocked = true
		st.notReadyReason = latchkeyv1alpha1.ReasonSecretConflict
		st.notReadyMessage = fmt.Sprintf("Secret %q exists and is not managed by this ApiClient: delete it, or set spec.secretName to another name", st.secretName)
	}
	var source []byte
	if ref := c.Spec.ClientSecretRef; ref != nil && !o.Blocked {
		if source, err = r.referencedSecret(ctx, c.Namespace, ref); err != nil {
			var missing *secretRefMissing
			if !errors.As(err, &missing) {
				return nil, nil, o, err
			}
			o.Blocked = true
			st.notReadyReason, st.notReadyMessage = latchkeyv1alpha1.ReasonSecretRefNotFound, err.Error()
		}
	}
	if sec != nil {
		o.SecretExists = true
		o.SecretTokenID = sec.Annotations[latchkeyv1alpha1.AnnotationTokenID]
		o.RotatedFor = sec.Annotations[latchkeyv1alpha1.AnnotationRotatedFor]
		o.SecretMatches = string(sec.Data[latchkeyv1alpha1.ClientIDKey]) == st.clientID && onlyKeys(sec.Data, latchkeyv1alpha1.ClientIDKey, latchkeyv1alpha1.ClientSecretKey) &&
			r.secretMatches(c, sec, o.Tokens, source, &o)
		o.Tampered = o.tampered()
	}
	return sec, source, o, nil
}

// secretMatches checks the consumer Secret's secret against its backing
// token: a SHA-256 comparison for a generated secret. For a user-chosen one,
// equality with the referenced value avoids an argon2id computation on every
// resync; when they differ, the backing token tells a changed source (the
// consumer Secret still holds what was issued: a rotation) from an edited
// consumer Secret (tampering).
func (r *ApiClientReconciler) secretMatches(c *latchkeyv1alpha1.ApiClient, sec *corev1.Secret, tokens []backing.Token, source []byte, o *observed) bool {
	have := sec.Data[latchkeyv1alpha1.ClientSecretKey]
	if c.Spec.ClientSecretRef != nil && source != nil && subtle.ConstantTimeCompare(have, source) == 1 {
		return true
	}
	for _, t := range tokens {
		if t.ID == o.SecretTokenID {
			ok, _ := token.Verify(t.Hash, t.ID, string(have))
			o.SourceChanged = ok && c.Spec.ClientSecretRef != nil && source != nil
			return ok
		}
	}
	return false
}

// secretRefMissing is why the Secret of spec.clientSecretRef cannot be used
// yet: its message, written for a person, becomes the SecretRefNotFound
// condition's message as it is.
type secretRefMissing struct{ message string }

func (e *secretRefMissing) Error() string { return e.message }

// referencedSecret reads the user's Secret uncached (it carries no Latchkey
// label, and caching every Secret in the cluster is what we avoid). A missing
// Secret or key, or a secret shorter than the minimum, is a *secretRefMissing
// whose message says what to do: the client is then not issued (Ready=False,
// SecretRefNotFound); credentials already issued are kept.
func (r *ApiClientReconciler) referencedSecret(ctx context.Context, ns string, ref *latchkeyv1alpha1.SecretKeyReference) ([]byte, error) {
	// The admission webhook's MinChosenSecretLength: it refuses a shorter
	// secret when it can read the Secret; this covers the rest (the Secret
	// created or changed after the ApiClient, the webhook down).
	const minChosenSecretLength = 16
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &secretRefMissing{fmt.Sprintf(reasonSecretRefNotFoundFmt, ref.Name, ns, ref.EffectiveKey())}
		}
		return nil, fmt.Errorf("reading Secret %s/%s of spec.clientSecretRef: %w", ns, ref.Name, err)
	}
	v, ok := sec.Data[ref.EffectiveKey()]
	if !ok || len(v) == 0 {
		return nil, &secretRefMissing{fmt.Sprintf(reasonSecretRefKeyNotFoundFmt, ref.Name, ns, ref.EffectiveKey())}
	}
	if len([]rune(string(v))) < minChosenSecretLength {
		// The length is not told: it is a hint about the secret.
		return nil, &secretRefMissing{fmt.Sprintf("Secret %q in namespace %q: key %q (spec.clientSecretRef) holds fewer than %d characters, too short for a client secret: put a random one there (for example: openssl rand -base64 32), or remove spec.clientSecretRef to have a secret generated; the client is issued as soon as it is long enough",
			ref.Name, ns, ref.EffectiveKey(), minChosenSecretLength)}
	}
	return v, nil
}

// issue mints a new secret (or takes the referenced one), creates its backing
// token, retires or deletes the old ones, and writes the consumer Secret.
func (r *ApiClientReconciler) issue(ctx context.Context, c *latchkeyv1alpha1.ApiClient, st *clientState, p plan, o observed, source []byte) error {
	id, err := token.NewTokenID()
	if err != nil {
		return err
	}
	var secret, hash string
	if source != nil {
		secret = string(source)
		if hash, err = token.HashChosen(secret); err != nil {
			return err
		}
	} else {
		if secret, err = token.NewClientSecret(); err != nil {
			return err
		}
		hash = token.HashGenerated(id, secret)
	}
	bt := backing.Token{
		ID: id, Hash: hash, OwnerKind: backing.KindApiClient, OwnerNamespace: c.Namespace, OwnerName: c.Name,
		OwnerUID: c.UID, ClientUID: c.UID, ClientID: st.clientID, Type: backing.TypeClientSecret,
	}
	if st.current, err = r.rollOut(ctx, c, latchkeyv1alpha1.ApiClientKind, bt, r.secretSpec(c, st, []byte(secret), id, o.RotateWanted), p, o); err != nil {
		return err
	}
	st.effects = append(st.effects, issueEffect(r.Recorder, c, latchkeyv1alpha1.ApiClientKind, p.Action, id, len(p.Delete), o.Tampered))
	return nil
}

func (r *ApiClientReconciler) secretSpec(c *latchkeyv1alpha1.ApiClient, st *clientState, secret []byte, tokenID, rotatedFor string) consumerSecretSpec {
	return consumerSecretSpec{
		Name: st.secretName, Type: latchkeyv1alpha1.ClientSecretType, TokenID: tokenID, RotatedFor: rotatedFor, Template: c.Spec.SecretTemplate,
		Data: map[string][]byte{latchkeyv1alpha1.ClientIDKey: []byte(st.clientID), latchkeyv1alpha1.ClientSecretKey: secret},
	}
}

// revoke deletes the backing tokens of the client and of all its grants, in
// one call, then lets the object go.
func (r *ApiClientReconciler) revoke(ctx context.Context, c *latchkeyv1alpha1.ApiClient) error {
	if !hasFinalizer(c) {
		return nil
	}
	if err := r.revokeAll(ctx, backing.ClientSelector(c.UID)); err != nil {
		return err
	}
	for _, id := range []string{c.Spec.ClientID, c.Status.ClientID} {
		if err := r.releaseClaim(ctx, c, id); err != nil {
			return err
		}
	}
	r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, EventRevoked, "Revoke",
		"Deleted the backing tokens of client %s and of its grants", c.Status.ClientID)
	metricRevoked.WithLabelValues(latchkeyv1alpha1.ApiClientKind, "deleted").Inc()
	r.outbox.drop(c.UID)
	r.issued.forget(c.UID)
	forgetMetrics(latchkeyv1alpha1.ApiClientKind, c.Namespace, c.Name)
	return removeFinalizer(ctx, r.Client, c)
}

// status rebuilds the status from what this reconcile observed and did,
// and returns the Events and metrics its changes call for, to be emitted
// once it is written.
func (r *ApiClientReconciler) status(c *latchkeyv1alpha1.ApiClient, st *clientState) (latchkeyv1alpha1.ApiClientStatus, []effect) {
	s := *c.Status.DeepCopy()
	s.ObservedGeneration = c.Generation
	s.ClientID = st.clientID
	if st.claim != claimHeld && st.current == nil {
		s.ClientID = "" // not recorded until it holds the id
	}
	s.SecretName = st.secretName
	if !st.keepTokenID {
		s.TokenID, s.IssuedAt = "", nil
	}
	if st.current != nil {
		s.TokenID = st.current.ID
		s.IssuedAt = &metav1.Time{Time: st.current.CreatedAt.UTC().Truncate(time.Second)}
	}
	conds := clientConditions(clientFacts{SecretName: st.secretName, Issued: st.current != nil,
		NotReadyReason: st.notReadyReason, NotReadyMessage: st.notReadyMessage, Active: c.IsActive()})
	var effects []effect
	if was, now := meta.FindStatusCondition(s.Conditions, latchkeyv1alpha1.ConditionActive), meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionActive); was != nil && was.Status != now.Status {
		effects = append(effects, func(context.Context) {
			if now.Status == metav1.ConditionFalse {
				r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, EventDeactivated, "Deactivate", "Client deactivated: its credentials are rejected")
			} else {
				r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, EventActivated, "Activate", "Client activated: its credentials are accepted again")
			}
		})
	}
	setConditions(&s.Conditions, conds, c.Generation)
	ready := meta.IsStatusConditionTrue(conds, latchkeyv1alpha1.ConditionReady)
	effects = append(effects, func(context.Context) { setReadyMetric(latchkeyv1alpha1.ApiClientKind, c.Namespace, c.Name, ready) })
	return s, effects
}

// effectiveClientID is the client id in force: the fixed one, else the one
// the operator generated and recorded itself (in the client's backing
// tokens, then in status), else a new one. It is never read back from the
// consumer Secret: anyone who may edit Secrets in the namespace could write
// another client's id there.
func effectiveClientID(c *latchkeyv1alpha1.ApiClient, tokens []backing.Token) string {
	if c.Spec.ClientID != "" {
		return c.Spec.ClientID
	}
	for _, t := range tokens {
		if t.ClientID != "" && t.ClientUID == c.UID {
			return t.ClientID
		}
	}
	if c.Status.ClientID != "" {
		return c.Status.ClientID
	}
	id, err := token.NewClientID()
	if err != nil {
		return ""
	}
	return id
}

// onlyKeys reports whether data has exactly the given keys: a key added to a
// consumer Secret by someone else is tampering too.
func onlyKeys(data map[string][]byte, keys ...string) bool {
	if len(data) != len(keys) {
		return false
	}
	for _, k := range keys {
		if _, ok := data[k]; !ok {
			return false
		}
	}
	return true
}

func grace(r *latchkeyv1alpha1.Rotation) time.Duration {
	if r == nil || r.GracePeriod == nil {
		return 0
	}
	return r.GracePeriod.Duration
}
