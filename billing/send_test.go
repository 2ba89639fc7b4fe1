package billing_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/jobs"
	"cardata/jobs/smtptest"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// outboxMail is the one e-mail of kind about a document, with its attachments.
func outboxMail(t *testing.T, gdb *gorm.DB, kind string, invoiceID int64) (jobs.Email, []jobs.AttachmentInfo) {
	t.Helper()
	var rows []jobs.Email
	if err := gdb.Where("kind = ? AND object_type = 'invoice' AND object_id = ?", kind, strconv.FormatInt(invoiceID, 10)).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d %s e-mails for invoice %d", len(rows), kind, invoiceID)
	}
	atts, err := jobs.EmailAttachments(context.Background(), gdb, rows[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return rows[0], atts[rows[0].ID]
}

// wantDocumentAttachments checks that atts are the stored PDF and UBL of
// inv, named after its number, byte for byte (sha256 of the stored rows).
func wantDocumentAttachments(t *testing.T, s *billing.Service, inv *billing.Invoice, atts []jobs.AttachmentInfo) {
	t.Helper()
	pdf, err := s.Document(context.Background(), inv.ID, "pdf")
	if err != nil {
		t.Fatal(err)
	}
	ubl, err := s.Document(context.Background(), inv.ID, "ubl")
	if err != nil {
		t.Fatal(err)
	}
	want := []jobs.AttachmentInfo{
		{Filename: *inv.Number + ".pdf", ContentType: "application/pdf", Size: int64(len(pdf.Content)), SHA256: pdf.SHA256},
		{Filename: *inv.Number + ".xml", ContentType: "application/xml", Size: int64(len(ubl.Content)), SHA256: ubl.SHA256},
	}
	if len(atts) != len(want) {
		t.Fatalf("%s: %d attachments: %+v", *inv.Number, len(atts), atts)
	}
	for i, w := range want {
		a := atts[i]
		if a.Filename != w.Filename || a.ContentType != w.ContentType || a.Size != w.Size || a.SHA256 != w.SHA256 {
			t.Errorf("attachment %d = %s %s %d %s, want %s %s %d %s", i, a.Filename, a.ContentType, a.Size, a.SHA256,
				w.Filename, w.ContentType, w.Size, w.SHA256)
		}
	}
}

// Sending an invoice and a credit note e-mails the stored PDF and UBL XML
// as attachments (and still links to the portal); the SMTP server receives
// a multipart message whose attachments are the stored bytes.
func TestSendAttachesTheStoredDocuments(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.Austrian(1)))
	ctx := billingtest.Ctx()
	billingtest.MustDeliveries(t, gdb, 1, billing.KindPull, utc("2026-10-05T00:00:00Z"), time.Minute, 25, "a")
	mustRun(t, s, "2026-10")
	inv, err := s.Finalize(ctx, invoiceFor(t, s, 1, "2026-10").ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, inv.ID); err != nil {
		t.Fatal(err)
	}
	mail, atts := outboxMail(t, gdb, "invoice.sent", inv.ID)
	wantDocumentAttachments(t, s, inv, atts)
	if mail.ToAddr != "rechnung1@alpen.example" || !strings.Contains(mail.BodyText, "/portal/invoices/") ||
		!strings.Contains(mail.BodyText, *inv.Number+".pdf") || strings.Contains(mail.BodyText, "no attachments") {
		t.Fatalf("mail: %+v", mail)
	}

	// A credit note, drafted and issued by two finance users, is sent the same way.
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), inv.ID, billing.CreditRequest{Reason: "duplicate deliveries", Amount: "0.10"})
	if err != nil {
		t.Fatal(err)
	}
	if cn, err = s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, cn.ID); err != nil {
		t.Fatal(err)
	}
	_, cnAtts := outboxMail(t, gdb, "credit_note.sent", cn.ID)
	if !strings.HasPrefix(*cn.Number, "CN-") {
		t.Fatalf("credit note number %s", *cn.Number)
	}
	wantDocumentAttachments(t, s, cn, cnAtts)

	// Delivered over SMTP: multipart/mixed, attachments equal to the stored documents.
	srv := smtptest.Start(t)
	o := &jobs.Outbox{DB: gdb, Transport: &jobs.SMTPTransport{Host: srv.Host, Port: srv.Port, From: "CarData <billing@cardata.example>",
		Timeout: time.Minute}}
	if n, err := o.ProcessDue(context.Background(), 10); err != nil || n != 2 {
		t.Fatalf("outbox processed %d, %v", n, err)
	}
	got := map[string]smtptest.Message{}
	for _, m := range srv.Messages() {
		got[m.Subject] = m
	}
	for _, doc := range []*billing.Invoice{inv, cn} {
		var m smtptest.Message
		for subj, msg := range got {
			if strings.HasSuffix(subj, *doc.Number) {
				m = msg
			}
		}
		if !strings.Contains(m.Data, "multipart/mixed") || !strings.Contains(m.Body, "/portal/invoices/") || len(m.Attachments) != 2 {
			t.Fatalf("%s: message with %d attachments, body %q", *doc.Number, len(m.Attachments), m.Body)
		}
		for i, format := range []string{"pdf", "ubl"} {
			stored, err := s.Document(context.Background(), doc.ID, format)
			if err != nil {
				t.Fatal(err)
			}
			a := m.Attachments[i]
			ext := map[string]string{"pdf": ".pdf", "ubl": ".xml"}[format]
			if a.Filename != *doc.Number+ext || sha(a.Content) != stored.SHA256 {
				t.Errorf("%s: received %s with sha256 %s, stored %s", *doc.Number, a.Filename, sha(a.Content), stored.SHA256)
			}
		}
	}
}

// markFinalizedBySQL turns a draft into a finalized document behind the
// service's back (as if imported or finalized before an address was
// required): a number, no documents, and the given buyer e-mail.
func markFinalizedBySQL(t *testing.T, gdb *gorm.DB, id int64, number, email string) {
	t.Helper()
	if err := gdb.Exec(`UPDATE invoices SET status = 'finalized', number = ?, issue_date = '2027-01-15', finalized_at = now(), buyer_email = ?
		WHERE id = ? AND status = 'draft'`, number, email, id).Error; err != nil {
		t.Fatal(err)
	}
}

// The job body invoice.send_finalized: every finalized, unsent document
// with a buyer e-mail address is sent once; one without an address is
// skipped and counted; one that cannot be sent (its documents are missing)
// fails without stopping the others. Running again sends nothing twice,
// and neither do two concurrent runs.
func TestSendFinalizedSendsEachDocumentOnce(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1), billingtest.Austrian(2), billingtest.Norwegian(3)))
	ctx := billingtest.Ctx()
	for p := int64(1); p <= 3; p++ {
		billingtest.MustDeliveries(t, gdb, p, billing.KindPull, utc("2026-10-05T00:00:00Z"), time.Minute, 10, fmt.Sprint("p", p))
	}
	mustRun(t, s, "2026-10")
	broken, good, noMail := invoiceFor(t, s, 1, "2026-10"), invoiceFor(t, s, 2, "2026-10"), invoiceFor(t, s, 3, "2026-10")
	markFinalizedBySQL(t, gdb, broken.ID, "CD-2099-000001", "billing1@werkstatt.example")
	markFinalizedBySQL(t, gdb, noMail.ID, "CD-2099-000002", "")
	if _, err := s.Finalize(ctx, good.ID); err != nil {
		t.Fatal(err)
	}
	if broken.ID > good.ID {
		t.Fatalf("the failing document should come first (ids %d, %d)", broken.ID, good.ID)
	}

	res, err := s.SendFinalized(ctx)
	if res != (billing.SendFinalizedResult{Sent: 1, Skipped: 1, Failed: 1}) || err == nil || !strings.Contains(err.Error(), "CD-2099-000001") {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	sent, err := s.FindInvoice(ctx, good.ID)
	if err != nil || sent.Status != billing.StatusSent || sent.SentAt == nil {
		t.Fatalf("sent invoice: %+v %v", sent, err)
	}
	g, _ := s.FindInvoice(ctx, good.ID)
	_, atts := outboxMail(t, gdb, "invoice.sent", good.ID)
	wantDocumentAttachments(t, s, g, atts)
	for _, id := range []int64{broken.ID, noMail.ID} {
		if inv, _ := s.FindInvoice(ctx, id); inv.Status != billing.StatusFinalized {
			t.Errorf("invoice %d is %s", id, inv.Status)
		}
	}

	// Again: nothing new is sent; the skipped and failed ones are counted again.
	res, err = s.SendFinalized(ctx)
	if res != (billing.SendFinalizedResult{Sent: 0, Skipped: 1, Failed: 1}) || err == nil {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	var mails int64
	gdb.Model(&jobs.Email{}).Where("kind = 'invoice.sent'").Count(&mails)
	if mails != 1 {
		t.Fatalf("%d invoice e-mails", mails)
	}

	// A credit note on the sent invoice: two concurrent runs send it once.
	cn, err := s.RequestCreditNote(billingtest.StaffCtx(11, "fiona@test"), good.ID, billing.CreditRequest{Reason: "goodwill", Amount: "0.05"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finalize(billingtest.StaffCtx(12, "frank@test"), cn.ID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]billing.SendFinalizedResult, 2)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], _ = s.SendFinalized(ctx) }()
	}
	wg.Wait()
	if results[0].Sent+results[1].Sent != 1 {
		t.Fatalf("concurrent runs sent %+v", results)
	}
	gdb.Model(&jobs.Email{}).Where("kind = 'credit_note.sent'").Count(&mails)
	if mails != 1 {
		t.Fatalf("%d credit note e-mails", mails)
	}
}
