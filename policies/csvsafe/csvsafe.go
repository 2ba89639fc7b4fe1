// Package csvsafe writes CSV that spreadsheet programs open as data, not
// as formulas (CSV injection, OWASP): a cell that starts with =, +, -, @,
// a tab or a carriage return gets a leading apostrophe, which Excel and
// LibreOffice hide and which keeps the cell text. A cell that is a plain
// decimal number ("-5.50", a credit note's amount) cannot run anything
// and stays as it is, so accountants can still add it up.
package csvsafe

import (
	"encoding/csv"
	"io"
	"regexp"
)

// number is a decimal a spreadsheet reads as a number and nothing else:
// an optional sign, digits, an optional fraction and exponent. (Go's
// ParseFloat would also take "-Inf", "-NaN" and hex floats.)
var number = regexp.MustCompile(`^[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// Cell returns s as a spreadsheet will show it but never evaluate it.
func Cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '@', '\t', '\r':
		return "'" + s
	case '+', '-':
		if !number.MatchString(s) {
			return "'" + s
		}
	}
	return s
}

// Writer is a csv.Writer that passes every cell through Cell.
type Writer struct {
	w   *csv.Writer
	row []string
}

// NewWriter writes safe CSV to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes one record; record itself is left unchanged.
func (w *Writer) Write(record []string) error {
	w.row = w.row[:0]
	for _, s := range record {
		w.row = append(w.row, Cell(s))
	}
	return w.w.Write(w.row)
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() { w.w.Flush() }

// Error reports an error of an earlier Write or Flush.
func (w *Writer) Error() error { return w.w.Error() }
