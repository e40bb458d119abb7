// Package suite holds the credential controllers' envtest suite: Latchkey's
// manager runs against a real API server. It has no non-test code; the pure
// decision tests stay in package controller and run without a control plane.
package suite
