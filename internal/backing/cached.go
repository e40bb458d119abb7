package backing

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// CachedToken is a backing token as a verifier-only cache holds it: the
// Token, parsed once when the informer stores the Secret, under the object
// metadata an informer needs (name, namespace, UID, resourceVersion). The
// Secret's labels, annotations and data maps are not kept: they cost more
// than the token itself, and a verifier-only process reads nothing else of a
// backing token. A Secret that FromSecret refuses is never turned into one
// (the cache keeps the Secret, and a lookup fails on it as before).
type CachedToken struct {
	metav1.ObjectMeta
	Token Token
}

// CachedClaim is a client-id claim as a verifier-only cache holds it.
type CachedClaim struct {
	metav1.ObjectMeta
	Claim Claim
}

// Cached returns the compact form of a backing token or a client-id claim
// Secret, or nil when s is neither (or a damaged one). Its metadata keeps
// what an informer reads: name, namespace, resourceVersion, creation and
// deletion time.
func Cached(s *corev1.Secret) runtime.Object {
	meta := metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion,
		CreationTimestamp: s.CreationTimestamp, DeletionTimestamp: s.DeletionTimestamp}
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
		return &CachedToken{ObjectMeta: meta, Token: t}
	case ClaimSecretType:
		c, err := ClaimFromSecret(s)
		if err != nil {
			return nil
		}
		return &CachedClaim{ObjectMeta: meta, Claim: c}
	}
	return nil
}

// GetObjectKind implements runtime.Object: a cached object has no type
// metadata, as a typed object from an informer has none.
func (*CachedToken) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// GetObjectKind implements runtime.Object.
func (*CachedClaim) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object.
func (c *CachedToken) DeepCopyObject() runtime.Object {
	out := &CachedToken{Token: c.Token}
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Token.ExpiresAt, out.Token.RetireAt = copyTime(c.Token.ExpiresAt), copyTime(c.Token.RetireAt)
	return out
}

// DeepCopyObject implements runtime.Object.
func (c *CachedClaim) DeepCopyObject() runtime.Object {
	out := &CachedClaim{Claim: c.Claim}
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
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

func copyTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
