package billing

import (
	"context"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// issuedStatuses are the statuses a provider sees: documents that were
// finalized (and perhaps sent or paid). Drafts and discarded drafts never
// leave the finance desk.
var issuedStatuses = []string{StatusFinalized, StatusSent, StatusPaid}

// ProviderInvoiceFilter narrows ProviderInvoicePage. Status, when set,
// must be one of the issued statuses; DocType is DocInvoice or
// DocCreditNote; Number is a substring of the number, any case (the
// portal's search box). AfterAt/AfterID are the keyset position of the previous
// page's last document (its finalization time and id; zero: the first page).
type ProviderInvoiceFilter struct {
	Period  string
	Status  string
	DocType string
	Number  string
	AfterAt time.Time
	AfterID int64
	Limit   int
}

// ProviderInvoicePage lists a provider's own issued invoices and credit
// notes (finalized, sent or paid; never drafts or discarded ones), newest
// finalization first, one page of f.Limit; more reports whether another
// page follows. The ownership and status conditions are in the query (the
// provider API uses it).
func (s *Service) ProviderInvoicePage(ctx context.Context, providerID int64, f ProviderInvoiceFilter) (out []Invoice, more bool, err error) {
	q := s.DB.WithContext(ctx).Model(&Invoice{}).Where("provider_id = ? AND status IN ?", providerID, issuedStatuses)
	if f.Period != "" {
		q = q.Where("period = ?", f.Period)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.DocType != "" {
		q = q.Where("doc_type = ?", f.DocType)
	}
	if n := strings.TrimSpace(f.Number); n != "" {
		q = q.Where("number ILIKE ?", containsPattern(n))
	}
	if f.AfterID > 0 {
		q = q.Where("(finalized_at, id) < (?, ?)", f.AfterAt, f.AfterID)
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	err = q.Order("finalized_at DESC, id DESC").Limit(f.Limit + 1).Find(&out).Error
	if len(out) > f.Limit {
		out, more = out[:f.Limit], true
	}
	return out, more, errs.Wrap(err, "provider invoices")
}

// ProviderCredits returns, for each of the given invoices of the provider,
// the gross total of the issued credit notes that correct it (invoices
// without any are absent). Draft and discarded credit notes do not count.
func (s *Service) ProviderCredits(ctx context.Context, providerID int64, invoiceIDs []int64) (map[int64]decimal.Decimal, error) {
	out := make(map[int64]decimal.Decimal, len(invoiceIDs))
	if len(invoiceIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		InvoiceID int64
		Gross     decimal.Decimal
	}
	err := s.DB.WithContext(ctx).Raw(`SELECT corrects_invoice_id AS invoice_id, sum(gross_total) AS gross FROM invoices
		WHERE provider_id = ? AND corrects_invoice_id IN ? AND doc_type = 'credit_note' AND status IN ?
		GROUP BY corrects_invoice_id`, providerID, invoiceIDs, issuedStatuses).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "provider credits")
	}
	for _, r := range rows {
		out[r.InvoiceID] = r.Gross
	}
	return out, nil
}

// ProviderCreditNotes lists the issued credit notes of the provider that
// correct one of its invoices (drafts and discarded ones are left out).
func (s *Service) ProviderCreditNotes(ctx context.Context, providerID, invoiceID int64) ([]Invoice, error) {
	var out []Invoice
	err := s.DB.WithContext(ctx).Where("provider_id = ? AND corrects_invoice_id = ? AND doc_type = 'credit_note' AND status IN ?",
		providerID, invoiceID, issuedStatuses).Order("finalized_at, id").Find(&out).Error
	return out, errs.Wrap(err, "provider credit notes")
}

// ProviderInvoiceNumbers returns the numbers of those of the given
// documents that are the provider's and issued (the invoices its credit
// notes correct).
func (s *Service) ProviderInvoiceNumbers(ctx context.Context, providerID int64, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID     int64
		Number string
	}
	err := s.DB.WithContext(ctx).Raw(`SELECT id, number FROM invoices WHERE provider_id = ? AND id IN ? AND status IN ?`,
		providerID, ids, issuedStatuses).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "invoice numbers")
	}
	for _, r := range rows {
		out[r.ID] = r.Number
	}
	return out, nil
}
