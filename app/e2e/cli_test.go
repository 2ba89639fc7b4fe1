package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"time"

	"strings"
	"testing"

	"gorm.io/gorm"

	"cardata/app/cli"
	"cardata/app/db"
	"cardata/app/db/dbtest"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// CLI tests set DATABASE_URL in the environment and therefore don't run in parallel.
// cliDatabase gives a CLI test its own migrated database in the
// environment the command reads (so CLI tests don't run in parallel), and
// a handle on it that is closed when the test ends, with its URL.
func cliDatabase(t *testing.T) (*gorm.DB, string) {
	t.Helper()
	u := dbtest.URL(t)
	t.Setenv("DATABASE_URL", u)
	t.Setenv("BCRYPT_COST", "4")
	t.Setenv("LOG_LEVEL", "error")
	gdb, err := db.Open(u, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(gdb) })
	return gdb, u
}

func TestCLIUserAddDemoAndAuditVerify(t *testing.T) {
	_, u := cliDatabase(t)

	if code, out, _ := runCLI(t, "", "--help"); code != 0 || !strings.Contains(out, "audit verify") || !strings.Contains(out, "user add") {
		t.Fatalf("help: %d %s", code, out)
	}
	for _, cmd := range [][]string{{"serve", "--help"}, {"migrate", "--help"}, {"demo", "--help"}, {"user", "add", "--help"}, {"audit", "verify", "--help"}} {
		if code, out, _ := runCLI(t, "", cmd...); code != 0 || !strings.Contains(out, "Usage: cardata "+strings.Join(cmd[:len(cmd)-1], " ")) {
			t.Errorf("%v: %d %q", cmd, code, out)
		}
	}
	if code, _, errOut := runCLI(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "user", "add", "--email", "x@y.z", "--name", "X", "--role", "admin"); code != 1 || !strings.Contains(errOut, "password-stdin") {
		t.Fatalf("no stdin flag: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "a-secret-password\n", "user", "add", "--email", "root@test.local", "--name", "Root", "--role", "admin,auditor", "--password-stdin")
	if code != 0 || !strings.Contains(out, "admin, auditor") {
		t.Fatalf("user add: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "short\n", "user", "add", "--email", "b@test.local", "--name", "B", "--role", "admin", "--password-stdin"); code != 1 || !strings.Contains(errOut, "12 characters") {
		t.Fatalf("weak password: %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, "", "demo"); code != 0 || !strings.Contains(out, "manager@demo.local") {
		t.Fatalf("demo: %d %s %s", code, out, errOut)
	}
	// idempotent: a second run creates nothing new and still succeeds
	if code, out, errOut := runCLI(t, "", "demo"); code != 0 || strings.Contains(out, "staff user manager@demo.local") {
		t.Fatalf("demo again: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "", "audit", "verify")
	if code != 0 || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("verify: %d %s", code, out)
	}
	su, err := db.Open(dbtest.SuperuserURL(t, u), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(su)
	var id int64
	su.Raw("SELECT id FROM audit_entries ORDER BY id OFFSET 2 LIMIT 1").Scan(&id)
	if err := su.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL session_replication_role = replica").Error; err != nil {
			return err
		}
		return tx.Exec("UPDATE audit_entries SET actor_label = 'someone-else' WHERE id = ?", id).Error
	}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "", "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "BROKEN at entry "+itoa(id)) {
		t.Fatalf("tampered verify: %d %s", code, errOut)
	}
}

func TestServeRefusesOutdatedSchema(t *testing.T) {
	// A database without migrations: serve must refuse and say how to migrate;
	// migrate creates the missing database first.
	base, _ := url.Parse(dbtest.ServerURL())
	name := fmt.Sprintf("cardata_clitest_%d", time.Now().UnixNano())
	base.Path = "/" + name
	u := base.String()
	t.Cleanup(func() {
		if su, err := db.Open(dbtest.ServerURL(), 1); err == nil {
			su.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			db.Close(su)
		}
	})
	if _, err := db.EnsureDatabase(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", u)
	t.Setenv("LISTEN_ADDR", "127.0.0.1:0")
	code, _, errOut := runCLI(t, "", "serve")
	if code != 1 || !strings.Contains(errOut, "cardata migrate") {
		t.Fatalf("serve on stale schema: %d %s", code, errOut)
	}
	if code, out, errOut := runCLI(t, "", "migrate"); code != 0 || !strings.Contains(out, "schema is current") {
		t.Fatalf("migrate: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", "migrate"); code != 0 || !strings.Contains(out, "0 migrations applied") {
		t.Fatalf("migrate again: %d %s %s", code, out, errOut)
	}
}

func TestInvalidConfigNamesVariable(t *testing.T) {
	t.Setenv("BILLING_TIMEZONE", "Nowhere/Land")
	code, _, errOut := runCLI(t, "", "migrate")
	if code != 1 || !strings.Contains(errOut, "BILLING_TIMEZONE") {
		t.Fatalf("%d %s", code, errOut)
	}
}
