package ingest

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"cardata/onboarding/catalog"
	"cardata/onboarding/webhooks"
)

// FuzzDecodeAndStore sends one value, as a raw JSON literal and as a JSON
// string, for every key of the catalog through the decoder, the validators
// and the store, and requires that whatever is accepted is stored and can
// be pushed: the push's JSON must be what PostgreSQL's jsonb accepts (the
// cast that once failed every push behind a `\u0000`). Under make test only
// the seed corpus runs.
func FuzzDecodeAndStore(f *testing.F) {
	for _, seed := range []string{
		`[{"t":"a\u0000b"}]`, `1e999999`, `-1e999999`, `1e-999999`, `[1e400]`, `"\u0000"`, `"a\u0000b"`,
		`["\ud800"]`, `"\udc00x"`, `{"a\u0000":1}`, `12`, `-0`, `007`, `+5`, `48.137`, `1.5e3`, `true`, `null`,
		`"CHARGINGACTIVE"`, `"2025-06-01T00:00:00Z"`, `"1999-01-01T00:00:00Z"`, `"9999-12-31T23:59:59Z"`,
		`{"reason":"OIL","km":12000}`, `[{"type":"OIL","due":"2025-01"}]`, "\"\xff\"", `"a` + "\t" + `b"`,
		`0.` + strings.Repeat("0", 20000) + `1`, `[` + strings.Repeat("1", 400) + `]`, `"\ud83d\ude97"`,
	} {
		f.Add([]byte(seed))
	}
	fx := newFixture(f, 1)
	keys := fx.svc.Catalog.Keys()
	readAt := fx.now.Add(-time.Hour)
	f.Fuzz(func(t *testing.T, value []byte) {
		var body []byte
		body = append(body, `{"signals":[`...)
		quoted, _ := json.Marshal(string(value))
		for i := range keys {
			for j, v := range [][]byte{value, quoted} {
				if i+j > 0 {
					body = append(body, ',')
				}
				body = append(body, `{"vin":"`+fx.vins[0]+`","key":"`+keys[i].Name+`","timestamp":"`+readAt.Format(time.RFC3339)+`","value":`...)
				body = append(body, v...)
				body = append(body, '}')
			}
		}
		body = append(body, "]}"...)
		signals, err := DecodeJSON(body, MaxSignals, nil)
		if err != nil {
			return // the raw literal is not JSON: the whole body is a 400
		}
		res, err := fx.svc.Ingest(ctx, signals)
		if err != nil {
			t.Fatalf("ingest of %q failed: %v", value, err)
		}
		rejected := map[int]bool{}
		for _, r := range res.Rejected {
			if r.Code == "" || r.Reason == "" {
				t.Fatalf("rejection without code or reason: %+v", r)
			}
			rejected[r.Index] = true
		}
		if res.Accepted+len(res.Rejected) != len(signals) {
			t.Fatalf("accepted %d + rejected %d != %d", res.Accepted, len(res.Rejected), len(signals))
		}
		for i := range signals {
			if rejected[i] {
				continue
			}
			k := &keys[i/2]
			push := webhooks.TelematicsData{VIN: fx.vins[0], TelematicData: map[string]webhooks.Value{
				k.Name: webhooks.NewValue(string(k.Type), k.Unit, signals[i].Value, readAt)}}
			doc, err := json.Marshal(push)
			if err != nil {
				t.Fatalf("%s accepted %q but its push does not marshal: %v", k.Name, signals[i].Value, err)
			}
			var ok bool
			if err := fx.db.Raw("SELECT CAST(? AS jsonb) IS NOT NULL", string(doc)).Row().Scan(&ok); err != nil {
				t.Fatalf("%s accepted %q but jsonb refuses its push: %v", k.Name, signals[i].Value, err)
			}
			if k.Type == catalog.JSON {
				if err := fx.db.Raw("SELECT CAST(? AS jsonb) IS NOT NULL", signals[i].Value).Row().Scan(&ok); err != nil {
					t.Fatalf("%s accepted %q but jsonb refuses it: %v", k.Name, signals[i].Value, err)
				}
			}
			if k.Type == catalog.Integer || k.Type == catalog.Decimal {
				if _, err := strconv.ParseFloat(signals[i].Value, 64); err != nil {
					t.Fatalf("%s accepted %q: %v", k.Name, signals[i].Value, err)
				}
			}
		}
	})
}

// TestPoisonValuesRefusedAtTheDoor: the values of issue 17 are listed by
// index and reason, and the rest of the batch is stored.
func TestPoisonValuesRefusedAtTheDoor(t *testing.T) {
	fx := newFixture(t, 1)
	at := fx.now.Add(-time.Minute).Format(time.RFC3339)
	body := `{"signals":[
		{"vin":"` + fx.vins[0] + `","key":"vehicle.status.checkControlMessages","timestamp":"` + at + `","value":[{"t":"a\u0000b"}]},
		{"vin":"` + fx.vins[0] + `","key":"` + kMileage + `","timestamp":"` + at + `","value":"12345"},
		{"vin":"` + fx.vins[0] + `","key":"vehicle.status.checkControlMessages","timestamp":"` + at + `","value":1e999999},
		{"vin":"` + fx.vins[0] + `","key":"` + kLat + `","timestamp":"` + at + `","value":1e999999},
		{"vin":"` + fx.vins[0] + `","key":"vehicle.status.serviceTime.next","timestamp":"` + at + `","value":"1970-01-01T00:00:00Z"},
		{"vin":"` + fx.vins[0] + `","key":"` + kCall + `","timestamp":"` + at + `","value":{"reason":"OIL"}}]}`
	signals, err := DecodeJSON([]byte(body), MaxSignals, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := fx.ingest(t, signals...)
	want := []Rejection{{Index: 0, Code: catalog.CodeValueNotAllowed}, {Index: 2, Code: catalog.CodeValueRange},
		{Index: 3, Code: catalog.CodeValueType}, {Index: 4, Code: catalog.CodeValueRange}}
	if res.Accepted != 2 || len(res.Rejected) != len(want) {
		t.Fatalf("result %+v", res)
	}
	for i, w := range want {
		if got := res.Rejected[i]; got.Index != w.Index || got.Code != w.Code || got.Reason == "" {
			t.Errorf("rejection %d = %+v, want index %d code %s", i, got, w.Index, w.Code)
		}
	}
	if v, _ := fx.latest(t, fx.vins[0], kMileage); v != "12345" {
		t.Errorf("mileage %q", v)
	}
	if v, _ := fx.latest(t, fx.vins[0], kCall); v != `{"reason":"OIL"}` {
		t.Errorf("service call %q", v)
	}
}
