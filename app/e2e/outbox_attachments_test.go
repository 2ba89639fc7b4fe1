package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"

	"cardata/app/apptest"
	"cardata/jobs"
	"cardata/policies"
)

// The admin outbox lists each e-mail's attachments with their sizes, and
// the e-mail's page their types and sha256.
func TestOutboxShowsAttachments(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	pdf := []byte("%PDF-1.7\n" + strings.Repeat("x", 2039)) // 2048 bytes
	err := tt.DB.Transaction(func(tx *gorm.DB) error {
		return jobs.Enqueue(context.Background(), tx, jobs.Message{Kind: "invoice.sent", To: "rechnung@alpen.test",
			Subject: "CarData invoice CD-2026-000001", Body: "Dear Alpen,\nattached.", ObjectType: "invoice", ObjectID: "1",
			Attachments: []jobs.Attachment{
				{Filename: "CD-2026-000001.pdf", ContentType: "application/pdf", Content: pdf},
				{Filename: "CD-2026-000001.xml", ContentType: "application/xml", Content: []byte("<Invoice/>")},
			}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var e jobs.Email
	tt.DB.Where("to_addr = ?", "rechnung@alpen.test").Take(&e)
	tt.MustCreateStaff(t, "ada@attach.test", policies.RoleAdmin)
	admin := tt.LoginStaff(t, "ada@attach.test")
	res := admin.Get("/admin/outbox")
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "CD-2026-000001.pdf (2.0 KB)") || !strings.Contains(res.Body, "CD-2026-000001.xml (10 B)") {
		t.Fatalf("outbox list: %d, attachments missing", res.Status)
	}
	res = admin.Get(fmt.Sprintf("/admin/outbox/%d", e.ID))
	infos, _ := jobs.EmailAttachments(context.Background(), tt.DB, e.ID)
	if res.Status != http.StatusOK || !strings.Contains(res.Body, `id="attachments"`) || !strings.Contains(res.Body, "application/pdf") ||
		len(infos[e.ID]) != 2 || !strings.Contains(res.Body, infos[e.ID][0].SHA256) {
		t.Fatalf("outbox e-mail page: %d", res.Status)
	}
}
