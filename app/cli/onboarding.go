package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"cardata/onboarding"
)

// onboardingCommands are the CLI commands of the onboarding module.
func onboardingCommands() []Command {
	return []Command{
		{Name: "providers list", Summary: "list providers with status, seat and VAT ID (filter with --status, --country)",
			Flags: func(fs *flag.FlagSet) {
				fs.String("status", "", "only this status: "+strings.Join(statusNames(), ", "))
				fs.String("country", "", "only this country of seat (ISO code)")
			}, Run: runProvidersList},
		{Name: "markets list", Summary: "list the 31 markets with status and coverage", Run: runMarketsList},
		{Name: "markets pause", Summary: "pause a market: no new requests, no provider served", Args: "CODE", Run: runMarketSet(false)},
		{Name: "markets activate", Summary: "activate a paused market", Args: "CODE", Run: runMarketSet(true)},
	}
}

func statusNames() []string {
	out := make([]string, len(onboarding.Statuses))
	for i, s := range onboarding.Statuses {
		out[i] = string(s)
	}
	return out
}

func runProvidersList(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	status := fs.Lookup("status").Value.String()
	if status != "" && !strings.Contains(","+strings.Join(statusNames(), ",")+",", ","+status+",") {
		return fmt.Errorf("unknown status %q (known: %s)", status, strings.Join(statusNames(), ", "))
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	svc := a.Onboarding
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATUS\tSEAT\tVAT ID\tNAME")
	f := onboarding.ProviderFilter{Status: onboarding.Status(status), Country: fs.Lookup("country").Value.String(), Limit: 200}
	for {
		list, total, err := svc.FindProviders(ctx, f)
		if err != nil {
			return err
		}
		for _, p := range list {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", p.ID, p.Status, p.Country, p.VATID, p.LegalName)
		}
		f.Offset += len(list)
		if len(list) == 0 || int64(f.Offset) >= total {
			break
		}
	}
	return w.Flush()
}

func runMarketsList(ctx context.Context, env *Env, _ *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	rows, err := a.Onboarding.CoverageReport(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CODE\tMARKET\tSTATUS\tACTIVE PROVIDERS\tPENDING REQUESTS")
	for _, r := range rows {
		status := "active"
		if !r.Market.Active {
			status = "paused"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\n", r.Market.Code, r.Market.Name, status, len(r.Active), len(r.Pending))
	}
	return w.Flush()
}

func runMarketSet(active bool) func(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	return func(ctx context.Context, env *Env, fs *flag.FlagSet) error {
		if fs.NArg() != 1 {
			return errors.New("name one market code, e.g. GB (see `cardata markets list`)")
		}
		a, err := env.App(ctx)
		if err != nil {
			return err
		}
		m, err := a.Onboarding.SetMarketActive(ctx, strings.ToUpper(fs.Arg(0)), active)
		if err != nil {
			return err
		}
		state := "paused"
		if m.Active {
			state = "active"
		}
		fmt.Fprintf(env.Stdout, "%s (%s) is %s\n", m.Name, m.Code, state)
		return nil
	}
}
