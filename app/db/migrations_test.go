package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/peterldowns/pgtestdb"
	"github.com/peterldowns/pgtestdb/migrators/common"
	"github.com/pressly/goose/v3"

	"cardata/app/db"
	"cardata/app/db/dbtest"
)

// upTo migrates a template database only up to one version.
type upTo int64

func (v upTo) Hash() (string, error) {
	h, err := common.HashDirs(db.Migrations(), "*.sql", ".")
	return fmt.Sprintf("upto-%d-%s", int64(v), h), err
}

func (v upTo) Migrate(ctx context.Context, sqlDB *sql.DB, _ pgtestdb.Config) error {
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations(), goose.WithAllowOutofOrder(true))
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, int64(v))
	return err
}

// Migration 00044 turns the one-row-per-reading history into one row per
// snapshot: every reading survives the way up and the way down, in the
// partition of its day of receipt.
func TestSnapshotHistoryMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlDB, err := sql.Open("pgx", dbtest.URLMigratedBy(t, upTo(43)))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := sqlDB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`CREATE TABLE vehicle_readings_p20261123 PARTITION OF vehicle_readings FOR VALUES FROM ('2026-11-23T00:00:00Z') TO ('2026-11-24T00:00:00Z')`)
	exec(`CREATE TABLE vehicle_readings_p20261124 PARTITION OF vehicle_readings FOR VALUES FROM ('2026-11-24T00:00:00Z') TO ('2026-11-25T00:00:00Z')`)
	exec(`INSERT INTO vehicle_readings (vehicle_id, read_at, received_at, key_id, value) VALUES
		(1, '2026-11-23T10:00:00Z', '2026-11-23T10:00:01Z', 1, '100'),
		(1, '2026-11-23T10:00:00Z', '2026-11-23T10:00:01Z', 2, 'LOCKED'),
		(1, '2026-11-23T11:00:00Z', '2026-11-24T00:00:01Z', 1, '120'),
		(2, '2026-11-23T10:00:00Z', '2026-11-23T10:00:01Z', 1, '7')`)
	readings := func() (out []string) {
		t.Helper()
		rows, err := sqlDB.QueryContext(ctx, `SELECT tableoid::regclass::text || ' ' || vehicle_id || ' ' || key_id || '=' || value
			FROM vehicle_readings ORDER BY vehicle_id, read_at, key_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			rows.Scan(&s)
			out = append(out, s)
		}
		return out
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations(), goose.WithAllowOutofOrder(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 44); err != nil {
		t.Fatal(err)
	}
	var snapshots int
	sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM vehicle_snapshots_p20261123").Scan(&snapshots)
	if snapshots != 2 {
		t.Fatalf("%d snapshots on 2026-11-23, want 2 (vehicle 1 at 10:00 with two keys, vehicle 2)", snapshots)
	}
	// The view reads back every reading; tableoid is the view's source here.
	var n int
	sqlDB.QueryRowContext(ctx, "SELECT count(*) FROM vehicle_readings").Scan(&n)
	if n != 4 {
		t.Fatalf("%d readings through the view, want 4", n)
	}
	if _, err := p.DownTo(ctx, 43); err != nil {
		t.Fatal(err)
	}
	want := []string{"vehicle_readings_p20261123 1 1=100", "vehicle_readings_p20261123 1 2=LOCKED",
		"vehicle_readings_p20261124 1 1=120", "vehicle_readings_p20261123 2 1=7"}
	if got := readings(); len(got) != len(want) {
		t.Fatalf("after down: %v", got)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("after down: %v, want %v", got, want)
			}
		}
	}
}
