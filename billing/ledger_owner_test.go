package billing_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Billing owns the delivery ledger (issue 16): writing, listing, usage and
// the reads of the customer's reports are billing's methods, so no other
// package's code names the table, its tests included: tests elsewhere seed
// and inspect the ledger through billing/billingtest. The sandbox's
// deliveries (sandbox_deliveries, issue 19) are billing's too, so that no
// other package can mix them into the ledger's readers. The migrations (SQL
// files) are not Go code.
func TestNoOtherPackageNamesTheLedgerTable(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	checked, inBilling := 0, 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if name := d.Name(); rel != "." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		owned := strings.HasPrefix(rel, "billing/")
		checked++
		for i, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, "delivery_ledger") && !strings.Contains(line, "sandbox_deliveries") {
				continue
			}
			if owned {
				inBilling++
				continue
			}
			t.Errorf("%s:%d names delivery_ledger or sandbox_deliveries; read or write them through billing's methods (tests: billing/billingtest)", rel, i+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk saw the module's code, billing's own statements included.
	if checked < 100 || inBilling == 0 {
		t.Fatalf("walked %d Go files, %d lines naming the table in billing: not the module's sources", checked, inBilling)
	}
}

// The portal reads the ledger through billing, not through the staff
// pages' package.
func TestPortalDoesNotImportAdmin(t *testing.T) {
	dir := filepath.Join("..", "app", "portal")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, e.Name()), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "cardata/admin" { // admin/support, the support domain, is shared
				t.Errorf("app/portal/%s imports %s", e.Name(), p)
			}
		}
	}
	if files == 0 {
		t.Fatal("no portal sources found")
	}
}
