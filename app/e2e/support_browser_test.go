package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"cardata/app/apptest"
	"cardata/policies"
)

// In a browser: a provider opens a ticket in the portal; support takes it,
// replies publicly and adds an internal note; the provider sees the reply
// and not the note.
func TestBrowserSupportConversationHidesInternalNotes(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	tt.MustCreateStaff(t, "sam@test.local", policies.RoleSupport)
	r := mustActiveProvider(t, tt, "Alpen Versicherung AG", "AT", "ATU13585627")
	base := tt.Serve(t)
	ctx := apptest.Browser(t)
	const reply = "Your data is current again after the gateway restart."
	const note = "Gateway eu-3 restarted by hand; root cause still unknown."
	var number, staffTimeline, status, providerPage string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/portal/tickets/new"),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, r.Admin.Email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, providerPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#submit-ticket`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-subject`, "Mileage three days old", chromedp.ByQuery),
		chromedp.SendKeys(`#f-description`, "The API returns a reading from Monday.", chromedp.ByQuery),
		chromedp.SetValue(`#f-category`, "data_quality", chromedp.ByQuery),
		chromedp.SetValue(`#f-priority`, "P2", chromedp.ByQuery),
		chromedp.Click(`#submit-ticket`, chromedp.ByQuery),
		chromedp.WaitVisible(`#number`, chromedp.ByQuery),
		chromedp.Text(`#number`, &number, chromedp.ByQuery),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(number, "T-")
	// One Run per step: a wait queued in the same Run as the click that
	// navigates can stay bound to the old document and never return.
	for i, act := range []chromedp.Action{
		chromedp.Navigate(base + "/admin/tickets/" + id),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, "sam@test.local", chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, apptest.Password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#take`, chromedp.ByQuery),
		chromedp.Click(`#take`, chromedp.ByQuery),
		chromedp.WaitVisible(`#action-wait`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-body`, reply, chromedp.ByQuery),
		chromedp.Click(`#visibility-public`, chromedp.ByQuery),
		chromedp.Click(`#send`, chromedp.ByQuery),
		// wait for the reply itself: the "take" step already left a success flash
		apptest.WaitJS(`document.querySelector("#timeline") !== null && document.querySelector("#timeline").innerText.includes(` + strconv.Quote(reply) + `)`),
		chromedp.SendKeys(`#f-body`, note, chromedp.ByQuery),
		chromedp.Click(`#visibility-internal`, chromedp.ByQuery),
		chromedp.Click(`#send`, chromedp.ByQuery),
		apptest.WaitJS(`document.querySelector("li.internal") !== null`),
		chromedp.Text(`#timeline`, &staffTimeline, chromedp.ByQuery),
		chromedp.Text(`#status`, &status, chromedp.ByQuery),
		chromedp.Click(`#logout`, chromedp.ByQuery),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.Navigate(base + "/portal/tickets/" + id),
		chromedp.WaitVisible(`#f-email`, chromedp.ByQuery),
		chromedp.SendKeys(`#f-email`, r.Admin.Email, chromedp.ByQuery),
		chromedp.SendKeys(`#f-password`, providerPassword, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`#timeline`, chromedp.ByQuery),
		chromedp.Text(`main`, &providerPage, chromedp.ByQuery),
	} {
		if err = chromedp.Run(ctx, act); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if !strings.Contains(staffTimeline, reply) || !strings.Contains(staffTimeline, note) || status != "open" {
		t.Fatalf("staff timeline %q status %q", staffTimeline, status)
	}
	if !strings.Contains(providerPage, reply) || strings.Contains(providerPage, note) || strings.Contains(providerPage, "internal") {
		t.Fatalf("provider page:\n%s", providerPage)
	}
	if !strings.Contains(providerPage, fmt.Sprintf("T-%s", id)) {
		t.Fatalf("provider page lacks the number:\n%s", providerPage)
	}
}
