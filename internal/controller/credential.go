package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

const (
	// fieldOwner is Latchkey's server-side apply field manager.
	fieldOwner = client.FieldOwner("latchkey")
	// finalizer makes deletion wait until the backing tokens are deleted,
	// also when the operator was down when the object was deleted.
	finalizer = latchkeyv1alpha1.FinalizerRevoke
)

// store reads and writes what the credential controllers own: consumer
// Secrets (in the object's namespace) and backing tokens (in the operator's).
// Reads go to the cache; a decision to issue a new secret is confirmed with
// the API server first (confirm=true), so a stale cache never causes one.
type store struct {
	client.Client
	// APIReader reads uncached: user Secrets and confirmations.
	APIReader client.Reader
	// Namespace is the operator's namespace.
	Namespace string
	// issued remembers what this process issued until its cache shows it.
	issued *expectations
}

func (s *store) reader(confirm bool) client.Reader {
	if confirm {
		return s.APIReader
	}
	return s.Client
}

// consumerSecret returns the owner's consumer Secret, or nil when absent;
// foreign is true when a Secret of that name exists but is not the owner's
// (Latchkey never overwrites it). The cache only holds Latchkey's Secrets, so
// a foreign Secret is seen only when confirming: a cache miss is taken as
// "absent", and the write that follows from it either confirms first or
// creates the Secret (which fails if any Secret has that name): see
// decideConfirmed.
func (s *store) consumerSecret(ctx context.Context, owner client.Object, name string, confirm bool) (sec *corev1.Secret, foreign bool, err error) {
	key := types.NamespacedName{Namespace: owner.GetNamespace(), Name: name}
	sec = &corev1.Secret{}
	err = s.reader(confirm).Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if !metav1.IsControlledBy(sec, owner) {
		return nil, true, nil
	}
	return sec, false, nil
}

// tokens lists the backing tokens of an owner: from the cache by the owner
// index (a lookup, not a scan of every token in the namespace), or, when
// confirming, from the API server by label.
func (s *store) tokens(ctx context.Context, ownerUID types.UID, confirm bool) ([]backing.Token, error) {
	var list corev1.SecretList
	var err error
	if confirm {
		err = s.APIReader.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels(backing.OwnerSelector(ownerUID)))
	} else {
		err = s.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingFields{IndexBackingTokenOwner: string(ownerUID)})
	}
	if err != nil {
		return nil, fmt.Errorf("listing backing tokens: %w", err)
	}
	out := make([]backing.Token, 0, len(list.Items))
	for i := range list.Items {
		t, err := backing.FromSecret(&list.Items[i])
		if err != nil {
			// A damaged backing token verifies nothing; drop it: this very
			// Secret, by its own name and UID, never one named after its
			// (possibly forged) token-id label.
			bad := &list.Items[i]
			ctrl.LoggerFrom(ctx).Info("Deleting unreadable backing token", "secret", bad.Name, "error", err.Error())
			if err := s.Delete(ctx, bad, client.Preconditions{UID: &bad.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
				return nil, fmt.Errorf("deleting unreadable backing token %s: %w", bad.Name, err)
			}
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// createToken creates the backing token and returns the time the API server
// recorded for it (status.issuedAt is that time, written once).
func (s *store) createToken(ctx context.Context, t backing.Token) (time.Time, error) {
	sec := t.Secret(s.Namespace)
	if err := s.Create(ctx, sec, fieldOwner); err != nil {
		return time.Time{}, fmt.Errorf("creating backing token %s: %w", t.ID, err)
	}
	return sec.CreationTimestamp.Time, nil
}

func (s *store) deleteToken(ctx context.Context, id string) error {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backing.Name(id), Namespace: s.Namespace}}
	if err := s.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting backing token %s: %w", id, err)
	}
	return nil
}

// retireToken keeps a rotated-out token valid until at.
func (s *store) retireToken(ctx context.Context, id string, at time.Time) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, backing.AnnotationRetireAt, at.UTC().Format(time.RFC3339))
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backing.Name(id), Namespace: s.Namespace}}
	if err := s.Patch(ctx, sec, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("retiring backing token %s: %w", id, err)
	}
	return nil
}

// setTokenExpiry updates the expiry a backing token carries, so the verifier
// rejects at the new time even if the controller is late.
func (s *store) setTokenExpiry(ctx context.Context, id string, at *time.Time) error {
	val := "null"
	if at != nil {
		val = fmt.Sprintf("%q", at.UTC().Format(time.RFC3339))
	}
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%s}}}`, backing.AnnotationExpiresAt, val)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backing.Name(id), Namespace: s.Namespace}}
	if err := s.Patch(ctx, sec, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("updating expiry of backing token %s: %w", id, err)
	}
	return nil
}

// revokeAll deletes every backing token matching the selector, in one call.
func (s *store) revokeAll(ctx context.Context, selector map[string]string) error {
	if err := s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(s.Namespace), client.MatchingLabels(selector)); err != nil {
		return fmt.Errorf("deleting backing tokens: %w", err)
	}
	return nil
}

// settle applies a plan's deletions and retirements.
func (s *store) settle(ctx context.Context, p plan, now time.Time, grace time.Duration) error {
	for _, id := range p.Retire {
		if err := s.retireToken(ctx, id, now.Add(grace)); err != nil {
			return err
		}
	}
	for _, id := range p.Delete {
		if err := s.deleteToken(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// currentSecret is the owner's consumer Secret at name or, when there is
// none yet and spec.secretName just changed, the one at its previous name:
// the issued secret moves to the new name instead of being reissued.
func (s *store) currentSecret(ctx context.Context, owner client.Object, name, previous string, confirm bool) (*corev1.Secret, bool, error) {
	sec, foreign, err := s.consumerSecret(ctx, owner, name, confirm)
	if err != nil || sec != nil || foreign || previous == "" || previous == name {
		return sec, foreign, err
	}
	old, _, err := s.consumerSecret(ctx, owner, previous, confirm)
	return old, false, err
}

// pruneOldSecret deletes the consumer Secret the object used before
// spec.secretName changed, if it is still the object's.
func (s *store) pruneOldSecret(ctx context.Context, owner client.Object, old, current string) error {
	if old == "" || old == current {
		return nil
	}
	sec, _, err := s.consumerSecret(ctx, owner, old, false)
	if err != nil || sec == nil {
		return err
	}
	if err := s.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting the previous Secret %s: %w", old, err)
	}
	return nil
}

// rollOut puts a newly minted secret in place, in the order that never
// leaves a consumer without a valid secret and never skips a grace period:
// the new backing token first, then the rotated-out tokens start retiring,
// then the consumer Secret gets the new secret, then the replaced tokens go.
// A crash between steps leaves either the old state or an orphan that the
// next reconcile deletes. It returns the new token as current.
//
// A first issue decided from the cache alone (p.Unconfirmed) creates the
// consumer Secret instead of applying it: if any Secret has its name (ours,
// not yet in the cache, or someone else's), the create fails, the new
// backing token is deleted (no one ever saw it) and the next reconcile
// confirms with the API server (errCacheBehind).
func (s *store) rollOut(ctx context.Context, owner client.Object, kind string, bt backing.Token, d consumerSecretSpec, p plan, o observed) (*backing.Token, error) {
	created, err := s.createToken(ctx, bt)
	if err != nil {
		return nil, err
	}
	if err := s.settle(ctx, plan{Retire: p.Retire}, o.Now, o.Grace); err != nil {
		return nil, err
	}
	gvk := latchkeyv1alpha1.GroupVersion.WithKind(kind)
	if p.Unconfirmed {
		err = s.createSecret(ctx, owner, gvk, d)
		if apierrors.IsAlreadyExists(err) {
			if err := s.deleteToken(ctx, bt.ID); err != nil {
				return nil, err
			}
			s.issued.confirmNext(owner.GetUID())
			return nil, errCacheBehind
		}
	} else {
		err = s.applySecret(ctx, owner, gvk, d)
	}
	if err != nil {
		return nil, err
	}
	if err := s.settle(ctx, plan{Delete: p.Delete}, o.Now, 0); err != nil {
		return nil, err
	}
	bt.CreatedAt = created
	s.issued.expect(owner.GetUID(), bt.ID, o.Now)
	return &bt, nil
}

// errCacheBehind: the cache does not show this process's own writes yet (or a
// create found a Secret the cache does not show): reconcile again shortly,
// without writing status from a view known to be stale.
var errCacheBehind = errors.New("the cache has not caught up with the operator's own writes")

// decideConfirmed decides on what the cache shows and, when that means a new
// secret, makes sure a stale cache (our own writes not yet seen) never causes
// a second issue:
//   - a first issue, with no backing token and nothing recorded as
//     delivered, needs no confirmation: rollOut creates the consumer Secret,
//     which fails if one exists;
//   - while the cache does not show a secret this process issued, nothing is
//     decided (errCacheBehind): the watch brings the reconcile back;
//   - anything else is observed again from the API server and decided on
//     that.
func (s *store) decideConfirmed(now time.Time, owner types.UID, observe func(confirm bool) (observed, error)) (observed, plan, error) {
	confirm := s.issued.takeConfirm(owner)
	if !confirm {
		o, err := observe(false)
		if err != nil {
			return o, plan{}, err
		}
		p := decide(o)
		switch seen := s.issued.seen(owner, o, now); {
		case p.Action == actionKeep:
			return o, p, nil
		case !seen:
			return o, plan{}, errCacheBehind
		case p.Action == actionIssue && len(o.Tokens) == 0 && o.DeliveredTokenID == "":
			p.Unconfirmed = true
			return o, p, nil
		}
	}
	o, err := observe(true)
	if err != nil {
		return o, plan{}, err
	}
	return o, decide(o), nil
}

// consumerSecretSpec is the desired content of a consumer Secret.
type consumerSecretSpec struct {
	Name       string
	Type       corev1.SecretType
	Data       map[string][]byte
	TokenID    string
	RotatedFor string
	Template   *latchkeyv1alpha1.SecretTemplate
}

func (d consumerSecretSpec) labels(owner client.Object, kind string) map[string]string {
	l := map[string]string{}
	if d.Template != nil {
		maps.Copy(l, d.Template.Labels)
	}
	l[latchkeyv1alpha1.LabelManagedBy] = latchkeyv1alpha1.ManagedByValue
	l[latchkeyv1alpha1.LabelKind] = kind
	l[latchkeyv1alpha1.LabelOwnerUID] = string(owner.GetUID())
	return l
}

func (d consumerSecretSpec) annotations() map[string]string {
	a := map[string]string{}
	if d.Template != nil {
		maps.Copy(a, d.Template.Annotations)
	}
	a[latchkeyv1alpha1.AnnotationTokenID] = d.TokenID
	a[latchkeyv1alpha1.AnnotationRotatedFor] = d.RotatedFor
	return a
}

// upToDate reports whether the observed Secret already has the desired
// content, so a resync writes nothing.
func (d consumerSecretSpec) upToDate(sec *corev1.Secret, owner client.Object, kind string) bool {
	if sec == nil || sec.Name != d.Name || sec.Type != d.Type || !maps.EqualFunc(sec.Data, d.Data, func(a, b []byte) bool { return string(a) == string(b) }) {
		return false
	}
	return containsAll(sec.Labels, d.labels(owner, kind)) && containsAll(sec.Annotations, d.annotations())
}

// createSecret creates the consumer Secret; it fails with AlreadyExists if
// any Secret has its name.
func (s *store) createSecret(ctx context.Context, owner client.Object, gvk schema.GroupVersionKind, d consumerSecretSpec) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: owner.GetNamespace(),
			Labels: d.labels(owner, gvk.Kind), Annotations: d.annotations(),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(owner, gvk)}},
		Type: d.Type, Data: d.Data,
	}
	if err := s.Create(ctx, sec, fieldOwner); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return err
		}
		return fmt.Errorf("creating Secret %s/%s: %w", owner.GetNamespace(), d.Name, err)
	}
	return nil
}

// applySecret writes the consumer Secret with server-side apply, owned by
// (and garbage-collected with) its object.
func (s *store) applySecret(ctx context.Context, owner client.Object, gvk schema.GroupVersionKind, d consumerSecretSpec) error {
	ac := corev1ac.Secret(d.Name, owner.GetNamespace()).
		WithType(d.Type).
		WithLabels(d.labels(owner, gvk.Kind)).
		WithAnnotations(d.annotations()).
		WithData(d.Data).
		WithOwnerReferences(metav1ac.OwnerReference().
			WithAPIVersion(gvk.GroupVersion().String()).
			WithKind(gvk.Kind).
			WithName(owner.GetName()).
			WithUID(owner.GetUID()).
			WithController(true).
			WithBlockOwnerDeletion(true))
	if err := s.Apply(ctx, ac, fieldOwner, client.ForceOwnership); err != nil {
		return fmt.Errorf("writing Secret %s/%s: %w", owner.GetNamespace(), d.Name, err)
	}
	return nil
}

func containsAll(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
