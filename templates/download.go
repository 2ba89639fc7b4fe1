package templates

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/csvsafe"
	"cardata/templates/i18n"
)

// Attachment marks the answer as a download of a file named name.
func Attachment(c *fiber.Ctx, name, contentType string) {
	c.Set(fiber.HeaderContentType, contentType)
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, name))
}

// SendFile answers with a download that no cache keeps (personal data:
// customers' data and transaction reports).
func SendFile(c *fiber.Ctx, name, contentType string, data []byte) error {
	Attachment(c, name, contentType)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(data)
}

// CSV answers a CSV download named name, written while body reads its rows
// (row by row from the database, never the whole list in memory): first
// the header, whose column ids are translated into the reader's language
// (LangOf; the column order never changes), then every row body emits,
// each cell formula-safe (policies/csvsafe). The filters must be checked
// before: once the download has begun its status is 200, so a database
// error in the middle ends the file with a last line saying it is
// incomplete (and is logged). The query runs under c's context (the
// principal, so ownership conditions apply) with its own time bound.
func CSV(c *fiber.Ctx, name string, header []string, body func(ctx context.Context, emit func(row []string) error) error) error {
	lang := LangOf(c)
	head := i18n.CSVHeader(lang, header...)
	incomplete := i18n.T(lang, "export_incomplete")
	Attachment(c, name, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	base := context.WithoutCancel(c.UserContext())
	c.Context().SetBodyStreamWriter(func(bw *bufio.Writer) {
		ctx, cancel := context.WithTimeout(base, csvTimeout)
		defer cancel()
		w := csvsafe.NewWriter(bw)
		if err := w.Write(head); err != nil {
			return
		}
		n := 0
		err := body(ctx, func(row []string) error {
			if err := w.Write(row); err != nil {
				return err
			}
			if n++; n%500 == 0 {
				w.Flush()
				if err := w.Error(); err != nil {
					return err
				}
				return bw.Flush()
			}
			return nil
		})
		if err != nil {
			slog.ErrorContext(ctx, "csv export stopped", "file", name, "rows", n, "err", err)
			_ = w.Write([]string{incomplete})
		}
		w.Flush()
	})
	return nil
}

// csvTimeout bounds one export's query (a slow reader of a large audit
// trail must not hold a database connection for ever).
const csvTimeout = 10 * time.Minute

// CSVTime is a timestamp in an export: RFC 3339 in UTC ("2026-12-05T12:31:13Z";
// the header says UTC), empty for none. Calendar dates are YYYY-MM-DD.
func CSVTime[T time.Time | *time.Time](v T) string {
	if t := csvTimeOf(v); !t.IsZero() {
		return t.UTC().Format(time.RFC3339)
	}
	return ""
}

// CSVDate is a calendar date in an export (YYYY-MM-DD, as the business
// day it stands for), empty for none.
func CSVDate[T time.Time | *time.Time](v T) string {
	if t := csvTimeOf(v); !t.IsZero() {
		return t.Format("2006-01-02")
	}
	return ""
}

// csvTimeOf is the time behind a value or a pointer (zero for nil).
func csvTimeOf[T time.Time | *time.Time](v T) time.Time {
	switch x := any(v).(type) {
	case time.Time:
		return x
	case *time.Time:
		if x != nil {
			return *x
		}
	}
	return time.Time{}
}
