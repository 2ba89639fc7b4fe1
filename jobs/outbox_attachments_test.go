package jobs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/jobs/smtptest"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// An e-mail with attachments is stored with them in the enqueueing
// transaction and reaches the SMTP server as multipart/mixed: the text body
// and each file base64-encoded with its filename, byte for byte. A
// duplicate enqueue (same dedupe key) adds no second set; purging the
// e-mail deletes its attachments.
func TestOutboxSendsAttachmentsAsMultipart(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	srv := smtptest.Start(t)
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0, 0xff, 0x80, '\r', '\n', '.'}, 4000)...) // binary, dots at line starts
	xml := []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Invoice>Grüße</Invoice>\n")
	msg := jobs.Message{Kind: "invoice.sent", To: "billing@insurer.test", Subject: "CarData invoice CD-2026-000001",
		Body: "Dear Alpen,\n\nplease find attached.\n", ObjectType: "invoice", ObjectID: "7", DedupeKey: "invoice.sent:7",
		Attachments: []jobs.Attachment{
			{Filename: "CD-2026-000001.pdf", ContentType: "application/pdf", Content: pdf},
			{Filename: "CD-2026-000001.xml", ContentType: "application/xml", Content: xml},
		}}
	enqueue(t, gdb, msg)
	enqueue(t, gdb, msg) // deduplicated: no second e-mail, no second set of attachments
	var n int64
	gdb.Raw(`SELECT count(*) FROM email_outbox_attachments`).Scan(&n)
	if n != 2 {
		t.Fatalf("%d attachment rows", n)
	}
	row := emails(t, gdb)["billing@insurer.test"]
	infos, err := jobs.EmailAttachments(context.Background(), gdb, row.ID, 999999)
	if err != nil {
		t.Fatal(err)
	}
	got := infos[row.ID]
	if len(got) != 2 || got[0].Filename != "CD-2026-000001.pdf" || got[0].Size != int64(len(pdf)) || got[0].SHA256 != sum(pdf) ||
		got[1].ContentType != "application/xml" || got[1].Size != int64(len(xml)) || len(infos[999999]) != 0 {
		t.Fatalf("attachment infos: %+v", got)
	}

	o := &jobs.Outbox{DB: gdb, Transport: smtpTransport(srv), Log: quietLog()}
	if n, err := o.ProcessDue(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("processed %d, %v", n, err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	m := msgs[0]
	if !strings.Contains(m.Data, "multipart/mixed") || !strings.Contains(m.Body, "please find attached") {
		t.Fatalf("not a multipart message with the text body:\n%s", m.Data[:min(len(m.Data), 800)])
	}
	if len(m.Attachments) != 2 {
		t.Fatalf("%d attachments received", len(m.Attachments))
	}
	for i, want := range msg.Attachments {
		a := m.Attachments[i]
		if a.Filename != want.Filename || a.ContentType != want.ContentType || !strings.EqualFold(a.Encoding, "base64") || sum(a.Content) != sum(want.Content) {
			t.Errorf("attachment %d: %s %s %s sha256 %s, want %s %s base64 %s", i, a.Filename, a.ContentType, a.Encoding, sum(a.Content),
				want.Filename, want.ContentType, sum(want.Content))
		}
	}
	if !strings.Contains(m.Data, `filename="CD-2026-000001.pdf"`) {
		t.Error("no Content-Disposition filename")
	}

	// Purging the sent e-mail deletes its attachments.
	if n, err := jobs.PurgeSentEmails(context.Background(), gdb, time.Now().Add(time.Minute), 10); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	gdb.Raw(`SELECT count(*) FROM email_outbox_attachments`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d attachment rows after the purge", n)
	}
}

// Attachments a mail client could not handle safely are refused, and the
// e-mail with them: nothing half-written stays in the outbox.
func TestEnqueueRefusesBadAttachments(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	for _, a := range []jobs.Attachment{
		{Filename: "", ContentType: "application/pdf", Content: []byte("x")},
		{Filename: "../etc/passwd", ContentType: "text/plain", Content: []byte("x")},
		{Filename: "a\r\nBcc: x@y.test", ContentType: "text/plain", Content: []byte("x")},
		{Filename: `a".pdf`, ContentType: "application/pdf", Content: []byte("x")},
		{Filename: "a.pdf", ContentType: "not a type", Content: []byte("x")},
		{Filename: "a.pdf", ContentType: "application/pdf"},
		{Filename: "big.bin", ContentType: "application/octet-stream", Content: make([]byte, jobs.MaxAttachmentBytes+1)},
	} {
		err := gdb.Transaction(func(tx *gorm.DB) error {
			return jobs.Enqueue(context.Background(), tx, jobs.Message{Kind: "test", To: "a@b.test", Subject: "s", Body: "b",
				Attachments: []jobs.Attachment{a}})
		})
		if err == nil {
			t.Errorf("attachment %q (%s, %d bytes) accepted", a.Filename, a.ContentType, len(a.Content))
		}
	}
	var n int64
	gdb.Raw(`SELECT count(*) FROM email_outbox`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d e-mails stored", n)
	}
}
