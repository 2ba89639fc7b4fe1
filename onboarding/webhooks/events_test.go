package webhooks

import (
	"slices"
	"testing"

	"cardata/onboarding/catalog"
)

// Every vehicle event type of the catalog goes out as a type providers can
// subscribe to, and TypeForPushEvent follows the catalog.
func TestCatalogEventsMapToSubscribableTypes(t *testing.T) {
	t.Parallel()
	for _, e := range catalog.Default().Events() {
		if !slices.Contains(EventTypes, e.WebhookType) {
			t.Errorf("catalog event %s: webhook type %q is not subscribable", e.Name, e.WebhookType)
		}
		if got := TypeForPushEvent(e.Name); got != e.WebhookType {
			t.Errorf("TypeForPushEvent(%s) = %s, want %s", e.Name, got, e.WebhookType)
		}
	}
	if TypeForPushEvent("position_updated") != TypePositionUpdated || TypeForPushEvent("service_call") != TypeServiceCall ||
		TypeForPushEvent("alarm") != TypeTelematicsUpdated || TypeForPushEvent("no_such_event") != TypeTelematicsUpdated {
		t.Fatal("TypeForPushEvent does not follow the catalog")
	}
}
