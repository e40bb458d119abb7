package catalog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadFile(t *testing.T) {
	c, err := LoadFile(filepath.Join("testdata", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ScopeNames(); !slices.Equal(got, []string{"blogs", "system"}) {
		t.Fatalf("scopes = %q", got)
	}
	if !c.HasPermission("blogs.comments.moderate") || c.HasPermission("blogs.delete") {
		t.Fatal("HasPermission wrong")
	}
	if !c.IsGlobal("system") || c.IsGlobal("blogs") || c.IsGlobal("nope") || !c.HasScope("blogs") || c.HasScope("nope") {
		t.Fatal("scope lookups wrong")
	}
	if s, _ := c.Scope("blogs"); s.Description == "" || len(s.Permissions) != 3 {
		t.Fatalf("scope blogs = %+v", s)
	}
	if _, err := LoadFile(filepath.Join("testdata", "missing.yaml")); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", ``, "lists no scopes"},
		{"no scopes", `scopes: []`, "lists no scopes"},
		{"unknown top-level field", "scope:\n- name: a\n", `unknown field "scope"`},
		{"unknown scope field", "scopes:\n- name: a\n  globl: true\n", `unknown field "globl"`},
		{"duplicate key", "scopes:\n- name: a\n  name: b\n", `"name" already set`},
		{"wrong apiVersion", "apiVersion: v1\nscopes:\n- name: a\n", "apiVersion"},
		{"wrong kind", "kind: ConfigMap\nscopes:\n- name: a\n", "kind"},
		{"bad scope name", "scopes:\n- name: Blogs\n", "scopes[0].name: scope \"Blogs\" is not a DNS label"},
		{"empty scope name", "scopes:\n- permissions: [a.b]\n", "scopes[0].name: scope is empty"},
		{"duplicate scope", "scopes:\n- name: a\n- name: a\n", "scopes[1].name: scope \"a\" is already listed at scopes[0]"},
		{"invalid permission", "scopes:\n- name: a\n  permissions: [a]\n", "scopes[0].permissions[0]: permission \"a\" has no scope"},
		{"permission under other scope", "scopes:\n- name: a\n  permissions: [b.read]\n", `listed under scope "a" but belongs to scope "b"`},
		{"duplicate permission", "scopes:\n- name: a\n  permissions: [a.x, a.x]\n", `permission "a.x" is listed twice`},
		{"wrong type", "scopes:\n- name: a\n  global: yes-please\n", "parsing catalog"},
		{"not yaml", "{[", "parsing catalog"},
		{"too large", "scopes: []\n#" + strings.Repeat("x", MaxSize), "at most"},
		{"several errors", "scopes:\n- name: a\n  permissions: [b.x, c.y]\n", `belongs to scope "c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.want)
			}
			if c != nil {
				t.Fatal("a catalog was returned with an error")
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a, err := Load([]byte("scopes:\n- name: a\n  permissions: [a.x]\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load([]byte("scopes:\n- name: b\n  global: true\n  permissions: [b.y]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Merge(nil, nil); m != nil || err != nil {
		t.Fatalf("Merge(nil, nil) = %v, %v", m, err)
	}
	m, err := Merge(a, nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasPermission("a.x") || !m.HasPermission("b.y") || !m.IsGlobal("b") || m.IsGlobal("a") {
		t.Fatalf("merged catalog wrong: %+v", m.Scopes())
	}
	if _, err := Merge(a, a); err == nil || !strings.Contains(err.Error(), "more than one catalog source") {
		t.Fatalf("Merge(a, a) error = %v", err)
	}
}

func TestStatic(t *testing.T) {
	if c, err := (Static{}).Get(); c != nil || err != nil {
		t.Fatal("empty Static must mean no catalog")
	}
}

func FuzzLoadCatalog(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "catalog.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed))
	for _, s := range []string{"", "scopes: []", "scopes:\n- name: a\n  permissions: [a.b]\n", "scopes:\n- name: a\n  name: a\n", "scopes: {}", "- a", "scopes:\n- &x {name: a}\n- *x\n", "scopes:\n- name: a\n  permissions: [b.c]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Load([]byte(doc))
		if err != nil {
			if c != nil {
				t.Fatal("catalog and error both returned")
			}
			return
		}
		// Whatever loads must be internally consistent.
		seen := map[string]bool{}
		for _, s := range c.Scopes() {
			if seen[s.Name] || !c.HasScope(s.Name) {
				t.Fatalf("scope %q duplicated or not found", s.Name)
			}
			seen[s.Name] = true
			for _, p := range s.Permissions {
				if !strings.HasPrefix(p, s.Name+".") || !c.HasPermission(p) {
					t.Fatalf("permission %q under scope %q", p, s.Name)
				}
			}
		}
		if _, err := Merge(c, c); err == nil {
			t.Fatal("merging a catalog with itself must fail")
		}
	})
}
