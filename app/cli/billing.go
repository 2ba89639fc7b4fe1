package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"cardata/billing"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// billingCommands are the CLI commands of the billing module.
func billingCommands() []Command {
	period := func(fs *flag.FlagSet) {
		fs.String("period", "", "billing month YYYY-MM in Europe/Berlin (default: the previous month)")
	}
	return []Command{
		{Name: "invoice run", Summary: "create the draft invoices of a month (idempotent: a re-run changes nothing)", Flags: period, Run: runInvoiceRun},
		{Name: "invoice reconcile", Summary: "re-rate a month independently in SQL; exit 1 on any difference", Flags: period, Run: runInvoiceReconcile},
		{Name: "invoice finalize", Summary: "finalize the drafts of a month (or one invoice with --id)",
			Flags: func(fs *flag.FlagSet) { period(fs); fs.Int64("id", 0, "finalize only this invoice") }, Run: runInvoiceFinalize},
		{Name: "invoice export", Summary: "write a month's finalized PDFs, e-invoices (UBL) and an accounting CSV to a directory",
			Flags: func(fs *flag.FlagSet) { period(fs); fs.String("dir", ".", "output directory (created when missing)") }, Run: runInvoiceExport},
	}
}

func cliPeriod(env *Env, fs *flag.FlagSet) (string, error) {
	p := fs.Lookup("period").Value.String()
	if p == "" {
		return billing.PeriodOf(time.Now(), env.Cfg.BillingTimezone).Prev().String(), nil
	}
	bp, err := billing.ParsePeriod(p, env.Cfg.BillingTimezone)
	if err != nil {
		return "", err
	}
	return bp.String(), nil
}

func runInvoiceRun(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	period, err := cliPeriod(env, fs)
	if err != nil {
		return err
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	run, err := a.Billing.RunPeriod(ctx, period, billing.RunOptions{Trigger: billing.TriggerCLI,
		Progress: func(done, total int) {
			if done == total || done%50 == 0 {
				fmt.Fprintf(env.Stderr, "invoice run %s: %d/%d providers\n", period, done, total)
			}
		}})
	if run != nil {
		fmt.Fprintf(env.Stdout, "invoice run #%d for %s %s: %d drafts created, %d providers skipped, %d failed, %d ledger records billed, net %s\n",
			run.ID, run.Period, run.Status, run.InvoicesCreated, run.ProvidersSkipped, run.ProvidersFailed, run.RecordsBilled, billing.FormatMoney(run.NetTotal))
	}
	return err
}

// ErrReconcileDifferences makes `invoice reconcile` exit non-zero.
var ErrReconcileDifferences = errors.New("reconcile found differences")

func runInvoiceReconcile(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	period, err := cliPeriod(env, fs)
	if err != nil {
		return err
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	rep, err := a.Billing.Reconcile(ctx, period)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "reconcile %s: %d documents, %d ledger records, %d support items re-rated; stored net %s\n",
		rep.Period, rep.Invoices, rep.Records, rep.SupportItems, billing.FormatMoney(rep.StoredNet))
	if rep.Pending > 0 {
		fmt.Fprintf(env.Stdout, "note: %d billable records delivered in %s are not invoiced yet (late arrivals; the next run bills them)\n", rep.Pending, rep.Period)
	}
	for _, d := range rep.Differences {
		fmt.Fprintln(env.Stdout, "DIFFERENCE", d.String())
	}
	if !rep.OK() {
		return fmt.Errorf("%w: %d", ErrReconcileDifferences, len(rep.Differences))
	}
	fmt.Fprintln(env.Stdout, "no differences")
	return nil
}

func runInvoiceFinalize(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	var ids []int64
	if id, _ := strconv.ParseInt(fs.Lookup("id").Value.String(), 10, 64); id > 0 {
		ids = []int64{id}
	} else {
		period, err := cliPeriod(env, fs)
		if err != nil {
			return err
		}
		for offset := 0; ; offset += 500 {
			list, total, err := a.Billing.ListInvoices(ctx, billing.InvoiceFilter{Period: period, Status: billing.StatusDraft,
				DocType: billing.DocInvoice, Offset: offset, Limit: 500})
			if err != nil {
				return err
			}
			for _, inv := range list {
				ids = append(ids, inv.ID)
			}
			if int64(offset+len(list)) >= total || len(list) == 0 {
				break
			}
		}
	}
	failed := 0
	for _, id := range ids {
		inv, err := a.Billing.Finalize(ctx, id)
		if err != nil {
			failed++
			fmt.Fprintf(env.Stdout, "draft #%d: not finalized: %s\n", id, errs.As(err).Message)
			continue
		}
		fmt.Fprintf(env.Stdout, "%s finalized: %s, gross %s\n", *inv.Number, inv.BuyerName, billing.FormatMoney(inv.GrossTotal))
	}
	fmt.Fprintf(env.Stdout, "%d finalized, %d refused\n", len(ids)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d draft(s) could not be finalized", failed)
	}
	return nil
}

func runInvoiceExport(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	period, err := cliPeriod(env, fs)
	if err != nil {
		return err
	}
	dir := fs.Lookup("dir").Value.String()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	n := 0
	for offset := 0; ; offset += 500 {
		list, total, err := a.Billing.ListInvoices(ctx, billing.InvoiceFilter{Period: period, Offset: offset, Limit: 500})
		if err != nil {
			return err
		}
		for _, inv := range list {
			if inv.Number == nil {
				continue
			}
			for _, f := range billing.DocumentFormats {
				d, err := a.Billing.Document(ctx, inv.ID, f.Format)
				if err != nil {
					return err
				}
				name, _ := d.File(&inv)
				if err := os.WriteFile(filepath.Join(dir, name), d.Content, 0o644); err != nil {
					return err
				}
			}
			n++
		}
		if int64(offset+len(list)) >= total || len(list) == 0 {
			break
		}
	}
	csv, err := a.Billing.ExportCSV(ctx, period, i18n.EN)
	if err != nil {
		return err
	}
	name := filepath.Join(dir, "cardata-invoices-"+period+".csv")
	if err := os.WriteFile(name, csv, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "exported %d finalized documents of %s (PDF and UBL) and %s to %s\n", n, period, filepath.Base(name), dir)
	return nil
}
