package controller

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/permissions"
)

// clientFacts is what an ApiClient's conditions depend on, as one reconcile
// gathered them.
type clientFacts struct {
	// SecretName is the consumer Secret.
	SecretName string
	// Issued: a backing token is current (the secret is verifiable).
	Issued bool
	// NotReadyReason and NotReadyMessage say why no secret is issued now;
	// empty when nothing stands in the way.
	NotReadyReason, NotReadyMessage string
	// Active is spec.active.
	Active bool
}

// clientConditions decides an ApiClient's conditions: Ready, Active, and
// Stalled when only a person can make progress. It is pure: the same facts
// give the same conditions (transition times are the caller's).
func clientConditions(f clientFacts) []metav1.Condition {
	ready := metav1.Condition{Type: latchkeyv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: latchkeyv1alpha1.ReasonIssued, Message: fmt.Sprintf("Client secret issued into Secret %q", f.SecretName)}
	switch {
	case f.NotReadyReason != "":
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, f.NotReadyReason, f.NotReadyMessage
	case !f.Issued:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, latchkeyv1alpha1.ReasonIssueFailed,
			"No client secret is issued yet: the next attempt follows shortly; if it stays so, the operator's log says why"
	}
	active := metav1.Condition{Type: latchkeyv1alpha1.ConditionActive, Status: metav1.ConditionTrue,
		Reason: latchkeyv1alpha1.ReasonActive, Message: "Credentials of this client are accepted"}
	if !f.Active {
		active.Status, active.Reason = metav1.ConditionFalse, latchkeyv1alpha1.ReasonDeactivated
		active.Message = "spec.active is false: every credential of this client is rejected until it is true again"
	}
	out := []metav1.Condition{ready, active}
	if ready.Status == metav1.ConditionFalse {
		out = appendStalled(out, ready.Reason, ready.Message)
	}
	return out
}

// grantFacts is what a CredentialGrant's conditions depend on.
type grantFacts struct {
	// SecretName is the consumer Secret; ClientName is spec.clientName.
	SecretName, ClientName string
	// NotReadyReason and NotReadyMessage say why the credential cannot be
	// issued or kept now (client missing or without an id, Secret
	// conflict, an error); empty when nothing stands in the way.
	NotReadyReason, NotReadyMessage string
	// Expired: spec.expiresAt (ExpiresAt, RFC 3339) has passed.
	Expired   bool
	ExpiresAt string
	// Issued: a backing token is current.
	Issued bool
	// Revoked: no backing token is left, for good (expired, client gone).
	Revoked bool
	// ClientActive is the client's spec.active; ClientPermissions its
	// spec.permissions, GrantPermissions the grant's.
	ClientActive                        bool
	ClientPermissions, GrantPermissions []string
}

// grantConditions decides a CredentialGrant's conditions: Ready, Expired,
// Revoked, and Stalled when only a person can make progress (an expired grant
// always: only a later spec.expiresAt brings it back). It is pure.
func grantConditions(f grantFacts) []metav1.Condition {
	ready := grantReady(f)
	expired := metav1.Condition{Type: latchkeyv1alpha1.ConditionExpired, Status: metav1.ConditionFalse,
		Reason: latchkeyv1alpha1.ReasonNotExpired, Message: "The credential has not expired"}
	if f.Expired {
		expired.Status, expired.Reason = metav1.ConditionTrue, latchkeyv1alpha1.ReasonExpired
		expired.Message = fmt.Sprintf("spec.expiresAt %s has passed: the credential is revoked; set a later spec.expiresAt to issue a new one", f.ExpiresAt)
	}
	revoked := metav1.Condition{Type: latchkeyv1alpha1.ConditionRevoked, Status: metav1.ConditionFalse,
		Reason: latchkeyv1alpha1.ReasonNotRevoked, Message: "The backing token exists"}
	if f.Revoked {
		revoked.Status, revoked.Reason = metav1.ConditionTrue, latchkeyv1alpha1.ReasonRevoked
		revoked.Message = "The backing token has been deleted: the credential is rejected"
	}
	out := []metav1.Condition{ready, expired, revoked}
	switch {
	case f.Expired:
		out = appendStalled(out, latchkeyv1alpha1.ReasonExpired, expired.Message)
	case ready.Status == metav1.ConditionFalse:
		out = appendStalled(out, ready.Reason, ready.Message)
	}
	return out
}

func grantReady(f grantFacts) metav1.Condition {
	notReady := func(reason, msg string) metav1.Condition {
		return metav1.Condition{Type: latchkeyv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
	}
	switch {
	case f.NotReadyReason != "":
		return notReady(f.NotReadyReason, f.NotReadyMessage)
	case f.Expired:
		return notReady(latchkeyv1alpha1.ReasonExpired, fmt.Sprintf(
			"The credential expired at spec.expiresAt %s and is revoked: set a later spec.expiresAt to issue a new one, or delete this CredentialGrant", f.ExpiresAt))
	case !f.Issued:
		return notReady(latchkeyv1alpha1.ReasonIssueFailed,
			"No credential is issued yet: the next attempt follows shortly; if it stays so, the operator's log says why")
	case !f.ClientActive:
		return notReady(latchkeyv1alpha1.ReasonClientInactive, fmt.Sprintf(
			"ApiClient %q is deactivated (spec.active: false): the credential is rejected until the client is active again", f.ClientName))
	}
	if missing := permissions.Subset(f.GrantPermissions, f.ClientPermissions); len(missing) > 0 {
		return notReady(latchkeyv1alpha1.ReasonPermissionNotGranted, fmt.Sprintf(
			"ApiClient %q does not hold %s: grant them to the client or remove them from spec.permissions; until then the credential has only the permissions both hold",
			f.ClientName, strings.Join(missing, ", ")))
	}
	return metav1.Condition{Type: latchkeyv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: latchkeyv1alpha1.ReasonIssued,
		Message: fmt.Sprintf("Credential issued into Secret %q", f.SecretName)}
}

// stalledReasons are the reasons that no retry can resolve: only a person
// can (delete a foreign Secret, pick another client id, set a later
// expiresAt).
var stalledReasons = map[string]bool{
	latchkeyv1alpha1.ReasonSecretConflict:   true,
	latchkeyv1alpha1.ReasonClientIDConflict: true,
	latchkeyv1alpha1.ReasonExpired:          true,
}

// appendStalled adds Stalled=True with the reason and message (what to do)
// when reason is one that only a person can resolve, so kstatus reports
// Failed instead of InProgress forever.
func appendStalled(conds []metav1.Condition, reason, message string) []metav1.Condition {
	if !stalledReasons[reason] {
		return conds
	}
	return append(conds, metav1.Condition{Type: latchkeyv1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
		Reason: reason, Message: message})
}

// setConditions puts the decided conditions into the status, keeping each
// one's transition time when its status does not change, and removes
// Stalled when it was not decided.
func setConditions(conds *[]metav1.Condition, want []metav1.Condition, generation int64) {
	for _, c := range want {
		c.ObservedGeneration = generation
		meta.SetStatusCondition(conds, c)
	}
	if meta.FindStatusCondition(want, latchkeyv1alpha1.ConditionStalled) == nil {
		meta.RemoveStatusCondition(conds, latchkeyv1alpha1.ConditionStalled)
	}
}

// becameTrue reports whether condition typ is True in want but was not in
// the recorded conditions.
func becameTrue(recorded, want []metav1.Condition, typ string) bool {
	return meta.IsStatusConditionTrue(want, typ) && !meta.IsStatusConditionTrue(recorded, typ)
}
