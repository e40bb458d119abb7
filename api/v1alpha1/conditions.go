package v1alpha1

// Condition types.
const (
	// ConditionReady is True when the credential is issued, its Secret and
	// backing token exist, and it is verifiable.
	ConditionReady = "Ready"
	// ConditionActive is True while an ApiClient's credentials are accepted
	// (spec.active is true).
	ConditionActive = "Active"
	// ConditionExpired is True once a CredentialGrant's expiresAt has passed.
	ConditionExpired = "Expired"
	// ConditionRevoked is True once a CredentialGrant's backing token has
	// been deleted for good (expiry, or its client gone).
	ConditionRevoked = "Revoked"
	// ConditionStalled is True while the object cannot make progress without
	// a person (ReasonSecretConflict, ReasonClientIDConflict, ReasonExpired):
	// its reason is the Ready condition's and its message says what to do.
	// kstatus (Flux wait, Argo CD health) then reports Failed instead of
	// waiting. It is absent otherwise.
	ConditionStalled = "Stalled"
)

// Condition reasons.
const (
	// ReasonIssued: the credential is issued and verifiable.
	ReasonIssued = "Issued"
	// ReasonClientNotFound: the grant's ApiClient does not exist (yet).
	ReasonClientNotFound = "ClientNotFound"
	// ReasonClientNotReady: the grant's ApiClient exists but is not Ready.
	ReasonClientNotReady = "ClientNotReady"
	// ReasonClientInactive: the grant's ApiClient has spec.active false.
	ReasonClientInactive = "ClientInactive"
	// ReasonPermissionNotGranted: the grant names a permission its client
	// does not hold.
	ReasonPermissionNotGranted = "PermissionNotGranted"
	// ReasonSecretRefNotFound: the Secret named by clientSecretRef, or its
	// key, does not exist (yet).
	ReasonSecretRefNotFound = "SecretRefNotFound"
	// ReasonSecretConflict: the target Secret exists and belongs to someone
	// else; Latchkey never overwrites it.
	ReasonSecretConflict = "SecretConflict"
	// ReasonExpired: expiresAt has passed and the credential is revoked.
	ReasonExpired = "Expired"
	// ReasonNotExpired: expiresAt has not passed, or there is none.
	ReasonNotExpired = "NotExpired"
	// ReasonRevoked: the backing token has been deleted.
	ReasonRevoked = "Revoked"
	// ReasonNotRevoked: the backing token exists.
	ReasonNotRevoked = "NotRevoked"
	// ReasonActive: spec.active is true.
	ReasonActive = "Active"
	// ReasonDeactivated: spec.active is false.
	ReasonDeactivated = "Deactivated"
	// ReasonIssueFailed: issuing failed with an error that will be retried.
	ReasonIssueFailed = "IssueFailed"
	// ReasonClientIDConflict: another live ApiClient holds the client id
	// this one asks for (spec.clientID): it gets no backing token until the
	// id is free.
	ReasonClientIDConflict = "ClientIDConflict"
)
