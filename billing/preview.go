package billing

import (
	"context"
	"encoding/json"

	"cardata/policies/errs"
)

// PreviewPDF renders a draft (invoice or credit note) as its PDF would look
// if it were finalized now, so finance can check it first: with the current
// seller identity, today's date and the due date the payment terms give,
// but without a number (none is taken: the series stays gapless), marked
// "ENTWURF / DRAFT" as its title, in place of the number and across every
// page. Nothing is stored or changed; it is not a document that can be
// sent. Finalized documents have their stored PDF instead.
func (s *Service) PreviewPDF(ctx context.Context, id int64) ([]byte, error) {
	db := s.DB.WithContext(ctx)
	inv, err := findInvoice(db, id)
	if err != nil {
		return nil, err
	}
	if inv.Status != StatusDraft {
		return nil, errs.New(errs.Conflict, "invoice_not_draft", "only drafts have a preview; a finalized document has its stored PDF")
	}
	if len(inv.Lines) == 0 {
		return nil, errs.New(errs.Conflict, "invoice_empty", "the draft has no lines")
	}
	seller, err := loadSeller(db)
	if err != nil {
		return nil, err
	}
	var orig *Invoice
	if inv.CorrectsInvoiceID != nil {
		if orig, err = findInvoice(db, *inv.CorrectsInvoiceID); err != nil {
			return nil, err
		}
	}
	now := s.now()
	issue := dateOnly(now.In(s.loc()))
	inv.SellerSnapshot, _ = json.Marshal(seller)
	inv.IssueDate, inv.FinalizedAt = &issue, &now
	inv.DueDate = nil
	if !inv.IsCreditNote() {
		due := issue.AddDate(0, 0, seller.PaymentTermsDays)
		inv.DueDate = &due
	}
	return renderPDF(inv, orig, true)
}
