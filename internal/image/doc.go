// Package image holds the tests of what a release ships (hack/release.sh,
// hack/image.sh, hack/image): they build a release of version v0.2.0 for
// this machine's platform only, check its files, checksums, --version
// output, install.yaml and packaged chart, and run the operator image with
// podman (runc) against the test API server until an ApiClient is Ready.
//
// It needs podman and runc (make test installs them: hack/test-peers.sh),
// helm and kustomize ($HELM and $KUSTOMIZE, as make test exports them, or
// the ones make tools builds).
package image
