package codestyle_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// source is every non-test Go file of the module.
func source(t *testing.T) map[string][]byte {
	t.Helper()
	root := "../.."
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" ||
			d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestEveryPackageIsDocumented(t *testing.T) {
	t.Parallel()
	documented := map[string]bool{}
	for p, src := range source(t) {
		f, err := parser.ParseFile(token.NewFileSet(), p, src, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(p)
		documented[dir] = documented[dir] || f.Doc != nil
	}
	for dir, ok := range documented {
		if !ok {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}

func TestFunctionsAndFilesStayShort(t *testing.T) {
	t.Parallel()
	for p, src := range source(t) {
		if n := strings.Count(string(src), "\n"); n > 1500 {
			t.Errorf("%s has %d lines; split it (STYLE.md: none past about 1,500)", p, n)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok {
				n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line
				if n > 100 {
					t.Errorf("%s: %s is %d lines; none should run past about 100", p, fn.Name.Name, n)
				}
			}
		}
	}
}

func TestLinesStayNarrow(t *testing.T) {
	t.Parallel()
	var widths []int
	for _, src := range source(t) {
		for _, l := range strings.Split(string(src), "\n") {
			if strings.TrimSpace(l) != "" {
				widths = append(widths, len(strings.ReplaceAll(l, "\t", "    ")))
			}
		}
	}
	sort.Ints(widths)
	over := 0
	for _, w := range widths {
		if w > 100 {
			over++
		}
	}
	p95 := widths[len(widths)*95/100]
	if p95 > 90 || float64(over) > 0.02*float64(len(widths)) {
		t.Errorf("line width p95 %d (want at most 90), %d of %d lines past 100 (want under 2%%)",
			p95, over, len(widths))
	}
}

func TestExportedNamesAreDocumented(t *testing.T) {
	t.Parallel()
	exported, documented := 0, 0
	for p, src := range source(t) {
		f, err := parser.ParseFile(token.NewFileSet(), p, src, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			e, doc := countDecl(d)
			exported += e
			documented += doc
		}
	}
	if float64(documented) < 0.9*float64(exported) {
		t.Errorf("%d of %d exported names are documented; STYLE.md asks for at least 90%%",
			documented, exported)
	}
}

func countDecl(d ast.Decl) (exported, documented int) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		if d.Name.IsExported() {
			exported++
			if d.Doc != nil {
				documented++
			}
		}
	case *ast.GenDecl:
		for _, s := range d.Specs {
			names, doc := specNames(s)
			for _, n := range names {
				if n.IsExported() {
					exported++
					if d.Doc != nil || doc {
						documented++
					}
				}
			}
		}
	}
	return exported, documented
}

func specNames(s ast.Spec) ([]*ast.Ident, bool) {
	switch s := s.(type) {
	case *ast.TypeSpec:
		return []*ast.Ident{s.Name}, s.Doc != nil
	case *ast.ValueSpec:
		return s.Names, s.Doc != nil || s.Comment != nil
	}
	return nil, false
}
