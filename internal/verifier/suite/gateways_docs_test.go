package suite_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/latchkey-dev/latchkey/internal/verifier"
)

// The gateway configurations the tests run are the ones in the docs: a block
// is the fenced code block on the line after "<!-- test: NAME -->".
const gatewaysDoc = "../../../docs/gateways.md"

// docBlock returns the fenced code block that follows the marker
// "<!-- test: name -->" in docs/gateways.md, without its fences.
func docBlock(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(gatewaysDoc)
	if err != nil {
		t.Fatalf("read %s: %v", gatewaysDoc, err)
	}
	marker := "<!-- test: " + name + " -->"
	lines := strings.Split(string(b), "\n")
	var found []string
	for i, l := range lines {
		if strings.TrimSpace(l) != marker {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s: marker %q must be on the line right before a fenced code block", gatewaysDoc, marker)
		}
		end := -1
		for j := i + 2; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "```" {
				end = j
				break
			}
		}
		if end < 0 {
			t.Fatalf("%s: the block after %q is not closed", gatewaysDoc, marker)
		}
		found = append(found, strings.Join(lines[i+2:end], "\n")+"\n")
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one marker %q, found %d", gatewaysDoc, marker, len(found))
	}
	return found[0]
}

// identityHeaders are the verifier's answer on 200: a gateway sets each of
// them from the answer before the upstream.
var identityHeaders = []string{
	verifier.HeaderClientID, verifier.HeaderTenant, verifier.HeaderPermissions,
	verifier.HeaderTokenID, verifier.HeaderAllowImpersonate, verifier.HeaderAllowLogin,
}

// spoofed are X-Latchkey-* headers a client sends with false values, in the
// raw spelling sent on the wire.
var spoofed = [][2]string{
	{"X-Latchkey-Client-Id", "victim"},
	{"X-Latchkey-Tenant", "1"},
	{"X-Latchkey-Permissions", "blogs.read,blogs.write,system.admin"},
	{"X-Latchkey-Token-Id", "victim-token"},
	{"X-Latchkey-Allow-Impersonate", "true"},
	{"X-Latchkey-Allow-Login", "true"},
	// A second copy in another letter case.
	{"x-latchkey-allow-impersonate", "true"},
	// The requirement header is for the verifier, never the upstream.
	{"X-Latchkey-Permission", "blogs.read"},
	// Aliases that CGI, WSGI and PHP upstreams read as X-Latchkey-….
	{"X_Latchkey_Allow_Login", "true"},
	{"X.Latchkey.Client.Id", "victim"},
}

// spoofedWithoutTenant is spoofed without the dash-form X-Latchkey-Tenant: a
// gateway that passes the client's headers to the verifier turns a false
// tenant into a requirement the credential fails (403), so a request that
// should pass must not carry one.
func spoofedWithoutTenant() [][2]string {
	return slices.DeleteFunc(slices.Clone(spoofed), func(h [2]string) bool { return h[0] == verifier.HeaderTenant })
}

// headerName is how CGI-style upstreams read a header name: lower case, and
// every character that is not a letter or a digit a dash.
func headerName(k string) string {
	b := []byte(strings.ToLower(k))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	return string(b)
}

// upstreamViolations lists what is wrong with the headers an upstream
// received: each identity header must carry exactly the verifier's value
// (none when the verifier's is empty), no other header may read as
// X-Latchkey-* in any spelling, and no credential header may be there.
func upstreamViolations(h http.Header, want map[string]string) []string {
	var bad []string
	got := map[string][]string{}
	for k, vs := range h {
		n := headerName(k)
		switch {
		case n == "authorization" || n == "x-api-key" || n == "proxy-authorization":
			bad = append(bad, fmt.Sprintf("credential header %q reached the upstream", k))
		case strings.HasPrefix(n, "x-latchkey-"):
			c := textproto.CanonicalMIMEHeaderKey(k)
			if !slices.Contains(identityHeaders, c) || strings.ContainsFunc(k, func(r rune) bool {
				return r != '-' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9')
			}) {
				bad = append(bad, fmt.Sprintf("header %q = %q reached the upstream", k, vs))
				continue
			}
			got[c] = append(got[c], vs...)
		}
	}
	for _, name := range identityHeaders {
		w, g := want[name], got[name]
		switch {
		case w == "" && len(g) > 0:
			bad = append(bad, fmt.Sprintf("%s: upstream got %q, the verifier answered none", name, g))
		case w != "" && (len(g) != 1 || g[0] != w):
			bad = append(bad, fmt.Sprintf("%s: upstream got %q, the verifier answered %q", name, g, w))
		}
	}
	sort.Strings(bad)
	return bad
}

// TestGatewayDocs checks the gateway configurations in docs/gateways.md that
// no test runs for real: the ingress-nginx annotations against the rendered
// block TestNGINXAuthRequest runs, and Envoy and Traefik against a model of
// their documented behaviour.
func TestGatewayDocs(t *testing.T) {
	want := map[string]string{
		verifier.HeaderClientID: "blog-client", verifier.HeaderTenant: "2", verifier.HeaderPermissions: "blogs.read",
		verifier.HeaderTokenID: "lkt-reader", verifier.HeaderAllowImpersonate: "false", verifier.HeaderAllowLogin: "false",
	}
	t.Run("ingress-nginx", func(t *testing.T) { checkIngressNGINXDocs(t) })
	t.Run("envoy", func(t *testing.T) { checkEnvoyDocs(t, want) })
	t.Run("traefik", func(t *testing.T) { checkTraefikDocs(t, want) })
}

// checkIngressNGINXDocs: the annotations list all six headers, and the block
// "what ingress-nginx generates" holds what ingress-nginx's template renders
// for them (buildAuthResponseHeaders in internal/ingress/controller/template),
// the auth-url and every line of the snippet.
func checkIngressNGINXDocs(t *testing.T) {
	var doc struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := yaml.UnmarshalStrict([]byte(docBlock(t, "ingress-nginx-annotations")), &doc); err != nil {
		t.Fatalf("ingress-nginx-annotations: %v", err)
	}
	a := doc.Metadata.Annotations
	const prefix = "nginx.ingress.kubernetes.io/"
	var listed []string
	for _, h := range strings.Split(a[prefix+"auth-response-headers"], ",") {
		if h = strings.TrimSpace(h); h != "" {
			listed = append(listed, h)
		}
	}
	for _, h := range identityHeaders {
		if !slices.Contains(listed, h) {
			t.Errorf("auth-response-headers lacks %s: a client's %s would reach the upstream", h, h)
		}
	}
	for _, h := range listed {
		if !slices.Contains(identityHeaders, textproto.CanonicalMIMEHeaderKey(h)) {
			t.Errorf("auth-response-headers lists %q, which the verifier does not answer", h)
		}
	}
	snippet := a[prefix+"configuration-snippet"]
	for _, want := range []string{"X-Latchkey-Permission", "Authorization", "X-API-Key"} {
		if !regexp.MustCompile(`(?m)^\s*proxy_set_header\s+` + regexp.QuoteMeta(want) + `\s+"";`).MatchString(snippet) {
			t.Errorf("configuration-snippet does not clear %s", want)
		}
	}

	rendered := map[string]bool{}
	for _, l := range strings.Split(docBlock(t, "ingress-nginx-generated"), "\n") {
		rendered[strings.Join(strings.Fields(l), " ")] = true
	}
	expect := []string{fmt.Sprintf("set $target %q;", a[prefix+"auth-url"])}
	for i, h := range listed {
		v := strings.ReplaceAll(strings.ToLower(h), "-", "_")
		expect = append(expect,
			fmt.Sprintf("auth_request_set $authHeader%d $upstream_http_%s;", i, v),
			fmt.Sprintf("proxy_set_header '%s' $authHeader%d;", h, i))
	}
	sc := bufio.NewScanner(strings.NewReader(snippet))
	for sc.Scan() {
		if l := strings.Join(strings.Fields(sc.Text()), " "); l != "" {
			expect = append(expect, l)
		}
	}
	for _, l := range expect {
		if !rendered[l] {
			t.Errorf("the block \"what ingress-nginx generates\" lacks %q, which the annotations render", l)
		}
	}
}

// stringMatch is Envoy's StringMatcher. safe_regex is a full match (RE2).
func stringMatch(t *testing.T, m map[string]any, s string) bool {
	t.Helper()
	ic, _ := m["ignore_case"].(bool)
	cmp := s
	fold := func(x string) string {
		if ic {
			return strings.ToLower(x)
		}
		return x
	}
	for k, v := range m {
		switch k {
		case "ignore_case":
		case "exact":
			return fold(cmp) == fold(v.(string))
		case "prefix":
			return strings.HasPrefix(fold(cmp), fold(v.(string)))
		case "suffix":
			return strings.HasSuffix(fold(cmp), fold(v.(string)))
		case "contains":
			return strings.Contains(fold(cmp), fold(v.(string)))
		case "safe_regex":
			re := regexp.MustCompile(`^(?:` + v.(map[string]any)["regex"].(string) + `)$`)
			return re.MatchString(s)
		default:
			t.Fatalf("the Envoy model does not know the string matcher %q", k)
		}
	}
	t.Fatalf("empty string matcher")
	return false
}

func listMatch(t *testing.T, list any, s string) bool {
	l, _ := list.(map[string]any)
	ps, _ := l["patterns"].([]any)
	for _, p := range ps {
		if stringMatch(t, p.(map[string]any), s) {
			return true
		}
	}
	return false
}

// checkEnvoyDocs runs a spoofed request through a model of the documented
// Envoy filter chain: the header_mutation filter (remove, remove_on_match),
// ext_authz with an HTTP service (allowed_upstream_headers overwrite the
// request's headers on 200), and headers_with_underscores_action.
func checkEnvoyDocs(t *testing.T, want map[string]string) {
	var hcm map[string]any
	if err := yaml.Unmarshal([]byte(docBlock(t, "envoy-ext-authz")), &hcm); err != nil {
		t.Fatalf("envoy-ext-authz: %v", err)
	}
	underscores := "ALLOW"
	if o, ok := hcm["common_http_protocol_options"].(map[string]any); ok {
		if a, ok := o["headers_with_underscores_action"].(string); ok {
			underscores = a
		}
	}
	filters, _ := hcm["http_filters"].([]any)

	run := func(t *testing.T, sent [][2]string) {
		// Envoy holds header names in lower case.
		type hdr struct{ k, v string }
		var req []hdr
		for _, h := range append(sent, [2]string{"Authorization", "Bearer lk_secret"}, [2]string{"X-API-Key", "lk_other"}) {
			k := strings.ToLower(h[0])
			if strings.Contains(k, "_") {
				switch underscores {
				case "REJECT_REQUEST":
					return // 400: nothing reaches the upstream
				case "DROP_HEADER":
					continue
				}
			}
			req = append(req, hdr{k, h[1]})
		}
		authorized := false
		for i, f := range filters {
			fm := f.(map[string]any)
			tc, _ := fm["typed_config"].(map[string]any)
			typ, _ := tc["@type"].(string)
			switch typ {
			case "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation":
				muts, _ := tc["mutations"].(map[string]any)
				rms, _ := muts["request_mutations"].([]any)
				for _, m := range rms {
					m := m.(map[string]any)
					req = slices.DeleteFunc(req, func(h hdr) bool {
						if r, ok := m["remove"].(string); ok {
							return h.k == strings.ToLower(r)
						}
						if r, ok := m["remove_on_match"].(map[string]any); ok {
							return stringMatch(t, r["key_matcher"].(map[string]any), h.k)
						}
						return false
					})
				}
			case "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz":
				if allow, _ := tc["failure_mode_allow"].(bool); allow {
					t.Errorf("filter %d: failure_mode_allow: true lets requests through when the verifier fails", i)
				}
				hs, _ := tc["http_service"].(map[string]any)
				ar, _ := hs["authorization_response"].(map[string]any)
				// The verifier answers 200 with its six headers.
				for _, name := range identityHeaders {
					k := strings.ToLower(name)
					if !listMatch(t, ar["allowed_upstream_headers"], k) {
						continue
					}
					req = slices.DeleteFunc(req, func(h hdr) bool { return h.k == k })
					req = append(req, hdr{k, want[name]})
				}
				authorized = true
			case "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router":
				if !authorized {
					t.Fatalf("no ext_authz filter before the router")
				}
				got := http.Header{}
				for _, h := range req {
					got[h.k] = append(got[h.k], h.v)
				}
				for _, v := range upstreamViolations(got, want) {
					t.Error(v)
				}
				return
			default:
				t.Fatalf("filter %d: the Envoy model does not know %q", i, typ)
			}
		}
		t.Fatalf("no router filter")
	}
	t.Run("spoofed", func(t *testing.T) { run(t, spoofed) })
	t.Run("spoofed-no-underscores", func(t *testing.T) {
		run(t, slices.DeleteFunc(slices.Clone(spoofed), func(h [2]string) bool { return strings.Contains(h[0], "_") }))
	})
}

// checkTraefikDocs runs a spoofed request, as Go's server parses it, through
// the chain of the documented Middlewares, with the header handling of
// Traefik's ForwardAuth (authResponseHeaders, then authResponseHeadersRegex:
// delete every matching request header, copy every matching answer header)
// and Headers (customRequestHeaders: an empty value deletes) middlewares.
func checkTraefikDocs(t *testing.T, want map[string]string) {
	type middleware struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			ForwardAuth *struct {
				Address                  string   `json:"address"`
				AuthRequestHeaders       []string `json:"authRequestHeaders"`
				AuthResponseHeaders      []string `json:"authResponseHeaders"`
				AuthResponseHeadersRegex string   `json:"authResponseHeadersRegex"`
			} `json:"forwardAuth"`
			Headers *struct {
				CustomRequestHeaders map[string]string `json:"customRequestHeaders"`
			} `json:"headers"`
			Chain *struct {
				Middlewares []struct {
					Name string `json:"name"`
				} `json:"middlewares"`
			} `json:"chain"`
		} `json:"spec"`
	}
	byName := map[string]*middleware{}
	var chains []*middleware
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(docBlock(t, "traefik-forward-auth"), -1) {
		m := &middleware{}
		if err := yaml.Unmarshal([]byte(d), m); err != nil {
			t.Fatalf("traefik-forward-auth: %v", err)
		}
		byName[m.Metadata.Name] = m
		if m.Spec.Chain != nil {
			chains = append(chains, m)
		}
	}
	if len(chains) != 1 {
		t.Fatalf("want one chain Middleware for routes to reference, found %d", len(chains))
	}

	raw := "GET /blogs/42 HTTP/1.1\r\nHost: blogs\r\nAuthorization: Bearer lk_secret\r\nX-API-Key: lk_other\r\n"
	for _, h := range spoofed {
		raw += h[0] + ": " + h[1] + "\r\n"
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	answer := http.Header{}
	for _, name := range identityHeaders {
		answer.Set(name, want[name])
	}
	authorized := false
	for _, ref := range chains[0].Spec.Chain.Middlewares {
		m := byName[ref.Name]
		switch {
		case m == nil:
			t.Fatalf("the chain references %q, which the block does not define", ref.Name)
		case m.Spec.ForwardAuth != nil:
			fa := m.Spec.ForwardAuth
			for _, h := range fa.AuthRequestHeaders {
				if c := textproto.CanonicalMIMEHeaderKey(h); c != "Authorization" && c != "X-Api-Key" {
					t.Errorf("authRequestHeaders sends %s to the verifier", h)
				}
			}
			if len(fa.AuthRequestHeaders) == 0 {
				t.Errorf("authRequestHeaders is empty: every client header reaches the verifier")
			}
			for _, h := range fa.AuthResponseHeaders {
				k := http.CanonicalHeaderKey(h)
				req.Header.Del(k)
				if len(answer[k]) > 0 {
					req.Header[k] = append([]string(nil), answer[k]...)
				}
			}
			if fa.AuthResponseHeadersRegex != "" {
				re := regexp.MustCompile(fa.AuthResponseHeadersRegex)
				for k := range req.Header {
					if re.MatchString(k) {
						req.Header.Del(k)
					}
				}
				for k, vs := range answer {
					if re.MatchString(k) {
						req.Header[k] = append([]string(nil), vs...)
					}
				}
			}
			authorized = true
		case m.Spec.Headers != nil:
			if !authorized {
				t.Errorf("%s runs before the ForwardAuth middleware: the verifier would not see the credential", ref.Name)
			}
			for k, v := range m.Spec.Headers.CustomRequestHeaders {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
		default:
			t.Fatalf("the Traefik model does not know Middleware %q", ref.Name)
		}
	}
	if !authorized {
		t.Fatalf("the chain has no ForwardAuth middleware")
	}
	for _, v := range upstreamViolations(req.Header, want) {
		t.Error(v)
	}
}
