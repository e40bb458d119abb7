// Package operator builds Latchkey's controller-runtime Manager: the scheme,
// the cache (only Latchkey's own Secrets are cached), the controllers, the
// webhook server and the probes. cmd/ only parses flags and calls Run, so the
// local development runner and the tests start exactly what production runs.
package operator
