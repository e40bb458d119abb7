package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// The patterns of the CRD schema (api/v1alpha1), checked here first so that a
// mistake gets a message about the flag rather than about a field path.
var (
	scopePattern      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	permissionPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9_]*[a-z0-9])?)+$`)
	tenantPattern     = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	clientIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]*$`)
)

func validateFormat(f string) error {
	switch f {
	case FormatJSON, FormatText:
		return nil
	}
	return fmt.Errorf("unknown --format %q: use json or text", f)
}

// createRequest is what create was asked for, before any API call.
type createRequest struct {
	Scopes           []string
	Permissions      []string
	Tenant           string
	OrganizationID   string
	Name             string
	ID               string
	Secret           string
	SecretSet        bool
	AllowImpersonate bool
	AllowLogin       bool
}

// tenant is the tenant in effect: --tenant or its Decidim spelling
// --organization-id.
func (r createRequest) tenant() string {
	if r.OrganizationID != "" {
		return r.OrganizationID
	}
	return r.Tenant
}

// validate checks a create request the way the API would, with messages that
// name the flags. It also removes duplicate scopes and permissions (the API
// stores them as sets).
func (r *createRequest) validate() error {
	if r.Tenant != "" && r.OrganizationID != "" {
		return fmt.Errorf("--tenant and --organization-id are the same setting: give only one")
	}
	if len(r.Scopes) == 0 {
		return fmt.Errorf("--scope is required: give each area of the API the client may touch, for example --scope system or --scope blogs")
	}
	r.Scopes = dedupe(r.Scopes)
	for _, s := range r.Scopes {
		if !scopePattern.MatchString(s) || len(s) > 63 {
			return fmt.Errorf("invalid --scope %q: a scope is a lower-case DNS label such as blogs or system", s)
		}
	}
	r.Permissions = dedupe(r.Permissions)
	if err := validatePermissions(r.Permissions, r.Scopes); err != nil {
		return err
	}
	t := r.tenant()
	if t == "" {
		for _, s := range r.Scopes {
			if s != latchkeyv1alpha1.DefaultGlobalScope {
				return fmt.Errorf("--tenant (or --organization-id) is required: scope %q is bound to an organization; only the %q scope needs none", s, latchkeyv1alpha1.DefaultGlobalScope)
			}
		}
	} else if !tenantPattern.MatchString(t) || len(t) > 253 {
		return fmt.Errorf("invalid tenant %q: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit", t)
	}
	if r.ID != "" && (!clientIDPattern.MatchString(r.ID) || len(r.ID) < 3 || len(r.ID) > 128) {
		return fmt.Errorf("invalid --id %q: a client id is 3 to 128 characters, letters, digits, '.', '_', '~' and '-', starting with a letter or digit", r.ID)
	}
	if r.SecretSet && r.Secret == "" {
		return fmt.Errorf("--secret is empty: give the client secret, or leave the flag out to have one generated")
	}
	if len(r.Name) > 256 {
		return fmt.Errorf("--name is longer than 256 characters")
	}
	return nil
}

// validatePermissions checks that each permission has the permission shape
// and lies under one of scopes.
func validatePermissions(perms, scopes []string) error {
	for _, p := range perms {
		if !permissionPattern.MatchString(p) || len(p) > 253 {
			return fmt.Errorf("invalid --permission %q: a permission is <scope>.<name>[.<name>...] in lower case, for example blogs.read", p)
		}
		if !underScopes(p, scopes) {
			return fmt.Errorf("--permission %q is not valid for scopes %s: each permission must start with one of the client's scopes and a dot; scopes are fixed at creation, so create a new client for another scope", p, strings.Join(scopes, ","))
		}
	}
	return nil
}

func underScopes(p string, scopes []string) bool {
	for _, s := range scopes {
		if strings.HasPrefix(p, s+".") {
			return true
		}
	}
	return false
}

func requirePermissions(perms []string, verb string) error {
	if len(perms) == 0 {
		return fmt.Errorf("--permission is required: give at least one permission to %s, for example --permission blogs.read", verb)
	}
	return nil
}

func requireID(id string) error {
	if id == "" {
		return fmt.Errorf("--id is required: give the client id (list them with 'get')")
	}
	return nil
}

func validateType(t string) error {
	switch latchkeyv1alpha1.CredentialType(t) {
	case latchkeyv1alpha1.CredentialTypeBearer, latchkeyv1alpha1.CredentialTypeKeyAuth, latchkeyv1alpha1.CredentialTypeBasicAuth:
		return nil
	}
	return fmt.Errorf("unknown --type %q: use bearer, key-auth or basic-auth", t)
}

// parseExpiry turns --expires-in (a duration; "d" for days is accepted) or
// --expires-at (RFC 3339) into an absolute time; nil when neither is given.
func parseExpiry(in, at string, now time.Time) (*time.Time, error) {
	switch {
	case in != "" && at != "":
		return nil, fmt.Errorf("--expires-in and --expires-at both say when the token expires: give only one")
	case in != "":
		d, err := parseDuration(in)
		if err != nil {
			return nil, fmt.Errorf("invalid --expires-in %q: use a duration such as 30m, 12h or 90d", in)
		}
		t := now.Add(d).UTC().Truncate(time.Second)
		return &t, nil
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, fmt.Errorf("invalid --expires-at %q: use RFC 3339, for example 2030-01-02T15:04:05Z", at)
		}
		return &t, nil
	}
	return nil, nil
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// dedupe keeps the first occurrence of each value, in order.
func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
