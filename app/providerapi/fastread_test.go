package providerapi

import (
	"encoding/json"
	"testing"
	"time"

	"cardata/onboarding/webhooks"
)

// The hand-written encoder gives the bytes encoding/json gives for the
// same answer (the ledger records the byte count of what was sent).
func TestAppendTelematicDataMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 24, 5, 6, 7, 123456000, time.UTC)
	keys := []string{"vehicle.vehicle.travelledDistance", "vehicle.isMoving", "a.json", "b.text", "c.bool", "d.badnumber", "e.html", "f.never"}
	rows := []latestRow{
		{Key: "vehicle.vehicle.travelledDistance", Unit: "km", DataType: "integer", Value: "12345", ReadAt: at},
		{Key: "vehicle.isMoving", DataType: "boolean", Value: "true", ReadAt: at.In(time.FixedZone("CET", 3600))},
		{Key: "a.json", DataType: "json", Value: `{ "reason" : "breakdown <now> & \u2028" , "n": [1, 2] }`, ReadAt: at},
		{Key: "b.text", Unit: "°C", DataType: "string", Value: "quote \" back \\ tab \t ctl \x01 bad \xff sep \u2029 ünï", ReadAt: at},
		{Key: "c.bool", DataType: "boolean", Value: "no", ReadAt: at},
		{Key: "d.badnumber", Unit: "%", DataType: "decimal", Value: "+5.", ReadAt: at},
		{Key: "e.html", DataType: "decimal", Value: "-0.5e+3", ReadAt: at},
	}
	got := appendTelematicData(nil, "WBA<&>0000000001", 42, keys, rows)

	out := TelematicData{VIN: "WBA<&>0000000001", ContainerID: 42, TelematicData: map[string]*webhooks.Value{}}
	for _, k := range keys {
		out.TelematicData[k] = nil
	}
	for _, r := range rows {
		v := webhooks.NewValue(r.DataType, r.Unit, r.Value, r.ReadAt)
		if r.Key == "d.badnumber" { // encoding/json refuses an invalid number; the encoder sends it as text
			v.Value, _ = json.Marshal(r.Value)
		}
		out.TelematicData[r.Key] = &v
	}
	want, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("encoder differs:\n got %s\nwant %s", got, want)
	}
}

func TestJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "-1": true, "12.50": true, "1e5": true, "1E-5": true, "-0.5e+3": true,
		"": false, "+1": false, "01": false, "1.": false, ".5": false, "1e": false, "NaN": false, "Inf": false, "0x10": false, "1_000": false} {
		if jsonNumber(s) != want {
			t.Errorf("jsonNumber(%q) = %v", s, !want)
		}
	}
}
