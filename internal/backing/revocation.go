package backing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// Revocation records: what POST /oauth2/revoke (RFC 7009) writes. One
// ConfigMap per revoked credential in the token namespace, named from a hash
// of what it revokes, holding no secret (a token id or an access token's jti,
// the owner's identity, the source address of the request).
//
// Every verifier replica watches them and rejects the credential as soon as
// its record arrives, so the verifier needs no right to delete backing
// tokens: only to create ConfigMaps in the token namespace. ConfigMaps, not
// Secrets, because a verifier allowed to create Secrets there could forge a
// backing token; a verifier allowed to create revocation records can only
// deny. The operator's leader acts on them (internal/controller): it deletes
// a revoked backing token (the owner's controller then issues a fresh
// credential into the same consumer Secret), records an Event on the owner,
// and deletes each record once it has done its work: a token's after its
// backing token is gone and RevocationRetention has passed, an access
// token's after its exp.
const (
	// ComponentRevocation is the component label value of revocation records.
	ComponentRevocation = "revocation"
	// LabelRevokedKind is RevokedToken or RevokedAccessToken.
	LabelRevokedKind = "latchkey.dev/revoked-kind"
	// AnnotationJTI is a revoked access token's jti.
	AnnotationJTI = "latchkey.dev/jti"
	// AnnotationTokenID is the revoked backing token's id (for an access
	// token: the client secret it was issued against).
	AnnotationTokenID = latchkeyv1alpha1.AnnotationTokenID
	// AnnotationOwnerKind is the kind of the token's owner.
	AnnotationOwnerKind = "latchkey.dev/owner-kind"
	// AnnotationOwnerUID is the owner's UID.
	AnnotationOwnerUID = latchkeyv1alpha1.LabelOwnerUID
	// AnnotationRevokedFrom is the source address of the revoke request.
	AnnotationRevokedFrom = "latchkey.dev/revoked-from"
	// AnnotationRevokedAt is when the verifier accepted the request.
	AnnotationRevokedAt = "latchkey.dev/revoked-at"
	// AnnotationReported marks a record whose Event was recorded.
	AnnotationReported = "latchkey.dev/reported"

	// RevokedToken: a backing token (a grant's token or a client secret).
	RevokedToken = "backing-token"
	// RevokedAccessToken: one JWT access token, by jti.
	RevokedAccessToken = "access-token"

	// RevocationRetention is how long a token's record outlives the deletion
	// of its backing token: longer than any watch lag, so no verifier sees
	// the record go before it sees the backing token go.
	RevocationRetention = 10 * time.Minute
)

// Revocation is a revocation record.
type Revocation struct {
	// Kind is RevokedToken or RevokedAccessToken.
	Kind string
	// TokenID is the backing token revoked (RevokedToken) or the one the
	// access token was issued against (RevokedAccessToken).
	TokenID string
	// JTI is the revoked access token's id (RevokedAccessToken).
	JTI string
	// The token's owner, as the backing token names it (may be empty for an
	// access token whose client secret is already gone).
	OwnerKind, OwnerNamespace, OwnerName string
	OwnerUID                             types.UID
	ClientID                             string
	// From is the source address of the request.
	From string
	At   time.Time
	// ExpiresAt: an access token's exp; the record is pruned after it.
	ExpiresAt *time.Time
}

// Subject is what the record denies: the token id or the jti.
func (r Revocation) Subject() string {
	if r.Kind == RevokedAccessToken {
		return r.JTI
	}
	return r.TokenID
}

// RevocationName is the ConfigMap name of the record that revokes subject
// (a token id or a jti) of kind: a hash, since a jti may hold characters a
// name may not.
func RevocationName(kind, subject string) string {
	return RevocationKey("", kind, subject)[1:]
}

// RevocationKey is the informer key (namespace/name) of the record, built
// with one allocation (the string): the verifier looks it up on every
// request.
func RevocationKey(namespace, kind, subject string) string {
	// Hashed from a stack buffer: the verifier's hot path allocates only
	// the key.
	var buf [128]byte
	in := append(append(append(buf[:0], kind...), 0), subject...)
	sum := sha256.Sum256(in)
	const prefix = "/lkrv-"
	var kb [128]byte // namespace names are at most 63 bytes
	b := append(kb[:0], namespace...)
	b = append(b, prefix...)
	b = hex.AppendEncode(b, sum[:16])
	return string(b)
}

// ConfigMap renders the record in namespace.
func (r Revocation) ConfigMap(namespace string) *corev1.ConfigMap {
	ann := map[string]string{
		AnnotationTokenID:        r.TokenID,
		AnnotationOwnerKind:      r.OwnerKind,
		AnnotationOwnerNamespace: r.OwnerNamespace,
		AnnotationOwnerName:      r.OwnerName,
		AnnotationOwnerUID:       string(r.OwnerUID),
		AnnotationClientID:       r.ClientID,
		AnnotationRevokedFrom:    r.From,
		AnnotationRevokedAt:      r.At.UTC().Format(time.RFC3339Nano),
	}
	if r.JTI != "" {
		ann[AnnotationJTI] = r.JTI
	}
	if r.ExpiresAt != nil {
		ann[AnnotationExpiresAt] = r.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      RevocationName(r.Kind, r.Subject()),
			Namespace: namespace,
			Labels: map[string]string{
				latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
				LabelComponent:                  ComponentRevocation,
				LabelRevokedKind:                r.Kind,
			},
			Annotations: ann,
		},
	}
}

// RevocationFromConfigMap reads a record. It fails for a ConfigMap that is
// not one, or whose name is not derived from what it revokes.
func RevocationFromConfigMap(cm *corev1.ConfigMap) (Revocation, error) {
	if cm.Labels[LabelComponent] != ComponentRevocation {
		return Revocation{}, fmt.Errorf("configmap %s/%s is not a revocation record", cm.Namespace, cm.Name)
	}
	a := cm.Annotations
	r := Revocation{
		Kind: cm.Labels[LabelRevokedKind], TokenID: a[AnnotationTokenID], JTI: a[AnnotationJTI],
		OwnerKind: a[AnnotationOwnerKind], OwnerNamespace: a[AnnotationOwnerNamespace], OwnerName: a[AnnotationOwnerName],
		OwnerUID: types.UID(a[AnnotationOwnerUID]), ClientID: a[AnnotationClientID], From: a[AnnotationRevokedFrom],
	}
	if (r.Kind != RevokedToken && r.Kind != RevokedAccessToken) || r.Subject() == "" || cm.Name != RevocationName(r.Kind, r.Subject()) {
		return Revocation{}, fmt.Errorf("revocation record %s/%s is incomplete", cm.Namespace, cm.Name)
	}
	if at, err := time.Parse(time.RFC3339Nano, a[AnnotationRevokedAt]); err == nil {
		r.At = at
	} else {
		r.At = cm.CreationTimestamp.Time
	}
	exp, err := parseTime(a[AnnotationExpiresAt])
	if err != nil {
		return Revocation{}, fmt.Errorf("revocation record %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	if r.Kind == RevokedAccessToken && exp == nil {
		return Revocation{}, fmt.Errorf("revocation record %s/%s has no expiry", cm.Namespace, cm.Name)
	}
	r.ExpiresAt = exp
	return r, nil
}
