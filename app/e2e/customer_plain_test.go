package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The vehicle owner's pages speak plainly (issue 18, item 7): the consent
// page names the data by the catalog's labels without technical notes or raw
// keys, says what the provider would receive and, once granted, receives;
// the history names the provider and the owner, never internal accounts; the
// pages carry the owner's brand, not the partner office's; and the
// transaction report highlights its own menu entry.
func TestCustomerPagesSpeakPlainly(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	anna := w.customer(t, "anna@test.local")
	vin := w.vehicle(t, "BMW", "AT", true, anna)
	v := w.approvedContainer(t, "Where is my car", csMileage, csLat, csLon)
	k := w.request(t, vin, v.ContainerID)
	c := w.loginCustomer(t, "anna@test.local")
	page := fmt.Sprintf("/my/consents/%d", k.ID)

	res := c.Get(page)
	if res.Status != http.StatusOK {
		t.Fatalf("consent page: %d", res.Status)
	}
	csContains(t, res.Body, "The data Alpen Versicherung AG would receive", "Current position: latitude",
		"where your vehicle is", "· My CarData</title>", `id="deny"`)
	for _, jargon := range []string{"WGS 84", "(°)", "data container", "version 1", csLat, csMileage, "Partner Office", "test-client"} {
		if strings.Contains(res.Body, jargon) {
			t.Errorf("the consent page shows %q to the vehicle owner", jargon)
		}
	}
	// Grant and Deny are two forms apart, the Deny one set off below.
	if !regexp.MustCompile(`(?s)id="grant".*</form>.*class="deny-form".*id="deny"`).MatchString(res.Body) {
		t.Errorf("grant and deny are not separated:\n%s", res.Body)
	}

	res = c.PostForm(page+"/grant", url.Values{})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("grant: %d %s", res.Status, res.Body)
	}
	res = c.Get(page)
	csContains(t, res.Body, "The data Alpen Versicherung AG receives", "consent granted</strong> · by you",
		"asked for your consent</strong> · by Alpen Versicherung AG")
	if strings.Contains(res.Body, "would receive") {
		t.Errorf("after granting the page still says would receive")
	}
	res = c.Get("/my/history")
	csContains(t, res.Body, "by Alpen Versicherung AG", "by you")
	if strings.Contains(res.Body, "test-client") || strings.Contains(res.Body, "@test.local") {
		t.Errorf("the history names an internal account:\n%s", res.Body)
	}

	// The menu highlights the report section on the transaction report.
	res = c.Get("/my/transactions")
	if res.Status != http.StatusOK {
		t.Fatalf("transactions: %d", res.Status)
	}
	current := regexp.MustCompile(`<a href="([^"]+)" aria-current="page">`).FindAllStringSubmatch(res.Body, -1)
	if len(current) != 1 || current[0][1] != "/my/reports" {
		t.Errorf("highlighted on /my/transactions: %v", current)
	}
	res = c.Get("/my")
	current = regexp.MustCompile(`<a href="([^"]+)" aria-current="page">`).FindAllStringSubmatch(res.Body, -1)
	if len(current) != 1 || current[0][1] != "/my" {
		t.Errorf("highlighted on /my: %v", current)
	}
	csContains(t, res.Body, "<title>My vehicles and consents · My CarData</title>")
}
