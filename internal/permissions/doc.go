// Package permissions holds the pure rules for Latchkey's fine-grained
// permissions, "<scope>.<name>[.<name>...]" such as "blogs.read" or
// "system.organizations.update": parsing, the scope a permission belongs to,
// and the set operations behind "a grant can hold only a subset of its
// client's permissions" (Rustici) and "the effective permissions of a grant
// are grant ∩ client". It has no Kubernetes dependencies, so the admission
// webhook, the controllers and the verifier share one definition.
package permissions
