package v1alpha1

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
)

// WebhookConfigurationName is the ValidatingWebhookConfiguration in
// config/webhook; the certificate rotator injects its CA bundle into it.
const WebhookConfigurationName = "latchkey-validating-webhook-configuration"

// IndexClientID indexes ApiClients by every client id they hold
// (spec.clientID and status.clientID), for the cluster-wide uniqueness check.
const IndexClientID = "latchkey.dev/webhook-client-ids"

// Options configure the webhooks.
type Options struct {
	// Catalog is the permission catalog; nil for none.
	Catalog catalog.Source
	// MaxCredentialLifetime bounds a CredentialGrant's spec.expiresAt from
	// now; 0 disables the rule.
	MaxCredentialLifetime time.Duration
	// Now is the clock, time.Now when nil.
	Now func() time.Time
}

// Setup registers the field index and both validating webhooks with the
// manager. Call it before the manager starts.
func Setup(mgr ctrl.Manager, opts Options) error {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &latchkeyv1alpha1.ApiClient{}, IndexClientID, clientIDs); err != nil {
		return fmt.Errorf("indexing ApiClients by client id: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &latchkeyv1alpha1.ApiClient{}).
		WithValidator(&ApiClientValidator{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Catalog: opts.Catalog}).
		Complete(); err != nil {
		return fmt.Errorf("setting up the ApiClient webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &latchkeyv1alpha1.CredentialGrant{}).
		WithValidator(&CredentialGrantValidator{APIReader: mgr.GetAPIReader(), Catalog: opts.Catalog, MaxLifetime: opts.MaxCredentialLifetime, Now: opts.Now}).
		Complete(); err != nil {
		return fmt.Errorf("setting up the CredentialGrant webhook: %w", err)
	}
	return nil
}

// clientIDs is the IndexClientID index function.
func clientIDs(o client.Object) []string {
	c, ok := o.(*latchkeyv1alpha1.ApiClient)
	if !ok {
		return nil
	}
	var ids []string
	for _, id := range []string{c.Spec.ClientID, c.Status.ClientID} {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// catalogState is the catalog in effect as the validators see it.
type catalogState struct {
	// Catalog is nil when none is configured (or when Err is set).
	Catalog *catalog.Catalog
	// Err says why a configured catalog cannot be used; rules that need the
	// catalog then reject (fail closed) with this reason.
	Err error
}

func loadCatalog(src catalog.Source) catalogState {
	if src == nil {
		return catalogState{}
	}
	c, err := src.Get()
	return catalogState{Catalog: c, Err: err}
}

// invalid turns a non-empty error list into the API's Invalid error, whose
// message lists every field with what to do.
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: latchkeyv1alpha1.GroupVersion.Group, Kind: kind}, name, errs)
}

// list quotes up to max values for a message, noting how many are left out.
func list(values []string, max int) string {
	if len(values) == 0 {
		return "none"
	}
	quoted := make([]string, 0, min(len(values), max))
	for i, v := range values {
		if i == max {
			break
		}
		quoted = append(quoted, fmt.Sprintf("%q", v))
	}
	s := strings.Join(quoted, ", ")
	if len(values) > max {
		s += fmt.Sprintf(" and %d more", len(values)-max)
	}
	return s
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// secretOwner is a Latchkey object that writes a consumer Secret.
type secretOwner interface {
	client.Object
	EffectiveSecretName() string
}

// secretClash warns, at creation or when the Secret name changes, when an
// object of the other kind already writes to the same Secret: an ApiClient
// and a CredentialGrant of the same name both default to a Secret of that
// name, and the second would report Ready=False (SecretConflict). Only the
// same-named object is read (one uncached GET); a clash through an explicit
// spec.secretName is still reported by the controller's condition.
func secretClash(ctx context.Context, r client.Reader, name, namespace, otherKind string, other secretOwner) admission.Warnings {
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, other); err != nil || other.EffectiveSecretName() != name {
		return nil
	}
	return admission.Warnings{fmt.Sprintf(
		"%s %q already writes its credentials to Secret %q: this object would report Ready=False (SecretConflict); set spec.secretName to another name",
		otherKind, other.GetName(), name)}
}
