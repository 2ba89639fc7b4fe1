package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"cardata/jobs"
)

// jobsCommands are the CLI commands of the jobs module.
func jobsCommands() []Command {
	return []Command{
		{Name: "jobs list", Summary: "list the jobs with their schedule, next run and last outcome", Run: runJobsList},
		{Name: "jobs run", Summary: "run a job now (once across all instances) and wait for it; prints its figures",
			Args: "NAME", Run: runJobsRun},
	}
}

func runJobsList(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	list, err := a.Jobs.Overview(ctx)
	if err != nil {
		return err
	}
	loc := a.Cfg.BillingTimezone
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NAME\tSCHEDULE (%s)\tNEXT RUN\tLAST RUN\tRUN BY\n", loc)
	for _, s := range list {
		next := "on demand"
		if !s.Next.IsZero() {
			next = s.Next.In(loc).Format("2006-01-02 15:04:05")
		}
		last := "never"
		if s.Last != nil {
			last = fmt.Sprintf("#%d %s %s", s.Last.ID, s.Last.Outcome, s.Last.StartedAt.In(loc).Format("2006-01-02 15:04"))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Schedule, next, last, strings.Join(append([]string{"admin"}, s.Roles...), ","))
	}
	return w.Flush()
}

func runJobsRun(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return errors.New("usage: cardata jobs run NAME (see `cardata jobs list`)")
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	rec, err := a.Jobs.RunAndWait(ctx, fs.Arg(0))
	if rec == nil {
		return err // refused: unknown job, or running elsewhere
	}
	var figures []string
	for _, f := range rec.Figures.Sorted() {
		figures = append(figures, fmt.Sprintf("%s=%d", f.Name, f.Value))
	}
	summary := fmt.Sprintf("run #%d of %s %s in %s", rec.ID, rec.Job, rec.Outcome, rec.Duration().Round(time.Millisecond))
	if len(figures) > 0 {
		summary += ": " + strings.Join(figures, " ")
	}
	fmt.Fprintln(env.Stdout, summary)
	if rec.Outcome != jobs.Succeeded {
		return fmt.Errorf("run #%d failed: %s", rec.ID, rec.Error)
	}
	return nil
}
