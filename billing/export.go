package billing

import (
	"bytes"
	"context"
	"strconv"

	"cardata/policies/csvsafe"
	"cardata/policies/errs"
)

// ExportCSV lists the finalized documents (invoices and credit notes) of a
// period for accounting, one row each, credit notes with negative amounts.
// An empty period exports every period. Buyer names and VAT IDs come from
// providers' registrations, so every cell is written formula-safe; the
// negative amounts are plain numbers and stay usable.
func (s *Service) ExportCSV(ctx context.Context, period string) ([]byte, error) {
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
	numbers := map[int64]string{}
	for _, d := range docs {
		numbers[d.ID] = *d.Number
	}
	var buf bytes.Buffer
	w := csvsafe.NewWriter(&buf)
	_ = w.Write([]string{"number", "type", "issue_date", "due_date", "period", "provider_id", "buyer", "buyer_country", "buyer_vat_id",
		"vat_category", "vat_rate", "net", "vat", "gross", "paid", "status", "corrects", "currency"})
	for _, d := range docs {
		sign := ""
		typ := "invoice"
		if d.IsCreditNote() {
			sign, typ = "-", "credit_note"
		}
		neg := func(v string) string {
			if sign == "" || v == "0.00" {
				return v
			}
			return sign + v
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
			neg(d.NetTotal.StringFixed(2)), neg(d.TaxTotal.StringFixed(2)), neg(d.GrossTotal.StringFixed(2)),
			d.PaidTotal.StringFixed(2), d.Status, corrects, d.Currency})
	}
	w.Flush()
	return buf.Bytes(), errs.Wrap(w.Error(), "export csv")
}
