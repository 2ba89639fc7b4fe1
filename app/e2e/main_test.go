package e2e

import (
	"os"
	"testing"

	"cardata/app/apptest"
)

// TestMain ends the Chromium the browser tests share (apptest.Browser) once
// every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	apptest.CloseBrowser()
	os.Exit(code)
}
