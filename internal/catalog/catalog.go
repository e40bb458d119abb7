package catalog

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/latchkey-dev/latchkey/internal/permissions"
)

const (
	// APIVersion and Kind may head a catalog document; both are optional,
	// and when present must have these values.
	APIVersion = "latchkey.dev/v1alpha1"
	Kind       = "PermissionCatalog"
	// ConfigMapKey is the key of the catalog in its ConfigMap.
	ConfigMapKey = "catalog.yaml"
	// MaxSize bounds a catalog document (a ConfigMap holds at most 1 MiB).
	MaxSize = 1 << 20
)

// Scope is one area of the API in the catalog.
type Scope struct {
	// Name of the scope, a DNS label such as "blogs".
	Name string
	// Global scopes need no tenant: a client whose every scope is global is
	// not bound to an organization.
	Global bool
	// Description is free text for humans.
	Description string
	// Permissions of the scope, each "<Name>.<...>", in catalog order.
	Permissions []string
}

// Catalog is a parsed, validated permission catalog. It is immutable; a nil
// *Catalog means "no catalog configured" and its methods must not be called.
type Catalog struct {
	scopes      []Scope
	byName      map[string]int
	permissions map[string]struct{}
}

// document is the YAML shape of a catalog.
type document struct {
	APIVersion string     `json:"apiVersion,omitempty"`
	Kind       string     `json:"kind,omitempty"`
	Scopes     []scopeDoc `json:"scopes"`
}

type scopeDoc struct {
	Name        string   `json:"name"`
	Global      bool     `json:"global,omitempty"`
	Description string   `json:"description,omitempty"`
	Permissions []string `json:"permissions"`
}

// Load parses and validates a catalog document.
func Load(data []byte) (*Catalog, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("catalog is %d bytes, at most %d are allowed", len(data), MaxSize)
	}
	var doc document
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing catalog: %w", err)
	}
	if doc.APIVersion != "" && doc.APIVersion != APIVersion {
		return nil, fmt.Errorf("apiVersion: %q is not supported, use %q or leave it out", doc.APIVersion, APIVersion)
	}
	if doc.Kind != "" && doc.Kind != Kind {
		return nil, fmt.Errorf("kind: %q is not supported, use %q or leave it out", doc.Kind, Kind)
	}
	if len(doc.Scopes) == 0 {
		return nil, errors.New("scopes: the catalog lists no scopes, so no ApiClient could be admitted: list at least one scope, or do not configure a catalog")
	}
	var errs []error
	c := &Catalog{byName: map[string]int{}, permissions: map[string]struct{}{}}
	for i, sd := range doc.Scopes {
		at := fmt.Sprintf("scopes[%d]", i)
		if err := permissions.ValidScope(sd.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", at, err))
			continue
		}
		if j, dup := c.byName[sd.Name]; dup {
			errs = append(errs, fmt.Errorf("%s.name: scope %q is already listed at scopes[%d]: list each scope once", at, sd.Name, j))
			continue
		}
		s := Scope{Name: sd.Name, Global: sd.Global, Description: sd.Description}
		for k, p := range sd.Permissions {
			pat := fmt.Sprintf("%s.permissions[%d]", at, k)
			if err := permissions.Valid(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", pat, err))
				continue
			}
			if ps := permissions.Scope(p); ps != sd.Name {
				errs = append(errs, fmt.Errorf("%s: permission %q is listed under scope %q but belongs to scope %q: move it under scope %q", pat, p, sd.Name, ps, ps))
				continue
			}
			if _, dup := c.permissions[p]; dup {
				errs = append(errs, fmt.Errorf("%s: permission %q is listed twice: list each permission once", pat, p))
				continue
			}
			c.permissions[p] = struct{}{}
			s.Permissions = append(s.Permissions, p)
		}
		c.byName[s.Name] = len(c.scopes)
		c.scopes = append(c.scopes, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadFile reads and parses a catalog file.
func LoadFile(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading permission catalog: %w", err)
	}
	c, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("permission catalog %s: %w", path, err)
	}
	return c, nil
}

// Merge combines catalogs from several sources (the file and the
// ConfigMap). nil catalogs are skipped; the result is nil when all are. A
// scope may be defined in one source only, so no source can silently widen
// or re-flag another's scope.
func Merge(parts ...*Catalog) (*Catalog, error) {
	var out *Catalog
	for _, p := range parts {
		if p == nil {
			continue
		}
		if out == nil {
			out = &Catalog{byName: map[string]int{}, permissions: map[string]struct{}{}}
		}
		for _, s := range p.scopes {
			if _, dup := out.byName[s.Name]; dup {
				return nil, fmt.Errorf("scope %q is defined in more than one catalog source (file and ConfigMap): define each scope in one of them", s.Name)
			}
			out.byName[s.Name] = len(out.scopes)
			out.scopes = append(out.scopes, s)
			for _, perm := range s.Permissions {
				out.permissions[perm] = struct{}{}
			}
		}
	}
	return out, nil
}

// Scopes returns the catalog's scopes in order.
func (c *Catalog) Scopes() []Scope { return slices.Clone(c.scopes) }

// Scope returns the named scope.
func (c *Catalog) Scope(name string) (Scope, bool) {
	i, ok := c.byName[name]
	if !ok {
		return Scope{}, false
	}
	return c.scopes[i], true
}

// HasScope reports whether the catalog lists the scope.
func (c *Catalog) HasScope(name string) bool {
	_, ok := c.byName[name]
	return ok
}

// HasPermission reports whether the catalog lists the permission.
func (c *Catalog) HasPermission(p string) bool {
	_, ok := c.permissions[p]
	return ok
}

// IsGlobal reports whether the scope is listed and global.
func (c *Catalog) IsGlobal(name string) bool {
	s, ok := c.Scope(name)
	return ok && s.Global
}

// ScopeNames returns the names of the catalog's scopes in order.
func (c *Catalog) ScopeNames() []string {
	out := make([]string, len(c.scopes))
	for i, s := range c.scopes {
		out[i] = s.Name
	}
	return out
}
