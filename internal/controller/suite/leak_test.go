package suite_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/accesstoken"
	"github.com/latchkey-dev/latchkey/internal/backing"
	"github.com/latchkey-dev/latchkey/internal/testenv"
	"github.com/latchkey-dev/latchkey/internal/token"
)

// Helpers of the leak tests (TestSecretsNeverLeak and the binaries' test):
// what to search for, and where.

// publicKeys are the data keys of consumer Secrets that hold no secret.
var publicKeys = map[string]bool{
	latchkeyv1alpha1.ClientIDKey: true, "token_id": true, "key_id": true, "username": true, "expires_at": true,
}

// issuedSecrets adds to into every secret Latchkey issued in ns, read from
// the consumer Secrets, and every backing-token hash in opNs, by a
// description that names the owner and never the value. Call it whenever
// secrets may have changed (after a rotation): earlier values stay in into.
//
// Only the secret part of a token is kept (its "lk_<token id>_" prefix is
// public and logged on purpose; a raw, base64 or hex copy of the whole token
// still contains the secret part), and only the salt, key or digest of a
// hash (the scheme and parameters are public).
func issuedSecrets(t testing.TB, ctx context.Context, c client.Reader, ns, opNs string, into map[string][]byte) {
	t.Helper()
	var consumer corev1.SecretList
	if err := c.List(ctx, &consumer, client.InNamespace(ns), client.MatchingLabels{latchkeyv1alpha1.LabelManagedBy: latchkeyv1alpha1.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	for _, s := range consumer.Items {
		if s.Type != latchkeyv1alpha1.ClientSecretType && s.Type != latchkeyv1alpha1.GrantSecretType {
			continue
		}
		for k, v := range s.Data {
			if publicKeys[k] || len(v) == 0 {
				continue
			}
			what := fmt.Sprintf("%s of Secret %s/%s", k, s.Namespace, s.Name)
			if k == "token" {
				tok, err := token.Parse(string(v))
				if err != nil {
					t.Fatalf("%s is not a token", what)
				}
				what, v = fmt.Sprintf("secret part of the token of Secret %s/%s (token id %s)", s.Namespace, s.Name, tok.ID), []byte(tok.Secret)
			}
			into[what] = v
		}
	}
	var tokens corev1.SecretList
	if err := c.List(ctx, &tokens, client.InNamespace(opNs)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range tokens.Items {
		if s.Type != backing.SecretType {
			continue
		}
		n++
		for i, part := range strings.Split(string(s.Data[backing.KeyHash]), "$") {
			if len(part) >= 16 { // sha256 digest; argon2id salt and key
				into[fmt.Sprintf("backing-token hash (field %d) of token %s (%s %s/%s)", i, s.Labels[backing.LabelTokenID],
					s.Labels[backing.LabelOwnerKind], s.Annotations[backing.AnnotationOwnerNamespace], s.Annotations[backing.AnnotationOwnerName])] = []byte(part)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no backing token in %s: nothing to search for", opNs)
	}
	// The access-token signing keys: their private halves, as PKCS#8 DER
	// (what the Secret stores, base64) and as the bare scalar.
	keys := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: opNs, Name: backing.SigningKeysSecretName}, keys); err == nil {
		set, err := accesstoken.Unmarshal(keys.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range set.Keys {
			der, err := x509.MarshalPKCS8PrivateKey(k.Private)
			if err != nil {
				t.Fatal(err)
			}
			into["signing key "+k.ID+" (PKCS#8)"] = der
			raw, err := k.Private.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			into["signing key "+k.ID+" (scalar)"] = raw
		}
	}
}

// apiObjects returns what the API server shows of ns to anyone who may read
// Events and Latchkey's resources: Events (both APIs) and the resources with
// their status, as JSON.
func apiObjects(t testing.TB, ctx context.Context, c client.Reader, ns string) (events, resources []byte) {
	t.Helper()
	var ev eventsv1.EventList
	var coreEv corev1.EventList
	var clients latchkeyv1alpha1.ApiClientList
	var grants latchkeyv1alpha1.CredentialGrantList
	for _, l := range []client.ObjectList{&ev, &coreEv, &clients, &grants} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	if len(ev.Items)+len(coreEv.Items) == 0 {
		t.Fatalf("no Events in %s: nothing to search", ns)
	}
	events, _ = json.Marshal([]any{ev, coreEv})
	resources, _ = json.Marshal([]any{clients, grants})
	return events, resources
}

// metricsText is this process's Prometheus registry in the text format.
func metricsText(t testing.TB) []byte {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range families {
		_, _ = expfmt.MetricFamilyToText(&b, mf)
	}
	return b.Bytes()
}

// assertNoLeaks fails the test with every finding of testenv.SweepLeaks;
// the findings name the secret and the place, never the value.
func assertNoLeaks(t testing.TB, places, secrets map[string][]byte) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("no secrets to search for")
	}
	findings := testenv.SweepLeaks(places, secrets)
	for _, f := range findings {
		t.Errorf("leak: %s", f)
	}
	if len(findings) == 0 {
		t.Logf("searched %d places (%s) for %d secrets in every form: none found", len(places), strings.Join(slices.Sorted(maps.Keys(places)), ", "), len(secrets))
	}
}
