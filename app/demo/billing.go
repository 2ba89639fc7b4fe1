package demo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"cardata/billing"
	"cardata/policies"
	"cardata/policies/errs"
)

// Seller is the seller identity the demo publishes invoices under.
var Seller = billing.Seller{Name: "CarData Services GmbH", Street: "Petuelring 130", PostalCode: "80809", City: "München",
	Country: "DE", VATID: "DE987654328", TaxNumber: "143/123/45678", RegisterID: "HRB 123456, Amtsgericht München",
	IBAN: "DE89370400440532013000", BIC: "COBADEFFXXX", BankName: "Commerzbank", Email: "billing@cardata.example",
	Phone: "+49 89 1234560", PaymentTermsDays: 30}

// demoBilling publishes the price list and the seller identity, and, when
// onboarding has active providers, gives them two months of (synthetic
// fleet) deliveries: the month before last is invoiced, finalized, sent and
// partly paid; last month's drafts wait for finance. Idempotent: request
// ids are fixed and the run skips invoiced providers.
func (a loader) demoBilling(ctx context.Context, out io.Writer) error {
	svc := a.Billing
	ctx = policies.WithPrincipal(ctx, policies.System("demo"))
	seller, err := svc.Seller(ctx)
	if err != nil {
		return err
	}
	if seller.Name == "" {
		if _, err := svc.UpdateSeller(ctx, Seller); err != nil {
			return err
		}
		fmt.Fprintln(out, "demo: billing seller identity (CarData Services GmbH)")
	}
	loc := a.Cfg.BillingTimezone
	if _, created, err := svc.EnsureInitialPriceList(ctx, billing.DefaultPrices(time.Date(2025, 1, 1, 0, 0, 0, 0, loc))); err != nil {
		return err
	} else if created {
		fmt.Fprintln(out, "demo: published price list valid from 2025-01-01")
	}
	ids, err := svc.Directory.ActiveProviderIDs(ctx)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		fmt.Fprintln(out, "demo: billing: no active providers yet, no deliveries or invoices")
		return nil
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	last := billing.PeriodOf(time.Now(), loc).Prev()
	before := last.Prev()
	for i, id := range ids {
		// The first provider crosses the 10,000 tier; the others stay below it.
		n := 300 + 150*i
		if i == 0 {
			n = 10_200
		}
		for _, p := range []billing.Period{before, last} {
			if err := svc.RecordDemoDeliveries(ctx, id, p, n, n/40); err != nil {
				return err
			}
		}
	}
	for _, p := range []billing.Period{before, last} {
		run, err := svc.RunPeriod(ctx, p.String(), billing.RunOptions{Trigger: billing.TriggerDemo})
		if err != nil && !errs.Is(err, "run_incomplete") {
			return err
		}
		if run != nil && run.InvoicesCreated > 0 {
			fmt.Fprintf(out, "demo: invoice run %s: %d drafts, net %s\n", p, run.InvoicesCreated, billing.FormatMoney(run.NetTotal))
		}
	}
	// The month before last is finalized and sent; the first invoice is paid in part.
	drafts, _, err := svc.ListInvoices(ctx, billing.InvoiceFilter{Period: before.String(), Status: billing.StatusDraft, DocType: billing.DocInvoice, Limit: 500})
	if err != nil {
		return err
	}
	sort.Slice(drafts, func(i, j int) bool { return drafts[i].ID < drafts[j].ID })
	for i, d := range drafts {
		inv, err := svc.Finalize(ctx, d.ID)
		if err != nil {
			fmt.Fprintf(out, "demo: draft #%d of %s stays a draft: %s\n", d.ID, d.BuyerName, errs.As(err).Message)
			continue
		}
		if _, err := svc.Send(ctx, inv.ID); err != nil {
			return err
		}
		if i == 0 {
			half := inv.GrossTotal.Div(decimal.NewFromInt(2)).Round(2)
			if _, err := svc.BookPayment(ctx, inv.ID, billing.NewPayment{Amount: half.StringFixed(2),
				ReceivedOn: time.Now().In(loc).Format("2006-01-02"), Reference: "SEPA demo partial payment"}); err != nil {
				return err
			}
		}
		fmt.Fprintf(out, "demo: %s finalized and sent to %s\n", *inv.Number, inv.BuyerName)
	}
	return nil
}
