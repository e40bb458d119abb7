package v1alpha1

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// +kubebuilder:webhook:path=/validate-latchkey-dev-v1alpha1-credentialgrant,mutating=false,failurePolicy=fail,sideEffects=None,matchPolicy=Equivalent,groups=latchkey.dev,resources=credentialgrants,verbs=create;update,versions=v1alpha1,name=vcredentialgrant-v1alpha1.latchkey.dev,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=latchkey-webhook-service,serviceNamespace=latchkey-system

// CredentialGrantValidator validates CredentialGrants on create and update.
type CredentialGrantValidator struct {
	// APIReader reads the grant's ApiClient uncached, so a client created a
	// moment ago is seen.
	APIReader client.Reader
	// Catalog is the permission catalog; nil for none.
	Catalog catalog.Source
	// MaxLifetime bounds spec.expiresAt from now; 0 disables the rule.
	MaxLifetime time.Duration
	// Now is the clock.
	Now func() time.Time
}

var _ admission.Validator[*latchkeyv1alpha1.CredentialGrant] = &CredentialGrantValidator{}

// CredentialGrantLookups is what the CredentialGrant rules need besides the
// object.
type CredentialGrantLookups struct {
	catalogState
	// Client is the grant's ApiClient, nil when it does not exist (yet).
	Client *latchkeyv1alpha1.ApiClient
	// Now is the admission time.
	Now time.Time
	// MaxLifetime bounds spec.expiresAt from Now; 0 disables the rule.
	MaxLifetime time.Duration
}

// ValidateCreate validates a new CredentialGrant.
func (v *CredentialGrantValidator) ValidateCreate(ctx context.Context, g *latchkeyv1alpha1.CredentialGrant) (admission.Warnings, error) {
	return v.validate(ctx, nil, g)
}

// ValidateUpdate validates a change to a CredentialGrant.
func (v *CredentialGrantValidator) ValidateUpdate(ctx context.Context, old, g *latchkeyv1alpha1.CredentialGrant) (admission.Warnings, error) {
	return v.validate(ctx, old, g)
}

// ValidateDelete admits every deletion: deleting a grant revokes it.
func (v *CredentialGrantValidator) ValidateDelete(context.Context, *latchkeyv1alpha1.CredentialGrant) (admission.Warnings, error) {
	return nil, nil
}

func (v *CredentialGrantValidator) validate(ctx context.Context, old, g *latchkeyv1alpha1.CredentialGrant) (admission.Warnings, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	l := CredentialGrantLookups{catalogState: loadCatalog(v.Catalog), Now: now(), MaxLifetime: v.MaxLifetime}
	var warnings admission.Warnings
	if len(addedGrantPermissions(old, g)) > 0 {
		var c latchkeyv1alpha1.ApiClient
		err := v.APIReader.Get(ctx, types.NamespacedName{Namespace: g.Namespace, Name: g.Spec.ClientName}, &c)
		switch {
		case apierrors.IsNotFound(err):
			warnings = append(warnings, fmt.Sprintf("ApiClient %q does not exist yet: the grant stays not Ready (ClientNotFound) until it does, and its permissions are checked against the client then", g.Spec.ClientName))
		case err != nil:
			return nil, fmt.Errorf("reading ApiClient %q to check the grant's permissions failed, retry: %w", g.Spec.ClientName, err)
		default:
			l.Client = &c
		}
	}
	if old == nil || old.EffectiveSecretName() != g.EffectiveSecretName() {
		warnings = append(warnings, secretClash(ctx, v.APIReader, g.EffectiveSecretName(), g.Namespace, latchkeyv1alpha1.ApiClientKind, &latchkeyv1alpha1.ApiClient{})...)
	}
	return warnings, invalid(latchkeyv1alpha1.CredentialGrantKind, g.Name, ValidateCredentialGrant(old, g, l))
}

func addedGrantPermissions(old, g *latchkeyv1alpha1.CredentialGrant) []string {
	if old == nil {
		return g.Spec.Permissions
	}
	return permissions.Added(old.Spec.Permissions, g.Spec.Permissions)
}

// ValidateCredentialGrant holds the CredentialGrant rules; old is nil on
// create.
func ValidateCredentialGrant(old, g *latchkeyv1alpha1.CredentialGrant, l CredentialGrantLookups) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if old != nil {
		if old.Spec.ClientName != g.Spec.ClientName {
			errs = append(errs, field.Forbidden(spec.Child("clientName"), fmt.Sprintf(
				"spec.clientName is immutable (it is %q): a credential belongs to one client; create a new CredentialGrant for ApiClient %q and delete this one",
				old.Spec.ClientName, g.Spec.ClientName)))
		}
		if old.EffectiveType() != g.EffectiveType() {
			errs = append(errs, field.Forbidden(spec.Child("type"), fmt.Sprintf(
				"spec.type is immutable (it is %q): consumers depend on the credential's shape; create a new CredentialGrant of type %q and delete this one",
				old.EffectiveType(), g.EffectiveType())))
		}
	}

	added := addedGrantPermissions(old, g)
	permPath := spec.Child("permissions")
	for i, p := range g.Spec.Permissions {
		if !contains(added, p) {
			continue
		}
		if err := permissions.Valid(p); err != nil {
			errs = append(errs, field.Invalid(permPath.Index(i), p, err.Error()))
			continue
		}
		// A credential can hold only a subset of its client's permissions
		// (Rustici). A missing client is admitted: any apply order works.
		if l.Client != nil && len(permissions.Subset([]string{p}, l.Client.Spec.Permissions)) > 0 {
			errs = append(errs, field.Invalid(permPath.Index(i), p, fmt.Sprintf(
				"ApiClient %q does not hold permission %q, and a credential can hold only a subset of its client's permissions (the client has %s): remove it from the grant, or add it to the ApiClient's spec.permissions first",
				l.Client.Name, p, list(l.Client.Spec.Permissions, 20))))
			continue
		}
		switch {
		case l.Err != nil:
			errs = append(errs, field.Forbidden(permPath.Index(i), fmt.Sprintf(
				"cannot be checked against the permission catalog, so the change is refused: %v", l.Err)))
		case l.Catalog != nil && !l.Catalog.HasPermission(p):
			errs = append(errs, field.Invalid(permPath.Index(i), p, fmt.Sprintf(
				"permission %q is not in the permission catalog: remove it from the grant, or ask the platform team to add it to the catalog", p)))
		}
	}

	if l.MaxLifetime > 0 && (old == nil || !expiresEqual(old.Spec.ExpiresAt, g.Spec.ExpiresAt)) {
		latest := l.Now.Add(l.MaxLifetime).UTC().Truncate(time.Second)
		at := spec.Child("expiresAt")
		switch {
		case g.Spec.ExpiresAt == nil:
			errs = append(errs, field.Required(at, fmt.Sprintf(
				"credentials may live at most %s (the operator's --max-credential-lifetime): set spec.expiresAt to %s or earlier",
				l.MaxLifetime, latest.Format(time.RFC3339))))
		case g.Spec.ExpiresAt.Sub(l.Now) > l.MaxLifetime:
			errs = append(errs, field.Invalid(at, g.Spec.ExpiresAt.UTC().Format(time.RFC3339), fmt.Sprintf(
				"spec.expiresAt is %s from now, but credentials may live at most %s (the operator's --max-credential-lifetime): set spec.expiresAt to %s or earlier, and issue a new grant when it expires",
				g.Spec.ExpiresAt.Sub(l.Now).Round(time.Second), l.MaxLifetime, latest.Format(time.RFC3339))))
		}
	}
	return errs
}

func expiresEqual(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
