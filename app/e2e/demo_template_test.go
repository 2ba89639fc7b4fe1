package e2e

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/peterldowns/pgtestdb"

	"cardata/app"
	"cardata/app/apptest"
	"cardata/app/db"
	"cardata/app/demo"
	"cardata/policies"
)

// newDemoApp boots the app on a fresh database that already holds the demo
// data: the demo is loaded once per test binary into a template database
// (through the real services, as `cardata demo` does) and each test gets its
// own clone, instead of every test paying for demo.Load on two shared cores.
// Tests of the demo itself (idempotency, what it prints) still call
// demo.Load on apptest.New.
func newDemoApp(t *testing.T) *apptest.T {
	t.Helper()
	return apptest.NewMigratedBy(t, demoTemplate{})
}

// demoTemplate prepares the template: every migration, then demo.Load.
type demoTemplate struct{}

// demoHash names the template after this test binary (its code, the
// migrations and the demo are all in it) and the Berlin day (the demo's
// data is relative to today), so a changed demo or a new day never reuses
// an old template.
var demoHash = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return "", err
	}
	h.Write([]byte("demo " + time.Now().In(berlin).Format(time.DateOnly)))
	return hex.EncodeToString(h.Sum(nil)), nil
})

func (demoTemplate) Hash() (string, error) { return demoHash() }

func (demoTemplate) Migrate(ctx context.Context, sqlDB *sql.DB, conf pgtestdb.Config) error {
	if err := db.MigrateSQL(ctx, sqlDB); err != nil {
		return err
	}
	cfg, err := apptest.ConfigFor(conf.URL())
	if err != nil {
		return err
	}
	gdb, err := db.Open(conf.URL(), 10)
	if err != nil {
		return err
	}
	defer db.Close(gdb)
	a, err := app.New(cfg, gdb, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer a.Close()
	return demo.Load(policies.WithPrincipal(ctx, policies.System("test")), a.Services, io.Discard)
}
