// Package suite holds the admission webhook's envtest suite: a real API
// server calls the webhook served by Latchkey's manager, with a permission
// catalog from a file and a live ConfigMap. It has no non-test code.
package suite
