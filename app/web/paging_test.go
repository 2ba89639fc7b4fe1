package web

import (
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gofiber/fiber/v2"

	"cardata/policies/errs"
)

func TestCutPageWalksAListReadWhole(t *testing.T) {
	ids := []int64{9, 7, 5, 4, 2} // newest first
	id := func(n int64) int64 { return n }

	page, next := CutPage(PageQuery{Limit: 2}, ids, id)
	if !slices.Equal(page, []int64{9, 7}) || next == nil {
		t.Fatalf("first page %v, next %v; want [9 7] and a cursor", page, next)
	}
	cur, err := parseCursor(*next)
	if err != nil || cur.ID != 7 {
		t.Fatalf("cursor %+v (%v); want after id 7", cur, err)
	}

	page, next = CutPage(PageQuery{Limit: 2, After: cur}, ids, id)
	if !slices.Equal(page, []int64{5, 4}) || next == nil {
		t.Fatalf("second page %v, next %v; want [5 4] and a cursor", page, next)
	}
	cur, _ = parseCursor(*next)

	page, next = CutPage(PageQuery{Limit: 2, After: cur}, ids, id)
	if !slices.Equal(page, []int64{2}) || next != nil {
		t.Fatalf("last page %v, next %v; want [2] and no cursor", page, next)
	}

	// A page that holds the rest exactly has no next page either.
	if page, next = CutPage(PageQuery{Limit: 5}, ids, id); len(page) != 5 || next != nil {
		t.Fatalf("whole list %v, next %v; want all five and no cursor", page, next)
	}
	if page, next = CutPage(PageQuery{Limit: 3}, []int64{}, id); page != nil || next != nil {
		t.Fatalf("empty list: %v, %v", page, next)
	}
}

func TestParsePageOnlyAnswersTheLimitsFieldError(t *testing.T) {
	app := fiber.New()
	var got PageQuery
	var gotErr error
	app.Get("/", func(c *fiber.Ctx) error {
		got, gotErr = ParsePageOnly(c)
		return nil
	})
	get := func(q string) {
		t.Helper()
		if _, err := app.Test(httptest.NewRequest("GET", "/"+q, nil), -1); err != nil {
			t.Fatal(err)
		}
	}

	get("")
	if gotErr != nil || got.Limit != DefaultPageLimit || !got.After.IsZero() {
		t.Fatalf("no parameters: %+v, %v", got, gotErr)
	}
	get("?limit=7&cursor=" + Cursor{ID: 42}.String())
	if gotErr != nil || got.Limit != 7 || got.After.ID != 42 {
		t.Fatalf("limit and cursor: %+v, %v", got, gotErr)
	}
	get("?limit=0")
	if e := errs.As(gotErr); e == nil || e.Kind != errs.Invalid || len(e.Fields) != 1 || e.Fields[0].Field != "limit" {
		t.Fatalf("limit=0: %v; want a field error of limit", gotErr)
	}
	get("?cursor=nonsense")
	if gotErr != ErrCursorInvalid {
		t.Fatalf("a foreign cursor: %v; want ErrCursorInvalid", gotErr)
	}
}
