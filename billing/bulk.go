package billing

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// Bulk actions: finance finalizes a month's drafts, or sends its finalized
// invoices, in one go. Each document goes through the one-document method
// (Finalize, Send) in its own transaction, so numbers stay gapless, every
// document gets its own audit entry and e-mail, the separation of duties
// of credit notes holds, and one document that fails stops no other. A
// document already past the step (finalized, sent) is skipped and said so:
// posting the same selection again changes nothing.

// Bulk verbs.
const (
	BulkFinalize = "finalize"
	BulkSend     = "send"
)

// BulkLimit caps one bulk action's documents.
const BulkLimit = 500

// BulkSelection names the documents of a bulk action: the ticked ones, or
// All invoices of Period waiting for the step (drafts to finalize,
// finalized ones to send).
type BulkSelection struct {
	IDs    []int64
	All    bool
	Period string
}

// BulkItem is one document of a bulk action and what became of it.
type BulkItem struct {
	ID     int64
	Number string // its number after the action ("" for a draft)
	Buyer  string
	Gross  decimal.Decimal
	Reason string // why it was skipped or failed
}

// BulkResult lists what a bulk action did: done, skipped (already past the
// step) and failed (with the reason), in the order they were tried.
type BulkResult struct {
	Verb                  string
	Done, Skipped, Failed []BulkItem
}

// BulkPreview says what a bulk action would do, for its confirmation page.
type BulkPreview struct {
	Count       int             // documents the action would act on
	Skipped     int             // selected but already past the step
	Gross       decimal.Decimal // their gross total
	First, Last string          // the numbers range: to be given (finalize) or being sent
	CreditNotes int             // credit notes among them (numbered in their own series)
}

type bulkDoc struct {
	ID         int64
	DocType    string
	Status     string
	Number     *string
	BuyerName  string
	GrossTotal decimal.Decimal
}

func (d bulkDoc) item() BulkItem {
	it := BulkItem{ID: d.ID, Buyer: d.BuyerName, Gross: d.GrossTotal}
	if d.Number != nil {
		it.Number = *d.Number
	}
	return it
}

// waiting reports whether d still waits for verb's step.
func (d bulkDoc) waiting(verb string) bool {
	if verb == BulkFinalize {
		return d.Status == StatusDraft
	}
	return d.Status == StatusFinalized
}

// bulkDocs loads the selection's documents in id order (the order numbers
// are given in); unknown ids are returned apart.
func (s *Service) bulkDocs(ctx context.Context, verb string, sel BulkSelection) ([]bulkDoc, []int64, error) {
	if verb != BulkFinalize && verb != BulkSend {
		return nil, nil, errs.New(errs.BadRequest, "unknown_bulk_action", "unknown bulk action %q", verb)
	}
	q := s.DB.WithContext(ctx).Table("invoices").Select("id, doc_type, status, number, buyer_name, gross_total")
	var unknown []int64
	if sel.All {
		if _, err := ParsePeriod(sel.Period, s.loc()); err != nil {
			return nil, nil, errs.New(errs.BadRequest, "period_invalid", "choose a period (YYYY-MM)")
		}
		status := StatusDraft
		if verb == BulkSend {
			status = StatusFinalized
		}
		q = q.Where("period = ? AND doc_type = ? AND status = ?", sel.Period, DocInvoice, status)
	} else {
		ids := slices.Clone(sel.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if len(ids) == 0 {
			return nil, nil, errs.New(errs.BadRequest, "nothing_selected", "select at least one invoice")
		}
		if len(ids) > BulkLimit {
			return nil, nil, errs.New(errs.BadRequest, "too_many_selected", "select at most %d invoices at once", BulkLimit)
		}
		sel.IDs = ids
		q = q.Where("id IN ?", ids)
	}
	var docs []bulkDoc
	if err := q.Order("id").Limit(BulkLimit).Scan(&docs).Error; err != nil {
		return nil, nil, errs.Wrap(err, "bulk selection")
	}
	if !sel.All {
		found := map[int64]bool{}
		for _, d := range docs {
			found[d.ID] = true
		}
		for _, id := range sel.IDs {
			if !found[id] {
				unknown = append(unknown, id)
			}
		}
	}
	return docs, unknown, nil
}

// PreviewBulk says what BulkAction(verb, sel) would do now: how many
// documents, their gross total and the numbers range (for finalizing: the
// invoice numbers the series would give, if none fails).
func (s *Service) PreviewBulk(ctx context.Context, verb string, sel BulkSelection) (*BulkPreview, error) {
	docs, _, err := s.bulkDocs(ctx, verb, sel)
	if err != nil {
		return nil, err
	}
	p := &BulkPreview{Gross: decimal.Zero}
	var numbers []string
	invoices := 0
	for _, d := range docs {
		if !d.waiting(verb) {
			p.Skipped++
			continue
		}
		p.Count++
		p.Gross = p.Gross.Add(d.GrossTotal)
		if d.DocType == DocCreditNote {
			p.CreditNotes++
		} else {
			invoices++
		}
		if d.Number != nil {
			numbers = append(numbers, *d.Number)
		}
	}
	if verb == BulkSend {
		slices.Sort(numbers)
		if len(numbers) > 0 {
			p.First, p.Last = numbers[0], numbers[len(numbers)-1]
		}
		return p, nil
	}
	if invoices > 0 {
		year := s.now().In(s.loc()).Year()
		var last int
		if err := s.DB.WithContext(ctx).Raw(`SELECT COALESCE(MAX(last_number), 0) FROM invoice_number_series WHERE prefix = ? AND year = ?`,
			InvoicePrefix, year).Scan(&last).Error; err != nil {
			return nil, errs.Wrap(err, "number series")
		}
		p.First = fmt.Sprintf("%s-%04d-%06d", InvoicePrefix, year, last+1)
		p.Last = fmt.Sprintf("%s-%04d-%06d", InvoicePrefix, year, last+invoices)
	}
	return p, nil
}

// BulkAction finalizes or sends the selected documents one by one (see
// the top of this file). It returns an error only when the selection
// itself is wrong; each document's failure is in the result.
func (s *Service) BulkAction(ctx context.Context, verb string, sel BulkSelection) (*BulkResult, error) {
	docs, unknown, err := s.bulkDocs(ctx, verb, sel)
	if err != nil {
		return nil, err
	}
	res := &BulkResult{Verb: verb}
	for _, id := range unknown {
		res.Failed = append(res.Failed, BulkItem{ID: id, Reason: "no such invoice"})
	}
	for _, d := range docs {
		it := d.item()
		if !d.waiting(verb) {
			if skip, why := bulkSkip(verb, d.Status); skip {
				it.Reason = why
				res.Skipped = append(res.Skipped, it)
			} else {
				it.Reason = why
				res.Failed = append(res.Failed, it)
			}
			continue
		}
		var inv *Invoice
		if verb == BulkFinalize {
			inv, err = s.Finalize(ctx, d.ID)
		} else {
			inv, err = s.Send(ctx, d.ID)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			e := errs.As(err)
			if e.Code == "invoice_not_draft" || e.Code == "invoice_not_sendable" { // moved meanwhile
				if cur, ferr := s.FindInvoice(ctx, d.ID); ferr == nil {
					if skip, why := bulkSkip(verb, cur.Status); skip {
						it.Number, it.Reason = cur.NumberOrDraft(), why
						res.Skipped = append(res.Skipped, it)
						continue
					}
				}
			}
			if e.Kind == errs.Internal {
				slog.Error("bulk "+verb+" failed", "invoice", d.ID, "error", err.Error())
			}
			it.Reason = e.Message
			res.Failed = append(res.Failed, it)
			continue
		}
		if inv.Number != nil {
			it.Number = *inv.Number
		}
		it.Gross = inv.GrossTotal
		res.Done = append(res.Done, it)
	}
	return res, nil
}

// bulkSkip says whether a document in status, no longer waiting for
// verb's step, is skipped (already done: not an error) and why.
func bulkSkip(verb, status string) (bool, string) {
	switch {
	case verb == BulkFinalize && status != StatusDraft && status != StatusDiscarded:
		return true, "already finalized"
	case verb == BulkSend && (status == StatusSent || status == StatusPaid):
		return true, "already sent"
	case status == StatusDiscarded:
		return false, "the draft was discarded"
	case verb == BulkSend && status == StatusDraft:
		return false, "a draft: finalize it first"
	}
	return false, strings.ReplaceAll(status, "_", " ")
}
