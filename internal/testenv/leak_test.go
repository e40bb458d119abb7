package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Pure tests: no control plane (this package has no TestMain).

const (
	plantedName = "client secret of ApiClient ns/planted"
	// Every base64 alphabet's special characters, and characters that JSON
	// and URLs escape (a user-chosen secret may hold any).
	// 52 bytes: not a multiple of 3, so base64 pads; its base64 holds '+',
	// so base64url differs.
	planted = `key_Zx9-Qm2_LpT7vW4rA8sD1fG6hJ3kN5bC0eY/+u="<&>\~~~~`
)

var noise = []byte(`{"level":"debug","ts":"2026-01-01T00:00:00Z","logger":"controller","msg":"Reconciling","ApiClient":{"name":"x","namespace":"ns"},"tokenID":"abcdefghijklmnop"}` + "\n")

// haystack surrounds s with ordinary log lines.
func haystack(s []byte) []byte {
	return bytes.Join([][]byte{noise, []byte(`{"msg":"x","v":"`), s, []byte("\"}\n"), noise}, nil)
}

// assertClean fails if a finding contains any searched form of secret.
func assertClean(t *testing.T, findings []string, secret []byte) {
	t.Helper()
	for _, f := range findings {
		for form, v := range LeakForms(secret) {
			if len(v) >= 6 && strings.Contains(f, string(v)) {
				t.Errorf("finding %q contains the secret's %s form", f, form)
			}
		}
	}
}

func TestEveryFormOfAPlantedSecretIsFound(t *testing.T) {
	secrets := map[string][]byte{plantedName: []byte(planted)}
	forms := LeakForms([]byte(planted))
	for _, want := range []string{"raw", "JSON-escaped", "URL-escaped", "base64", "base64 (unpadded)", "base64url", "base64url (unpadded)", "hex", "hex (upper case)"} {
		if _, ok := forms[want]; !ok {
			t.Errorf("LeakForms has no %q form", want)
		}
	}
	for form, v := range forms {
		findings := FindLeaks(haystack(v), secrets)
		if len(findings) != 1 || !strings.HasPrefix(findings[0], plantedName+" as ") || !strings.Contains(findings[0], impliedBy(formKind(form))) {
			t.Errorf("planted %s: findings %q", form, findings)
		}
		assertClean(t, findings, []byte(planted))
	}
}

// The encodings a leak really takes, produced independently of LeakForms.
func TestRealEncodingsAreFound(t *testing.T) {
	secret := []byte(planted)
	secrets := map[string][]byte{plantedName: secret}
	cases := map[string][]byte{
		"Secret data in JSON (base64)":     must(json.Marshal(map[string]any{"data": map[string][]byte{"client_secret": secret}})),
		"stringData in JSON":               must(json.Marshal(map[string]any{"stringData": map[string]string{"client_secret": string(secret)}})),
		"JSON body logged as a JSON field": must(json.Marshal(map[string]string{"body": string(must(json.Marshal(map[string][]byte{"s": secret})))})),
		"%x":                               fmt.Appendf(nil, "%x", secret),
		"%X":                               fmt.Appendf(nil, "%X", secret),
		"%q":                               fmt.Appendf(nil, "%q", secret),
		"query string":                     []byte("/v1/verify?secret=" + url.QueryEscape(string(secret))),
		"base64url of the secret":          []byte(base64.RawURLEncoding.EncodeToString(secret)),
		"basic auth header":                []byte("Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("id_abc:"+string(secret)))),
	}
	for shift := range 3 {
		body := append(append([]byte(strings.Repeat("p", 10+shift)), secret...), "suffix"...)
		cases[fmt.Sprintf("base64 of a body, secret at offset %d", 10+shift)] = []byte(base64.StdEncoding.EncodeToString(body))
		cases[fmt.Sprintf("base64url of a body, secret at offset %d", 10+shift)] = []byte(base64.URLEncoding.EncodeToString(body))
	}
	// client-go logs a binary (protobuf) body as a hex dump: the secret may
	// start anywhere in a 16-byte row and be cut across rows.
	for off := range 16 {
		body := append(append([]byte{0x0a, 0x00, 0x12}, bytes.Repeat([]byte{0x01}, off)...), secret...)
		body = append(body, 0x1a, 0x00)
		cases[fmt.Sprintf("hex dump, secret at offset %d", off)] = []byte(hex.Dump(body))
		// As zap writes it: a JSON string with \n escapes.
		cases[fmt.Sprintf("hex dump in a JSON log line, offset %d", off)] = must(json.Marshal(map[string]string{"msg": "Request Body", "body": hex.Dump(body)}))
	}
	// A binary secret (a hash's bytes) in a hex dump: not printable, found
	// by its hex.
	bin := make([]byte, 32)
	_, _ = rand.Read(bin)
	binSecrets := map[string][]byte{"binary hash": bin}
	for off := range 16 {
		body := append(append(bytes.Repeat([]byte{0x20}, off), bin...), 0x00)
		if f := FindLeaks([]byte(hex.Dump(body)), binSecrets); len(f) != 1 {
			t.Errorf("binary secret in a hex dump at offset %d: findings %q", off, f)
		}
	}

	for name, h := range cases {
		findings := FindLeaks(haystack(h), secrets)
		if len(findings) != 1 {
			t.Errorf("%s: findings %q, want one", name, findings)
			continue
		}
		assertClean(t, findings, secret)
	}
}

func TestCleanHaystackHasNoFindings(t *testing.T) {
	other := []byte("key_Pq8-Rt3_MsU6xW9zB2cE4gH7jK1lM0nO/+v=")
	h := bytes.Join([][]byte{
		noise,
		[]byte(base64.StdEncoding.EncodeToString(other)),
		[]byte(hex.Dump(append([]byte{0, 1, 2}, other...))),
		[]byte(hex.EncodeToString(other)),
		other,
		// The public parts next to a secret: prefix, token id, client id.
		[]byte(`"clientID":"id_qsJ9Tc5WDqmcw-g_","tokenID":"abcdefghijklmnop","secret":"key_…"`),
	}, []byte("\n"))
	secrets := map[string][]byte{plantedName: []byte(planted), "token secret of grant ns/g": []byte("Zm9vYmFyYmF6cXV4cXV1eHF1dXpmb29iYXJiYXpxdXg")}
	if f := FindLeaks(h, secrets); len(f) != 0 {
		t.Errorf("clean haystack: findings %q", f)
	}
	if f := FindLeaks(nil, secrets); len(f) != 0 {
		t.Errorf("empty haystack: findings %q", f)
	}
}

func TestSweepLeaksNamesThePlaceAndEverySecret(t *testing.T) {
	a, b := []byte("Qk7vX2pL9mZr4TfW8yHc1nBd"), []byte("u5GJe0sKa3RtoY6wqPzxCi9M")
	findings := SweepLeaks(map[string][]byte{
		"logs":    haystack([]byte(base64.StdEncoding.EncodeToString(a))),
		"events":  haystack(b),
		"metrics": noise,
	}, map[string][]byte{"secret A": a, "secret B": b})
	want := []string{"secret B as raw in events", "secret A as base64 in logs"}
	if strings.Join(findings, "|") != strings.Join(want, "|") {
		t.Errorf("findings:\n%q\nwant:\n%q", findings, want)
	}
	assertClean(t, findings, a)
	assertClean(t, findings, b)
}

// impliedBy is the kind FindLeaks reports for a match of kind: a padded
// base64 includes the unpadded one, which includes the core.
func impliedBy(kind string) string {
	switch kind {
	case "base64 inside a larger value", "base64url inside a larger value":
		return strings.TrimSuffix(kind, " inside a larger value")
	}
	return strings.TrimSuffix(kind, " (unpadded)")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
