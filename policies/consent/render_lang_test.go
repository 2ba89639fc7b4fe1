package consent

import (
	"archive/zip"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"cardata/templates/i18n"
)

func archiveFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(data)
	}
	return out
}

// The data report archive speaks the customer's language: the readable
// page, the CSV headers and the catalog's key descriptions and labels;
// times on the page in Europe/Berlin in that language's format. The JSON
// stays the same in both.
func TestDataReportArchiveInTheCustomersLanguage(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	gen := time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC) // 23:30 in Berlin
	val, read := "12042", gen.Add(-time.Hour)
	r := &DataReport{GeneratedAt: gen, Customer: ReportCustomer{ID: 1, Email: "anna@test.local", Name: "Anna"}, SentFromLedger: true,
		Vehicles: []ReportVehicle{{VIN: "WBA00000000000001", Brand: "BMW", Model: "320d", Drivetrain: "combustion", Market: "AT", Role: "primary",
			Values: []ReportValue{{Key: "vehicle.mileage", Category: "status", Unit: "km", Description: "Mileage", DescriptionDE: "Kilometerstand",
				Received: true, Value: &val, ReadAt: &read, ReceivedAt: &read}}}},
		Consents: []ReportConsent{{ID: 7, VIN: "WBA00000000000001", Provider: "Alpen AG", Container: "Claims", Version: 1, State: Granted,
			RequestedAt: gen, Keys: []string{"vehicle.mileage"},
			Sent:    []ReportSentKey{{Key: "vehicle.mileage", Label: "Mileage", LabelDE: "Kilometerstand", Deliveries: 2, FirstAt: gen, LastAt: gen}},
			History: []ReportChange{{At: gen, To: Granted, Version: 1, Actor: "Anna", ActorKind: "customer"}}}}}
	want := map[i18n.Lang]struct{ page, values, sent, consents []string }{
		i18n.DE: {
			page:     []string{`<html lang="de">`, "Ihr CarData-Datenbericht", "erstellt am 05.12.2026 23:30 CET", "Kilometerstand", "Verbrennungsmotor", "Hauptnutzer", "erteilt"},
			values:   []string{"VIN,Schlüssel,Beschreibung,Kategorie", "Kilometerstand", ",ja,"},
			sent:     []string{"Einwilligungs-ID,Anbieter", "Kilometerstand"},
			consents: []string{"erteilt"},
		},
		i18n.EN: {
			page:     []string{`<html lang="en">`, "Your CarData data report", "generated 2026-12-05 23:30 CET", "Mileage", "combustion engine", "primary", "granted"},
			values:   []string{"vin,key,description,category", ",Mileage,", ",yes,"},
			sent:     []string{"consent_id,provider", ",Mileage,"},
			consents: []string{"granted"},
		},
	}
	var jsons []string
	for lang, w := range want {
		b, err := RenderArchive(r, berlin, lang)
		if err != nil {
			t.Fatal(err)
		}
		f := archiveFiles(t, b)
		for file, parts := range map[string][]string{"report.html": w.page, "values.csv": w.values, "sent_keys.csv": w.sent, "consents.csv": w.consents} {
			for _, p := range parts {
				if !strings.Contains(f[file], p) {
					t.Errorf("%s %s lacks %q:\n%s", lang, file, p, f[file])
				}
			}
		}
		if lang == i18n.DE && strings.Contains(f["report.html"], "never received") {
			t.Errorf("German page has English text")
		}
		jsons = append(jsons, f["report.json"])
	}
	if jsons[0] != jsons[1] {
		t.Error("report.json differs between the languages")
	}
	for _, c := range []struct {
		asked, remembered string
		want              i18n.Lang
	}{
		{"de", "en", i18n.DE}, {"", "de", i18n.DE}, {"", "", i18n.EN}, {"en", "de", i18n.EN},
	} {
		if got := reportLang(c.asked, c.remembered); got != c.want {
			t.Errorf("reportLang(%q, %q) = %s", c.asked, c.remembered, got)
		}
	}
}
