// Package cli is the kubectl-latchkey command (also installed as api-client):
// Decidim's api-client verbs (create, get, grant, revoke) over Latchkey's
// ApiClient resources, plus issue, rotate, activate, deactivate, delete and
// whoami. cmd/kubectl-latchkey only wires it to the process; everything,
// including flag parsing and error printing, is here so that tests run it
// in-process (Main) exactly as the binary does.
//
// The command never computes secrets: it writes resources, waits for the
// operator to issue them, and reads the consumer Secret the operator wrote
// (docs/credentials.md), so what it prints is what a workload mounting that
// Secret sees.
package cli
