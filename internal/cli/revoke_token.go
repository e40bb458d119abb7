package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/latchkey-dev/latchkey/internal/token"
)

// maxTokenInput bounds what revoke-token reads: a token is under 8 KiB.
const maxTokenInput = 8 << 10

type revokeTokenOptions struct {
	file                                     string
	verifier                                 string
	service, serviceNamespace, serviceScheme string
	servicePort                              int
}

func newRevokeTokenCommand(o *options) *cobra.Command {
	r := &revokeTokenOptions{}
	cmd := &cobra.Command{
		Use:   "revoke-token [--file FILE]",
		Short: "Revoke a leaked token or secret at once (RFC 7009): its owner gets a new one",
		Long: `Revoke a leaked credential: a grant's token (lk_...), a key-auth or basic-auth pair
(keyId:keySecret), a client's client_id:client_secret, or a JWT access token. Holding it
is the authority to revoke it: no right on the ApiClient is needed.

The token is read from standard input, or from --file; never from the command line,
where the process list and the shell history would keep it.

It is sent to the verifier's POST /oauth2/revoke through the Kubernetes API server's
service proxy, with your kubeconfig (you need 'create' on services/proxy for the
verifier Service: the chart's <release>-token-revoker ClusterRole), or directly to
--verifier URL (for example after 'kubectl port-forward'). From then on the verifier
rejects it; a grant token or client secret is replaced by a new one in the same
Secret (an Event TokenRevoked on the owner names the token id and the source
address), an access token dies alone. The verifier answers the same for a token it
does not know, so this command cannot tell whether the token was valid.`,
		Example: fmt.Sprintf(`  kubectl get secret my-token -o jsonpath='{.data.token}' | base64 -d | %[1]s revoke-token
  %[1]s revoke-token --file leaked.txt
  %[1]s revoke-token --file leaked.txt --verifier http://localhost:8082`, o.program),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%s takes no arguments: the token is read from standard input or --file, never from the command line (the process list and shell history would keep it)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := r.read(o)
			if err != nil {
				return err
			}
			return r.run(cmd.Context(), o, tok)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.file, "file", "", "Read the token from this file ('-' or empty: standard input)")
	f.StringVar(&r.verifier, "verifier", "", "Base URL of the verifier, to reach it directly instead of through the API server's service proxy")
	f.StringVar(&r.service, "verifier-service", "latchkey-verifier", "The verifier's Service")
	f.StringVar(&r.serviceNamespace, "verifier-namespace", "latchkey-system", "The namespace of the verifier's Service (the release namespace)")
	f.IntVar(&r.servicePort, "verifier-port", 8082, "The verifier Service's port")
	f.StringVar(&r.serviceScheme, "verifier-scheme", "http", "http, or https when the chart's verifier.tls.enabled is true")
	return cmd
}

// read returns the one token in the input, without surrounding whitespace.
func (r *revokeTokenOptions) read(o *options) (string, error) {
	in, from := o.streams.In, "standard input"
	if r.file != "" && r.file != "-" {
		fh, err := os.Open(r.file)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		defer func() { _ = fh.Close() }()
		in, from = fh, r.file
	}
	raw, err := io.ReadAll(io.LimitReader(in, maxTokenInput+1))
	if err != nil {
		return "", fmt.Errorf("reading the token from %s: %w", from, err)
	}
	if len(raw) > maxTokenInput {
		return "", fmt.Errorf("%s holds more than %d bytes: give one token", from, maxTokenInput)
	}
	tok := strings.TrimSpace(string(raw))
	switch {
	case tok == "":
		return "", fmt.Errorf("no token on %s: pipe the token in, or give --file FILE", from)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("%s holds more than one word: give exactly one token", from)
	}
	return tok, nil
}

// run sends the revocation and reports it.
func (r *revokeTokenOptions) run(ctx context.Context, o *options, tok string) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	target, hc, err := r.endpoint(o)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the verifier: %v", rootCause(err))
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return r.failure(resp, body)
	}
	out := map[string]any{"revoked": true}
	switch {
	case strings.HasPrefix(tok, token.Prefix):
		if t, err := token.Parse(tok); err == nil {
			out["token_id"] = t.ID
		}
	case strings.Contains(tok, ":"):
		id, _, _ := strings.Cut(tok, ":")
		if token.ValidTokenID(id) {
			out["token_id"] = id
		} else {
			out["client_id"] = id
		}
	}
	if o.format == FormatJSON {
		b, _ := json.Marshal(out)
		_, err = fmt.Fprintf(o.streams.Out, "%s\n", b)
		return err
	}
	name := "the token"
	if id, ok := out["token_id"]; ok {
		name = fmt.Sprintf("token %s", id)
	} else if id, ok := out["client_id"]; ok {
		name = fmt.Sprintf("the client secret of %s", id)
	}
	_, err = fmt.Fprintf(o.streams.Out, "The verifier accepted the revocation of %s. If it was a live Latchkey credential it is rejected from now on, "+
		"and a grant token or client secret is replaced in its Secret (Event TokenRevoked on its owner). The verifier answers the same for a token it does not know.\n", name)
	return err
}

// endpoint is the URL of /oauth2/revoke and the client to reach it with:
// the API server's service proxy with the kubeconfig's credentials, or
// --verifier directly.
func (r *revokeTokenOptions) endpoint(o *options) (string, *http.Client, error) {
	if r.verifier != "" {
		u, err := url.Parse(r.verifier)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", nil, fmt.Errorf("invalid --verifier %q: give an http:// or https:// URL", r.verifier)
		}
		return u.JoinPath("oauth2", "revoke").String(), &http.Client{Timeout: o.timeout}, nil
	}
	if r.serviceScheme != "http" && r.serviceScheme != "https" {
		return "", nil, fmt.Errorf("--verifier-scheme must be http or https, not %q", r.serviceScheme)
	}
	s, err := o.connect()
	if err != nil {
		return "", nil, err
	}
	cfg, err := o.config.ToRESTConfig()
	if err != nil {
		return "", nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("building a client for %s: %w", s.host, err)
	}
	hc.Timeout = o.timeout
	base, err := url.Parse(strings.TrimSuffix(cfg.Host, "/") + cfg.APIPath)
	if err != nil {
		return "", nil, fmt.Errorf("invalid API server address %q: %w", cfg.Host, err)
	}
	svc := r.serviceScheme + ":" + r.service + ":" + strconv.Itoa(r.servicePort)
	return base.JoinPath("api", "v1", "namespaces", r.serviceNamespace, "services", svc, "proxy", "oauth2", "revoke").String(), hc, nil
}

// failure explains a non-200 answer: the verifier's own (400, 401, 429,
// 503) or the API server's (403: no services/proxy; 503: no endpoint).
func (r *revokeTokenOptions) failure(resp *http.Response, body []byte) error {
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &oauth) == nil && oauth.Error != "" {
		switch resp.StatusCode {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return fmt.Errorf("the verifier cannot act now (%s: %s): nothing was revoked; run the command again", resp.Status, oauth.Description)
		}
		return fmt.Errorf("the verifier refused the request (%s: %s)", resp.Status, oauth.Description)
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	switch {
	case resp.StatusCode == http.StatusForbidden && r.verifier == "":
		return fmt.Errorf("the API server refused to proxy to Service %s/%s (403): your kubeconfig user needs 'create' on services/proxy for it "+
			"(the chart's token-revoker ClusterRole), or reach the verifier directly with --verifier URL; nothing was revoked: %s", r.serviceNamespace, r.service, msg)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("the verifier is not reachable as Service %s/%s port %d (%s): check --verifier-namespace, --verifier-service and --verifier-port; nothing was revoked: %s",
			r.serviceNamespace, r.service, r.servicePort, resp.Status, msg)
	}
	return fmt.Errorf("revocation failed (%s); nothing was revoked: %s", resp.Status, msg)
}
