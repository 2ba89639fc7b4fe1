package i18n

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// errorAreas are the folders whose error messages people read on pages,
// by the catalog file (errors-<name>.<lang>.toml) that translates them.
// The machine APIs (app/ingest, app/providerapi) answer problem+json in
// English with stable codes, so their messages need no German.
var errorAreas = map[string][]string{
	"admin":      {"admin"},
	"billing":    {"billing", "jobs"},
	"onboarding": {"onboarding"},
	"policies":   {"policies", "app/customer", "app/portal", "app/web"},
}

// errorMessages finds, in the Go code under dir, the messages of
// errs.New(kind, code, MSG, ...), Validation.Add(field, code, MSG, ...) and
// composite literals' Message: "MSG": each is an English text or a printf
// format, the id of its translation.
func errorMessages(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inspectGo(t, dir, func(fset *token.FileSet, n ast.Node) {
		add := func(e ast.Expr) {
			if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				if s, err := strconv.Unquote(bl.Value); err == nil && s != "%s" && s != "" {
					out[s] = fset.Position(bl.Pos()).String()
				}
			}
		}
		switch x := n.(type) {
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok || len(x.Args) < 3 {
				return
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "errs" && sel.Sel.Name == "New" || sel.Sel.Name == "Add" {
				add(x.Args[2])
			}
		case *ast.KeyValueExpr:
			if k, ok := x.Key.(*ast.Ident); ok && k.Name == "Message" {
				add(x.Value)
			}
		}
	})
	return out
}

// inspectGo calls fn for every node of the Go files (tests left out) under
// dir, a folder of the repository.
func inspectGo(t *testing.T, dir string, fn func(*token.FileSet, ast.Node)) {
	t.Helper()
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join("..", "..", dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool { fn(fset, n); return true })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkedAreas are the folders whose catalog <prefix>-<name>.de.toml is
// written (errorAreas), each with the name of its catalog.
func checkedAreas(t *testing.T, prefix string) map[string]string {
	out := map[string]string{}
	for name, areas := range errorAreas {
		if _, err := fs.Stat(catalogFiles, prefix+"-"+name+".de.toml"); err != nil {
			t.Logf("%s-%s.de.toml is not written yet: %v not checked", prefix, name, areas)
			continue
		}
		if prefix == "audit" && name == "onboarding" {
			areas = append(areas, "app/ingest") // the vehicle master data API
		}
		for _, a := range areas {
			out[a] = name
		}
	}
	return out
}

var verb = regexp.MustCompile(`%(\[(\d+)\])?[-+# 0]*\d*(\.\d+)?([a-zA-Z%])`)

// sampleArgs are values of the types a format's verbs take.
func sampleArgs(format string) []any {
	var args []any
	for _, m := range verb.FindAllStringSubmatch(format, -1) {
		switch m[4] {
		case "%":
		case "d", "x", "X":
			args = append(args, 7)
		default:
			args = append(args, "x")
		}
	}
	return args
}

func TestErrorMessagesAreInBothLanguages(t *testing.T) {
	t.Parallel()
	for area := range checkedAreas(t, "errors") {
		checkCatalogued(t, "error message", "errors", errorMessages(t, area), false)
	}
}

// checkCatalogued fails for every id of found (id -> where in the code)
// missing from either language's catalogs, and for a German text that does
// not take the arguments of its id's verbs (all strings when allStrings,
// as audit summaries store them).
func checkCatalogued(t *testing.T, what, prefix string, found map[string]string, allStrings bool) {
	for id, at := range found {
		for _, l := range Supported {
			if !Has(l, id) {
				t.Errorf("%s: %s %q has no %s translation (%s-*.%s.toml)", at, what, id, l, prefix, l)
			}
		}
		if args := sampleArgs(id); len(args) > 0 && Has(DE, id) {
			if allStrings {
				for i := range args {
					args[i] = "x"
				}
			}
			if got := Sprintf(DE, id, args...); strings.Contains(got, "%!") {
				t.Errorf("%s: the German of %q does not take its arguments: %s", at, id, got)
			}
		}
	}
}

func TestSprintfSaysAFormatInTheReadersLanguage(t *testing.T) {
	t.Parallel()
	en, de := Sprintf(EN, "use at least %d characters", 12), Sprintf(DE, "use at least %d characters", 12)
	if en != "use at least 12 characters" {
		t.Errorf("English: %q", en)
	}
	if de == en || !strings.Contains(de, "12") {
		t.Errorf("German: %q", de)
	}
	if got := Sprintf(DE, "not in any catalog: %s", "x"); got != fmt.Sprintf("not in any catalog: %s", "x") {
		t.Errorf("a missing format is used as it stands: %q", got)
	}
}

// An id in two catalog files is taken from the first (catalogNames), so a
// second copy with another text would be silently ignored: the error
// catalogs may repeat an id only with the same text.
func TestErrorCatalogsAgreeOnSharedIDs(t *testing.T) {
	t.Parallel()
	for _, l := range Supported {
		seen := map[string]string{} // id -> "file: text"
		for _, name := range catalogNames(l) {
			b, err := catalogFiles.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			part := map[string]any{}
			if err := toml.Unmarshal(b, &part); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for id, v := range part {
				text := fmt.Sprint(v)
				if prev, ok := seen[id]; ok && (strings.HasPrefix(name, "errors-") || strings.HasPrefix(name, "audit-")) {
					if _, prevText, _ := strings.Cut(prev, ": "); prevText != text {
						t.Errorf("%s: %q is %q here but %s", name, id, text, prev)
					}
					continue
				}
				if _, ok := seen[id]; !ok {
					seen[id] = name + ": " + text
				}
			}
		}
	}
}

// auditFormats finds, in the Go code under dir, the summary formats of
// audit.Recordf(ctx, tx, action, type, id, FORMAT, ...) and
// audit.ItemOf(action, type, id, FORMAT, ...), as they are stored (%d and
// %v written as %s, policies/audit storedFormat), and the fixed summaries
// of audit.Record. An audit.Record whose summary is built in code (a
// Sprintf, a concatenation) is reported under a marker id no catalog has.
func auditFormats(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	plain := regexp.MustCompile(`%[dvs]`)
	inspectGo(t, dir, func(fset *token.FileSet, n ast.Node) {
		x, ok := n.(*ast.CallExpr)
		if !ok {
			return
		}
		sel, ok := x.Fun.(*ast.SelectorExpr)
		if !ok {
			return
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == "errs" {
			listItems(fset, x, sel.Sel.Name, plain, out)
			return
		}
		idx := map[string]int{"Recordf": 5, "ItemOf": 3, "Record": 5}[sel.Sel.Name]
		if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "audit" || idx == 0 || len(x.Args) <= idx {
			return
		}
		at := fset.Position(x.Args[idx].Pos()).String()
		bl, ok := x.Args[idx].(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			if sel.Sel.Name == "Record" {
				// a summary built in code cannot be translated
				out["(built in code: use audit.Recordf with its format and arguments) "+at] = at
			}
			return
		}
		if s, err := strconv.Unquote(bl.Value); err == nil {
			if sel.Sel.Name != "Record" {
				s = plain.ReplaceAllString(s, "%s")
			}
			out[s] = at
		}
	})
	return out
}

// listItems adds to out the items of a list in a message that the code
// writes out (errs.List): the format of an errs.Phrasef as it is stored
// (%d and %v as %s), and the words given to errs.Terms as literals. Words
// that come from data (a staff user's roles) are checked where their
// vocabulary is (policies: TestStaffRolesAreInBothLanguages).
func listItems(fset *token.FileSet, x *ast.CallExpr, fn string, plain *regexp.Regexp, out map[string]string) {
	var lits []ast.Expr
	switch fn {
	case "Phrasef":
		lits = x.Args[:min(1, len(x.Args))]
	case "Terms":
		if len(x.Args) > 1 {
			lits = x.Args[1:]
		}
	}
	for _, a := range lits {
		if bl, ok := a.(*ast.BasicLit); ok && bl.Kind == token.STRING {
			if s, err := strconv.Unquote(bl.Value); err == nil {
				out[plain.ReplaceAllString(s, "%s")] = fset.Position(bl.Pos()).String()
			}
		}
	}
}

// Every audit summary written with audit.Recordf (and every item of a list
// in one that the code writes out: listItems) has its stored format in
// both languages' audit catalogs (audit-<name>.<lang>.toml switches the
// check on for the folders of errorAreas[name]).
func TestAuditSummariesAreInBothLanguages(t *testing.T) {
	t.Parallel()
	for area := range checkedAreas(t, "audit") {
		checkCatalogued(t, "audit summary", "audit", auditFormats(t, area), true)
	}
}
