package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretTemplate holds extra metadata for a Secret that Latchkey writes. The
// resource's own labels are never copied to its Secret (they may be a GitOps
// tool's tracking labels); only what is listed here is.
type SecretTemplate struct {
	// labels are added to the issued Secret, next to Latchkey's own labels,
	// which always win.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the issued Secret.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Rotation says how a rotated secret is retired.
type Rotation struct {
	// gracePeriod keeps the previous secret valid for this long after a
	// rotation (for example "1h" or "30m"), so consumers can pick up the new
	// Secret before the old one stops working. Zero or absent: the previous
	// secret is revoked at once.
	// +optional
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`
}

// UsageStatus records the last successful use of a credential, as seen by the
// verifier. It is written at most once a minute per object.
type UsageStatus struct {
	// lastUsedAt is when the credential last passed verification.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// lastUsedFrom is the remote address of that last use.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	LastUsedFrom string `json:"lastUsedFrom,omitempty"`
}

// AttributeValue is the value of an entry of spec.attributes: policy data a
// gateway receives as the value of an X-Latchkey-Attr-<key> header, so it is
// short printable ASCII (the CEL rule on the map says which characters).
// +kubebuilder:validation:MaxLength=64
type AttributeValue string
