package jsonb

import (
	"encoding/json"
	"testing"
)

func TestValueAndScanRoundTrip(t *testing.T) {
	v, err := Value(map[string]any{"n": 3, "s": "x"})
	if err != nil || v != `{"n":3,"s":"x"}` {
		t.Fatalf("%v %v", v, err)
	}
	m := map[string]any{}
	if ok, err := Scan([]byte(`{"n":3,"s":"x"}`), &m); !ok || err != nil || m["n"] != json.Number("3") || m["s"] != "x" {
		t.Fatalf("%v %v %v", ok, err, m)
	}
	if ok, err := Scan(nil, &m); ok || err != nil {
		t.Fatalf("NULL: %v %v", ok, err)
	}
	if _, err := Scan(42, &m); err == nil {
		t.Fatal("an int is not jsonb")
	}
	if _, err := Scan("{", &m); err == nil {
		t.Fatal("broken JSON must be an error")
	}
}
