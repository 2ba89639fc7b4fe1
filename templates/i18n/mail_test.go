package i18n

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// mailKinds are the e-mails written from the catalogs (the senders build
// some kinds from a state: "provider."+action, "container."+state).
var mailKinds = []string{
	"provider.claim", "provider.request_info", "provider.approve", "provider.reject", "provider.suspend",
	"provider.reactivate", "provider.terminate", "provider.answered", "provider.submitted",
	"provider.already_registered_email", "provider.already_registered_vat", "provider_user.invited",
	"market_access.approved", "market_access.rejected",
	"container.approved", "container.rejected", "container.deprecated", "container.withdrawn",
	"webhook.endpoint_disabled", "invoice.sent", "credit_note.sent", "invoice.reminder",
	"consent.requested", "support.ticket_opened", "support.reply",
	"staff.welcome", "support.p1_opened", "support.sla_breach", "support.sla_warning", "support.provider_message", "support.provider_reopened",
}

// mailArgs fills every parameter any e-mail uses.
func mailArgs(z Locale) []any {
	return []any{"Name", "Anna Berger", "Company", "Alpen Versicherung AG", "Portal", "https://cardata.test/portal",
		"Note", "The note.", "Link", "https://cardata.test/x", "Terms", "Terms 2026", "SetPassword", "https://cardata.test/set",
		"Days", 7, "VATID", "ATU57318405", "By", "Bea", "Role", "Administrator", "Market", "AT", "Country", z.Country("AT", "Austria"),
		"Reason", "A reason.", "Container", "Claims", "Version", 2, "ContainerID", 9, "Change", "adds", "Previous", 1,
		"URL", "https://hooks.test/in", "ID", 4, "Failures", 20, "Since", z.DateTime(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)),
		"Buyer", "Alpen Versicherung AG", "Number", "CD-2026-000001", "Period", z.Month("2026-11"),
		"Net", z.Money(decimal.RequireFromString("1234.5")), "VAT", z.Money(decimal.Zero), "Gross", z.Money(decimal.RequireFromString("1234.5")),
		"Due", z.Date("2026-12-31"), "TaxNote", "Reverse charge.", "Issued", z.Date("2026-12-01"), "Open", z.Money(decimal.NewFromInt(10)),
		"Provider", "Alpen Versicherung AG", "VIN", "WBA00000000000001", "Service", "Claims", "Expires", z.Date("2026-12-20"),
		"Subject", "Stale data", "Priority", "P2", "Category", "API", "Target", "8 h", "Author", "Support", "Message", "Hello.",
		"Action", "wait", "Files", 2, "Clock", "first response", "Left", "2 h", "PriorityLabel", "P2 – major impact", "Assignee", "Sam"}
}

// Every e-mail has its subject and body in both languages, every parameter
// filled, and the two languages differ.
func TestEveryMailIsInBothLanguages(t *testing.T) {
	t.Parallel()
	for _, kind := range mailKinds {
		var texts [2]string
		for i, l := range Supported {
			z := MailLocale(l)
			for _, part := range []string{"subject", "body"} {
				id := "mail." + kind + "." + part
				out, ok := Lookup(l, id, mailArgs(z)...)
				if !ok || strings.Contains(out, "<no value>") || strings.Contains(out, "mail.") || strings.TrimSpace(out) == "" {
					t.Errorf("%s %s: %q", l, id, out)
				}
				texts[i] += out
			}
		}
		if texts[0] == texts[1] {
			t.Errorf("%s reads the same in German and English", kind)
		}
	}
	for _, l := range Supported {
		for _, id := range IDs(l) {
			if strings.HasPrefix(id, "mail.") && !strings.HasSuffix(id, ".subject") && !strings.HasSuffix(id, ".body") {
				t.Errorf("%s: %q is neither a subject nor a body", l, id)
			}
		}
	}
}

// The kinds and ids the code names literally are in the catalogs.
func TestMailIDsInTheCodeAreInTheCatalogs(t *testing.T) {
	t.Parallel()
	lit := regexp.MustCompile(`\.Mail\("([a-z_.]*[a-z_])"\s*[,)]|"(mail\.[a-z_]+\.[a-z_.]+)"`)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			ids := []string{m[2]}
			if m[1] != "" {
				ids = []string{"mail." + m[1] + ".subject", "mail." + m[1] + ".body"}
			}
			for _, id := range ids {
				for _, l := range Supported {
					if !Has(l, id) {
						t.Errorf("%s names %q, missing in %s", p, id, l)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
