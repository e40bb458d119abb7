package v1alpha1

import corev1 "k8s.io/api/core/v1"

// This file is the one place for the names Latchkey shares with its users and
// their tooling: the kinds, the consumer Secrets' types and data keys, and
// the labels, annotations and finalizer Latchkey puts on objects. The
// controller writes them, the verifier and the CLI read them, and
// docs/credentials.md documents them; a consumer may import this package for
// them, as for corev1.TLSCertKey. TestContractNamesDefinedOnce (in
// wellknown_test.go) fails when a copy of one appears elsewhere in Go.

// Kinds of Latchkey's resources.
const (
	ApiClientKind       = "ApiClient"
	CredentialGrantKind = "CredentialGrant"
)

// Types of the consumer Secrets Latchkey writes.
const (
	// ClientSecretType is the type of an ApiClient's consumer Secret: keys
	// ClientIDKey and ClientSecretKey.
	ClientSecretType corev1.SecretType = "latchkey.dev/client"
	// GrantSecretType is the type of a CredentialGrant's consumer Secret:
	// keys TokenKey, TokenIDKey, ClientIDKey and ExpiresAtKey, plus
	// KeyIDKey and KeySecretKey (type key-auth) or UsernameKey and
	// PasswordKey (type basic-auth).
	GrantSecretType corev1.SecretType = "latchkey.dev/token"
)

// Data keys of the consumer Secrets (RFC 6749 and bootstrap-token naming).
const (
	// ClientIDKey holds the client id (both kinds).
	ClientIDKey = "client_id"
	// ClientSecretKey holds an ApiClient's client secret. It is also the
	// default key of spec.clientSecretRef.
	ClientSecretKey = "client_secret"
	// TokenKey holds a grant's whole token (lk_<tokenid>_<secret><crc>).
	TokenKey = "token"
	// TokenIDKey holds the token's non-secret id (status.tokenID).
	TokenIDKey = "token_id"
	// ExpiresAtKey holds spec.expiresAt in RFC 3339, or "" for none.
	ExpiresAtKey = "expires_at"
	// KeyIDKey and KeySecretKey hold a key-auth grant's keyId and keySecret.
	KeyIDKey     = "key_id"
	KeySecretKey = "key_secret"
	// UsernameKey and PasswordKey hold a basic-auth grant's user name and
	// password, under the keys of a kubernetes.io/basic-auth Secret.
	UsernameKey = corev1.BasicAuthUsernameKey
	PasswordKey = corev1.BasicAuthPasswordKey
)

// Labels, annotations and the finalizer Latchkey puts on objects.
const (
	// LabelManagedBy marks every object Latchkey writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy on Latchkey's objects.
	ManagedByValue = "latchkey"
	// LabelCreatedBy marks the Secrets the CLI creates for a user-chosen
	// secret (--secret); its value names the command.
	LabelCreatedBy = "app.kubernetes.io/created-by"
	// LabelKind on a consumer Secret is its owner's kind (ApiClientKind or
	// CredentialGrantKind).
	LabelKind = "latchkey.dev/kind"
	// LabelOwnerUID on a consumer Secret (and a backing token) is its
	// owner's UID.
	LabelOwnerUID = "latchkey.dev/owner-uid"
	// AnnotationTokenID on a consumer Secret names the backing token its
	// secret belongs to; it equals the owner's status.tokenID once issued.
	AnnotationTokenID = "latchkey.dev/token-id"
	// AnnotationRotate: a new value issues a new secret.
	AnnotationRotate = "latchkey.dev/rotate"
	// AnnotationRotatedFor on a consumer Secret is the AnnotationRotate
	// value its secret was issued for.
	AnnotationRotatedFor = "latchkey.dev/rotated-for"
	// FinalizerRevoke makes the deletion of an ApiClient or CredentialGrant
	// wait until its backing tokens are deleted.
	FinalizerRevoke = "latchkey.dev/revoke"
)

// EffectiveKey is the key of the referenced Secret's data that holds the
// client secret: Key, or ClientSecretKey when it is empty (the schema
// defaults it; an object read from a fake or an old API server may lack it).
func (r *SecretKeyReference) EffectiveKey() string {
	if r.Key == "" {
		return ClientSecretKey
	}
	return r.Key
}
