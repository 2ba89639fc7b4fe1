package billing

import (
	"bytes"
	"context"
	"strconv"

	"github.com/shopspring/decimal"

	"cardata/policies/csvsafe"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// ExportCSV lists the finalized documents (invoices and credit notes) of a
// period for accounting, one row each, credit notes with negative amounts
// (as everywhere they are shown: Invoice.Signed). An invoice's row says
// what its credit notes took off (credited) and what is still open; its
// status is the one shown in the staff UI, "partially_paid" included.
// An empty period exports every period. Buyer names and VAT IDs come from
// providers' registrations, so every cell is written formula-safe; the
// negative amounts are plain numbers and stay usable.
//
// The header row is in lang (i18n.CSVHeader: the ids in English, labels in
// German); the columns and their values never change with the language.
func (s *Service) ExportCSV(ctx context.Context, period string, lang i18n.Lang) ([]byte, error) {
	q := s.DB.WithContext(ctx).Where("status IN ('finalized','sent','paid')")
	if period != "" {
		p, err := ParsePeriod(period, s.loc())
		if err != nil {
			return nil, err
		}
		q = q.Where("period = ?", p.String())
	}
	var docs []Invoice
	if err := q.Order("number").Find(&docs).Error; err != nil {
		return nil, errs.Wrap(err, "export")
	}
	if err := fillCredited(s.DB.WithContext(ctx), docs); err != nil {
		return nil, err
	}
	numbers := map[int64]string{}
	for _, d := range docs {
		numbers[d.ID] = *d.Number
	}
	var buf bytes.Buffer
	w := csvsafe.NewWriter(&buf)
	_ = w.Write(i18n.CSVHeader(lang, "number", "type", "issue_date", "due_date", "period", "provider_id", "buyer", "buyer_country", "buyer_vat_id",
		"vat_category", "vat_rate", "net", "vat", "gross", "paid", "credited", "open", "status", "corrects", "currency"))
	for _, d := range docs {
		typ := "invoice"
		if d.IsCreditNote() {
			typ = "credit_note"
		}
		amount := func(v decimal.Decimal) string { return d.Signed(v).StringFixed(2) }
		credited, open := "", ""
		if !d.IsCreditNote() {
			credited, open = d.Credited.StringFixed(2), d.OpenAmount().StringFixed(2)
		}
		due := ""
		if d.DueDate != nil {
			due = d.DueDate.Format("2006-01-02")
		}
		corrects := ""
		if d.CorrectsInvoiceID != nil {
			corrects = numbers[*d.CorrectsInvoiceID]
			if corrects == "" {
				var n *string
				s.DB.WithContext(ctx).Raw(`SELECT number FROM invoices WHERE id = ?`, *d.CorrectsInvoiceID).Scan(&n)
				if n != nil {
					corrects = *n
				}
			}
		}
		_ = w.Write([]string{*d.Number, typ, d.IssueDate.Format("2006-01-02"), due, d.Period, strconv.FormatInt(d.ProviderID, 10),
			d.BuyerName, d.BuyerCountry, d.BuyerVATID, d.TaxCategory, d.TaxRate.StringFixed(2),
			amount(d.NetTotal), amount(d.TaxTotal), amount(d.GrossTotal),
			d.PaidTotal.StringFixed(2), credited, open, d.DisplayStatus(), corrects, d.Currency})
	}
	w.Flush()
	return buf.Bytes(), errs.Wrap(w.Error(), "export csv")
}
