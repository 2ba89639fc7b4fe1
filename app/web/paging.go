package web

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

// The provider API's one paging convention: a list takes `limit` (1 to
// MaxPageLimit, default DefaultPageLimit) and `cursor` (opaque, from the
// previous page's `nextCursor`), lists newest first unless its `sort` says
// otherwise, and answers `nextCursor` (null on the last page). A cursor is
// a keyset position (the last item's time and id), so a page is stable
// while new items arrive. The ledger's cursor is billing's own
// (billing.EncodeCursor); it follows the same rules.
const (
	MaxPageLimit     = 500
	DefaultPageLimit = 100
)

// Cursor is a keyset position: the sort time (zero when a list is ordered
// by id alone) and the id of the last item of a page.
type Cursor struct {
	At time.Time
	ID int64
}

// IsZero reports the first page.
func (c Cursor) IsZero() bool { return c.ID == 0 }

// String encodes the cursor opaquely.
func (c Cursor) String() string {
	s := "k" + strconv.FormatInt(c.ID, 10)
	if !c.At.IsZero() {
		s += "." + strconv.FormatInt(c.At.UnixNano(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// NextCursor is the nextCursor member: nil on the last page.
func NextCursor(last Cursor, more bool) *string {
	if !more {
		return nil
	}
	s := last.String()
	return &s
}

// CutPage cuts one page from a list read whole (a provider has few of the
// things listed this way), in the list's order, newest (highest id) first:
// the rows before pg's cursor, at most pg.Limit of them, and the cursor of
// the next page (nil on the last one).
func CutPage[T any](pg PageQuery, rows []T, id func(T) int64) (page []T, next *string) {
	more := false
	for _, r := range rows {
		if !pg.After.IsZero() && id(r) >= pg.After.ID {
			continue
		}
		if len(page) == pg.Limit {
			more = true
			break
		}
		page = append(page, r)
	}
	if n := len(page); n > 0 {
		next = NextCursor(Cursor{ID: id(page[n-1])}, more)
	}
	return page, next
}

// ErrCursorInvalid answers a cursor this API did not hand out.
var ErrCursorInvalid = errs.New(errs.BadRequest, "cursor_invalid", "the cursor is not one this API returned")

func parseCursor(s string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != 'k' {
		return Cursor{}, ErrCursorInvalid
	}
	idPart, atPart, hasAt := strings.Cut(string(b[1:]), ".")
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil || id <= 0 {
		return Cursor{}, ErrCursorInvalid
	}
	out := Cursor{ID: id}
	if hasAt {
		ns, err := strconv.ParseInt(atPart, 10, 64)
		if err != nil {
			return Cursor{}, ErrCursorInvalid
		}
		out.At = time.Unix(0, ns).UTC()
	}
	return out, nil
}

// PageQuery is a list request's paging.
type PageQuery struct {
	Limit int
	After Cursor // zero: the first page
}

// ParsePage reads `limit` and `cursor`. A limit out of range is a field
// error in v (422 with the list's other field errors); a cursor this API
// did not hand out is 400 cursor_invalid.
func ParsePage(c *fiber.Ctx, v *errs.Validation) (PageQuery, error) {
	p := PageQuery{Limit: DefaultPageLimit}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxPageLimit {
			v.Add("limit", "limit_invalid", "limit is a number from 1 to %d", MaxPageLimit)
		} else {
			p.Limit = n
		}
	}
	if s := c.Query("cursor"); s != "" {
		cur, err := parseCursor(s)
		if err != nil {
			return p, err
		}
		p.After = cur
	}
	return p, nil
}

// ParsePageOnly is ParsePage for a list that takes no other parameter:
// a field error of limit is the answer.
func ParsePageOnly(c *fiber.Ctx) (PageQuery, error) {
	var v errs.Validation
	pg, err := ParsePage(c, &v)
	if err != nil {
		return pg, err
	}
	return pg, v.Err()
}

// ParseTimeRange reads the half-open range [from, to) of a list's time
// filter: both RFC 3339 times, either may be absent (zero). A value that is
// not RFC 3339, or a to not after from, is a field error in v.
func ParseTimeRange(c *fiber.Ctx, v *errs.Validation) (from, to time.Time) {
	read := func(name string) time.Time {
		s := c.Query(name)
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			v.Add(name, "time_invalid", "%s must be an RFC 3339 time like 2026-10-01T00:00:00Z", name)
			return time.Time{}
		}
		return t.UTC()
	}
	from, to = read("from"), read("to")
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		v.Add("to", "range_invalid", "to must be after from (the range is [from, to))")
	}
	return from, to
}
