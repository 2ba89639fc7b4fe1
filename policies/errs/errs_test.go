package errs

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// upper says a message "in another language": its words in capitals (the
// verbs kept), Term arguments in capitals, other arguments as they are.
func upper(format string, args []any) string {
	said := make([]any, len(args))
	for i, a := range args {
		if t, ok := a.(Term); ok {
			a = strings.ToUpper(string(t))
		}
		said[i] = a
	}
	f := strings.NewReplacer("%Q", "%q", "%S", "%s", "%D", "%d").Replace(strings.ToUpper(format))
	return fmt.Sprintf(f, said...)
}

func TestTextSaysFormatAndArgumentsThroughTheTranslator(t *testing.T) {
	e := New(Conflict, "ticket_state", "%q is not possible while the ticket is %s", "reopen", Term("closed"))
	if e.Message != `"reopen" is not possible while the ticket is closed` {
		t.Fatalf("English message changed: %q", e.Message)
	}
	if got := e.Text(upper); got != `"reopen" IS NOT POSSIBLE WHILE THE TICKET IS CLOSED` {
		t.Errorf("translated: %q", got)
	}
	if got := e.Text(nil); got != e.Message {
		t.Errorf("without a translator: %q", got)
	}
	// a message passed on with "%s" is translated as the text it is
	passed := New(Invalid, "x", "%s", "the period is closed")
	if got := passed.Text(upper); got != "THE PERIOD IS CLOSED" {
		t.Errorf("passed on: %q", got)
	}
	// a fixed text (a struct literal) is its own id, even with a per cent sign
	fixed := &Error{Kind: Invalid, Code: "x", Message: "at most 100% of the total"}
	if got := fixed.Text(func(f string, a []any) string { return "[" + f + "]" }); got != "[at most 100% of the total]" {
		t.Errorf("fixed: %q", got)
	}
}

func TestFieldMapInTranslatesEachFieldOnce(t *testing.T) {
	var v Validation
	v.Add("vin", "vin_length", "a VIN has exactly 17 characters; this one has %d", 5)
	v.Add("vin", "vin_other", "a second error of the same field")
	v.Add("name", "required", "enter %s", Term("the name"))
	m := FieldMapIn(v.Err(), upper)
	if m["vin"] != "A VIN HAS EXACTLY 17 CHARACTERS; THIS ONE HAS 5" || m["name"] != "ENTER THE NAME" {
		t.Errorf("%v", m)
	}
	if en := FieldMap(v.Err()); en["vin"] != "a VIN has exactly 17 characters; this one has 5" {
		t.Errorf("English: %v", en)
	}
}

func TestDayPrintsAsISOInEnglish(t *testing.T) {
	e := New(Conflict, "x", "billed on %s", Day{T: time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC)})
	if e.Message != "billed on 2026-12-05" {
		t.Errorf("%q", e.Message)
	}
}
