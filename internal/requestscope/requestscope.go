package requestscope

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxTargetLength bounds the original request target the verifier reads; a
// longer one is refused rather than normalised.
const MaxTargetLength = 8 << 10

// maxMethodLength bounds an HTTP method token.
const maxMethodLength = 32

// maxRuleLength is the schema's limit on an entry of spec.allowedRequests.
const maxRuleLength = 256

// Why a request target or a rule is refused. The verifier logs these; the
// caller only learns that its request is outside the credential's scope.
var (
	ErrEmpty          = errors.New("no original request path")
	ErrTooLong        = errors.New("original request path too long")
	ErrNotAbsolute    = errors.New("original request path does not start with '/'")
	ErrControl        = errors.New("control character or NUL in the path")
	ErrBackslash      = errors.New("backslash in the path")
	ErrPathParameter  = errors.New("';' path parameter in the path")
	ErrEncodedSpecial = errors.New("percent-encoded '/', '\\', '%', ';', '?' or '#' in the path")
	ErrBadEscape      = errors.New("malformed percent-encoding in the path")
	ErrEmptySegment   = errors.New("empty path segment ('//')")
	ErrAboveRoot      = errors.New("'..' climbs above the root")
	ErrInvalidChar    = errors.New("space, '#' or invalid UTF-8 in the path")
	ErrBadMethod      = errors.New("the method is not an HTTP method token")
	ErrBadRule        = errors.New("not a rule of the form 'METHOD /path/prefix'")
)

// Rule is one entry of spec.allowedRequests: a method ("*" for any) and a
// path prefix that covers itself and every path under it.
type Rule struct {
	Method string
	Prefix string
}

// ParseRule reads "METHOD /path/prefix" with the schema's rules: METHOD is
// "*" or upper-case letters; the prefix is "/" or segments of
// [-A-Za-z0-9._~:@] joined by single slashes, none "." or "..", with no
// trailing slash. The verifier parses again what the API server validated,
// so that an entry it cannot read matches nothing (fail closed).
func ParseRule(s string) (Rule, error) {
	if len(s) > maxRuleLength {
		return Rule{}, ErrBadRule
	}
	m, p, ok := strings.Cut(s, " ")
	if !ok || m == "" || p == "" || p[0] != '/' {
		return Rule{}, ErrBadRule
	}
	if m != "*" {
		for i := 0; i < len(m); i++ {
			if m[i] < 'A' || m[i] > 'Z' {
				return Rule{}, ErrBadRule
			}
		}
	}
	if p != "/" {
		for seg := range strings.SplitSeq(p[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return Rule{}, ErrBadRule
			}
			for i := 0; i < len(seg); i++ {
				if !ruleChar(seg[i]) {
					return Rule{}, ErrBadRule
				}
			}
		}
	}
	return Rule{Method: m, Prefix: p}, nil
}

func ruleChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '@'
}

// Match reports whether a request with this method and normalised path (see
// Normalize) is inside the rule. Methods compare exactly: HTTP methods are
// case-sensitive (RFC 9110 §9.1), so "get" is not GET. The prefix matches
// whole segments: "/api/v1/reports" covers "/api/v1/reports" and
// "/api/v1/reports/7", never "/api/v1/reportsX".
func (r Rule) Match(method, path string) bool {
	if r.Method != "*" && r.Method != method {
		return false
	}
	if r.Prefix == "/" {
		return strings.HasPrefix(path, "/")
	}
	return strings.HasPrefix(path, r.Prefix) && (len(path) == len(r.Prefix) || path[len(r.Prefix)] == '/')
}

// ValidMethod reports whether m is an HTTP method token (RFC 9110 §5.6.2),
// of at most 32 characters.
func ValidMethod(m string) bool {
	if m == "" || len(m) > maxMethodLength {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !tchar(m[i]) {
			return false
		}
	}
	return true
}

func tchar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Allowed reports whether the original request (method and request target
// as the client sent it, query included or not) is inside one of rules. A
// rule that does not parse matches nothing. An error says why the request
// could not be matched at all (an ambiguous path, a bad method): the caller
// refuses it like a request outside the rules.
func Allowed(rules []string, method, target string) (bool, error) {
	if !ValidMethod(method) {
		return false, ErrBadMethod
	}
	p, err := Normalize(target)
	if err != nil {
		return false, err
	}
	for _, s := range rules {
		if r, err := ParseRule(s); err == nil && r.Match(method, p) {
			return true, nil
		}
	}
	return false, nil
}

// Normalize returns the path of an origin-form request target (RFC 9112
// §3.2.1, "/path?query") in the form rules are matched against, or an error
// when the path is ambiguous: when gateways, frameworks and file systems
// could read it as different paths, it is refused instead of guessed.
//
//   - The query (from the first '?') is dropped; a '#' is refused.
//   - Percent-encoded octets are decoded (RFC 3986 §6.2.2.2), except that an
//     encoded '/', '\', '%', ';', '?' or '#' is refused: whether a backend
//     decodes "%2F" into a separator, or decodes "%25" twice, differs.
//   - '.' segments are removed and '..' segments remove the one before
//     (RFC 3986 §5.2.4), after decoding, so "%2e%2e" is "..". A '..' above
//     the root is refused.
//   - An empty segment ("//") is refused: some backends merge slashes and
//     some do not.
//   - ';' (path parameters, which Tomcat and Spring strip, so "..;" is
//     ".." there), '\' (a separator on Windows and to some servers), raw
//     spaces, control characters, NUL and invalid UTF-8 are refused.
//   - Case is kept: paths are case-sensitive.
//
// A path that needs none of this is returned as a substring of target,
// without allocating.
func Normalize(target string) (string, error) {
	if target == "" {
		return "", ErrEmpty
	}
	if len(target) > MaxTargetLength {
		return "", ErrTooLong
	}
	p := target
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" || p[0] != '/' {
		return "", ErrNotAbsolute
	}
	simple := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return "", ErrControl
		case c == '\\':
			return "", ErrBackslash
		case c == ';':
			return "", ErrPathParameter
		case c == ' ' || c == '#':
			return "", ErrInvalidChar
		case c == '%' || c >= 0x80:
			simple = false
		case c == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.'):
			simple = false
		}
	}
	if simple {
		return p, nil
	}
	dec, err := decode(p)
	if err != nil {
		return "", err
	}
	return resolve(dec)
}

// decode percent-decodes p, refusing octets that would change how the path
// splits or whether it is decoded again.
func decode(p string) (string, error) {
	if strings.IndexByte(p, '%') < 0 {
		if !utf8.ValidString(p) {
			return "", ErrInvalidChar
		}
		return p, nil
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(p) || !ishex(p[i+1]) || !ishex(p[i+2]) {
			return "", ErrBadEscape
		}
		d := unhex(p[i+1])<<4 | unhex(p[i+2])
		switch {
		case d < 0x20 || d == 0x7f:
			return "", ErrControl
		case d == '/' || d == '\\' || d == '%' || d == ';' || d == '?' || d == '#':
			return "", ErrEncodedSpecial
		}
		b.WriteByte(d)
		i += 2
	}
	s := b.String()
	if !utf8.ValidString(s) {
		// Overlong forms of '/' and '.' (%c0%af) are invalid UTF-8.
		return "", ErrInvalidChar
	}
	return s, nil
}

// resolve removes dot segments from an absolute, decoded path and refuses
// empty segments and '..' above the root. The result keeps a trailing slash
// when the path had one or ended in a dot segment.
func resolve(p string) (string, error) {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		trailing = false
		switch s {
		case "":
			if !last {
				return "", ErrEmptySegment
			}
			trailing = i > 0
		case ".":
			trailing = true
		case "..":
			if len(out) == 0 {
				return "", ErrAboveRoot
			}
			out = out[:len(out)-1]
			trailing = true
		default:
			out = append(out, s)
		}
	}
	r := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		r += "/"
	}
	return r, nil
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
