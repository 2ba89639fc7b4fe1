package ingest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"cardata/policies/errs"
)

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	body := `{"gateway":"x","signals":[
		{"vin":"WBA11AA0X0DE12345","key":"vehicle.vehicle.travelledDistance","value":"12345","unit":"km","timestamp":"2025-01-01T00:00:00Z"},
		{"vin":"WBA11AA0X0DE12345","key":"k","value":12.50,"timestamp":"t","extra":{"a":[1,{"b":null}],"c":"}"}},
		{"vin":"W\u0042A","key":"k","value":{"x": [true, false]},"unit":null},
		{"vin":5,"key":"k","value":"v","timestamp":"t"},
		"not an object",
		{},
		{"value":null,"key":"a\"b\\c\n\u00e9\ud83d\ude97"}
	],"trailer":[1,2,3]}`
	got, err := DecodeJSON([]byte(body), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("%d signals, want 7", len(got))
	}
	s := got[0]
	if s.VIN != "WBA11AA0X0DE12345" || s.Key != "vehicle.vehicle.travelledDistance" || s.Value != "12345" || s.Unit != "km" ||
		s.Timestamp != "2025-01-01T00:00:00Z" || s.has != hasVIN|hasKey|hasValue|hasUnit|hasTimestamp || s.problem != "" {
		t.Errorf("signal 0 = %+v", s)
	}
	if got[1].Value != "12.50" || got[1].problem != "" {
		t.Errorf("a number value keeps its literal text: %+v", got[1])
	}
	if got[2].VIN != "WBA" || got[2].Value != `{"x": [true, false]}` || got[2].has&hasUnit != 0 {
		t.Errorf("escapes, raw JSON values and null fields: %+v", got[2])
	}
	if got[3].problem != CodeFieldInvalid || got[4].problem != CodeFieldInvalid {
		t.Errorf("wrong field types reject only their signal: %+v %+v", got[3], got[4])
	}
	if got[5].has != 0 || got[5].problem != "" {
		t.Errorf("empty object: %+v", got[5])
	}
	if got[6].Key != "a\"b\\c\né🚗" || got[6].has&hasValue != 0 {
		t.Errorf("escaped key %q, has %b", got[6].Key, got[6].has)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		``:                            CodeMalformedBody,
		`[]`:                          CodeMalformedBody,
		`{"signals":[}`:               CodeMalformedBody,
		`{"signals":[{"vin":"x"]}`:    CodeMalformedBody,
		`{"signals":[{"vin":"x"}]`:    CodeMalformedBody,
		`{"signals":[]} x`:            CodeMalformedBody,
		`{"signals":{}}`:              CodeMalformedBody,
		`{"signals":[],"signals":[]}`: CodeMalformedBody,
		`{"signals":[{"vin":"\x"}]}`:  CodeMalformedBody,
		`{"signals":[{"vin":"a` + "\x01" + `"}]}`: CodeMalformedBody,
		`{"other":1}`:                     CodeSignalsMissing,
		`{}`:                              CodeSignalsMissing,
		`{"signals":[{"value":01}]}`:      CodeMalformedBody,
		`{"signals":[{"value":[1,}]}`:     CodeMalformedBody,
		`{"signals":[{"value":{"a":1]}]}`: CodeMalformedBody,
		`{"signals":[{"value":tru}]}`:     CodeMalformedBody,
		`{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `,"signals":[]}`: CodeMalformedBody,
		`{"signals":[{},{},{},{}]}`: CodeTooManySignals,
	}
	for body, code := range cases {
		_, err := DecodeJSON([]byte(body), 3, nil)
		if !errs.Is(err, code) {
			t.Errorf("%q: got %v, want %s", body, err, code)
		}
	}
	if _, err := DecodeJSON([]byte(`{"signals":[{},{},{}]}`), 3, nil); err != nil {
		t.Errorf("exactly the maximum is fine: %v", err)
	}
}

func TestDecodeNDJSON(t *testing.T) {
	t.Parallel()
	body := "{\"vin\":\"A\",\"key\":\"k\",\"value\":\"1\",\"timestamp\":\"t\"}\r\n\n   \n" +
		"{\"vin\":\"B\"} trailing\n" +
		"not json\n" +
		"{\"vin\":\"C\",\"value\":true}" // no final newline
	got, err := DecodeNDJSON([]byte(body), 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d signals, want 4 (blank lines skipped)", len(got))
	}
	if got[0].VIN != "A" || got[0].problem != "" || got[1].problem != CodeMalformedSignal || got[2].problem != CodeMalformedSignal ||
		got[3].VIN != "C" || got[3].Value != "true" {
		t.Fatalf("signals = %+v", got)
	}
	if _, err := DecodeNDJSON([]byte("{}\n{}\n{}\n"), 2, nil); !errs.Is(err, CodeTooManySignals) {
		t.Fatalf("limit: %v", err)
	}
}

// refSignal is what encoding/json makes of a signal object.
func refSignals(body []byte) ([]map[string]any, bool) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, false
	}
	raw, ok := doc["signals"].([]any)
	if !ok {
		return nil, false
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		m, _ := r.(map[string]any)
		out[i] = m
	}
	return out, true
}

// FuzzDecodeJSON checks that the decoder never panics, and that on valid
// UTF-8 input it agrees with encoding/json on which documents parse and on
// every string field.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"signals":[{"vin":"WBA11AA0X0DE12345","key":"vehicle.vehicle.travelledDistance","value":"1","unit":"km","timestamp":"2025-01-01T00:00:00Z"}]}`,
		`{"signals":[{"vin":"\u0041\ud83d\ude97","value":{"a":[1,2,{"b":null}]},"x":[[]]}]}`,
		`{"signals":[1,"a",null,{"value":-0.5e+3}]}`,
		`{"signals":[{"value":"\ud800"},{"value":"\udc00\ud800\udc00"}]}`,
		`{"signals":[]}`, `{"a":{"signals":[]},"signals":[{}]}`, `{"signals":[{"vin":"a","vin":"b"}]}`,
		`{"signals":[{`, `[`, `"`, `{"signals":[{"value":"\`, "{\"signals\":[{\"key\":\"\xff\"}]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecodeJSON(body, 1000, nil)
		if !utf8.Valid(body) {
			return
		}
		ref, ok := refSignals(body)
		if errs.Is(err, CodeTooManySignals) {
			return
		}
		if ok != (err == nil) {
			// encoding/json accepts duplicate "signals" members; we refuse them.
			if strings.Count(string(body), `"signals"`) > 1 {
				return
			}
			t.Fatalf("decoder err=%v, encoding/json ok=%v for %q", err, ok, body)
		}
		if err != nil {
			return
		}
		if len(got) != len(ref) {
			t.Fatalf("%d signals, encoding/json %d", len(got), len(ref))
		}
		for i, m := range ref {
			if m == nil {
				if got[i].problem == "" {
					t.Fatalf("signal %d is not an object but was accepted", i)
				}
				continue
			}
			for name, field := range map[string]string{"vin": got[i].VIN, "key": got[i].Key, "unit": got[i].Unit, "timestamp": got[i].Timestamp} {
				v, present := m[name]
				s, isStr := v.(string)
				switch {
				case present && isStr && got[i].problem == "" && field != s:
					t.Fatalf("signal %d %s = %q, encoding/json %q", i, name, field, s)
				case present && v != nil && !isStr && got[i].problem != CodeFieldInvalid:
					t.Fatalf("signal %d %s is %T, must be rejected", i, name, v)
				}
			}
			if v, ok := m["value"].(string); ok && got[i].Value != v {
				t.Fatalf("signal %d value = %q, encoding/json %q", i, got[i].Value, v)
			}
		}
	})
}

// FuzzDecodeNDJSON only checks that no input makes the decoder panic or
// return more signals than lines.
func FuzzDecodeNDJSON(f *testing.F) {
	f.Add([]byte("{\"vin\":\"A\"}\n\n{\"value\":[1,2]}\nnot json\n{"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := DecodeNDJSON(body, 1000, nil)
		if err == nil && len(got) > strings.Count(string(body), "\n")+1 {
			t.Fatalf("%d signals from %d lines", len(got), strings.Count(string(body), "\n")+1)
		}
	})
}

func BenchmarkDecodeJSON(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"signals":[`)
	for i := range 5000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"vin":"WBA11AA0X0D%06d","key":"vehicle.cabin.infotainment.navigation.currentLocation.latitude","value":"48.%06d","unit":"°","timestamp":"2025-01-01T00:00:00.123Z"}`, i, i)
	}
	sb.WriteString(`]}`)
	body := []byte(sb.String())
	out := make([]Signal, 0, 5000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if out, err = DecodeJSON(body, MaxSignals, out); err != nil || len(out) != 5000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*5000)/b.Elapsed().Seconds(), "signals/s")
}
