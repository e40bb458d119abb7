// Package v1alpha1 holds the validating admission webhooks for Latchkey's
// v1alpha1 resources: the rules that need other objects or configuration and
// so cannot live in the CRD's CEL rules (permission catalog, grant ⊆ client,
// unique client ids, tenant rules, deletion policy, maximum lifetime).
//
// Each rule set is a pure function, validate(old, new, lookups), returning a
// field.ErrorList; the Validator types only gather the lookups (catalog,
// other objects) and turn the list into an Invalid error. Rules that depend
// on other objects or configuration ratchet on update: only what the update
// adds is checked, so an object admitted yesterday is never locked by a
// change of the catalog or of its client today. Missing referenced objects
// (a grant's client, a client's Secret) are admitted, as everywhere in
// Kubernetes, so any apply order works.
//
// +kubebuilder:webhookconfiguration:mutating=false,name=latchkey-validating-webhook-configuration
package v1alpha1
