package permissions

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		scope   string
		names   []string
		wantErr string
	}{
		{in: "blogs.read", scope: "blogs", names: []string{"read"}},
		{in: "system.organizations.update", scope: "system", names: []string{"organizations", "update"}},
		{in: "my-scope.read_all", scope: "my-scope", names: []string{"read_all"}},
		{in: "a1.b-c.d_e.f", scope: "a1", names: []string{"b-c", "d_e", "f"}},
		{in: "", wantErr: "empty"},
		{in: "blogs", wantErr: "has no scope"},
		{in: "blogs.", wantErr: "invalid part \"\""},
		{in: ".read", wantErr: "scope is empty"},
		{in: "Blogs.read", wantErr: "not a DNS label"},
		{in: "blogs.Read", wantErr: "invalid part"},
		{in: "my_scope.read", wantErr: "not a DNS label"},
		{in: "-blogs.read", wantErr: "not a DNS label"},
		{in: "blogs.read-", wantErr: "invalid part"},
		{in: "blogs.-read", wantErr: "invalid part"},
		{in: "blogs..read", wantErr: "invalid part"},
		{in: "blogs.re ad", wantErr: "invalid part"},
		{in: strings.Repeat("a", 64) + ".read", wantErr: "at most 63"},
		{in: "blogs." + strings.Repeat("a", 250), wantErr: "at most 253"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			scope, names, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if Valid(tt.in) == nil {
					t.Fatalf("Valid(%q) = nil, want an error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if scope != tt.scope || !slices.Equal(names, tt.names) {
				t.Fatalf("Parse(%q) = %q %q, want %q %q", tt.in, scope, names, tt.scope, tt.names)
			}
			if Scope(tt.in) != tt.scope {
				t.Fatalf("Scope(%q) = %q, want %q", tt.in, Scope(tt.in), tt.scope)
			}
		})
	}
}

func TestScope(t *testing.T) {
	for in, want := range map[string]string{"blogs.read": "blogs", "blogs": "", "": "", "a.b.c": "a", ".x": ""} {
		if got := Scope(in); got != want {
			t.Errorf("Scope(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBelongsTo(t *testing.T) {
	scopes := []string{"blogs", "system"}
	for in, want := range map[string]bool{"blogs.read": true, "system.a.b": true, "blogsx.read": false, "blog.read": false, "blogs": false} {
		if got := BelongsTo(in, scopes); got != want {
			t.Errorf("BelongsTo(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestSubsetIntersectAdded(t *testing.T) {
	tests := []struct {
		name               string
		a, b               []string
		missing, intersect []string
	}{
		{name: "both empty", intersect: []string{}},
		{name: "empty sub", b: []string{"x.a"}, intersect: []string{}},
		{name: "equal", a: []string{"x.a", "x.b"}, b: []string{"x.b", "x.a"}, intersect: []string{"x.a", "x.b"}},
		{name: "wider", a: []string{"x.a", "x.c", "x.c", "y.d"}, b: []string{"x.a"}, missing: []string{"x.c", "y.d"}, intersect: []string{"x.a"}},
		{name: "disjoint", a: []string{"x.a"}, b: []string{"x.b"}, missing: []string{"x.a"}, intersect: []string{}},
		{name: "duplicates in a", a: []string{"x.a", "x.a"}, b: []string{"x.a"}, intersect: []string{"x.a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subset(tt.a, tt.b); !slices.Equal(got, tt.missing) {
				t.Errorf("Subset = %q, want %q", got, tt.missing)
			}
			if got := Added(tt.b, tt.a); !slices.Equal(got, tt.missing) {
				t.Errorf("Added = %q, want %q", got, tt.missing)
			}
			got := Intersect(tt.a, tt.b)
			if got == nil || !slices.Equal(got, tt.intersect) {
				t.Errorf("Intersect = %#v, want %q", got, tt.intersect)
			}
		})
	}
}

// crdPattern is the CRD schema's pattern for a permission; Parse must never
// accept what the API server would reject.
var crdPattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9_]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9_]*[a-z0-9])?)+$`)

func FuzzParsePermission(f *testing.F) {
	for _, s := range []string{"blogs.read", "system.organizations.update", "a.b", "", ".", "a..b", "A.b", "a-.b", "a.b_", "x.y.z.w", "é.a", "a.b\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		scope, names, err := Parse(p)
		if err != nil {
			if Valid(p) == nil {
				t.Fatalf("Parse(%q) failed but Valid accepted it", p)
			}
			return
		}
		if !crdPattern.MatchString(p) || len(p) > MaxLength {
			t.Fatalf("Parse accepted %q, which the CRD schema rejects", p)
		}
		if scope != Scope(p) || ValidScope(scope) != nil {
			t.Fatalf("Parse(%q) scope %q, Scope() %q", p, scope, Scope(p))
		}
		if got := scope + "." + strings.Join(names, "."); got != p {
			t.Fatalf("Parse(%q) does not round-trip: %q", p, got)
		}
		if !BelongsTo(p, []string{scope}) || len(Subset([]string{p}, []string{p})) != 0 {
			t.Fatalf("set helpers disagree for %q", p)
		}
	})
}
