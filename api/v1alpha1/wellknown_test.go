package v1alpha1

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestContractNamesDefinedOnce keeps the names in wellknown.go in one place:
// no other non-test Go file of the module may spell them out.
//
//   - A name that is Latchkey's own (a Secret type, a label, annotation or
//     finalizer, a kind) may not appear as a string literal at all.
//   - A consumer-Secret data key (a constant whose name ends in "Key") is
//     also an OAuth parameter or JSON field name ("client_id", "token"), so
//     only its uses as a Secret data key are refused: an index of .Data or
//     .StringData, a key of a Data/StringData or map[string][]byte literal, a
//     const or var holding it, or a value given to something named *key*.
//
// The names are read from wellknown.go itself, so a constant added there is
// covered without touching this test.
func TestContractNamesDefinedOnce(t *testing.T) {
	names := contractNames(t)
	if len(names) < 15 {
		t.Fatalf("read only %d names from wellknown.go: the parser missed the constants", len(names))
	}
	root := moduleRoot(t)
	var files int
	var problems []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor" ||
				d.Name() == "bin" || d.Name() == "dist" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		if rel == filepath.Join("api", "v1alpha1", "wellknown.go") {
			return nil
		}
		files++
		problems = append(problems, copiesIn(t, path, rel, names)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("walked only %d Go files under %s: not the module root?", files, root)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestContractNamesCheckFindsCopies proves the check above can fail: each
// kind of copy it looks for is found in a sample.
func TestContractNamesCheckFindsCopies(t *testing.T) {
	names := contractNames(t)
	src := `package x
const keyClientSecret = "client_secret"
var _ = sec.Data["token_id"]
var _ = corev1.Secret{StringData: map[string]string{"key_secret": "v"}}
var _ = map[string][]byte{"expires_at": nil}
func f() { key := "key_id"; _ = key; _ = ref{Key: "client_secret"} }
var _ = []string{"latchkey.dev/token-id", "ApiClient"}
// Not copies: an OAuth form field, a JSON tag, a message.
var _ = r.PostForm.Get("client_id")
type T struct{ A string ` + "`json:\"client_id\"`" + ` }
var _ = "ApiClient not found"
`
	dir := t.TempDir()
	path := filepath.Join(dir, "x.go")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	got := copiesIn(t, path, "x.go", names)
	if len(got) != 8 {
		t.Fatalf("found %d copies, want 8:\n%s", len(got), strings.Join(got, "\n"))
	}
}

type contractName struct {
	constant string
	dataKey  bool
}

// contractNames reads the string constants of wellknown.go: value → name.
func contractNames(t *testing.T) map[string]contractName {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "wellknown.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]contractName{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue // corev1's own constants, defined there
				}
				s, _ := strconv.Unquote(lit.Value)
				name := vs.Names[i].Name
				if name == "ManagedByValue" {
					continue // "latchkey" is also the audience, the product's name
				}
				out[s] = contractName{constant: name, dataKey: strings.HasSuffix(name, "Key")}
			}
		}
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// copiesIn returns a line per copy of a contract name in the file.
func copiesIn(t *testing.T, path, rel string, names map[string]contractName) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	// Literals in a place where a data key is a Secret data key.
	keyUse := map[*ast.BasicLit]bool{}
	markLit := func(e ast.Expr) {
		if lit, ok := e.(*ast.BasicLit); ok {
			keyUse[lit] = true
		}
	}
	markMapKeys := func(e ast.Expr) {
		if cl, ok := e.(*ast.CompositeLit); ok {
			for _, el := range cl.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					markLit(kv.Key)
				}
			}
		}
	}
	keyish := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		return ok && strings.Contains(strings.ToLower(id.Name), "key")
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IndexExpr:
			if sel, ok := n.X.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Data" || sel.Sel.Name == "StringData") {
				markLit(n.Index)
			}
		case *ast.KeyValueExpr:
			if id, ok := n.Key.(*ast.Ident); ok && (id.Name == "Data" || id.Name == "StringData") {
				markMapKeys(n.Value)
			}
			if keyish(n.Key) {
				markLit(n.Value)
			}
		case *ast.CompositeLit:
			if mt, ok := n.Type.(*ast.MapType); ok {
				if at, ok := mt.Value.(*ast.ArrayType); ok && at.Len == nil {
					if id, ok := at.Elt.(*ast.Ident); ok && id.Name == "byte" {
						markMapKeys(n)
					}
				}
			}
		case *ast.ValueSpec:
			for _, v := range n.Values {
				markLit(v)
			}
		case *ast.AssignStmt:
			for i, l := range n.Lhs {
				if keyish(l) && i < len(n.Rhs) {
					markLit(n.Rhs[i])
				}
			}
		}
		return true
	})
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if fld, ok := n.(*ast.Field); ok {
			// A struct tag is not a copy: walk only the field's type.
			ast.Inspect(fld.Type, func(m ast.Node) bool { out = append(out, check(fset, m, rel, names, keyUse)...); return true })
			return false
		}
		out = append(out, check(fset, n, rel, names, keyUse)...)
		return true
	})
	return out
}

func check(fset *token.FileSet, n ast.Node, rel string, names map[string]contractName, keyUse map[*ast.BasicLit]bool) []string {
	lit, ok := n.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return nil
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return nil
	}
	c, ok := names[s]
	if !ok || c.dataKey && !keyUse[lit] {
		return nil
	}
	return []string{fset.Position(lit.Pos()).String() + ": " + lit.Value + " spelled out: use v1alpha1." + c.constant +
		" (api/v1alpha1/wellknown.go)"}
}
