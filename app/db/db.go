// Package db opens PostgreSQL through gorm and owns the embedded, versioned
// schema migrations (run by pressly/goose; never AutoMigrate).
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded migration files (rooted at the folder).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embed pattern above guarantees the folder
	}
	return sub
}

// Open connects to dsn and returns a gorm handle. Timestamps are UTC.
func Open(dsn string, maxOpen int) (*gorm.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	sqlDB := stdlib.OpenDB(*cfg)
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxOpen)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	gdb, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return time.Now().UTC() },
		TranslateError: true,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("database unreachable: %w", err)
	}
	return gdb, nil
}

func newProvider(sqlDB *sql.DB) (*goose.Provider, error) {
	// The session locker makes concurrent `migrate` runs (two replicas
	// starting together) wait for each other instead of racing.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	// Modules own number ranges (docs/CONVENTIONS.md), so a database migrated
	// before a lower-numbered module landed must still take it: apply missing
	// migrations instead of refusing them.
	return goose.NewProvider(goose.DialectPostgres, sqlDB, Migrations(), goose.WithSessionLocker(locker),
		goose.WithAllowOutofOrder(true))
}

// MigrateSQL applies all migrations over a plain *sql.DB (used by dbtest).
func MigrateSQL(ctx context.Context, sqlDB *sql.DB) error {
	p, err := newProvider(sqlDB)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

// Migrate applies every pending migration and returns the versions applied.
func Migrate(ctx context.Context, gdb *gorm.DB) ([]int64, error) {
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	p, err := newProvider(sqlDB)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	var applied []int64
	for _, r := range results {
		applied = append(applied, r.Source.Version)
	}
	return applied, err
}

// ErrSchemaOutdated means the database lags behind the binary's migrations.
var ErrSchemaOutdated = errors.New("database schema is outdated: run `cardata migrate` (or `make run`)")

// CheckSchema reports ErrSchemaOutdated when migrations are pending.
func CheckSchema(ctx context.Context, gdb *gorm.DB) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	p, err := newProvider(sqlDB)
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if pending {
		current, target, _ := p.GetVersions(ctx)
		return fmt.Errorf("%w (database at %d, binary needs %d)", ErrSchemaOutdated, current, target)
	}
	return nil
}

// EnsureDatabase creates the database named in dsn when it does not exist,
// connecting to the server's maintenance database to do so.
func EnsureDatabase(ctx context.Context, dsn string) (created bool, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return false, fmt.Errorf("DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return false, errors.New("DATABASE_URL names no database")
	}
	maint := *u
	maint.Path = "/postgres"
	conn, err := pgx.Connect(ctx, maint.String())
	if err != nil {
		return false, fmt.Errorf("connecting to PostgreSQL at %s: %w", u.Host, err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, err
	}
	if exists {
		return false, nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err == nil, err
}

// RecreateDatabase drops the database name on dsn's server (closing its
// connections) and creates it empty; it returns the URL of the new database.
// The benchmarks use it for their own databases.
func RecreateDatabase(ctx context.Context, dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	maint := *u
	maint.Path = "/postgres"
	conn, err := pgx.Connect(ctx, maint.String())
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// WithPgx runs f on a pgx connection taken from gdb's pool, for what gorm
// and database/sql cannot do (COPY, pipelined batches). A connection left
// in an unknown state is discarded by the pool.
func WithPgx(ctx context.Context, gdb *gorm.DB, f func(*pgx.Conn) error) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("this needs the pgx driver, got %T", dc)
		}
		return f(sc.Conn())
	})
}

// Close closes the pool under gdb.
func Close(gdb *gorm.DB) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
