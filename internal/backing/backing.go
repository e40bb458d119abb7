// Package backing defines Latchkey's backing tokens: one Secret per issued
// secret, in the operator's own namespace, holding only a hash of the secret
// (data key "hash") and, in labels and annotations, the owner's identity. The
// verifier consults backing tokens; revocation deletes them.
//
// Backing tokens live in the operator namespace so that read access to them
// can be limited to the operator and the verifier, and so that a user who can
// read Secrets in their own namespace learns nothing from them.
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

// SecretType is the type of a backing-token Secret.
const SecretType corev1.SecretType = "latchkey.dev/backing-token"

// Labels select backing tokens without reading them.
const (
	LabelComponent = "app.kubernetes.io/component"
	ComponentValue = "backing-token"
	// LabelTokenID is the token id; the same key as the consumer Secret's
	// annotation.
	LabelTokenID   = latchkeyv1alpha1.AnnotationTokenID
	LabelOwnerKind = "latchkey.dev/owner-kind"
	LabelOwnerUID  = latchkeyv1alpha1.LabelOwnerUID
	// LabelClientUID is the UID of the ApiClient the token belongs to (the
	// owner itself for a client secret): deleting the client deletes every
	// backing token with this label.
	LabelClientUID = "latchkey.dev/client-uid"
)

// Annotations carry identity that does not fit in a label value.
const (
	AnnotationOwnerNamespace = "latchkey.dev/owner-namespace"
	AnnotationOwnerName      = "latchkey.dev/owner-name"
	AnnotationClientID       = "latchkey.dev/client-id"
	AnnotationType           = "latchkey.dev/credential-type"
	AnnotationExpiresAt      = "latchkey.dev/expires-at"
	// AnnotationRetireAt marks a rotated-out token that stays valid until
	// this time (the rotation grace period), then is deleted.
	AnnotationRetireAt = "latchkey.dev/retire-at"
)

// KeyHash is the only data key of a backing token.
const KeyHash = "hash"

// Owner kinds.
const (
	KindApiClient       = latchkeyv1alpha1.ApiClientKind
	KindCredentialGrant = latchkeyv1alpha1.CredentialGrantKind
)

// TypeClientSecret is the credential type of an ApiClient's client secret.
const TypeClientSecret = "client-secret"

// Token is a backing token.
type Token struct {
	ID             string
	Hash           string
	OwnerKind      string
	OwnerNamespace string
	OwnerName      string
	OwnerUID       types.UID
	ClientUID      types.UID
	ClientID       string
	// Type is TypeClientSecret or a CredentialGrant's spec.type.
	Type      string
	ExpiresAt *time.Time
	RetireAt  *time.Time
	// CreatedAt is the Secret's creation time: when the secret was issued.
	CreatedAt time.Time
}

// Name is the Secret name of the backing token with this token id.
func Name(tokenID string) string { return "lk-" + tokenID }

// Selector for the backing tokens of one owner.
func OwnerSelector(uid types.UID) map[string]string {
	return map[string]string{LabelOwnerUID: string(uid), LabelComponent: ComponentValue}
}

// ClientSelector selects the backing tokens of a client and of all its grants.
func ClientSelector(uid types.UID) map[string]string {
	return map[string]string{LabelClientUID: string(uid), LabelComponent: ComponentValue}
}

// Secret renders the token as a Secret in namespace.
func (t Token) Secret(namespace string) *corev1.Secret {
	ann := map[string]string{
		AnnotationOwnerNamespace: t.OwnerNamespace,
		AnnotationOwnerName:      t.OwnerName,
		AnnotationClientID:       t.ClientID,
		AnnotationType:           t.Type,
	}
	if t.ExpiresAt != nil {
		ann[AnnotationExpiresAt] = t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if t.RetireAt != nil {
		ann[AnnotationRetireAt] = t.RetireAt.UTC().Format(time.RFC3339)
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      Name(t.ID),
			Namespace: namespace,
			Labels: map[string]string{
				latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
				LabelComponent:                  ComponentValue,
				LabelTokenID:                    t.ID,
				LabelOwnerKind:                  t.OwnerKind,
				LabelOwnerUID:                   string(t.OwnerUID),
				LabelClientUID:                  string(t.ClientUID),
			},
			Annotations: ann,
		},
		Type:      SecretType,
		Immutable: nil,
		Data:      map[string][]byte{KeyHash: []byte(t.Hash)},
	}
}

// FromSecret reads a backing token. It fails for a Secret that is not one.
func FromSecret(s *corev1.Secret) (Token, error) {
	if s.Type != SecretType || s.Labels[LabelComponent] != ComponentValue {
		return Token{}, fmt.Errorf("secret %s/%s is not a backing token", s.Namespace, s.Name)
	}
	t := Token{
		ID:             s.Labels[LabelTokenID],
		Hash:           string(s.Data[KeyHash]),
		OwnerKind:      s.Labels[LabelOwnerKind],
		OwnerUID:       types.UID(s.Labels[LabelOwnerUID]),
		ClientUID:      types.UID(s.Labels[LabelClientUID]),
		OwnerNamespace: s.Annotations[AnnotationOwnerNamespace],
		OwnerName:      s.Annotations[AnnotationOwnerName],
		ClientID:       s.Annotations[AnnotationClientID],
		Type:           s.Annotations[AnnotationType],
		CreatedAt:      s.CreationTimestamp.Time,
	}
	if t.ID == "" || s.Name != Name(t.ID) || t.Hash == "" {
		return Token{}, fmt.Errorf("backing token %s/%s is incomplete", s.Namespace, s.Name)
	}
	var err error
	if t.ExpiresAt, err = parseTime(s.Annotations[AnnotationExpiresAt]); err != nil {
		return Token{}, fmt.Errorf("backing token %s/%s: %w", s.Namespace, s.Name, err)
	}
	if t.RetireAt, err = parseTime(s.Annotations[AnnotationRetireAt]); err != nil {
		return Token{}, fmt.Errorf("backing token %s/%s: %w", s.Namespace, s.Name, err)
	}
	return t, nil
}

// Valid reports whether the token may be accepted at now: not expired and
// not past its rotation grace period. The verifier also checks the owner.
func (t Token) Valid(now time.Time) bool {
	if t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) {
		return false
	}
	if t.RetireAt != nil && !now.Before(*t.RetireAt) {
		return false
	}
	return true
}

func parseTime(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("bad time %q: %w", s, err)
	}
	return &t, nil
}

// ClaimSecretType is the type of a client-id claim Secret.
const ClaimSecretType corev1.SecretType = "latchkey.dev/client-id-claim"

// ComponentClaim is the component label value of client-id claims.
const ComponentClaim = "client-id-claim"

// Claim records which ApiClient holds a client id. Client ids are unique
// cluster-wide: a client holds its id's claim before any backing token
// carries the id, and the claim's name is derived from the id, so creating
// it is the atomic step two racing clients cannot both win. It holds no
// secret: only identity, in labels and annotations.
type Claim struct {
	ClientID       string
	ClientUID      types.UID
	OwnerNamespace string
	OwnerName      string
}

// ClaimName is the Secret name of the claim on clientID: a hash of the id,
// since a client id may hold characters a name may not.
func ClaimName(clientID string) string {
	return ClaimKey("", clientID)[1:]
}

// ClaimKey is the informer key (namespace/name) of the claim on clientID in
// namespace, built with one allocation: the verifier looks it up on every
// request.
func ClaimKey(namespace, clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	const prefix = "/lkid-"
	b := make([]byte, 0, len(namespace)+len(prefix)+32)
	b = append(b, namespace...)
	b = append(b, prefix...)
	b = hex.AppendEncode(b, sum[:16])
	return string(b)
}

// Secret renders the claim as a Secret in namespace.
func (c Claim) Secret(namespace string) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ClaimName(c.ClientID),
			Namespace: namespace,
			Labels: map[string]string{
				latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue,
				LabelComponent:                  ComponentClaim,
				LabelClientUID:                  string(c.ClientUID),
			},
			Annotations: map[string]string{
				AnnotationClientID:       c.ClientID,
				AnnotationOwnerNamespace: c.OwnerNamespace,
				AnnotationOwnerName:      c.OwnerName,
			},
		},
		Type: ClaimSecretType,
	}
}

// ClaimFromSecret reads a claim. It fails for a Secret that is not one.
func ClaimFromSecret(s *corev1.Secret) (Claim, error) {
	if s.Type != ClaimSecretType || s.Labels[LabelComponent] != ComponentClaim {
		return Claim{}, fmt.Errorf("secret %s/%s is not a client-id claim", s.Namespace, s.Name)
	}
	c := Claim{
		ClientID:       s.Annotations[AnnotationClientID],
		ClientUID:      types.UID(s.Labels[LabelClientUID]),
		OwnerNamespace: s.Annotations[AnnotationOwnerNamespace],
		OwnerName:      s.Annotations[AnnotationOwnerName],
	}
	if c.ClientID == "" || c.ClientUID == "" || s.Name != ClaimName(c.ClientID) {
		return Claim{}, fmt.Errorf("client-id claim %s/%s is incomplete", s.Namespace, s.Name)
	}
	return c, nil
}

// The access-token signing keys: one Secret in the operator namespace,
// separate from every backing token, holding the ES256 keys that sign
// /oauth2/token's JWT access tokens (see internal/accesstoken). The manager
// creates and rotates it; the verifier reads it.
const (
	// SigningKeysSecretName is the default name of the signing-key Secret.
	SigningKeysSecretName = "latchkey-access-token-keys"
	// SigningKeysSecretType is its type.
	SigningKeysSecretType corev1.SecretType = "latchkey.dev/signing-keys"
	// ComponentSigningKeys is its component label value.
	ComponentSigningKeys = "access-token-keys"
	// AnnotationRotatedFor records the latchkey.dev/rotate value the keys
	// were last rotated for.
	AnnotationRotatedFor = latchkeyv1alpha1.AnnotationRotatedFor
)
