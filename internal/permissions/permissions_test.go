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

func TestEffective(t *testing.T) {
	client := []string{"blogs.read", "blogs.write", "system.x"}
	tests := []struct {
		name  string
		grant []string
		want  []string
	}{
		{name: "none named: all of the client's", grant: nil, want: client},
		{name: "empty list: all of the client's", grant: []string{}, want: client},
		{name: "a subset", grant: []string{"blogs.write"}, want: []string{"blogs.write"}},
		{name: "the grant's order", grant: []string{"system.x", "blogs.read"}, want: []string{"system.x", "blogs.read"}},
		{name: "removed from the client: gone from the grant", grant: []string{"blogs.read", "blogs.delete"}, want: []string{"blogs.read"}},
		{name: "nothing in common: nothing, not everything", grant: []string{"blogs.delete"}, want: []string{}},
		{name: "duplicates", grant: []string{"blogs.read", "blogs.read"}, want: []string{"blogs.read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Effective(tt.grant, client)
			if got == nil || !slices.Equal(got, tt.want) {
				t.Errorf("Effective = %#v, want %q", got, tt.want)
			}
			if len(tt.grant) > 0 && !slices.Equal(got, Intersect(tt.grant, client)) {
				t.Errorf("Effective = %q, Intersect = %q: the two must agree", got, Intersect(tt.grant, client))
			}
		})
	}
	if got := Effective(nil, nil); got == nil || len(got) != 0 {
		t.Errorf("Effective(nil, nil) = %#v, want an empty non-nil list", got)
	}
}

// TestEffectiveAllocations: the verifier calls Effective on every grant
// request; it may allocate only the result.
func TestEffectiveAllocations(t *testing.T) {
	client := []string{"blogs.read", "blogs.write", "system.x"}
	if n := testing.AllocsPerRun(100, func() { _ = Effective(nil, client) }); n != 0 {
		t.Errorf("Effective with no grant permissions: %v allocations, want 0", n)
	}
	grant := []string{"blogs.read", "system.x"}
	if n := testing.AllocsPerRun(100, func() { _ = Effective(grant, client) }); n > 1 {
		t.Errorf("Effective: %v allocations, want at most 1 (the result)", n)
	}
}
