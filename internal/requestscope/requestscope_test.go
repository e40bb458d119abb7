package requestscope

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"/", "/", nil},
		{"/api/v1/reports", "/api/v1/reports", nil},
		{"/api/v1/reports?x=1&y=/../admin", "/api/v1/reports", nil},
		{"/api/v1/reports/", "/api/v1/reports/", nil},
		{"/api/v1/./reports", "/api/v1/reports", nil},
		{"/api/v1/reports/.", "/api/v1/reports/", nil},
		{"/api/v1/reports/7/..", "/api/v1/reports/", nil},
		{"/api/v1/reports/../admin", "/api/v1/admin", nil},
		{"/api/v1/reports/%2e%2e/admin", "/api/v1/admin", nil},
		{"/api/v1/reports/.%2E/admin", "/api/v1/admin", nil},
		{"/api/v1/%72eports", "/api/v1/reports", nil},
		{"/api/v1/reports/a%20b", "/api/v1/reports/a b", nil},
		{"/api/v1/reports/%C3%A9t%C3%A9", "/api/v1/reports/été", nil},
		{"/API/V1/Reports", "/API/V1/Reports", nil},
		{"/api/v1/reports..", "/api/v1/reports..", nil},
		{"/a/.b/..c", "/a/.b/..c", nil},

		{"", "", ErrEmpty},
		{"api/v1/reports", "", ErrNotAbsolute},
		{"*", "", ErrNotAbsolute},
		{"http://evil/api/v1/reports", "", ErrNotAbsolute},
		{"?x=/api", "", ErrNotAbsolute},
		{"/" + strings.Repeat("a", MaxTargetLength), "", ErrTooLong},
		{"/api/v1/reports%2F..%2F..%2Fadmin", "", ErrEncodedSpecial},
		{"/api/v1/reports%2f..", "", ErrEncodedSpecial},
		{"/api/v1/reports%5C..%5Cadmin", "", ErrEncodedSpecial},
		{"/api/v1/reports/%252e%252e/admin", "", ErrEncodedSpecial},
		{"/admin%3F/../api/v1/reports", "", ErrEncodedSpecial},
		{"/admin%23/../api/v1/reports", "", ErrEncodedSpecial},
		{"/api/v1/reports%3B/../admin", "", ErrEncodedSpecial},
		{"/api/v1/reports\\..\\admin", "", ErrBackslash},
		{"/api/v1/reports/..;/admin", "", ErrPathParameter},
		{"/api/v1/reports;jsessionid=1", "", ErrPathParameter},
		{"/api/v1//reports", "", ErrEmptySegment},
		{"//api/v1/reports", "", ErrEmptySegment},
		{"/api/v1/reports//../admin", "", ErrEmptySegment},
		{"/..", "", ErrAboveRoot},
		{"/../api/v1/reports", "", ErrAboveRoot},
		{"/api/%2e%2e/%2e%2e/%2e%2e/x", "", ErrAboveRoot},
		{"/api/v1/reports%00/../../admin", "", ErrControl},
		{"/api/v1/reports\x00", "", ErrControl},
		{"/api/v1/reports%0d%0aX:%20y", "", ErrControl},
		{"/api/v1/reports\t", "", ErrControl},
		{"/api/v1/reports%", "", ErrBadEscape},
		{"/api/v1/reports%2", "", ErrBadEscape},
		{"/api/v1/reports%zz", "", ErrBadEscape},
		{"/api/v1/reports%c0%af..%c0%afadmin", "", ErrInvalidChar},
		{"/api/v1/reports\xc0\xaf", "", ErrInvalidChar},
		{"/api/v1/reports /x", "", ErrInvalidChar},
		{"/api/v1/reports#/../admin", "", ErrInvalidChar},
	} {
		got, err := Normalize(tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rule
		ok   bool
	}{
		{"GET /api/v1/reports", Rule{"GET", "/api/v1/reports"}, true},
		{"* /api/v1/reports", Rule{"*", "/api/v1/reports"}, true},
		{"POST /", Rule{"POST", "/"}, true},
		{"GET /v1/things:batchGet", Rule{"GET", "/v1/things:batchGet"}, true},
		{"GET", Rule{}, false},
		{"GET ", Rule{}, false},
		{"get /api", Rule{}, false},
		{"GET api/v1", Rule{}, false},
		{"GET  /api", Rule{}, false},
		{"GET /api/", Rule{}, false},
		{"GET /api//v1", Rule{}, false},
		{"GET /api/../admin", Rule{}, false},
		{"GET /api/./v1", Rule{}, false},
		{"GET /api?x=1", Rule{}, false},
		{"GET /api%2F", Rule{}, false},
		{"GET /api;x", Rule{}, false},
		{"G-T /api", Rule{}, false},
		{"GET /" + strings.Repeat("a", 300), Rule{}, false},
	} {
		got, err := ParseRule(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRule(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// scoped is the grant of the bypass table: reports may be read, and
// anything may be done under /api/v1/drafts.
var scoped = []string{"GET /api/v1/reports", "* /api/v1/drafts"}

// TestAllowedBypassAttempts is the request-scope table: the allowed
// requests, other methods and prefixes, and attempts to reach a path outside
// the scope with one the matcher might read as inside.
func TestAllowedBypassAttempts(t *testing.T) {
	for _, tc := range []struct {
		name, method, target string
		allowed              bool
	}{
		{"exact prefix", "GET", "/api/v1/reports", true},
		{"under the prefix", "GET", "/api/v1/reports/2026/q1.csv", true},
		{"with a query", "GET", "/api/v1/reports?since=2026", true},
		{"trailing slash", "GET", "/api/v1/reports/", true},
		{"dot segment inside", "GET", "/api/v1/./reports/7", true},
		{"encoded unreserved", "GET", "/api/v1/%72eports", true},
		{"any method on drafts", "DELETE", "/api/v1/drafts/9", true},
		{"extension method on drafts", "PROPFIND", "/api/v1/drafts", true},

		{"other method", "POST", "/api/v1/reports", false},
		{"HEAD is not GET", "HEAD", "/api/v1/reports", false},
		{"other prefix", "GET", "/api/v1/admin", false},
		{"root", "GET", "/", false},
		{"sibling with the prefix as its start", "GET", "/api/v1/reportsX", false},
		{"sibling with a dash", "GET", "/api/v1/reports-admin", false},
		{"parent", "GET", "/api/v1", false},

		// Bypass attempts.
		{"dot-dot", "GET", "/api/v1/reports/../admin", false},
		{"encoded dot-dot", "GET", "/api/v1/reports/%2e%2e/admin", false},
		{"upper-case encoded dot-dot", "GET", "/api/v1/reports/%2E%2E/admin", false},
		{"half-encoded dot-dot", "GET", "/api/v1/reports/.%2e/admin", false},
		{"double-encoded dot-dot", "GET", "/api/v1/reports/%252e%252e/admin", false},
		{"encoded slash", "GET", "/api/v1/reports%2F..%2F..%2Fadmin", false},
		{"encoded slash to a sibling", "GET", "/api/v1/reports%2Fx", false},
		{"encoded backslash", "GET", "/api/v1/reports%5C..%5Cadmin", false},
		{"backslash", "GET", "/api/v1/reports\\..\\admin", false},
		{"double slash", "GET", "/api/v1/reports//../admin", false},
		{"leading double slash", "GET", "//api/v1/reports", false},
		{"path parameter dot-dot (Tomcat)", "GET", "/api/v1/reports/..;/admin", false},
		{"path parameter", "GET", "/api/v1/reports;x=1", false},
		{"encoded semicolon", "GET", "/api/v1/reports%3b/../admin", false},
		{"NUL", "GET", "/api/v1/reports%00/../../admin", false},
		{"encoded question mark", "GET", "/admin%3F/../api/v1/reports", false},
		{"overlong UTF-8 slash", "GET", "/api/v1/reports%c0%af..%c0%afadmin", false},
		{"query hides nothing", "GET", "/admin?/api/v1/reports", false},
		{"absolute form", "GET", "http://api/api/v1/reports", false},
		{"lower-case method", "get", "/api/v1/reports", false},
		{"mixed-case method", "Get", "/api/v1/reports", false},
		{"method with a space", "GET /api/v1/reports", "/api/v1/reports", false},
		{"missing original URI", "GET", "", false},
		{"missing original method", "", "/api/v1/reports", false},
		{"relative path", "GET", "api/v1/reports", false},
		{"case-changed prefix", "GET", "/API/v1/reports", false},
	} {
		got, err := Allowed(scoped, tc.method, tc.target)
		if got != tc.allowed {
			t.Errorf("%s: Allowed(%q, %q) = %v (%v), want %v", tc.name, tc.method, tc.target, got, err, tc.allowed)
		}
	}
}

func TestAllowedIgnoresRulesItCannotRead(t *testing.T) {
	// A rule the schema would have refused matches nothing, even when it
	// looks like a prefix of the path.
	for _, rules := range [][]string{{"GET /api/"}, {"get /api"}, {"GET api"}, {"GET"}, {"GET /api/../x"}} {
		if ok, _ := Allowed(rules, "GET", "/api/x"); ok {
			t.Errorf("Allowed(%q) = true, want false: the rule is invalid", rules)
		}
	}
	if ok, _ := Allowed(nil, "GET", "/api/x"); ok {
		t.Errorf("Allowed(nil) = true: the caller decides what no rules mean, not Allowed")
	}
}

func TestNormalizeSimplePathDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		if _, err := Normalize("/api/v1/reports/2026?x=1"); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Normalize of a plain path allocates %v times, want 0", n)
	}
}

// FuzzAllowed: whatever Allowed lets through is, read by an independent
// decoder (net/url and path.Clean), under the prefix of a rule whose method
// matches, and carries none of the characters Normalize refuses.
func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"/api/v1/reports", "/api/v1/reports/../admin", "/api/v1/reports/%2e%2e/admin",
		"/api/v1/reports%2F..", "/api/v1/reports//x", "/api/v1/reports;x", "/api/v1/reports/..;/admin",
		"/api/v1/%72eports/x?y", "/api/v1/reports/a/b/../../..", "/api/v1/drafts/%c3%a9", "/x/../api/v1/reports"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		ok, err := Allowed(scoped, method, target)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("allowed with an error: %v", err)
		}
		raw, _, _ := strings.Cut(target, "?")
		dec, uerr := url.PathUnescape(raw)
		if uerr != nil {
			t.Fatalf("allowed %q, which net/url cannot decode: %v", target, uerr)
		}
		if strings.ContainsAny(dec, "\\;\x00#?") || strings.Contains(raw, "//") {
			t.Fatalf("allowed %q, which holds a character or '//' the matcher must refuse", target)
		}
		clean := path.Clean(dec)
		under := false
		for _, s := range scoped {
			r, _ := ParseRule(s)
			if (r.Method == "*" || r.Method == method) && (clean == r.Prefix || strings.HasPrefix(clean, r.Prefix+"/")) {
				under = true
			}
		}
		if !under {
			t.Fatalf("allowed %s %q, which path.Clean reads as %q: outside every rule", method, target, clean)
		}
		n, _ := Normalize(target)
		if strings.TrimSuffix(n, "/") != clean {
			t.Fatalf("Normalize(%q) = %q, path.Clean reads %q", target, n, clean)
		}
	})
}
