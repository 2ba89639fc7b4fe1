// Package cli is the command line of the cardata binary (app/cmd/cardata):
// `cardata serve`, `migrate`, `demo` and the admin commands of each module,
// each building the app (app.New) or opening the database as it needs.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/app"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/demo"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/totp"
)

// Env is what a command runs with.
type Env struct {
	Cfg    config.Config
	Log    *slog.Logger
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	db     *gorm.DB
	app    *app.App
}

// DB opens the database and refuses an outdated schema.
func (e *Env) DB(ctx context.Context) (*gorm.DB, error) {
	if e.db != nil {
		return e.db, nil
	}
	gdb, err := db.Open(e.Cfg.DatabaseURL, e.Cfg.DBMaxOpenConns)
	if err != nil {
		return nil, err
	}
	if err := db.CheckSchema(ctx, gdb); err != nil {
		db.Close(gdb)
		return nil, err
	}
	e.db = gdb
	return gdb, nil
}

// App builds the application on the database.
func (e *Env) App(ctx context.Context) (*app.App, error) {
	if e.app != nil {
		return e.app, nil
	}
	gdb, err := e.DB(ctx)
	if err != nil {
		return nil, err
	}
	a, err := app.New(e.Cfg, gdb, e.Log)
	if err != nil {
		return nil, err
	}
	e.app = a
	return a, nil
}

func (e *Env) close() {
	if e.db != nil {
		db.Close(e.db)
	}
}

// Command is one CLI subcommand ("user add" has two words).
type Command struct {
	Name    string
	Summary string
	Args    string // positional arguments, for the usage line
	Flags   func(fs *flag.FlagSet)
	Run     func(ctx context.Context, env *Env, fs *flag.FlagSet) error
}

func commands() []Command {
	cmds := []Command{
		{Name: "serve", Summary: "run the HTTP server and background workers", Run: runServe},
		{Name: "migrate", Summary: "create the database if missing and apply pending migrations", Run: runMigrate},
		{Name: "demo", Summary: "load demo data (idempotent: safe to run again)", Run: runDemo},
		{Name: "user add", Summary: "add a staff user; the password is read from standard input",
			Flags: func(fs *flag.FlagSet) {
				fs.String("email", "", "e-mail address (required)")
				fs.String("name", "", "display name (required)")
				fs.String("role", "", "comma-separated roles: "+strings.Join(policies.StaffRoles, ", ")+
					" (separation of duties: "+incompatibleRolesHint()+")")
				fs.Bool("password-stdin", false, "read the password from standard input (required)")
			}, Run: runUserAdd},
		{Name: "user reset-second-factor", Summary: "remove a staff user's authenticator app and recovery codes (break-glass: the person lost both and no administrator can sign in)",
			Flags: func(fs *flag.FlagSet) { fs.String("email", "", "e-mail address (required)") }, Run: runUserResetFactor},
		{Name: "audit verify", Summary: "verify the audit trail's hash chain; names the first broken entry", Run: runAuditVerify},
	}
	cmds = append(cmds, moduleCommands()...)
	sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

func usage(w io.Writer, cmds []Command) {
	fmt.Fprintln(w, "cardata: CarData partner back office\n\nUsage: cardata COMMAND [flags]\n\nCommands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-22s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintln(w, "\nRun `cardata COMMAND --help` for a command's flags. Configuration comes from the environment (see README.md).")
}

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *Command
	var rest []string
	for i := range cmds {
		words := strings.Fields(cmds[i].Name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmds[i].Name {
			if cmd == nil || len(words) > len(strings.Fields(cmd.Name)) {
				cmd, rest = &cmds[i], args[len(words):]
			}
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "cardata: unknown command %q\n\n", strings.Join(args, " "))
		usage(stderr, cmds)
		return 2
	}
	fs := flag.NewFlagSet("cardata "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cardata %s [flags] %s\n\n%s\n", cmd.Name, cmd.Args, cmd.Summary)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, "cardata:", err)
		return 1
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cfg.LogLevel]
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	env := &Env{Cfg: cfg, Log: log, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	defer env.close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = policies.WithPrincipal(ctx, policies.System("cli"))
	ctx = policies.WithRequest(ctx, policies.Request{ID: "cli", ClientAddr: "local"})
	if err := cmd.Run(ctx, env, fs); err != nil {
		fmt.Fprintln(stderr, "cardata:", err)
		return 1
	}
	return 0
}

func runServe(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	env.Log.Info("starting", "config", env.Cfg.Redacted())
	if err := a.StartDevIdP(); err != nil {
		a.Close()
		return err
	}
	return a.Serve(ctx, func(addr string) {
		env.Log.Info("listening", "addr", addr, "url", env.Cfg.PublicURL+"/admin")
	})
}

func runMigrate(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	created, err := db.EnsureDatabase(ctx, env.Cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintln(env.Stdout, "created database")
	}
	gdb, err := db.Open(env.Cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer db.Close(gdb)
	applied, err := db.Migrate(ctx, gdb)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "schema is current (%d migrations applied now)\n", len(applied))
	return nil
}

func runDemo(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	ctx = policies.WithPrincipal(ctx, policies.System("demo"))
	return demo.Load(ctx, a.Services, env.Stdout)
}

func incompatibleRolesHint() string {
	var pairs []string
	for _, p := range policies.IncompatibleRoles {
		pairs = append(pairs, p.A+" and "+p.B+" cannot be combined")
	}
	return strings.Join(pairs, "; ")
}

// runUserAdd creates the user through staff.Service.Create, so the CLI obeys
// the same separation-of-duties rule as the staff form (and its refusals are
// audited, with the CLI as the actor).
func runUserAdd(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	get := func(n string) string { return fs.Lookup(n).Value.String() }
	if get("password-stdin") != "true" {
		return errors.New("--password-stdin is required: pass the password on standard input, never as an argument")
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	password := strings.TrimRight(line, "\r\n")
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	u, err := a.Staff.Create(ctx, staff.NewUser{Email: get("email"), Name: get("name"),
		Roles: strings.Split(get("role"), ","), Password: password})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "added staff user %d %s with roles %s\n", u.ID, u.Email, strings.Join(u.Roles, ", "))
	return nil
}

// runUserResetFactor removes a staff user's second factor (audited with
// the CLI as the actor); their next password sign-in asks for no code, or
// for a new set-up where their role requires one.
func runUserResetFactor(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	email := fs.Lookup("email").Value.String()
	if email == "" {
		return errors.New("--email is required")
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	u, err := a.Staff.FindByEmail(ctx, email)
	if err != nil {
		return err
	}
	if err := a.SecondFactors.Reset(ctx, totp.Subject{Kind: policies.KindStaff, ID: u.ID, Account: u.Email}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "removed the authenticator app and recovery codes of %s\n", u.Email)
	return nil
}

func runAuditVerify(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	gdb, err := env.DB(ctx)
	if err != nil {
		return err
	}
	n, broken, err := audit.Verify(ctx, gdb)
	if err != nil {
		return err
	}
	if broken != nil {
		return fmt.Errorf("audit chain BROKEN at entry %d: %s (%d entries checked)", broken.ID, broken.Reason, n)
	}
	fmt.Fprintf(env.Stdout, "audit chain intact: %d entries verified\n", n)
	return nil
}

// Run is the entry point used by cmd/cardata.
func Run() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
