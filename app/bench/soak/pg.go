package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"cardata/app/bench"
)

// postgres is the server the soak runs on and knows how to restart.
type postgres struct {
	mode    string // shared or private
	url     string // a URL on the server (any database); the soak's database is created next to it
	dir     string // private: the data directory
	bin     string // private: the server's binaries
	asUser  string // private: run pg_ctl as this user (root may not run the server)
	version string
}

// startPostgres prepares the server. Shared: the one at base (the project's
// server, restarted with pg_ctlcluster like .ci/ensure-postgres starts it).
// Private: initdb into a temporary directory and start it on a free port.
func startPostgres(ctx context.Context, mode, base, workDir string) (*postgres, error) {
	switch mode {
	case "shared":
		u, err := url.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		u.Path = "/postgres" // the server's maintenance database: DATABASE_URL's may not exist yet
		p := &postgres{mode: mode, url: u.String()}
		return p, p.waitReady(ctx, 30*time.Second)
	case "private":
	default:
		return nil, fmt.Errorf("SOAK_PG must be shared or private, got %q", mode)
	}
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	p := &postgres{mode: mode, bin: bin, dir: filepath.Join(workDir, "pgdata")}
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		p.asUser = "postgres" // initdb and the server refuse to run as root
	}
	if err := os.RemoveAll(p.dir); err != nil { // a cluster left by an earlier soak in the same -dir
		return nil, err
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	if p.asUser != "" {
		if err := p.chown(workDir, p.dir); err != nil {
			return nil, err
		}
	}
	port, err := bench.FreePort()
	if err != nil {
		return nil, err
	}
	if out, err := p.pgCmd(ctx, "initdb", "-D", p.dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	conf := fmt.Sprintf("\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 200\nfsync = on\n", port, p.dir)
	f, err := os.OpenFile(filepath.Join(p.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if out, err := p.pgCmd(ctx, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return p, p.waitReady(ctx, 60*time.Second)
}

func pgBinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return "", fmt.Errorf("SOAK_PG=private needs the PostgreSQL server binaries (initdb, pg_ctl)")
	}
	return filepath.Dir(m[len(m)-1]), nil
}

func (p *postgres) chown(paths ...string) error {
	u, err := user.Lookup(p.asUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, path := range paths {
		if err := os.Chown(path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

func (p *postgres) pgCmd(ctx context.Context, tool string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, tool)
	if p.asUser != "" {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

// restart restarts the server: every connection of every replica breaks.
func (p *postgres) restart(ctx context.Context) (string, error) {
	var cmd *exec.Cmd
	if p.mode == "private" {
		cmd = p.pgCmd(ctx, "pg_ctl", "-D", p.dir, "-l", filepath.Join(p.dir, "server.log"), "-m", "fast", "-w", "-t", "60", "restart")
	} else {
		versions, err := os.ReadDir("/etc/postgresql")
		if err != nil || len(versions) == 0 {
			return "", fmt.Errorf("no cluster under /etc/postgresql to restart (use SOAK_PG=private)")
		}
		cmd = exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", versions[len(versions)-1].Name(), "main", "restart")
	}
	// The server started by the restart must not keep our output pipe open.
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, out)
	}
	return strings.Join(cmd.Args, " "), p.waitReady(ctx, 60*time.Second)
}

func (p *postgres) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := pgx.Connect(ctx, p.url)
		if err == nil {
			if p.version == "" {
				_ = c.QueryRow(ctx, "SHOW server_version").Scan(&p.version)
			}
			c.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL at %s not reachable: %w", redact(p.url), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop stops a private server (the shared one stays up).
func (p *postgres) stop() {
	if p.mode != "private" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_ = p.pgCmd(ctx, "pg_ctl", "-D", p.dir, "-m", "immediate", "-w", "stop").Run()
	_ = os.RemoveAll(p.dir)
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return dsn
}
