package admin

import (
	"strings"
	"testing"

	"cardata/templates/i18n"
)

// Every e-mail kind the catalogs write has a label on the outbox pages, and
// every label is in both languages (the pages say it with t).
func TestEveryMailKindHasALabel(t *testing.T) {
	if err := i18n.Load(); err != nil {
		t.Fatal(err)
	}
	for _, id := range i18n.IDs(i18n.EN) {
		if !strings.HasPrefix(id, "mail.") {
			continue
		}
		if kind, ok := strings.CutSuffix(strings.TrimPrefix(id, "mail."), ".subject"); ok {
			if _, labelled := mailKindLabels[kind]; !labelled {
				t.Errorf("e-mail kind %q has no label in mailKindLabels", kind)
			}
		}
	}
	for kind, label := range mailKindLabels {
		for _, l := range i18n.Supported {
			if !i18n.Has(l, label) {
				t.Errorf("%s: label %q has no %s translation (messages.%s.toml)", kind, label, l, l)
			}
		}
	}
}
