package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultGlobalScope is the scope that needs no tenant: a client whose every
// scope is global is not bound to an organization (Decidim's "system" scope).
const DefaultGlobalScope = "system"

// DeletionPolicy says what must hold before an ApiClient may be deleted.
// +kubebuilder:validation:Enum=Delete;RequireInactive
type DeletionPolicy string

const (
	// DeletionPolicyDelete lets the ApiClient be deleted at any time; its
	// credentials are revoked as it goes.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRequireInactive refuses deletion until spec.active is
	// false (Rustici's rule), so a credential in use is never deleted by
	// accident.
	DeletionPolicyRequireInactive DeletionPolicy = "RequireInactive"
)

// SecretKeyReference names a key of a Secret in the same namespace as the
// object that holds the reference. It has no namespace field on purpose: a
// reference never leaves its namespace.
type SecretKeyReference struct {
	// name of the Secret, in the ApiClient's namespace.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.clientSecretRef.name must be the name of a Secret in the ApiClient's namespace: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (for example 'blog-reader-secret'), with no namespace and no '/'"
	Name string `json:"name"`

	// key in the Secret's data that holds the client secret.
	// +optional
	// +kubebuilder:default=client_secret
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$')",message="spec.clientSecretRef.key must be a key of the Secret's data: letters, digits, '-', '_' and '.' only (for example 'client_secret'); leave it out for the default client_secret"
	Key string `json:"key,omitempty"`
}

// ApiClientSpec declares an API consumer: what areas of the API it may touch
// (scopes, fixed at creation), what it may do there (permissions, editable),
// and which organization it is bound to.
//
// +kubebuilder:validation:XValidation:rule="!has(self.permissions) || self.permissions.all(p, self.scopes.exists(s, p.startsWith(s + '.')))",message="each permission must start with one of spec.scopes and a dot (for example 'blogs.read' for scope 'blogs'); remove the permission, or create a new ApiClient that has the scope",fieldPath=".permissions"
// +kubebuilder:validation:XValidation:rule="has(self.tenant) || self.scopes.all(s, s == 'system')",message="spec.tenant is required unless every scope is global ('system'): set spec.tenant to the organization this client is bound to",fieldPath=".tenant"
// +kubebuilder:validation:XValidation:rule="has(self.tenant) == has(oldSelf.tenant)",message="spec.tenant is immutable and cannot be added or removed: create a new ApiClient with the tenant you need and delete this one",fieldPath=".tenant"
// +kubebuilder:validation:XValidation:rule="has(self.clientID) == has(oldSelf.clientID)",message="spec.clientID is immutable and cannot be added or removed: create a new ApiClient with the client id you need and delete this one",fieldPath=".clientID"
type ApiClientSpec struct {
	// scopes are the areas of the API the client may touch, such as "blogs",
	// "proposals" or "system". Each is a lower-case DNS label and appears
	// once. Scopes are fixed at creation: to change them, create a new
	// ApiClient and delete the old one.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))",message="each entry of spec.scopes must be a scope name: lower-case letters, digits and '-', starting and ending with a letter or digit, with no dot (for example 'blogs' or 'system'); a permission such as 'blogs.read' belongs in spec.permissions"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.scopes is immutable: create a new ApiClient with the scopes you need and delete this one"
	Scopes []string `json:"scopes"`

	// permissions are the fine-grained permissions of the client, each
	// "<scope>.<name>[.<name>...]" such as "blogs.read" or
	// "system.organizations.update". Each must start with one of the
	// client's scopes. Editable: removing a permission removes it at once
	// from every CredentialGrant of the client.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.all(p, p.matches('^[a-z0-9]([-a-z0-9_]*[a-z0-9])?([.][a-z0-9]([-a-z0-9_]*[a-z0-9])?)+$'))",message="each entry of spec.permissions must be a scope and an action joined by dots, in lower-case letters, digits, '-' and '_' (for example 'blogs.read' or 'proposals.votes.create_vote'): fix or remove the entry"
	Permissions []string `json:"permissions,omitempty"`

	// tenant is the organization the client is bound to (Decidim's
	// organization_id). Required unless every scope is global ("system").
	// Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",message="spec.tenant must be the id or host of the organization: letters, digits, '-', '_' and '.', starting and ending with a letter or digit (for example '2' or 'org-2.example'); leave it out only when every scope is 'system'"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.tenant is immutable: create a new ApiClient bound to the other tenant and delete this one"
	Tenant string `json:"tenant,omitempty"`

	// active switches the client on and off without deleting it. While
	// false, every credential of the client is rejected; true again restores
	// them unchanged. Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Active *bool `json:"active,omitempty"`

	// clientID fixes the client id (Decidim's --id) instead of a generated
	// "id_..." one. Unique among all ApiClients. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="size(self) >= 3 && self.matches('^[A-Za-z0-9][A-Za-z0-9._~-]*$')",message="spec.clientID must be 3 to 128 characters: letters, digits, '.', '_', '~' and '-', starting with a letter or digit (for example 'blog-reader'); leave it out to have one generated"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.clientID is immutable: create a new ApiClient with the client id you need and delete this one"
	ClientID string `json:"clientID,omitempty"`

	// clientSecretRef takes the client secret from a key of a Secret in the
	// same namespace (Decidim's --secret) instead of generating one. The
	// Secret may be created after the ApiClient; until it exists the client
	// is not Ready (reason SecretRefNotFound).
	// +optional
	ClientSecretRef *SecretKeyReference `json:"clientSecretRef,omitempty"`

	// allowImpersonate lets the client act on behalf of other users. The API
	// decides what that means; Latchkey reports it with every verification.
	// +optional
	AllowImpersonate bool `json:"allowImpersonate,omitempty"`

	// allowLogin lets the client log users in with their username and
	// password. Reported with every verification.
	// +optional
	AllowLogin bool `json:"allowLogin,omitempty"`

	// displayName is a human-readable name for the client.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// secretName is the name of the Secret, in this namespace, that receives
	// client_id and client_secret. Defaults to the ApiClient's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.secretName must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters (for example 'blog-reader-credentials'); leave it out to use the object's name"
	SecretName string `json:"secretName,omitempty"`

	// secretTemplate adds labels and annotations to the issued Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// rotation says how a rotated client secret is retired. Rotate by
	// setting the annotation latchkey.dev/rotate to a new value.
	// +optional
	Rotation *Rotation `json:"rotation,omitempty"`

	// deletionPolicy "RequireInactive" refuses deletion of the ApiClient
	// until spec.active is false. Absent or "Delete": deletion is always
	// allowed and revokes every credential of the client.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// attributes are policy data for gateways, such as a plan for
	// rate-limit tiers: a small map of DNS-label keys to short values,
	// returned on a successful verification as X-Latchkey-Attr-<key>
	// headers and in introspection. A CredentialGrant's own attributes win
	// over these. They are not secret and grant nothing by themselves.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(k) <= 63)",message="each key of spec.attributes must be a DNS label: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit (for example 'plan' or 'rate-tier'); it becomes the header name X-Latchkey-Attr-<key>"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) >= 1 && self[k].matches('^[!-~]([ -~]*[!-~])?$'))",message="each value of spec.attributes must be 1 to 64 printable ASCII characters (letters, digits, punctuation, inner spaces), with no leading or trailing space and no line break or control character (for example 'small' or 'gold'): it is sent as an HTTP header value"
	Attributes map[string]AttributeValue `json:"attributes,omitempty"`
}

// ApiClientStatus is what Latchkey observed and issued for an ApiClient.
type ApiClientStatus struct {
	// conditions: Ready (the secret is issued and verifiable) and Active
	// (credentials of the client are accepted).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes; 0
	// until Latchkey has reconciled the object.
	// +optional
	// +kubebuilder:default=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// clientID is the client id in effect: spec.clientID or the generated one.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ClientID string `json:"clientID,omitempty"`

	// tokenID names the backing token of the client secret without exposing
	// it; safe to show and log.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenID string `json:"tokenID,omitempty"`

	// secretName is the Secret that holds client_id and client_secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// issuedAt is when the current client secret was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	UsageStatus `json:",inline"`
}

// ApiClient is an API consumer identity: a client id and secret, the scopes
// and permissions it holds, and the tenant it is bound to. Latchkey issues its
// secret into a Secret of the same name and keeps only a hash of it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=apic,categories=latchkey
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.spec.active`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ApiClient struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the client.
	// +required
	Spec ApiClientSpec `json:"spec"`

	// status is what Latchkey observed and issued. It defaults to
	// observedGeneration 0, so an object Latchkey has not yet reconciled
	// reads as in progress (kstatus, Flux) rather than current.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status ApiClientStatus `json:"status,omitempty"`
}

// ApiClientList is a list of ApiClients.
//
// +kubebuilder:object:root=true
type ApiClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApiClient `json:"items"`
}

// IsActive reports whether the client's credentials are accepted: spec.active
// defaults to true.
func (c *ApiClient) IsActive() bool {
	return c.Spec.Active == nil || *c.Spec.Active
}

// EffectiveSecretName is the Secret that receives the client's credentials.
func (c *ApiClient) EffectiveSecretName() string {
	if c.Spec.SecretName != "" {
		return c.Spec.SecretName
	}
	return c.Name
}
