package v1alpha1

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// +kubebuilder:webhook:path=/validate-latchkey-dev-v1alpha1-apiclient,mutating=false,failurePolicy=fail,sideEffects=None,matchPolicy=Equivalent,groups=latchkey.dev,resources=apiclients,verbs=create;update;delete,versions=v1alpha1,name=vapiclient-v1alpha1.latchkey.dev,admissionReviewVersions=v1,timeoutSeconds=5,serviceName=latchkey-webhook-service,serviceNamespace=latchkey-system

// +kubebuilder:rbac:groups=latchkey.dev,resources=apiclients,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// ApiClientValidator validates ApiClients on create, update and delete.
type ApiClientValidator struct {
	// Client is the manager's cached client; it must have the IndexClientID
	// index.
	Client client.Reader
	// APIReader reads uncached (namespaces, which the cache does not hold).
	APIReader client.Reader
	// Catalog is the permission catalog; nil for none.
	Catalog catalog.Source
}

var _ admission.Validator[*latchkeyv1alpha1.ApiClient] = &ApiClientValidator{}

// ClientIDHolder is another ApiClient that already holds a client id.
type ClientIDHolder struct {
	// Name of the other ApiClient.
	types.NamespacedName
	// Field is "spec.clientID" or "status.clientID": where it holds the id.
	Field string
}

// MinChosenSecretLength is the fewest characters a user-chosen client
// secret (spec.clientSecretRef) may have. The verifier limits online
// guessing, but cannot make a short secret strong; generated secrets have
// 256 random bits.
const MinChosenSecretLength = 16

// ApiClientLookups is what the ApiClient rules need besides the object.
type ApiClientLookups struct {
	catalogState
	// ClientIDHolders are the other ApiClients holding the new object's
	// spec.clientID (only gathered when it is set on create).
	ClientIDHolders []ClientIDHolder
	// ChosenSecretRead is true when the webhook read the secret that
	// spec.clientSecretRef names (on create, or when the reference
	// changes), and ChosenSecretLength is its length in characters. Unread
	// (no such Secret or key yet, no access), the controller checks it.
	ChosenSecretRead   bool
	ChosenSecretLength int
}

// ValidateCreate validates a new ApiClient.
func (v *ApiClientValidator) ValidateCreate(ctx context.Context, c *latchkeyv1alpha1.ApiClient) (admission.Warnings, error) {
	l, err := v.lookups(ctx, nil, c)
	if err != nil {
		return nil, err
	}
	warnings := secretClash(ctx, v.APIReader, c.EffectiveSecretName(), c.Namespace, latchkeyv1alpha1.CredentialGrantKind, &latchkeyv1alpha1.CredentialGrant{})
	return warnings, invalid(latchkeyv1alpha1.ApiClientKind, c.Name, ValidateApiClient(nil, c, l))
}

// ValidateUpdate validates a change to an ApiClient.
func (v *ApiClientValidator) ValidateUpdate(ctx context.Context, old, c *latchkeyv1alpha1.ApiClient) (admission.Warnings, error) {
	l, err := v.lookups(ctx, old, c)
	if err != nil {
		return nil, err
	}
	var warnings admission.Warnings
	if old.EffectiveSecretName() != c.EffectiveSecretName() {
		warnings = secretClash(ctx, v.APIReader, c.EffectiveSecretName(), c.Namespace, latchkeyv1alpha1.CredentialGrantKind, &latchkeyv1alpha1.CredentialGrant{})
	}
	return warnings, invalid(latchkeyv1alpha1.ApiClientKind, c.Name, ValidateApiClient(old, c, l))
}

// ValidateDelete enforces spec.deletionPolicy RequireInactive.
func (v *ApiClientValidator) ValidateDelete(ctx context.Context, c *latchkeyv1alpha1.ApiClient) (admission.Warnings, error) {
	if !deletionBlocked(c) {
		return nil, nil
	}
	// Deleting a namespace deletes everything in it; refusing would leave
	// the namespace stuck in Terminating, so the policy yields to it.
	var ns corev1.Namespace
	err := v.APIReader.Get(ctx, types.NamespacedName{Name: c.Namespace}, &ns)
	terminating := apierrors.IsNotFound(err) || (err == nil && !ns.DeletionTimestamp.IsZero())
	return nil, invalid(latchkeyv1alpha1.ApiClientKind, c.Name, ValidateApiClientDelete(c, terminating))
}

func (v *ApiClientValidator) lookups(ctx context.Context, old, c *latchkeyv1alpha1.ApiClient) (ApiClientLookups, error) {
	l := ApiClientLookups{catalogState: loadCatalog(v.Catalog)}
	l.ChosenSecretLength, l.ChosenSecretRead = v.chosenSecretLength(ctx, old, c)
	if old != nil || c.Spec.ClientID == "" {
		return l, nil // spec.clientID is immutable: checked once, on create
	}
	var list latchkeyv1alpha1.ApiClientList
	if err := v.Client.List(ctx, &list, client.MatchingFields{IndexClientID: c.Spec.ClientID}); err != nil {
		return l, fmt.Errorf("checking that spec.clientID %q is unique failed, retry: %w", c.Spec.ClientID, err)
	}
	for _, o := range list.Items {
		if o.Namespace == c.Namespace && o.Name == c.Name {
			continue
		}
		h := ClientIDHolder{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: o.Name}, Field: "status.clientID"}
		if o.Spec.ClientID == c.Spec.ClientID {
			h.Field = "spec.clientID"
		}
		l.ClientIDHolders = append(l.ClientIDHolders, h)
	}
	return l, nil
}

// chosenSecretLength reads the secret spec.clientSecretRef names, uncached,
// on create and when the reference changes, and returns its length in
// characters; ok is false when it cannot be read (not there yet, no access:
// the controller then checks it when it issues).
func (v *ApiClientValidator) chosenSecretLength(ctx context.Context, old, c *latchkeyv1alpha1.ApiClient) (n int, ok bool) {
	ref := c.Spec.ClientSecretRef
	if ref == nil || v.APIReader == nil || strings.Contains(ref.Name, "/") {
		return 0, false
	}
	if old != nil && old.Spec.ClientSecretRef != nil && *old.Spec.ClientSecretRef == *ref {
		return 0, false // unchanged: an unrelated update is not refused for it
	}
	var sec corev1.Secret
	if err := v.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: ref.Name}, &sec); err != nil {
		return 0, false
	}
	key := ref.EffectiveKey()
	val, found := sec.Data[key]
	if !found || len(val) == 0 {
		return 0, false
	}
	return utf8.RuneCount(val), true
}

// ValidateApiClient holds the ApiClient rules; old is nil on create.
func ValidateApiClient(old, c *latchkeyv1alpha1.ApiClient, l ApiClientLookups) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	creating := old == nil

	// Immutability, as in the CRD's CEL rules, with what to do instead.
	if !creating {
		if !sameSet(old.Spec.Scopes, c.Spec.Scopes) {
			errs = append(errs, field.Forbidden(spec.Child("scopes"), fmt.Sprintf(
				"spec.scopes is immutable (it is [%s]): scopes are fixed at creation; create a new ApiClient with the scopes you need, point its CredentialGrants at it, and delete this one",
				list(old.Spec.Scopes, 32))))
		}
		if old.Spec.Tenant != c.Spec.Tenant {
			errs = append(errs, field.Forbidden(spec.Child("tenant"), fmt.Sprintf(
				"spec.tenant is immutable (it is %q): a client stays bound to its organization; create a new ApiClient for tenant %q and delete this one",
				old.Spec.Tenant, c.Spec.Tenant)))
		}
		if old.Spec.ClientID != c.Spec.ClientID {
			errs = append(errs, field.Forbidden(spec.Child("clientID"), fmt.Sprintf(
				"spec.clientID is immutable (it is %q): consumers know the client by it; create a new ApiClient with the client id you need and delete this one",
				old.Spec.ClientID)))
		}
	}

	// Every permission belongs to one of the client's scopes.
	permPath := spec.Child("permissions")
	for i, p := range c.Spec.Permissions {
		if err := permissions.Valid(p); err != nil {
			errs = append(errs, field.Invalid(permPath.Index(i), p, err.Error()))
			continue
		}
		if s := permissions.Scope(p); !permissions.BelongsTo(p, c.Spec.Scopes) {
			errs = append(errs, field.Invalid(permPath.Index(i), p, fmt.Sprintf(
				"permission %q belongs to scope %q, which is not one of spec.scopes [%s]: remove the permission, or create a new ApiClient that has scope %q (scopes cannot be added)",
				p, s, list(c.Spec.Scopes, 32), s)))
		}
	}

	errs = append(errs, validateClientCatalog(old, c, l.catalogState)...)

	// spec.clientID is unique among all ApiClients. Other namespaces' names
	// are not disclosed: the requester may not be allowed to see them.
	for _, h := range l.ClientIDHolders {
		who := "an ApiClient in another namespace"
		if h.Namespace == c.Namespace {
			who = fmt.Sprintf("ApiClient %q", h.Name)
		}
		errs = append(errs, field.Invalid(spec.Child("clientID"), c.Spec.ClientID, fmt.Sprintf(
			"client id %q is already used by %s (its %s); client ids are unique across the cluster: choose another spec.clientID, or leave it out to get a generated one",
			c.Spec.ClientID, who, h.Field)))
	}

	// A user-chosen secret is long enough to resist guessing. The value is
	// never echoed, nor its length (a hint about it).
	if ref := c.Spec.ClientSecretRef; ref != nil && l.ChosenSecretRead && l.ChosenSecretLength < MinChosenSecretLength {
		key := ref.EffectiveKey()
		errs = append(errs, field.Invalid(spec.Child("clientSecretRef"), fmt.Sprintf("%s/%s", ref.Name, key), fmt.Sprintf(
			"the client secret in Secret %q, key %q, has fewer than %d characters, too short for a client secret: put a random one there (for example the output of: openssl rand -base64 32), or leave out spec.clientSecretRef to have a secret generated",
			ref.Name, key, MinChosenSecretLength)))
	}

	// clientSecretRef stays in the namespace: the type has no namespace
	// field; a "namespace/name" written into the name is refused here too.
	if ref := c.Spec.ClientSecretRef; ref != nil && strings.Contains(ref.Name, "/") {
		errs = append(errs, field.Invalid(spec.Child("clientSecretRef", "name"), ref.Name, fmt.Sprintf(
			"spec.clientSecretRef.name must be the name of a Secret in the ApiClient's own namespace %q, without a namespace: references never cross namespaces; create (or sync) the Secret in namespace %q and set name to its name",
			c.Namespace, c.Namespace)))
	}
	return errs
}

// validateClientCatalog checks scopes, permissions and tenant against the
// catalog. Scopes and tenant are immutable, so they are checked on create;
// permissions only as far as the update adds them.
func validateClientCatalog(old, c *latchkeyv1alpha1.ApiClient, cs catalogState) field.ErrorList {
	spec := field.NewPath("spec")
	creating := old == nil
	added := c.Spec.Permissions
	if !creating {
		added = permissions.Added(old.Spec.Permissions, c.Spec.Permissions)
	}
	var errs field.ErrorList
	if !creating && len(added) == 0 {
		return nil
	}
	if cs.Err != nil {
		at := spec.Child("permissions")
		if creating {
			at = spec.Child("scopes")
		}
		return field.ErrorList{field.Forbidden(at, fmt.Sprintf(
			"cannot be checked against the permission catalog, so the change is refused: %v", cs.Err))}
	}
	cat := cs.Catalog
	if cat == nil {
		// No catalog: the default tenant rule, as in the CRD's CEL rule.
		if creating && c.Spec.Tenant == "" && !allScopes(c.Spec.Scopes, func(s string) bool { return s == latchkeyv1alpha1.DefaultGlobalScope }) {
			errs = append(errs, field.Required(spec.Child("tenant"), fmt.Sprintf(
				"spec.tenant is required unless every scope is global (%q): set spec.tenant to the organization this client is bound to",
				latchkeyv1alpha1.DefaultGlobalScope)))
		}
		return errs
	}
	if creating {
		for i, s := range c.Spec.Scopes {
			if !cat.HasScope(s) {
				errs = append(errs, field.Invalid(spec.Child("scopes").Index(i), s, fmt.Sprintf(
					"scope %q is not in the permission catalog: use one of %s, or ask the platform team to add it to the catalog",
					s, list(cat.ScopeNames(), 20))))
			}
		}
		if c.Spec.Tenant == "" {
			var bound []string
			for _, s := range c.Spec.Scopes {
				if cat.HasScope(s) && !cat.IsGlobal(s) {
					bound = append(bound, s)
				}
			}
			if len(bound) > 0 {
				errs = append(errs, field.Required(spec.Child("tenant"), fmt.Sprintf(
					"spec.tenant is required: the permission catalog binds scope %s to a tenant (only global scopes need none); set spec.tenant to the organization this client is bound to",
					list(bound, 10))))
			}
		}
	}
	for i, p := range c.Spec.Permissions {
		if !contains(added, p) || permissions.Valid(p) != nil || !permissions.BelongsTo(p, c.Spec.Scopes) {
			continue // reported above, or not added by this update
		}
		s := permissions.Scope(p)
		scope, ok := cat.Scope(s)
		switch {
		case !ok:
			if !creating { // on create the scope itself is reported
				errs = append(errs, field.Invalid(permPathIndex(i), p, fmt.Sprintf(
					"scope %q of permission %q is no longer in the permission catalog: remove the permission, or ask the platform team to restore the scope", s, p)))
			}
		case !cat.HasPermission(p):
			errs = append(errs, field.Invalid(permPathIndex(i), p, fmt.Sprintf(
				"permission %q is not in the permission catalog: scope %q has %s; use one of them, or ask the platform team to add it to the catalog",
				p, s, list(scope.Permissions, 20))))
		}
	}
	return errs
}

// ValidateApiClientDelete enforces spec.deletionPolicy RequireInactive; it
// yields while the namespace itself is being deleted.
func ValidateApiClientDelete(c *latchkeyv1alpha1.ApiClient, namespaceTerminating bool) field.ErrorList {
	if !deletionBlocked(c) || namespaceTerminating {
		return nil
	}
	return field.ErrorList{field.Forbidden(field.NewPath("spec", "active"), fmt.Sprintf(
		"ApiClient %q has spec.deletionPolicy %q and is still active: set spec.active to false first (its credentials stop working at once), then delete it; or set spec.deletionPolicy to %q",
		c.Name, latchkeyv1alpha1.DeletionPolicyRequireInactive, latchkeyv1alpha1.DeletionPolicyDelete))}
}

func deletionBlocked(c *latchkeyv1alpha1.ApiClient) bool {
	return c.Spec.DeletionPolicy == latchkeyv1alpha1.DeletionPolicyRequireInactive && c.IsActive() && c.DeletionTimestamp.IsZero()
}

func permPathIndex(i int) *field.Path { return field.NewPath("spec", "permissions").Index(i) }

func allScopes(scopes []string, f func(string) bool) bool {
	for _, s := range scopes {
		if !f(s) {
			return false
		}
	}
	return true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
