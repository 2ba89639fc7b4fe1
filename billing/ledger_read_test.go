package billing_test

import (
	"context"
	"slices"
	"testing"

	"cardata/app/db/dbtest"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding/catalog"
)

// The ledger's reads name the keys each record delivered; a record written
// before keys were recorded is listed and counted, and never named. An
// invoice line still counts deliveries, and its records show their keys.
func TestLedgerReadsNameTheDeliveredKeys(t *testing.T) {
	t.Parallel()
	gdb := dbtest.New(t)
	s := billingtest.MustSetup(t, gdb, billingtest.NewDirectory(billingtest.German(1)))
	ctx := context.Background()
	keys := catalog.Default().Keys()
	a, b := keys[0], keys[4]
	legacy := billingtest.MustLegacyDelivery(t, gdb, billing.Delivery{ProviderID: 1, VIN: "WBA12345678901234", ContainerID: 10,
		ContainerVersion: 1, ConsentID: 100, Kind: billing.KindPull, KeysDelivered: 3, Bytes: 10, RequestID: "old",
		At: utc("2026-10-01T08:00:00Z")})
	billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, ConsentID: 100, KeyIDs: []int16{b.ID, a.ID}, RequestID: "new",
		At: utc("2026-10-02T08:00:00Z")})
	billingtest.MustDelivery(t, gdb, billing.Delivery{ProviderID: 1, ConsentID: 101, KeyIDs: []int16{a.ID}, Kind: billing.KindPush,
		EventID: "evt_1", EventType: "vehicle.positionUpdated", RequestID: "evt_1:1", At: utc("2026-10-03T08:00:00Z")})

	// The provider's list, two records a page.
	f := billing.LedgerFilter{From: utc("2026-10-01T00:00:00Z"), To: utc("2026-11-01T00:00:00Z"), Limit: 2, Oldest: true}
	page, next, err := s.FindLedger(ctx, 1, f)
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("page 1: %v %q %v", page, next, err)
	}
	if page[0].ID != legacy || page[0].KeysKnown || page[0].Keys != nil || page[0].KeysDelivered != 3 {
		t.Fatalf("legacy record: %+v", page[0])
	}
	want := []billing.DeliveredKey{{ID: b.ID, Key: b.Name, Label: b.DescriptionEN, LabelDE: b.DescriptionDE},
		{ID: a.ID, Key: a.Name, Label: a.DescriptionEN, LabelDE: a.DescriptionDE}}
	if !page[1].KeysKnown || !slices.Equal(page[1].Keys, want) || page[1].EventID != nil {
		t.Fatalf("keyed record: %+v", page[1])
	}
	f.Cursor = next
	page, next, err = s.FindLedger(ctx, 1, f)
	if err != nil || len(page) != 1 || next != "" || page[0].EventID == nil || *page[0].EventID != "evt_1" ||
		*page[0].EventType != "vehicle.positionUpdated" || len(page[0].Keys) != 1 || page[0].Keys[0].Key != a.Name {
		t.Fatalf("page 2: %+v %q %v", page, next, err)
	}

	// (Transfers and SentKeys, which select by the consents' providers,
	// are exercised end to end in app's TestLedgerNamesTheKeysEverySurfaceShows.)

	// Usage and the invoice count deliveries, the legacy one included;
	// the line's records show their keys.
	u, err := s.Usage(ctx, 1, "2026-10")
	if err != nil || u.Items[0].Count != 2 || u.Items[1].Count != 1 {
		t.Fatalf("usage: %+v %v", u, err)
	}
	mustRun(t, s, "2026-10")
	inv := invoiceFor(t, s, 1, "2026-10")
	for _, l := range inv.Lines {
		if l.Item != billing.ItemTelematics {
			continue
		}
		recs, n, err := s.LedgerPage(ctx, inv.ID, l.ID, 0, 10)
		if err != nil || n != 2 || recs[0].KeysKnown() || !recs[1].KeysKnown() || !slices.Equal(recs[1].Keys(), want) {
			t.Fatalf("line records: %d %+v %v", n, recs, err)
		}
	}
}
