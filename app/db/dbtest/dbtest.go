// Package dbtest hands every test its own PostgreSQL database, cloned from a
// template that is migrated once per schema version (peterldowns/pgtestdb).
// Tests using it may run in parallel. With CI=true an unreachable server is
// a failure, never a skip.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"
	"github.com/peterldowns/pgtestdb/migrators/common"
	"gorm.io/gorm"

	"cardata/app/db"
)

// ServerURL is the test server, overridable with TEST_DATABASE_URL.
func ServerURL() string {
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

type migrator struct{}

func (migrator) Hash() (string, error) {
	return common.HashDirs(db.Migrations(), "*.sql", ".")
}

func (migrator) Migrate(ctx context.Context, sqlDB *sql.DB, _ pgtestdb.Config) error {
	return db.MigrateSQL(ctx, sqlDB)
}

var (
	reachOnce sync.Once
	reachErr  error
)

func requireServer(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			reachErr = err
			return
		}
		conn.Close(ctx)
	})
	if reachErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required (CI=true): %v", reachErr)
		}
		t.Skipf("PostgreSQL not reachable, skipping: %v", reachErr)
	}
}

func config(t testing.TB) pgtestdb.Config {
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	pw, _ := u.User.Password()
	return pgtestdb.Config{
		DriverName: "pgx", Host: u.Hostname(), Port: u.Port(), User: u.User.Username(),
		Password: pw, Database: "postgres", Options: "sslmode=disable",
		// The application role owns its tables; superuser is only used by
		// tests that deliberately tamper with data (see SuperuserURL).
		ForceTerminateConnections: true,
	}
}

// URL creates a fresh migrated database and returns its connection URL.
func URL(t testing.TB) string {
	t.Helper()
	requireServer(t)
	return pgtestdb.Custom(t, config(t), migrator{}).URL()
}

// URLMigratedBy creates a fresh database prepared by m instead of the full
// migration set (for tests of a single migration on older schema versions).
func URLMigratedBy(t testing.TB, m pgtestdb.Migrator) string {
	t.Helper()
	requireServer(t)
	return pgtestdb.Custom(t, config(t), m).URL()
}

// New returns a gorm handle on a fresh migrated database, closed at cleanup.
func New(t testing.TB) *gorm.DB {
	t.Helper()
	u := URL(t)
	gdb, err := db.Open(u, 10)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close(gdb) })
	return gdb
}

// SuperuserURL rewrites a test database URL to connect as the server's
// superuser, for tests that must bypass the application's safeguards.
func SuperuserURL(t testing.TB, testURL string) string {
	t.Helper()
	u, err := url.Parse(testURL)
	if err != nil {
		t.Fatal(err)
	}
	su, _ := url.Parse(ServerURL())
	u.User = su.User
	return u.String()
}

// Name returns the database name within a URL (handy in failure messages).
func Name(testURL string) string {
	u, err := url.Parse(testURL)
	if err != nil {
		return fmt.Sprint(err)
	}
	return u.Path[1:]
}

var _ fs.FS = db.Migrations()
