// Package jsonb stores Go values in PostgreSQL jsonb columns: the two
// halves of a driver.Valuer and sql.Scanner that a column type needs.
package jsonb

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
)

// Value is v as the JSON text a jsonb parameter takes.
func Value(v any) (driver.Value, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan decodes a jsonb column's value into into (numbers as json.Number).
// It reports false for SQL NULL, leaving into alone.
func Scan(src, into any) (bool, error) {
	var b []byte
	switch x := src.(type) {
	case nil:
		return false, nil
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		return false, fmt.Errorf("jsonb: cannot read %T", src)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(into); err != nil {
		return false, fmt.Errorf("jsonb: %w", err)
	}
	return true, nil
}
