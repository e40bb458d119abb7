package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// Environment variables whoami reads when its flags are not given.
const (
	EnvVerifierURL = "LATCHKEY_VERIFIER_URL"
	EnvToken       = "LATCHKEY_TOKEN"
)

func newWhoamiCommand(o *options) *cobra.Command {
	var tok, verifier string
	cmd := &cobra.Command{
		Use:   "whoami --token TOKEN [--verifier URL]",
		Short: "Ask the verifier who a token belongs to (its current record, never its secret)",
		Long: `Send the token to the verifier's "current" endpoint (GET <verifier>/v1/current with
Authorization: Bearer) and print the record it answers: client id, tenant, permissions,
token id, expiry. Needs no cluster access, only the verifier's URL.

--token - reads the token from standard input (keeps it out of the process list);
LATCHKEY_TOKEN and LATCHKEY_VERIFIER_URL are read when the flags are not given.
Here --token is the Latchkey token, not kubeconfig's bearer token.`,
		Example: fmt.Sprintf(`  %[1]s whoami --verifier http://localhost:8082 --token "$TOKEN"
  kubectl get secret my-token -o jsonpath='{.data.token}' | base64 -d | %[1]s whoami --token - --verifier http://localhost:8082`, o.program),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tok == "" {
				tok = os.Getenv(EnvToken)
			}
			if verifier == "" {
				verifier = os.Getenv(EnvVerifierURL)
			}
			if tok == "-" {
				line, err := bufio.NewReader(o.streams.In).ReadString('\n')
				if err != nil && err != io.EOF {
					return fmt.Errorf("reading the token from standard input: %w", err)
				}
				tok = strings.TrimSpace(line)
			}
			if tok == "" {
				return fmt.Errorf("--token is required: give the token to look up (or --token - to read it from standard input, or set %s)", EnvToken)
			}
			if verifier == "" {
				return fmt.Errorf("--verifier is required: give the verifier's base URL, for example http://localhost:8082 after 'kubectl port-forward -n latchkey-system svc/latchkey-verifier 8082' (or set %s)", EnvVerifierURL)
			}
			return whoami(cmd.Context(), o, verifier, tok)
		},
	}
	cmd.Flags().StringVar(&tok, "token", "", "The Latchkey token to look up ('-' reads standard input)")
	cmd.Flags().StringVar(&verifier, "verifier", "", "Base URL of the Latchkey verifier")
	return cmd
}

func whoami(ctx context.Context, o *options, base, tok string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid --verifier %q: give an http:// or https:// URL", base)
	}
	u = u.JoinPath("v1", "current")
	timeout := o.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the verifier at %s: %v", base, rootCause(err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the verifier's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("the verifier rejected the token (401 Unauthorized: unknown, expired, revoked or inactive) %s", msg)
		}
		return fmt.Errorf("the verifier answered %s: %s", resp.Status, msg)
	}
	if o.format == FormatJSON {
		var out bytes.Buffer
		if err := json.Compact(&out, body); err != nil {
			return fmt.Errorf("the verifier answered something that is not JSON: %w", err)
		}
		_, err = fmt.Fprintf(o.streams.Out, "%s\n", out.Bytes())
		return err
	}
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); err != nil {
		return fmt.Errorf("the verifier answered something that is not a JSON object: %w", err)
	}
	keys := make([]string, 0, len(rec))
	for k := range rec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([][2]string, 0, len(keys))
	for _, k := range keys {
		kv = append(kv, [2]string{k, textValue(rec[k])})
	}
	return printPairs(o.streams.Out, kv)
}

func textValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "(none)"
	case string:
		return v
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, textValue(e))
		}
		return list(parts)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}
