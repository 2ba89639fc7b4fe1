package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// Number series prefixes: invoices CD-YYYY-NNNNNN; credit notes have their
// own gapless series CN-YYYY-NNNNNN, so each document type's series can be
// checked for gaps on its own.
const (
	InvoicePrefix    = "CD"
	CreditNotePrefix = "CN"
)

// allocateNumber takes the next number of a series inside the caller's
// transaction. The UPDATE holds the series row lock until that transaction
// ends, so concurrent finalizations queue, and a rollback returns the
// number: no gaps, no duplicates.
func allocateNumber(tx *gorm.DB, prefix string, year int) (string, error) {
	if err := tx.Exec(`INSERT INTO invoice_number_series (prefix, year) VALUES (?, ?) ON CONFLICT DO NOTHING`, prefix, year).Error; err != nil {
		return "", errs.Wrap(err, "number series")
	}
	var n int
	if err := tx.Raw(`UPDATE invoice_number_series SET last_number = last_number + 1 WHERE prefix = ? AND year = ? RETURNING last_number`,
		prefix, year).Scan(&n).Error; err != nil {
		return "", errs.Wrap(err, "number series")
	}
	if n <= 0 || n > 999_999 {
		return "", errs.Wrap(fmt.Errorf("series %s-%d at %d", prefix, year, n), "number series exhausted")
	}
	return fmt.Sprintf("%s-%04d-%06d", prefix, year, n), nil
}

func lockInvoice(tx *gorm.DB, id int64) (*Invoice, error) {
	var inv Invoice
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&inv, id).Error; err != nil {
		return nil, dbError(err, "invoice")
	}
	if err := tx.Where("invoice_id = ?", id).Order("position").Find(&inv.Lines).Error; err != nil {
		return nil, errs.Wrap(err, "invoice lines")
	}
	return &inv, nil
}

// invoiceBuyer is an invoice's buyer as the directory knows it, looked up
// before the caller's transaction (buyerOf).
type invoiceBuyer struct {
	ok         bool // looked up: an invoice (not a credit note) with a directory
	providerID int64
	party      Party
	err        error
}

// buyerOf looks up the buyer of invoice id before the caller opens its
// transaction: the directory is onboarding's, on a connection of its own,
// and a transaction holding the invoice's lock must not wait for a second
// connection from the pool it holds one of. A credit note keeps its
// original's buyer and gets none; the transaction reports a missing invoice.
func (s *Service) buyerOf(ctx context.Context, id int64) invoiceBuyer {
	var b invoiceBuyer
	if s.Directory == nil {
		return b
	}
	var rows []struct {
		ProviderID        int64
		CorrectsInvoiceID *int64
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT provider_id, corrects_invoice_id FROM invoices WHERE id = ?`, id).Scan(&rows).Error; err != nil ||
		len(rows) == 0 || rows[0].CorrectsInvoiceID != nil {
		return b
	}
	b.ok, b.providerID = true, rows[0].ProviderID
	b.party, b.err = s.Directory.BillingParty(ctx, b.providerID)
	return b
}

// Finalize numbers a draft, freezes it and stores its PDF and UBL
// documents. It refuses while seller or buyer data is incomplete. A credit
// note is issued this way too, and only by a second finance user (not the
// one who drafted it).
func (s *Service) Finalize(ctx context.Context, id int64) (*Invoice, error) {
	pre := s.buyerOf(ctx, id)
	var out *Invoice
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft {
			return errs.New(errs.Conflict, "invoice_not_draft", "only drafts can be finalized; this one is %s", errs.Term(inv.Status))
		}
		if len(inv.Lines) == 0 {
			return errs.New(errs.Conflict, "invoice_empty", "the draft has no lines")
		}
		seller, err := loadSeller(tx)
		if err != nil {
			return err
		}
		if err := seller.validate(); err != nil {
			return errs.New(errs.Conflict, "seller_incomplete", "the seller identity is incomplete (%s); complete it under Finance → Seller identity",
				said(errs.As(err).Fields))
		}
		by, byID := actor(ctx)
		var orig *Invoice
		var tc TaxCase
		if inv.IsCreditNote() {
			p := policies.PrincipalFrom(ctx)
			if p == nil || p.Kind != policies.KindStaff || byID == nil {
				return errs.New(errs.Forbidden, "four_eyes", "a credit note is issued by a finance user")
			}
			if inv.CreatedByID != nil && *inv.CreatedByID == *byID {
				return errs.New(errs.Conflict, "four_eyes", "a second finance user must issue this credit note (you drafted it)")
			}
			if orig, err = findInvoice(tx, *inv.CorrectsInvoiceID); err != nil {
				return err
			}
			if err := checkCreditable(tx, orig, inv.NetTotal, inv.ID); err != nil {
				return err
			}
			tc = TaxCase{Category: orig.TaxCategory, Rate: orig.TaxRate, Note: orig.TaxNote}
		} else {
			if s.Directory == nil {
				return errs.New(errs.Unavailable, "directory_unavailable", "no provider directory is configured")
			}
			if !pre.ok || pre.providerID != inv.ProviderID {
				return errs.New(errs.Conflict, "invoice_changed", "the invoice changed while it was being finalized; try again")
			}
			if pre.err != nil {
				return pre.err
			}
			party := pre.party
			if err := checkParty(party); err != nil {
				return err
			}
			inv.setBuyer(party)
			if tc, err = TaxFor(party); err != nil {
				return err
			}
		}
		computeTotals(inv, tc)
		if inv.NetTotal.IsNegative() {
			return errs.New(errs.Conflict, "invoice_negative", "the total is negative; correct the draft or issue a credit note instead")
		}
		now := s.now()
		issue := dateOnly(now.In(s.loc()))
		due := issue.AddDate(0, 0, seller.PaymentTermsDays)
		prefix := InvoicePrefix
		if inv.IsCreditNote() {
			prefix = CreditNotePrefix
		}
		number, err := allocateNumber(tx, prefix, issue.Year())
		if err != nil {
			return err
		}
		snap, _ := json.Marshal(seller)
		inv.Number, inv.IssueDate, inv.DueDate, inv.SellerSnapshot = &number, &issue, &due, snap
		inv.Status, inv.FinalizedBy, inv.FinalizedByID, inv.FinalizedAt = StatusFinalized, by, byID, &now
		if inv.IsCreditNote() {
			inv.DueDate = nil
		}
		err = tx.Model(&Invoice{}).Where("id = ? AND status = 'draft'", inv.ID).Updates(map[string]any{
			"status": inv.Status, "number": number, "issue_date": issue, "due_date": inv.DueDate, "seller_snapshot": snap,
			"buyer_name": inv.BuyerName, "buyer_street": inv.BuyerStreet, "buyer_postal_code": inv.BuyerPostalCode,
			"buyer_city": inv.BuyerCity, "buyer_country": inv.BuyerCountry, "buyer_vat_id": inv.BuyerVATID, "buyer_email": inv.BuyerEmail,
			"tax_category": inv.TaxCategory, "tax_rate": inv.TaxRate, "tax_note": inv.TaxNote,
			"net_total": inv.NetTotal, "tax_total": inv.TaxTotal, "gross_total": inv.GrossTotal,
			"finalized_by": by, "finalized_by_id": byID, "finalized_at": now}).Error
		if err != nil {
			return dbError(err, "finalize invoice")
		}
		docs, err := RenderDocuments(inv, orig)
		if err != nil {
			return err
		}
		for _, d := range docs {
			if err := tx.Create(&d).Error; err != nil {
				return dbError(err, "store document")
			}
		}
		if s.beforeFinalizeCommit != nil {
			if err := s.beforeFinalizeCommit(inv.ID); err != nil {
				return err
			}
		}
		what := errs.Term("invoice")
		if inv.IsCreditNote() {
			what = errs.Term("credit note")
		}
		out = inv
		return audit.Recordf(ctx, tx, "invoice.finalize", "invoice", strconv.FormatInt(inv.ID, 10),
			"finalized %s %s for %s: gross %s", what, number, inv.BuyerName, Money(inv.GrossTotal))
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func dateOnly(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// RenderDocuments renders the UBL and PDF of a finalized invoice (orig is
// the corrected invoice of a credit note). Rendering is deterministic: the
// same stored invoice always gives the same bytes.
func RenderDocuments(inv *Invoice, orig *Invoice) ([]StoredDocument, error) {
	xmlDoc, err := RenderUBL(inv, orig)
	if err != nil {
		return nil, err
	}
	pdfDoc, err := RenderPDF(inv, orig)
	if err != nil {
		return nil, err
	}
	var out []StoredDocument
	for _, d := range []struct {
		f string
		b []byte
	}{{"ubl", xmlDoc}, {"pdf", pdfDoc}} {
		sum := sha256.Sum256(d.b)
		out = append(out, StoredDocument{InvoiceID: inv.ID, Format: d.f, Content: d.b, SHA256: hex.EncodeToString(sum[:]), CreatedAt: *inv.FinalizedAt})
	}
	return out, nil
}

// Rerender renders a finalized document again from the stored invoice (the
// byte-identical check, and recovery should a stored document be lost).
func (s *Service) Rerender(ctx context.Context, id int64) ([]StoredDocument, error) {
	inv, err := s.FindInvoice(ctx, id)
	if err != nil {
		return nil, err
	}
	if inv.Number == nil {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "drafts have no documents")
	}
	var orig *Invoice
	if inv.CorrectsInvoiceID != nil {
		if orig, err = s.FindInvoice(ctx, *inv.CorrectsInvoiceID); err != nil {
			return nil, err
		}
	}
	return RenderDocuments(inv, orig)
}

// Send marks a finalized document as sent and e-mails the buyer the stored
// PDF and UBL XML as attachments (the bytes stored at finalization, with
// their sha256), plus links to both in the partner portal.
func (s *Service) Send(ctx context.Context, id int64) (*Invoice, error) {
	var out *Invoice
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if !canMove(inv.Status, StatusSent) || inv.Status == StatusPaid {
			return errs.New(errs.Conflict, "invoice_not_sendable", "only finalized documents can be sent; this one is %s", errs.Term(inv.Status))
		}
		if strings.TrimSpace(inv.BuyerEmail) == "" {
			return errs.New(errs.Conflict, "buyer_email_missing", "the provider has no billing e-mail address")
		}
		now := s.now()
		if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(map[string]any{"status": StatusSent, "sent_at": now}).Error; err != nil {
			return dbError(err, "send invoice")
		}
		inv.Status, inv.SentAt = StatusSent, &now
		atts, err := documentAttachments(tx, inv)
		if err != nil {
			return err
		}
		msg, err := s.invoiceMail(tx, inv)
		if err != nil {
			return err
		}
		msg.Attachments = atts
		if err := jobs.Enqueue(ctx, tx, msg); err != nil {
			return err
		}
		out = inv
		return audit.Recordf(ctx, tx, "invoice.send", "invoice", strconv.FormatInt(id, 10),
			"sent %s to %s", *inv.Number, inv.BuyerEmail)
	})
	return out, err
}

// SendFinalizedResult counts what SendFinalized did.
type SendFinalizedResult struct {
	Sent    int // e-mailed and marked sent
	Skipped int // no billing e-mail address on the document
	Failed  int // could not be sent (the error names them); retried on the next run
}

// SendFinalized sends every finalized, not yet sent invoice and credit note
// through Send, each in its own transaction, so one failure does not stop
// the others. Documents without a buyer e-mail address are skipped and
// counted (finalization requires one, so this only meets documents whose
// address was lost outside the application); they stay finalized for
// finance to send by hand. A document sent or paid meanwhile (a concurrent
// run, finance clicking "send") is left alone: nothing is sent twice, and
// the outbox's dedupe key per document guards the e-mail as well. The
// error, when any document failed, names the first few failures.
func (s *Service) SendFinalized(ctx context.Context) (SendFinalizedResult, error) {
	var res SendFinalizedResult
	var docs []struct {
		ID         int64
		Number     string
		BuyerEmail string
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT id, number, buyer_email FROM invoices WHERE status = ? ORDER BY id`,
		StatusFinalized).Scan(&docs).Error; err != nil {
		return res, errs.Wrap(err, "finalized invoices")
	}
	var failures []string
	for _, d := range docs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if strings.TrimSpace(d.BuyerEmail) == "" {
			res.Skipped++
			continue
		}
		_, err := s.Send(ctx, d.ID)
		switch {
		case err == nil:
			res.Sent++
		case errs.Is(err, "invoice_not_sendable"):
			// sent or paid since the list was read
		case errs.Is(err, "buyer_email_missing"):
			res.Skipped++
		case ctx.Err() != nil:
			return res, ctx.Err()
		default:
			res.Failed++
			if len(failures) < 5 {
				failures = append(failures, d.Number+": "+err.Error())
			}
		}
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d finalized documents could not be sent: %s", res.Failed, len(docs), strings.Join(failures, "; "))
	}
	return res, nil
}

// documentAttachments are the stored PDF and UBL XML of a finalized
// document as e-mail attachments named after its number.
func documentAttachments(tx *gorm.DB, inv *Invoice) ([]jobs.Attachment, error) {
	var docs []StoredDocument
	if err := tx.Where("invoice_id = ?", inv.ID).Find(&docs).Error; err != nil {
		return nil, errs.Wrap(err, "invoice documents")
	}
	byFormat := map[string][]byte{}
	for _, d := range docs {
		byFormat[d.Format] = d.Content
	}
	var out []jobs.Attachment
	for _, f := range DocumentFormats {
		b := byFormat[f.Format]
		if len(b) == 0 {
			return nil, errs.New(errs.Conflict, "document_missing", "the stored %s of %s is missing; it cannot be sent", strings.ToUpper(f.Ext), *inv.Number)
		}
		out = append(out, jobs.Attachment{Filename: *inv.Number + "." + f.Ext, ContentType: f.ContentType, Content: b})
	}
	return out, nil
}

// docBase is the portal address of inv's documents (/pdf, /xml below it).
func (s *Service) docBase(inv *Invoice) string {
	return strings.TrimRight(s.PublicURL, "/") + "/portal/invoices/" + strconv.FormatInt(inv.ID, 10)
}

// invoiceMail is the e-mail that sends inv, in the language of its buyer
// (jobs.ProviderMailLocale).
func (s *Service) invoiceMail(tx *gorm.DB, inv *Invoice) (jobs.Message, error) {
	kind := "invoice.sent"
	if inv.IsCreditNote() {
		kind = "credit_note.sent"
	}
	z, err := jobs.ProviderMailLocale(tx, inv.BuyerEmail, inv.ProviderID)
	if err != nil {
		return jobs.Message{}, err
	}
	due := ""
	if inv.DueDate != nil {
		due = z.Date(*inv.DueDate)
	}
	subject, body := z.Mail(kind, "Buyer", inv.BuyerName, "Number", *inv.Number, "Period", z.Month(inv.Period),
		"Net", z.Money(inv.NetTotal), "VAT", z.Money(inv.TaxTotal), "Gross", z.Money(inv.GrossTotal), "Due", due,
		"TaxNote", inv.TaxNote, "Link", s.docBase(inv))
	return jobs.Message{Kind: kind, To: inv.BuyerEmail, Subject: subject, Body: body,
		ObjectType: "invoice", ObjectID: strconv.FormatInt(inv.ID, 10), DedupeKey: kind + ":" + strconv.FormatInt(inv.ID, 10)}, nil
}

// NewPayment is a payment finance books.
type NewPayment struct {
	Amount     string
	ReceivedOn string // YYYY-MM-DD
	Reference  string
}

// BookPayment records a (partial) payment; the invoice becomes paid when
// nothing remains open. Overpayments are refused.
func (s *Service) BookPayment(ctx context.Context, id int64, in NewPayment) (*Payment, error) {
	v := &errs.Validation{}
	amount, err := i18n.ParseAmount(in.Amount)
	if errors.Is(err, i18n.ErrAmbiguous) {
		v.Add("amount", "amount_ambiguous", "%s", err.Error())
	} else if err != nil || !amount.IsPositive() {
		v.Add("amount", "amount_invalid", "give the amount received, e.g. 119.00")
	} else if amount.Exponent() < -2 {
		v.Add("amount", "amount_invalid", "at most two decimals")
	}
	on, err := time.ParseInLocation("2006-01-02", strings.TrimSpace(in.ReceivedOn), time.UTC)
	if err != nil {
		v.Add("received_on", "date_invalid", "give the date the money arrived (YYYY-MM-DD)")
	} else if on.After(dateOnly(s.now().In(s.loc()))) {
		v.Add("received_on", "date_future", "the date cannot be in the future")
	}
	if len(in.Reference) > 200 {
		v.Add("reference", "reference_too_long", "keep the reference under 200 characters")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, _ := actor(ctx)
	var pay *Payment
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.IsCreditNote() || (inv.Status != StatusFinalized && inv.Status != StatusSent) {
			return errs.New(errs.Conflict, "invoice_not_payable", "payments are booked on finalized or sent invoices; this one is %s", errs.Term(inv.Status))
		}
		_, cred, err := credited(tx, id)
		if err != nil {
			return err
		}
		open := inv.Open(cred)
		if amount.GreaterThan(open) {
			v := &errs.Validation{}
			v.Add("amount", "overpayment", "only %s is open", Money(open))
			return v.Err()
		}
		pay = &Payment{InvoiceID: id, Amount: amount, ReceivedOn: on, Reference: strings.TrimSpace(in.Reference), BookedBy: by, CreatedAt: s.now()}
		if err := tx.Create(pay).Error; err != nil {
			return dbError(err, "book payment")
		}
		upd := map[string]any{"paid_total": inv.PaidTotal.Add(amount)}
		if amount.Equal(open) {
			upd["status"], upd["paid_at"] = StatusPaid, s.now()
		}
		if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(upd).Error; err != nil {
			return dbError(err, "book payment")
		}
		return audit.Recordf(ctx, tx, "invoice.payment", "invoice", strconv.FormatInt(id, 10),
			"booked payment of %s on %s (received %s, ref %q)", Money(amount), *inv.Number, errs.Day{T: on}, pay.Reference)
	})
	if err != nil {
		return nil, err
	}
	return pay, nil
}

// releaseClaim removes inv's claim so that its ledger records become
// billable again, and frees its support items. Only the provider's latest
// invoice claim can go (a later invoice's records were counted without
// these); later claims without an invoice go with it, since they billed
// nothing but their quadrants would now cover the released records.
func releaseClaim(tx *gorm.DB, inv *Invoice) error {
	cs, err := providerClaims(tx, inv.ProviderID)
	if err != nil {
		return err
	}
	var own *Claim
	for i := range cs {
		if cs[i].InvoiceID != nil && *cs[i].InvoiceID == inv.ID {
			own = &cs[i]
		}
	}
	if own != nil {
		for _, c := range cs {
			if c.ID > own.ID && c.InvoiceID != nil {
				return errs.New(errs.Conflict, "invoice_not_latest", "a later invoice of this provider exists; only the provider's latest draft can be discarded or regenerated")
			}
		}
		if err := tx.Exec(`DELETE FROM ledger_claims WHERE provider_id = ? AND id >= ?`, inv.ProviderID, own.ID).Error; err != nil {
			return dbError(err, "release ledger records")
		}
	}
	if err := tx.Exec(`UPDATE billing_support_items SET invoice_id = NULL, invoice_line_id = NULL WHERE invoice_id = ?`, inv.ID).Error; err != nil {
		return dbError(err, "release support items")
	}
	return nil
}

// Discard drops a draft; its ledger records and support items become
// billable again (the next run or a re-run picks them up).
func (s *Service) Discard(ctx context.Context, id int64, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		v := &errs.Validation{}
		v.Add("reason", "reason_required", "say why the draft is discarded")
		return v.Err()
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft {
			return errs.New(errs.Conflict, "invoice_not_draft", "only drafts can be discarded; correct a finalized invoice with a credit note")
		}
		if !inv.IsCreditNote() {
			if err := lockProvider(tx, inv.ProviderID); err != nil {
				return err
			}
			if err := releaseClaim(tx, inv); err != nil {
				return err
			}
		}
		if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(map[string]any{"status": StatusDiscarded, "discarded_at": s.now(),
			"reason": reason}).Error; err != nil {
			return dbError(err, "discard")
		}
		return audit.Recordf(ctx, tx, "invoice.discard", "invoice", strconv.FormatInt(id, 10), "discarded the draft: %s", reason)
	})
}

// Regenerate re-rates a draft: it releases the draft's usage, claims again
// everything billable up to the period's end (late records included),
// refreshes the buyer data and keeps the manual lines.
func (s *Service) Regenerate(ctx context.Context, id int64) (*Invoice, error) {
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	w, err := watermark(ctx, s.DB)
	if err != nil {
		return nil, err
	}
	pre := s.buyerOf(ctx, id)
	var out *Invoice
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft || inv.IsCreditNote() {
			return errs.New(errs.Conflict, "invoice_not_draft", "only invoice drafts can be regenerated")
		}
		if err := lockProvider(tx, inv.ProviderID); err != nil {
			return err
		}
		if err := releaseClaim(tx, inv); err != nil {
			return err
		}
		var keep []Line
		for _, l := range inv.Lines {
			if l.Item == ItemManual {
				keep = append(keep, l)
			}
		}
		if err := tx.Exec(`DELETE FROM invoice_usage_details WHERE invoice_id = ?`, id).Error; err != nil {
			return dbError(err, "clear details")
		}
		if err := tx.Exec(`DELETE FROM invoice_lines WHERE invoice_id = ?`, id).Error; err != nil {
			return dbError(err, "clear lines")
		}
		if pre.ok && pre.err == nil && pre.providerID == inv.ProviderID { // looked up before the transaction
			inv.setBuyer(pre.party)
			if err := tx.Model(&Invoice{}).Where("id = ?", id).Updates(map[string]any{"buyer_name": inv.BuyerName,
				"buyer_street": inv.BuyerStreet, "buyer_postal_code": inv.BuyerPostalCode, "buyer_city": inv.BuyerCity,
				"buyer_country": inv.BuyerCountry, "buyer_vat_id": inv.BuyerVATID, "buyer_email": inv.BuyerEmail}).Error; err != nil {
				return dbError(err, "refresh buyer")
			}
		}
		p, err := ParsePeriod(inv.Period, s.loc())
		if err != nil {
			return err
		}
		cs, err := providerClaims(tx, inv.ProviderID)
		if err != nil {
			return err
		}
		rows, err := s.providerUsage(tx, inv.ProviderID, cs, w, p.End, pl)
		if err != nil {
			return err
		}
		floor, err := floorAfter(tx, inv.ProviderID, w, p.End)
		if err != nil {
			return err
		}
		base, err := billedBefore(tx, []int64{inv.ProviderID})
		if err != nil {
			return err
		}
		n, err := s.bill(ctx, tx, inv, p, pl, rows, base[inv.ProviderID], keep)
		if err != nil {
			return err
		}
		if err := tx.Create(&Claim{ProviderID: inv.ProviderID, InvoiceID: &inv.ID, Period: p.String(), HighID: w, EndsAt: p.End.UTC(),
			FloorID: floor, CreatedAt: s.now()}).Error; err != nil {
			return dbError(err, "claim")
		}
		if err := saveTotals(tx, inv); err != nil {
			return err
		}
		out = inv
		return audit.Recordf(ctx, tx, "invoice.regenerate", "invoice", strconv.FormatInt(id, 10),
			"regenerated the draft: %d ledger records, %d lines, net %s", n, len(inv.Lines), Money(inv.NetTotal))
	})
	return out, err
}

// ManualLine is a line finance adds to a draft.
type ManualLine struct {
	Description string
	Amount      string // net, may be negative (a discount)
	Reason      string
}

// AddManualLine adds a manual line with a reason to a draft.
func (s *Service) AddManualLine(ctx context.Context, id int64, in ManualLine) (*Line, error) {
	v := &errs.Validation{}
	in.Description, in.Reason = strings.TrimSpace(in.Description), strings.TrimSpace(in.Reason)
	if in.Description == "" || len(in.Description) > 200 {
		v.Add("description", "description_invalid", "describe the line (up to 200 characters)")
	}
	if in.Reason == "" {
		v.Add("reason", "reason_required", "say why the line is added (it is audited)")
	}
	amount, err := i18n.ParseAmount(in.Amount)
	if errors.Is(err, i18n.ErrAmbiguous) {
		v.Add("amount", "amount_ambiguous", "%s", err.Error())
	} else if err != nil || amount.IsZero() || amount.Exponent() < -2 || amount.Abs().GreaterThan(decimal.NewFromInt(1_000_000)) {
		v.Add("amount", "amount_invalid", "give a net amount in EUR with at most two decimals, e.g. 25.00 or -10.00")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	by, _ := actor(ctx)
	var line *Line
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, id)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft || inv.IsCreditNote() {
			return errs.New(errs.Conflict, "invoice_not_draft", "manual lines can only be added to invoice drafts")
		}
		qty := decimal.NewFromInt(1)
		if amount.IsNegative() {
			qty = qty.Neg() // EN 16931: the price is never negative (BR-27); the quantity carries the sign
		}
		pos := 1
		for _, l := range inv.Lines {
			pos = max(pos, l.Position+1)
		}
		line = &Line{InvoiceID: id, Position: pos, Item: ItemManual, Description: in.Description, ServicePeriod: inv.Period,
			Quantity: qty, UnitCode: "C62", UnitPrice: amount.Abs(), NetAmount: amount, Reason: in.Reason, CreatedBy: by}
		if err := tx.Create(line).Error; err != nil {
			return dbError(err, "manual line")
		}
		inv.Lines = append(inv.Lines, *line)
		if err := saveTotals(tx, inv); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "invoice.manual_line", "invoice", strconv.FormatInt(id, 10),
			"added manual line %q of %s: %s", in.Description, Money(amount), in.Reason)
	})
	if err != nil {
		return nil, err
	}
	return line, nil
}

// RemoveManualLine takes a manual line off an invoice draft: the lines
// after it move up one position and the totals are computed again. Only
// manual lines can go (usage and support lines come from the ledger:
// regenerate the draft instead), and only while the invoice is a draft.
// The audit entry names the line, its amount and why it had been added.
func (s *Service) RemoveManualLine(ctx context.Context, invoiceID, lineID int64) (*Line, error) {
	var removed *Line
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inv, err := lockInvoice(tx, invoiceID)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft || inv.IsCreditNote() {
			return errs.New(errs.Conflict, "invoice_not_draft", "manual lines can only be removed from invoice drafts; correct a finalized invoice with a credit note")
		}
		var keep []Line
		for i := range inv.Lines {
			if inv.Lines[i].ID == lineID {
				l := inv.Lines[i]
				removed = &l
				continue
			}
			keep = append(keep, inv.Lines[i])
		}
		if removed == nil {
			return errs.New(errs.NotFound, "invoice_line_not_found", "the draft has no such line")
		}
		if removed.Item != ItemManual {
			return errs.New(errs.Conflict, "line_not_manual", "only manual lines can be removed; usage and support lines come from the ledger (regenerate the draft instead)")
		}
		if err := tx.Exec(`DELETE FROM invoice_lines WHERE id = ? AND invoice_id = ?`, lineID, invoiceID).Error; err != nil {
			return dbError(err, "remove line")
		}
		// Close the gap in two steps: positions are unique per invoice.
		if err := tx.Exec(`UPDATE invoice_lines SET position = -position WHERE invoice_id = ? AND position > ?`, invoiceID, removed.Position).Error; err != nil {
			return dbError(err, "renumber lines")
		}
		if err := tx.Exec(`UPDATE invoice_lines SET position = -position - 1 WHERE invoice_id = ? AND position < 0`, invoiceID).Error; err != nil {
			return dbError(err, "renumber lines")
		}
		for i := range keep {
			if keep[i].Position > removed.Position {
				keep[i].Position--
			}
		}
		inv.Lines = keep
		if err := saveTotals(tx, inv); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "invoice.remove_line", "invoice", strconv.FormatInt(invoiceID, 10),
			"removed manual line %d %q of %s (added by %s: %s); net now %s", removed.Position, removed.Description,
			Money(removed.NetAmount), removed.CreatedBy, removed.Reason, Money(inv.NetTotal))
	})
	if err != nil {
		return nil, err
	}
	return removed, nil
}

// CreditRequest drafts a credit note.
type CreditRequest struct {
	Reason string
	Amount string // net amount to credit; empty credits everything still open
}

// checkCreditable refuses credits beyond the invoice's net total.
func checkCreditable(tx *gorm.DB, orig *Invoice, net decimal.Decimal, exclude int64) error {
	var already decimal.Decimal
	if err := tx.Raw(`SELECT COALESCE(sum(net_total),0) FROM invoices WHERE corrects_invoice_id = ? AND status <> 'discarded' AND id <> ?`,
		orig.ID, exclude).Scan(&already).Error; err != nil {
		return errs.Wrap(err, "credited so far")
	}
	if already.Add(net).GreaterThan(orig.NetTotal) {
		return errs.New(errs.Conflict, "credit_exceeds_invoice", "credit notes would exceed the invoice: %s net already credited or pending of %s",
			Money(already), Money(orig.NetTotal))
	}
	return nil
}

// RequestCreditNote drafts a credit note for a finalized invoice: the full
// remaining amount (a copy of its lines when nothing was credited yet) or a
// partial net amount. A second finance user issues it with Finalize.
func (s *Service) RequestCreditNote(ctx context.Context, invoiceID int64, in CreditRequest) (*Invoice, error) {
	p := policies.PrincipalFrom(ctx)
	by, byID := actor(ctx)
	if p == nil || p.Kind != policies.KindStaff || byID == nil {
		return nil, errs.New(errs.Forbidden, "four_eyes", "credit notes are drafted and issued by finance users")
	}
	v := &errs.Validation{}
	in.Reason = strings.TrimSpace(in.Reason)
	if in.Reason == "" || len(in.Reason) > 500 {
		v.Add("reason", "reason_required", "say why the invoice is corrected (up to 500 characters)")
	}
	var amount decimal.Decimal
	partial := strings.TrimSpace(in.Amount) != ""
	if partial {
		a, err := i18n.ParseAmount(in.Amount)
		if errors.Is(err, i18n.ErrAmbiguous) {
			v.Add("amount", "amount_ambiguous", "%s", err.Error())
		} else if err != nil || !a.IsPositive() || a.Exponent() < -2 {
			v.Add("amount", "amount_invalid", "give the net amount to credit, e.g. 50.00, or leave it empty to credit everything")
		}
		amount = a
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var cn *Invoice
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		orig, err := lockInvoice(tx, invoiceID)
		if err != nil {
			return err
		}
		if orig.IsCreditNote() || orig.Number == nil {
			return errs.New(errs.Conflict, "invoice_not_final", "credit notes correct finalized invoices")
		}
		var already decimal.Decimal
		if err := tx.Raw(`SELECT COALESCE(sum(net_total),0) FROM invoices WHERE corrects_invoice_id = ? AND status <> 'discarded'`,
			orig.ID).Scan(&already).Error; err != nil {
			return errs.Wrap(err, "credited so far")
		}
		remaining := orig.NetTotal.Sub(already)
		if !remaining.IsPositive() {
			return errs.New(errs.Conflict, "credit_exceeds_invoice", "the invoice is fully credited already")
		}
		var lines []Line
		switch {
		case !partial && already.IsZero():
			for _, l := range orig.Lines {
				l.ID, l.InvoiceID, l.CreatedBy = 0, 0, by
				lines = append(lines, l)
			}
		default:
			if !partial {
				amount = remaining
			}
			if amount.GreaterThan(remaining) {
				v := &errs.Validation{}
				v.Add("amount", "credit_exceeds_invoice", "at most %s net can still be credited", Money(remaining))
				return v.Err()
			}
			lines = []Line{{Item: ItemCredit, Description: fmt.Sprintf("Credit on invoice %s: %s", *orig.Number, in.Reason),
				ServicePeriod: orig.Period, Quantity: decimal.NewFromInt(1), UnitCode: "C62", UnitPrice: amount, NetAmount: amount,
				Reason: in.Reason, CreatedBy: by}}
		}
		origID := orig.ID
		cn = &Invoice{DocType: DocCreditNote, ProviderID: orig.ProviderID, Period: orig.Period, PeriodStart: orig.PeriodStart,
			PeriodEnd: orig.PeriodEnd, Status: StatusDraft, Currency: orig.Currency, CorrectsInvoiceID: &origID, Reason: in.Reason,
			CreatedBy: by, CreatedByID: byID, CreatedAt: s.now()}
		cn.setBuyer(orig.Buyer())
		if err := tx.Omit("Lines").Create(cn).Error; err != nil {
			return dbError(err, "credit note")
		}
		for i := range lines {
			lines[i].InvoiceID, lines[i].Position = cn.ID, i+1
		}
		if err := tx.Create(&lines).Error; err != nil {
			return dbError(err, "credit note lines")
		}
		cn.Lines = lines
		computeTotals(cn, TaxCase{Category: orig.TaxCategory, Rate: orig.TaxRate, Note: orig.TaxNote})
		if err := tx.Model(&Invoice{}).Where("id = ?", cn.ID).Updates(map[string]any{"tax_category": cn.TaxCategory, "tax_rate": cn.TaxRate,
			"tax_note": cn.TaxNote, "net_total": cn.NetTotal, "tax_total": cn.TaxTotal, "gross_total": cn.GrossTotal}).Error; err != nil {
			return dbError(err, "credit note totals")
		}
		return audit.Recordf(ctx, tx, "invoice.credit_note_request", "invoice", strconv.FormatInt(orig.ID, 10),
			"drafted credit note #%d on %s over %s net: %s (a second finance user issues it)", cn.ID, *orig.Number,
			Money(cn.NetTotal), in.Reason)
	})
	if err != nil {
		return nil, err
	}
	return cn, nil
}

// SendReminders e-mails a reminder for every overdue, unpaid invoice not
// reminded in the last 7 days. It returns how many were sent.
func (s *Service) SendReminders(ctx context.Context) (int, error) {
	today := dateOnly(s.now().In(s.loc()))
	var ids []int64
	err := s.DB.WithContext(ctx).Raw(`SELECT id FROM invoices WHERE doc_type = 'invoice' AND status IN ('finalized','sent')
		AND due_date < ? AND (last_reminder_at IS NULL OR last_reminder_at < ?) ORDER BY id`, today, s.now().Add(-7*24*time.Hour)).Scan(&ids).Error
	if err != nil {
		return 0, errs.Wrap(err, "overdue invoices")
	}
	sent := 0
	for _, id := range ids {
		err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			inv, err := lockInvoice(tx, id)
			if err != nil {
				return err
			}
			_, cred, err := credited(tx, id)
			if err != nil {
				return err
			}
			open := inv.Open(cred)
			if !open.IsPositive() || inv.BuyerEmail == "" {
				return nil
			}
			now := s.now()
			if err := tx.Model(&Invoice{}).Where("id = ?", id).Update("last_reminder_at", now).Error; err != nil {
				return dbError(err, "reminder")
			}
			z, err := jobs.ProviderMailLocale(tx, inv.BuyerEmail, inv.ProviderID)
			if err != nil {
				return err
			}
			subject, body := z.Mail("invoice.reminder", "Buyer", inv.BuyerName, "Number", *inv.Number, "Issued", z.Date(*inv.IssueDate),
				"Gross", z.Money(inv.GrossTotal), "Due", z.Date(*inv.DueDate), "Open", z.Money(open), "Link", s.docBase(inv))
			if err := jobs.Enqueue(ctx, tx, jobs.Message{Kind: "invoice.reminder", To: inv.BuyerEmail,
				Subject: subject, Body: body, ObjectType: "invoice", ObjectID: strconv.FormatInt(id, 10),
				DedupeKey: fmt.Sprintf("invoice.reminder:%d:%s", id, today.Format("2006-01-02"))}); err != nil {
				return err
			}
			sent++
			return audit.Recordf(ctx, tx, "invoice.reminder", "invoice", strconv.FormatInt(id, 10),
				"payment reminder for %s: %s open", *inv.Number, Money(open))
		})
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}
