// Package install holds the tests of Latchkey's install paths: the Helm
// chart (charts/latchkey) and the kustomize install (config/default), both
// rendered with the real tools and applied with server-side apply to a real
// API server with RBAC authorization on; the manager binary run as the
// chart's ServiceAccount until the samples are Ready; what that
// ServiceAccount cannot do; leader failover between two managers; and the
// kstatus and managedFields contracts GitOps tools rely on.
//
// The tests need helm and kustomize: `make test` builds them into the tool
// cache and passes their paths in $HELM and $KUSTOMIZE.
package install
