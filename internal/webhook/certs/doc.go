// Package certs gives the admission webhook its serving certificate without
// cert-manager: open-policy-agent/cert-controller's rotator creates a CA and
// a serving certificate, keeps them in a Secret in the operator's namespace,
// renews them ahead of expiry and injects the CA bundle into Latchkey's
// ValidatingWebhookConfiguration. The webhook server is gated so that it
// listens only once the certificate is mounted and the bundle injected.
package certs
