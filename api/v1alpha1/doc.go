// Package v1alpha1 contains the Latchkey API: ApiClient, an API consumer
// identity, and CredentialGrant, one credential (token or API key) issued to an
// ApiClient. Both live in group latchkey.dev.
//
// Nothing under spec is ever written by the operator, so GitOps diffs stay
// clean: everything Latchkey computes goes to status or to Secrets.
//
// +kubebuilder:object:generate=true
// +groupName=latchkey.dev
package v1alpha1
