package e2e

import (
	"net/url"
	"strings"
	"testing"

	"cardata/app/demo"
)

// The notes CarData wrote into the demo's histories (a consent carried over
// to a new container version) and the market names read in German on
// German pages; the English pages keep the stored English.
func TestHistoryNotesAndMarketNamesInGerman(t *testing.T) {
	t.Parallel()
	tt := newDemoApp(t)
	customer := loginDemo(t, tt, demoLogin{"customer", "/my/login", demo.Customer1Email, "/my"})
	if res := customer.Get("/my/history"); !strings.Contains(res.Body, "carried over to version 2, which only removes keys") {
		t.Fatalf("the English history lost the demo's carried-over note:\n%s", res.Body)
	}
	customer.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/my"}})
	res := customer.Get("/my/history")
	if !strings.Contains(res.Body, "auf Version 2 übernommen, die nur Daten entfernt: keine neue Einwilligung nötig") ||
		strings.Contains(res.Body, "carried over") {
		t.Errorf("the German history does not say the carried-over note in German:\n%s", res.Body)
	}

	manager := loginDemo(t, tt, demoLogin{"manager", "/admin/login", "manager@demo.local", "/admin"})
	manager.PostForm("/lang", url.Values{"lang": {"de"}, "back": {"/admin"}})
	for _, p := range []string{"/admin/markets", "/admin/coverage"} {
		res := manager.Get(p)
		if !strings.Contains(res.Body, "Vereinigtes Königreich") || strings.Contains(res.Body, "United Kingdom") {
			t.Errorf("%s: market names are not German", p)
		}
	}
}
