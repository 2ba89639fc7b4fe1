package csvsafe

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestFormulasAreTextAndNumbersStayNumbers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`=HYPERLINK("https://evil.example","click")`: `'=HYPERLINK("https://evil.example","click")`,
		"+1+cmd|' /C calc'!A0":                       "'+1+cmd|' /C calc'!A0",
		"-2+3+cmd|' /C calc'!A0":                     "'-2+3+cmd|' /C calc'!A0",
		"@SUM(A1:A9)":                                "'@SUM(A1:A9)",
		"\t=1+1":                                     "'\t=1+1",
		"\r=1+1":                                     "'\r=1+1",
		"-Inf":                                       "'-Inf",
		"-":                                          "'-",
		"-5.50":                                      "-5.50",
		"+5.50":                                      "+5.50",
		"-0.00":                                      "-0.00",
		"-1e3":                                       "-1e3",
		"42":                                         "42",
		"Müller GmbH":                                "Müller GmbH",
		"a=b":                                        "a=b",
		"":                                           "",
	} {
		if got := Cell(in); got != want {
			t.Errorf("Cell(%q) = %q, want %q", in, got, want)
		}
	}

	var buf bytes.Buffer
	w := NewWriter(&buf)
	rec := []string{"=1+1", "-5.50", "x"}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	if rec[0] != "=1+1" {
		t.Fatalf("the caller's record was changed: %q", rec)
	}
	got, err := csv.NewReader(&buf).Read()
	if err != nil || got[0] != "'=1+1" || got[1] != "-5.50" || got[2] != "x" {
		t.Fatalf("written %q: %v", got, err)
	}
}
