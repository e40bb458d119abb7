// Package heartbeat lets a verifier show how old its view of the cluster is.
// Every manager replica stamps one Secret in the backing-token namespace
// (Name, no data) every Interval; a verifier watches it through the same
// informer that brings it backing tokens, so a stalled watch (a partition
// from the API server) also stops the heartbeats it sees. The verifier
// measures the age of the last heartbeat on its own clock, from when the
// event arrived, so clocks between pods need not agree.
package heartbeat

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

const (
	// Name is the heartbeat Secret's name.
	Name = "latchkey-heartbeat"
	// SecretType is its type.
	SecretType corev1.SecretType = "latchkey.dev/heartbeat"
	// Annotation holds the time of the last beat (RFC 3339, the writer's
	// clock; informational).
	Annotation = "latchkey.dev/heartbeat"
	// Component is its component label value.
	Component = "heartbeat"
	// DefaultInterval is how often a manager replica beats.
	DefaultInterval = 30 * time.Second
)

// Writer stamps the heartbeat Secret every Interval. It runs on every
// manager replica, leader or not, so verification never depends on
// leadership; the writes are one small patch per replica per interval,
// whatever the number of credentials.
type Writer struct {
	Client    client.Client
	Namespace string
	Interval  time.Duration
	Now       func() time.Time
}

// NeedLeaderElection is false: every replica beats.
func (w *Writer) NeedLeaderElection() bool { return false }

// Start beats until ctx ends.
func (w *Writer) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("heartbeat")
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		if err := w.Beat(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Writing the heartbeat")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Beat writes one heartbeat, creating the Secret when it is missing.
func (w *Writer) Beat(ctx context.Context) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	stamp := now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, Annotation, stamp)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: w.Namespace}}
	err := w.Client.Patch(ctx, sec, client.RawPatch(types.MergePatchType, patch))
	if !apierrors.IsNotFound(err) {
		return err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: w.Namespace,
			Labels: map[string]string{
				latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
				backing.LabelComponent:          Component,
			},
			Annotations: map[string]string{Annotation: stamp}},
		Type: SecretType,
	}
	if err := w.Client.Create(ctx, sec); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// Is reports whether obj is the heartbeat Secret in namespace.
func Is(obj any, namespace string) bool {
	s, ok := obj.(*corev1.Secret)
	return ok && s.Namespace == namespace && s.Name == Name
}
