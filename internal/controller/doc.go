// Package controller holds the ApiClient and CredentialGrant reconcilers.
// Each Reconcile is short: get, finalizer, gather, then small phase functions
// whose decisions (must issue? expired? rotate? grace over?) live in pure
// functions in decide.go, table-tested without an API server.
package controller
