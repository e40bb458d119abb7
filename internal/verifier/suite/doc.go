// Package suite holds the verification service's envtest suites: Latchkey's
// manager runs against a real API server and the tests call the verifier over
// HTTP (and NGINX in front of it). It has no non-test code; the verifier's
// pure tests, benchmarks and fuzz targets stay in package verifier and run
// without a control plane.
package suite
