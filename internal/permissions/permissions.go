package permissions

import (
	"fmt"
	"slices"
	"strings"
)

const (
	// MaxLength is the longest permission, as in the CRD schema.
	MaxLength = 253
	// MaxScopeLength is the longest scope: a DNS label.
	MaxScopeLength = 63
)

// Scope returns the scope a permission belongs to: the part before the first
// dot, or "" when there is no dot. It does not validate p.
func Scope(p string) string {
	scope, _, ok := strings.Cut(p, ".")
	if !ok {
		return ""
	}
	return scope
}

// Parse splits a permission into its scope and its names, checking the
// format: the scope is a DNS label (lower-case letters, digits and '-',
// starting and ending with a letter or digit, at most 63 characters); every
// name is lower-case letters, digits, '-' and '_', starting and ending with a
// letter or digit; there is at least one name; the whole is at most 253
// characters.
func Parse(p string) (scope string, names []string, err error) {
	if p == "" {
		return "", nil, fmt.Errorf("permission is empty: write it as <scope>.<name>, for example 'blogs.read'")
	}
	if len(p) > MaxLength {
		return "", nil, fmt.Errorf("permission is %d characters long, at most %d are allowed", len(p), MaxLength)
	}
	parts := strings.Split(p, ".")
	if len(parts) < 2 {
		return "", nil, fmt.Errorf("permission %q has no scope: write it as <scope>.<name>, for example 'blogs.read'", p)
	}
	if err := ValidScope(parts[0]); err != nil {
		return "", nil, fmt.Errorf("permission %q: %w", p, err)
	}
	for _, n := range parts[1:] {
		if !validName(n) {
			return "", nil, fmt.Errorf("permission %q has an invalid part %q: each part after the scope is lower-case letters, digits, '-' and '_', starting and ending with a letter or digit", p, n)
		}
	}
	return parts[0], parts[1:], nil
}

// Valid returns an error saying what is wrong with p, or nil.
func Valid(p string) error {
	_, _, err := Parse(p)
	return err
}

// ValidScope returns an error saying what is wrong with a scope name, or nil.
func ValidScope(s string) error {
	if s == "" {
		return fmt.Errorf("scope is empty")
	}
	if len(s) > MaxScopeLength {
		return fmt.Errorf("scope %q is %d characters long, at most %d are allowed", s, len(s), MaxScopeLength)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return fmt.Errorf("scope %q is not a DNS label: use lower-case letters, digits and '-', starting and ending with a letter or digit", s)
		}
	}
	return nil
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && ((c != '-' && c != '_') || i == 0 || i == len(n)-1) {
			return false
		}
	}
	return true
}

// BelongsTo reports whether permission p is in one of the scopes.
func BelongsTo(p string, scopes []string) bool {
	s := Scope(p)
	return s != "" && slices.Contains(scopes, s)
}

// Subset returns the members of sub that are not in of, in sub's order and
// without duplicates; nil means sub ⊆ of. An empty sub is a subset of
// anything (for a CredentialGrant, empty means "all of the client's
// permissions", which the caller handles before asking).
func Subset(sub, of []string) (missing []string) {
	have := make(map[string]struct{}, len(of))
	for _, p := range of {
		have[p] = struct{}{}
	}
	seen := map[string]struct{}{}
	for _, p := range sub {
		if _, ok := have[p]; ok {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		missing = append(missing, p)
	}
	return missing
}

// Intersect returns the members of a that are also in b, in a's order and
// without duplicates. The result is never nil, so an empty intersection is
// distinguishable from "not computed" by length only.
func Intersect(a, b []string) []string {
	inB := make(map[string]struct{}, len(b))
	for _, p := range b {
		inB[p] = struct{}{}
	}
	out := []string{}
	seen := map[string]struct{}{}
	for _, p := range a {
		if _, ok := inB[p]; !ok {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		out = append(out, p)
	}
	return out
}

// Effective is what a CredentialGrant may do: the members of grant that its
// client holds, in grant's order and without duplicates, or all of client
// when grant names none. It is the one definition of the rule: the verifier
// answers with it and the controller reports against it, so removing a
// permission from a client removes it from every grant at once.
//
// It is on the verifier's hot path: when grant is empty the result is client
// itself (never nil; shared, so read-only), and otherwise the result is the
// only allocation. Both lists are short (a few dozen at most), so a nested
// loop beats a map. The result equals Intersect(grant, client).
func Effective(grant, client []string) []string {
	if len(grant) == 0 {
		if client == nil {
			return []string{}
		}
		return client
	}
	out := make([]string, 0, len(grant))
	for _, p := range grant {
		if slices.Contains(client, p) && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Added returns the members of new that are not in old: on an update, only
// these need to pass rules that depend on other objects or configuration, so
// an object that was valid when written is not locked by a later change of
// the catalog or of its client (ratcheting, as for CEL rules).
func Added(old, new []string) []string {
	return Subset(new, old)
}
