package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CredentialType is the shape of an issued credential.
// +kubebuilder:validation:Enum=bearer;key-auth;basic-auth
type CredentialType string

const (
	// CredentialTypeBearer is a token sent as "Authorization: Bearer <token>"
	// or "X-API-Key: <token>". The Secret holds token and token_id.
	CredentialTypeBearer CredentialType = "bearer"
	// CredentialTypeKeyAuth is an Express Gateway style key pair sent as
	// "keyId:keySecret". The Secret also holds key_id and key_secret.
	CredentialTypeKeyAuth CredentialType = "key-auth"
	// CredentialTypeBasicAuth is a username and password for HTTP Basic
	// authentication. The Secret also holds username and password.
	CredentialTypeBasicAuth CredentialType = "basic-auth"
)

// CredentialGrantSpec declares one credential issued to an ApiClient.
type CredentialGrantSpec struct {
	// clientName is the ApiClient, in the same namespace, that this
	// credential belongs to. The client may be created after the grant;
	// until it exists the grant is not Ready (reason ClientNotFound).
	// Immutable.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.clientName must be the name of an ApiClient in this namespace: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (for example 'blog-reader')"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.clientName is immutable: create a new CredentialGrant for the other client and delete this one"
	ClientName string `json:"clientName"`

	// permissions this credential may use: a subset of the client's
	// permissions. Empty means all of the client's permissions. At
	// verification the effective set is this set intersected with the
	// client's, so removing a permission from the client removes it here at
	// once.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.all(p, p.matches('^[a-z0-9]([-a-z0-9_]*[a-z0-9])?([.][a-z0-9]([-a-z0-9_]*[a-z0-9])?)+$'))",message="each entry of spec.permissions must be a scope and an action joined by dots, in lower-case letters, digits, '-' and '_' (for example 'blogs.read' or 'proposals.votes.create_vote'): fix or remove the entry"
	Permissions []string `json:"permissions,omitempty"`

	// expiresAt is when the credential stops working (RFC 3339). A time in
	// the past expires it at once. Absent: it does not expire.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// description says what the credential is for (Kallithea).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// type is the credential's shape: "bearer" (default), "key-auth"
	// (keyId:keySecret) or "basic-auth" (username and password). Immutable.
	// +optional
	// +kubebuilder:default=bearer
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.type is immutable: create a new CredentialGrant of the type you need and delete this one"
	Type CredentialType `json:"type,omitempty"`

	// secretName is the name of the Secret, in this namespace, that receives
	// the credential. Defaults to the CredentialGrant's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="spec.secretName must be a Secret name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters (for example 'blog-reader-credentials'); leave it out to use the object's name"
	SecretName string `json:"secretName,omitempty"`

	// secretTemplate adds labels and annotations to the issued Secret.
	// +optional
	SecretTemplate *SecretTemplate `json:"secretTemplate,omitempty"`

	// rotation says how a rotated credential is retired. Rotate by setting
	// the annotation latchkey.dev/rotate to a new value.
	// +optional
	Rotation *Rotation `json:"rotation,omitempty"`

	// allowedRequests limits the credential to some requests (Arvados's
	// token scopes): each entry is "METHOD /path/prefix", such as
	// "GET /api/v1/reports", where METHOD is an upper-case HTTP method or
	// "*" for any, and the prefix covers the path itself and everything
	// under it ("/api/v1/reports/7", not "/api/v1/reportsX"). Empty means
	// every request. The verifier matches the original method and
	// normalised path the gateway passes, and refuses (403) a request it
	// cannot match, including one whose gateway passed no original request.
	// Editable: a change applies to the next request.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(r, r.contains(' '))",message="each entry of spec.allowedRequests must be a method and a path prefix separated by one space, such as 'GET /api/v1/reports' or '* /api/v1/reports': to allow a method on every path, write 'GET /'"
	// +kubebuilder:validation:XValidation:rule="self.all(r, !r.contains(' ') || r.matches('^([*]|[A-Z]+) '))",message="each entry of spec.allowedRequests must start with '*' or an upper-case HTTP method such as GET or POST, then one space and the path: write 'GET /api/v1/reports', not 'get /api/v1/reports'"
	// +kubebuilder:validation:XValidation:rule="self.all(r, !r.matches('^([*]|[A-Z]+) ') || r.matches('^([*]|[A-Z]+) /'))",message="the path in each entry of spec.allowedRequests must be absolute, starting with '/': write 'GET /api/v1/reports', not 'GET api/v1/reports'"
	// +kubebuilder:validation:XValidation:rule="self.all(r, !r.matches('^([*]|[A-Z]+) /') || (r.matches('^([*]|[A-Z]+) /([-A-Za-z0-9._~:@]+(/[-A-Za-z0-9._~:@]+)*)?$') && !r.matches('/[.][.]?(/|$)')))",message="the path in each entry of spec.allowedRequests must be a plain path prefix: segments of letters, digits, '-', '.', '_', '~', ':' and '@' joined by single '/', with no '.' or '..' segment, no query, and no trailing '/' (write 'GET /api/v1/reports': it also covers everything under /api/v1/reports/)"
	AllowedRequests []string `json:"allowedRequests,omitempty"`

	// attributes are policy data for gateways, such as a plan for
	// rate-limit tiers: a small map of DNS-label keys to short values. They
	// are merged over the client's spec.attributes (the grant's value wins
	// for a key both set) and returned on a successful verification as
	// X-Latchkey-Attr-<key> headers and in introspection. They are not
	// secret and grant nothing by themselves.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(k) <= 63)",message="each key of spec.attributes must be a DNS label: 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit (for example 'plan' or 'rate-tier'); it becomes the header name X-Latchkey-Attr-<key>"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) >= 1 && self[k].matches('^[!-~]([ -~]*[!-~])?$'))",message="each value of spec.attributes must be 1 to 64 printable ASCII characters (letters, digits, punctuation, inner spaces), with no leading or trailing space and no line break or control character (for example 'small' or 'gold'): it is sent as an HTTP header value"
	Attributes map[string]AttributeValue `json:"attributes,omitempty"`
}

// CredentialGrantStatus is what Latchkey observed and issued for a grant.
type CredentialGrantStatus struct {
	// conditions: Ready (the credential is issued and verifiable), Expired
	// and Revoked.
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

	// tokenID is the credential's non-secret handle (Arvados's uuid): safe to
	// show and log, and the name of its backing token.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenID string `json:"tokenID,omitempty"`

	// clientID is the client id of the owning ApiClient.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ClientID string `json:"clientID,omitempty"`

	// secretName is the Secret that holds the credential.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// issuedAt is when the current credential was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt is when the current credential stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	UsageStatus `json:",inline"`
}

// CredentialGrant is one credential (token or API key) issued to an
// ApiClient in the same namespace. Latchkey writes it into a Secret of the
// same name, keeps only a hash of it, and revokes it when the grant is
// deleted or expires.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cg,categories=latchkey
// +kubebuilder:printcolumn:name="Client",type=string,JSONPath=`.spec.clientName`
// +kubebuilder:printcolumn:name="Token ID",type=string,JSONPath=`.status.tokenID`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CredentialGrant struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the credential.
	// +required
	Spec CredentialGrantSpec `json:"spec"`

	// status is what Latchkey observed and issued. It defaults to
	// observedGeneration 0, so an object Latchkey has not yet reconciled
	// reads as in progress (kstatus, Flux) rather than current.
	// +optional
	// +kubebuilder:default={observedGeneration: 0}
	Status CredentialGrantStatus `json:"status,omitempty"`
}

// CredentialGrantList is a list of CredentialGrants.
//
// +kubebuilder:object:root=true
type CredentialGrantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CredentialGrant `json:"items"`
}

// EffectiveSecretName is the Secret that receives the grant's credential.
func (g *CredentialGrant) EffectiveSecretName() string {
	if g.Spec.SecretName != "" {
		return g.Spec.SecretName
	}
	return g.Name
}

// EffectiveType is the grant's credential type, bearer when unset.
func (g *CredentialGrant) EffectiveType() CredentialType {
	if g.Spec.Type == "" {
		return CredentialTypeBearer
	}
	return g.Spec.Type
}
