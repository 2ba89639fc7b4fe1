package jobs_test

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies/errs"
)

// A message the outbox refuses is a validation error naming the field (the
// HTTP layer answers 422), not an internal error, and nothing is written.
func TestEnqueueRefusalsAreValidationErrors(t *testing.T) {
	t.Parallel()
	_, gdb := freshDB(t)
	cases := []struct {
		msg   jobs.Message
		field string
		code  string
	}{
		{jobs.Message{Kind: "test", To: "  ", Subject: "s", Body: "b"}, "to", "recipient_missing"},
		{jobs.Message{Kind: "test", To: "a@b.test", Subject: "s", Body: "b",
			Attachments: []jobs.Attachment{{Filename: "../x.pdf", ContentType: "application/pdf", Content: []byte("x")}}},
			"attachments", "attachment_filename_invalid"},
		{jobs.Message{Kind: "test", To: "a@b.test", Subject: "s", Body: "b",
			Attachments: []jobs.Attachment{{Filename: "a.pdf", ContentType: "not a type", Content: []byte("x")}}},
			"attachments", "attachment_type_invalid"},
		{jobs.Message{Kind: "test", To: "a@b.test", Subject: "s", Body: "b",
			Attachments: []jobs.Attachment{{Filename: "a.pdf", ContentType: "application/pdf"}}},
			"attachments", "attachment_empty"},
		{jobs.Message{Kind: "test", To: "a@b.test", Subject: "s", Body: "b",
			Attachments: []jobs.Attachment{{Filename: "big.bin", ContentType: "application/octet-stream", Content: make([]byte, jobs.MaxAttachmentBytes+1)}}},
			"attachments", "attachments_too_large"},
	}
	for _, tc := range cases {
		err := gdb.Transaction(func(tx *gorm.DB) error { return jobs.Enqueue(context.Background(), tx, tc.msg) })
		e := errs.As(err)
		if err == nil || e.Kind != errs.Invalid {
			t.Errorf("%s: %v, want a validation error", tc.code, err)
			continue
		}
		found := false
		for _, f := range e.Fields {
			found = found || (f.Field == tc.field && f.Code == tc.code)
		}
		if !found {
			t.Errorf("%s: fields %+v", tc.code, e.Fields)
		}
	}
	var n int64
	gdb.Raw(`SELECT count(*) FROM email_outbox`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d e-mails stored", n)
	}
}
