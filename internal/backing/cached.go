package backing

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// CachedToken is a backing token as Latchkey's caches hold it: the Token,
// parsed once when the informer stores the Secret, under its name,
// namespace and resourceVersion. The Secret's labels, annotations and data
// maps are not kept: they cost more than the token itself. A Secret that
// FromSecret refuses is never turned into one (the cache keeps the Secret,
// and a lookup fails on it as before).
//
// The verifier reads the record from its indexers. Everything else reads
// the Secret it stands for: GetLabels and GetAnnotations render the ones
// Latchkey wrote (event handlers, index functions and label selectors read
// them), and DeepCopyObject, which controller-runtime's cache calls to hand
// out an object from Get or List, returns the Secret itself (Token.Secret,
// with the resourceVersion and creation time), so a client.Reader asking
// for a corev1.Secret gets one.
type CachedToken struct {
	CachedMeta
	Token Token
}

// CachedClaim is a client-id claim as Latchkey's caches hold it; it
// renders as its Secret like CachedToken.
type CachedClaim struct {
	CachedMeta
	Claim Claim
}

// Cached returns the compact form of a backing token or a client-id claim
// Secret, or nil when s is neither (or a damaged one). Its metadata keeps
// what an informer reads: name, namespace and resourceVersion.
func Cached(s *corev1.Secret) runtime.Object {
	meta := CachedMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion}
	switch s.Type {
	case SecretType:
		t, err := FromSecret(s)
		if err != nil {
			return nil
		}
		// Shared strings instead of one copy per token.
		t.OwnerKind = intern(t.OwnerKind, KindApiClient, KindCredentialGrant)
		t.Type = intern(t.Type, TypeClientSecret, string(latchkeyv1alpha1.CredentialTypeBearer),
			string(latchkeyv1alpha1.CredentialTypeKeyAuth), string(latchkeyv1alpha1.CredentialTypeBasicAuth))
		return &CachedToken{CachedMeta: meta, Token: t}
	case ClaimSecretType:
		c, err := ClaimFromSecret(s)
		if err != nil {
			return nil
		}
		return &CachedClaim{CachedMeta: meta, Claim: c}
	}
	return nil
}

// GetObjectKind implements runtime.Object: a cached object has no type
// metadata, as a typed object from an informer has none.
func (*CachedToken) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// GetObjectKind implements runtime.Object.
func (*CachedClaim) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject returns the Secret the record stands for: what a cache
// reader hands out for it (see CachedToken).
func (c *CachedToken) DeepCopyObject() runtime.Object {
	s := c.Token.Secret(c.Namespace)
	s.TypeMeta = metav1.TypeMeta{}
	s.ResourceVersion, s.CreationTimestamp = c.ResourceVersion, metav1.NewTime(c.Token.CreatedAt)
	return s
}

// GetLabels renders the labels Latchkey wrote on the backing token.
func (c *CachedToken) GetLabels() map[string]string { return c.Token.Secret(c.Namespace).Labels }

// GetAnnotations renders the annotations Latchkey wrote on it.
func (c *CachedToken) GetAnnotations() map[string]string {
	return c.Token.Secret(c.Namespace).Annotations
}

// DeepCopyObject returns the claim's Secret (see CachedToken).
func (c *CachedClaim) DeepCopyObject() runtime.Object {
	s := c.Claim.Secret(c.Namespace)
	s.TypeMeta = metav1.TypeMeta{}
	s.ResourceVersion = c.ResourceVersion
	return s
}

// GetLabels renders the labels Latchkey wrote on the claim.
func (c *CachedClaim) GetLabels() map[string]string { return c.Claim.Secret(c.Namespace).Labels }

// GetAnnotations renders the annotations Latchkey wrote on the claim.
func (c *CachedClaim) GetAnnotations() map[string]string {
	return c.Claim.Secret(c.Namespace).Annotations
}

// intern returns the constant equal to s, if any, else s.
func intern(s string, constants ...string) string {
	for _, c := range constants {
		if s == c {
			return c
		}
	}
	return s
}

// CachedMeta is the object metadata of a cached compact object: its key and
// resourceVersion, 48 bytes where metav1.ObjectMeta takes 232. It implements
// metav1.Object (informers and controller-runtime's indexes read the key
// through it); everything else reads as empty and is not kept when set.
type CachedMeta struct {
	Name, Namespace, ResourceVersion string
}

var _ metav1.Object = (*CachedMeta)(nil)

func (m *CachedMeta) GetNamespace() string                        { return m.Namespace }
func (m *CachedMeta) SetNamespace(ns string)                      { m.Namespace = ns }
func (m *CachedMeta) GetName() string                             { return m.Name }
func (m *CachedMeta) SetName(name string)                         { m.Name = name }
func (m *CachedMeta) GetResourceVersion() string                  { return m.ResourceVersion }
func (m *CachedMeta) SetResourceVersion(v string)                 { m.ResourceVersion = v }
func (*CachedMeta) GetGenerateName() string                       { return "" }
func (*CachedMeta) SetGenerateName(string)                        {}
func (*CachedMeta) GetUID() types.UID                             { return "" }
func (*CachedMeta) SetUID(types.UID)                              {}
func (*CachedMeta) GetGeneration() int64                          { return 0 }
func (*CachedMeta) SetGeneration(int64)                           {}
func (*CachedMeta) GetSelfLink() string                           { return "" }
func (*CachedMeta) SetSelfLink(string)                            {}
func (*CachedMeta) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (*CachedMeta) SetCreationTimestamp(metav1.Time)              {}
func (*CachedMeta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (*CachedMeta) SetDeletionTimestamp(*metav1.Time)             {}
func (*CachedMeta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (*CachedMeta) SetDeletionGracePeriodSeconds(*int64)          {}
func (*CachedMeta) GetLabels() map[string]string                  { return nil }
func (*CachedMeta) SetLabels(map[string]string)                   {}
func (*CachedMeta) GetAnnotations() map[string]string             { return nil }
func (*CachedMeta) SetAnnotations(map[string]string)              {}
func (*CachedMeta) GetFinalizers() []string                       { return nil }
func (*CachedMeta) SetFinalizers([]string)                        {}
func (*CachedMeta) GetOwnerReferences() []metav1.OwnerReference   { return nil }
func (*CachedMeta) SetOwnerReferences([]metav1.OwnerReference)    {}
func (*CachedMeta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (*CachedMeta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
