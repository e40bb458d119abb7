package operator

// What the manager itself (not a controller) needs in its own namespace, so
// the generated config/rbac/role.yaml is the complete list of what the
// operator does. The namespace is rewritten by the chart and by
// config/default's kustomization.
//
// Leader election: the Lease and the core/v1 Events client-go's resource lock
// records about it.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=latchkey-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=latchkey-system,resources=events,verbs=create;patch
//
// Metrics are served over HTTPS to authenticated and authorized callers only
// (--metrics-secure): the metrics server asks the API server to review the
// caller's token and whether it may GET the metrics path.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
