// Package signingkeys keeps the access-token signing keys: one Secret in the
// operator namespace (backing.SigningKeysSecretName) that the manager's
// leader creates, rotates on a schedule and on request, and prunes once every
// token a retired key signed has expired. The verifier only reads it.
//
// Rotation on request: set the annotation latchkey.dev/rotate on the Secret to
// a new value (kubectl annotate --overwrite). A new key signs from then on;
// the old one keeps verifying until the last token it signed has expired, and
// leaves the JWKS after that.
package signingkeys

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// Manager keeps the signing-key Secret. It runs on the leader only.
type Manager struct {
	Client client.Client
	// Namespace and Name locate the Secret.
	Namespace, Name string
	// RotateEvery is the scheduled rotation period; 0 rotates only on
	// request.
	RotateEvery time.Duration
	// MaxTTL is the longest access-token lifetime: a retired key is kept
	// this long (plus the issued-at leeway) after it stopped signing.
	MaxTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Setup adds the key manager to mgr.
func Setup(mgr ctrl.Manager, m *Manager) error {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.Name == "" {
		m.Name = backing.SigningKeysSecretName
	}
	m.Client = mgr.GetClient()
	return mgr.Add(&runner{m: m, cache: mgr.GetCache()})
}

type runner struct {
	m     *Manager
	cache cache.Cache
}

// Start syncs the Secret now, whenever it changes (an annotation asking for
// a rotation, a deletion), and when the next rotation or pruning is due.
func (r *runner) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("signingkeys")
	ctx = ctrl.LoggerInto(ctx, log)
	inf, err := r.cache.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return fmt.Errorf("watching the signing keys: %w", err)
	}
	kick := make(chan struct{}, 1)
	poke := func(o any) {
		if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if s, ok := o.(*corev1.Secret); ok && s.Namespace == r.m.Namespace && s.Name == r.m.Name {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, n any) { poke(n) },
	})
	if err != nil {
		return err
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	if !r.cache.WaitForCacheSync(ctx) {
		return nil
	}
	for {
		next, err := r.m.Sync(ctx)
		if err != nil {
			log.Error(err, "Syncing the access-token signing keys")
			next = 5 * time.Second
		}
		var (
			timer <-chan time.Time
			t     *time.Timer
		)
		if next > 0 {
			t = time.NewTimer(next)
			timer = t.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// Sync brings the Secret to what it must be at now and returns how long
// until it must change again (0: nothing scheduled).
func (m *Manager) Sync(ctx context.Context) (time.Duration, error) {
	now := m.Now()
	key := types.NamespacedName{Namespace: m.Namespace, Name: m.Name}
	sec := &corev1.Secret{}
	err := m.Client.Get(ctx, key, sec)
	if apierrors.IsNotFound(err) {
		return m.create(ctx, now)
	}
	if err != nil {
		return 0, fmt.Errorf("reading the signing keys: %w", err)
	}
	set, err := accesstoken.Unmarshal(sec.Data)
	if err != nil {
		// A damaged key set verifies nothing: start a new one. Tokens it
		// signed stop verifying; clients get new ones at /oauth2/token.
		ctrl.LoggerFrom(ctx).Error(err, "The access-token signing keys are unreadable: replacing them", "secret", m.Name)
		set = accesstoken.KeySet{}
	}
	changed := false
	want := sec.Annotations[latchkeyv1alpha1.AnnotationRotate]
	_, hasSigning := set.Signing()
	if !hasSigning || want != sec.Annotations[backing.AnnotationRotatedFor] || m.due(set, now) {
		if set, err = set.Rotate(now); err != nil {
			return 0, err
		}
		changed = true
		ctrl.LoggerFrom(ctx).Info("Rotated the access-token signing key", "secret", m.Name)
	}
	if pruned, ok := set.Prune(now, m.MaxTTL); ok {
		set, changed = pruned, true
	}
	if !changed {
		return set.NextChange(now, m.RotateEvery, m.MaxTTL), nil
	}
	data, err := set.Marshal()
	if err != nil {
		return 0, err
	}
	orig := sec.DeepCopy()
	sec.Data = data
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations[backing.AnnotationRotatedFor] = want
	if err := m.Client.Patch(ctx, sec, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return 0, fmt.Errorf("writing the signing keys: %w", err)
	}
	return set.NextChange(now, m.RotateEvery, m.MaxTTL), nil
}

func (m *Manager) due(set accesstoken.KeySet, now time.Time) bool {
	k, ok := set.Signing()
	return ok && m.RotateEvery > 0 && !now.Before(k.CreatedAt.Add(m.RotateEvery))
}

func (m *Manager) create(ctx context.Context, now time.Time) (time.Duration, error) {
	set, err := accesstoken.KeySet{}.Rotate(now)
	if err != nil {
		return 0, err
	}
	data, err := set.Marshal()
	if err != nil {
		return 0, err
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: map[string]string{
			latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
			backing.LabelComponent:          backing.ComponentSigningKeys,
		}},
		Type: backing.SigningKeysSecretType,
		Data: data,
	}
	if err := m.Client.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
		return 0, fmt.Errorf("creating the signing keys: %w", err)
	}
	ctrl.LoggerFrom(ctx).Info("Created the access-token signing key", "secret", m.Name)
	return set.NextChange(now, m.RotateEvery, m.MaxTTL), nil
}
