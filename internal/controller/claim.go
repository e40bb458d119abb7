package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// claimState is what the operator namespace says about a client id.
type claimState int

const (
	// claimFree: nobody holds the id (or only a client that no longer
	// exists): the client may claim it.
	claimFree claimState = iota
	// claimHeld: this client holds the id.
	claimHeld
	// claimTaken: another live client holds the id.
	claimTaken
)

// clientIDClaim tells whether c may use clientID. Client ids are unique
// cluster-wide at issue time, not only at admission (the webhook may be off
// and two creates may race): a client must hold the id's claim, a Secret in
// the operator namespace whose name is derived from the id, before any
// backing token carries it. Creating that Secret is the atomic step; see
// takeClaim. holder names the other client when the id is taken.
func (s *store) clientIDClaim(ctx context.Context, c *latchkeyv1alpha1.ApiClient, clientID string, confirm bool) (claimState, string, error) {
	sec := &corev1.Secret{}
	err := s.reader(confirm).Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: backing.ClaimName(clientID)}, sec)
	if apierrors.IsNotFound(err) {
		return claimFree, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading the claim on client id %q: %w", clientID, err)
	}
	cl, err := backing.ClaimFromSecret(sec)
	switch {
	case err != nil || cl.ClientID != clientID:
		// Damaged, or a hash collision of the name (never seen): treat as
		// taken rather than risk sharing an id; a person must look.
		return claimTaken, sec.Name, nil
	case cl.ClientUID == c.UID:
		return claimHeld, "", nil
	}
	holder := &latchkeyv1alpha1.ApiClient{}
	err = s.reader(confirm).Get(ctx, types.NamespacedName{Namespace: cl.OwnerNamespace, Name: cl.OwnerName}, holder)
	if apierrors.IsNotFound(err) || err == nil && holder.UID != cl.ClientUID {
		return claimFree, "", nil // its holder is gone: takeClaim replaces it
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading ApiClient %s/%s that holds client id %q: %w", cl.OwnerNamespace, cl.OwnerName, clientID, err)
	}
	return claimTaken, cl.OwnerNamespace + "/" + cl.OwnerName, nil
}

// takeClaim makes c the holder of clientID. The create is atomic in the API
// server: of two clients racing for one id exactly one succeeds; the other
// gets false and reports the conflict. Only when a claim exists is it read
// (uncached): it may be c's own, not yet in the cache, or one left by a
// deleted client, which is deleted first (with a UID precondition, so a
// fresh claim is never lost) and claimed again.
func (s *store) takeClaim(ctx context.Context, c *latchkeyv1alpha1.ApiClient, clientID string) (bool, error) {
	cl := backing.Claim{ClientID: clientID, ClientUID: c.UID, OwnerNamespace: c.Namespace, OwnerName: c.Name}
	err := s.Create(ctx, cl.Secret(s.Namespace), fieldOwner)
	if err == nil {
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("claiming client id %q: %w", clientID, err)
	}
	key := types.NamespacedName{Namespace: s.Namespace, Name: backing.ClaimName(clientID)}
	old := &corev1.Secret{}
	switch err := s.APIReader.Get(ctx, key, old); {
	case apierrors.IsNotFound(err):
		// Released meanwhile: the next reconcile claims it.
		return false, errCacheBehind
	case err != nil:
		return false, fmt.Errorf("reading the claim on client id %q: %w", clientID, err)
	}
	if ocl, cerr := backing.ClaimFromSecret(old); cerr == nil && ocl.ClientUID == c.UID {
		return true, nil
	}
	if state, _, err := s.clientIDClaim(ctx, c, clientID, true); err != nil || state != claimFree {
		return false, err
	}
	if err := s.Delete(ctx, old, client.Preconditions{UID: &old.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("deleting the stale claim on client id %q: %w", clientID, err)
	}
	if err := s.Create(ctx, cl.Secret(s.Namespace), fieldOwner); err != nil {
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			return false, nil
		}
		return false, fmt.Errorf("claiming client id %q: %w", clientID, err)
	}
	return true, nil
}

// releaseClaim deletes c's claim on clientID, if it holds it.
func (s *store) releaseClaim(ctx context.Context, c *latchkeyv1alpha1.ApiClient, clientID string) error {
	if clientID == "" {
		return nil
	}
	sec := &corev1.Secret{}
	err := s.APIReader.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: backing.ClaimName(clientID)}, sec)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the claim on client id %q: %w", clientID, err)
	}
	if cl, err := backing.ClaimFromSecret(sec); err != nil || cl.ClientUID != c.UID {
		return nil
	}
	if err := s.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("releasing client id %q: %w", clientID, err)
	}
	return nil
}
