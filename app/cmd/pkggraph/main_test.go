package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// README.md's package graph is the one the code has today.
func TestReadmeGraphMatchesTheCode(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	want, err := Generate(root)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Current(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("README.md's package graph differs from the code's imports; regenerate it with `make pkggraph` "+
			"(go run ./app/cmd/pkggraph -w README.md).\nREADME:\n%s\ncode:\n%s", got, want)
	}
	// Replace puts back what Current read.
	if again, err := Replace(string(doc), want); err != nil || again != string(doc) {
		t.Fatalf("Replace is not the inverse of Current: %v", err)
	}
}

// The import rules docs/CONVENTIONS.md states hold: nothing outside app/
// imports app/, and the domain packages do not import fiber.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", filepath.Join("..", "..", "..")+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, " ")
		inApp := pkg == "cardata/app" || strings.HasPrefix(pkg, "cardata/app/")
		domain := false
		for _, d := range []string{"billing", "onboarding", "jobs", "policies"} {
			if pkg == "cardata/"+d || strings.HasPrefix(pkg, "cardata/"+d+"/") {
				domain = true
			}
		}
		for _, imp := range strings.Fields(imps) {
			if !inApp && (imp == "cardata/app" || strings.HasPrefix(imp, "cardata/app/")) {
				t.Errorf("%s imports %s: nothing outside app/ imports app/", pkg, imp)
			}
			if domain && strings.HasPrefix(imp, "github.com/gofiber/") {
				t.Errorf("%s imports %s: domain packages do not import fiber", pkg, imp)
			}
		}
	}
}
