package templates

import (
	"html/template"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// Sort is a list page's current order as the URL states it (?sort=key and
// ?dir=desc), for the column headers ({{sortth .Sort "key" (t "Label")}}),
// the filter forms ({{template "sort-keep" .}}) and the export links
// ({{.Export "/admin/x/export.csv"}}). The handler parses the parameters
// through its list's whitelist (policies/listsort) and passes the result
// here, so only a known key is ever echoed.
type Sort struct {
	Key  string
	Desc bool
	path string
	base url.Values
}

// NewSort is the order key/desc of the list at c's path, keeping c's other
// query parameters (the filters) in every header link.
func NewSort(c *fiber.Ctx, key string, desc bool) *Sort {
	q, _ := url.ParseQuery(string(c.Request().URI().QueryString()))
	return &Sort{Key: key, Desc: desc, path: c.Path(), base: q}
}

// URL is the link of key's header: the filters kept, back to the first
// page, ascending unless the list is sorted by key ascending already.
func (s *Sort) URL(key string) string {
	q := url.Values{}
	for k, v := range s.base {
		if k != "page" && k != "sort" && k != "dir" {
			q[k] = v
		}
	}
	q.Set("sort", key)
	if s.Key == key && !s.Desc {
		q.Set("dir", "desc")
	}
	return s.path + "?" + q.Encode()
}

// sortHeader is the template function sortth: a column header whose link
// sorts the list by key, with aria-sort and an arrow on the current column.
// label is the translated header text (already HTML from t). A nil Sort
// (a page that does not sort) gives the plain header. An optional class
// ("num") goes on the th.
func sortHeader(s *Sort, key string, label template.HTML, class ...string) template.HTML {
	open := `<th scope="col"`
	if len(class) > 0 {
		open += ` class="` + template.HTMLEscapeString(strings.Join(class, " ")) + `"`
	}
	if s == nil {
		return template.HTML(open+">") + label + `</th>`
	}
	var b strings.Builder
	b.WriteString(open)
	arrow := ""
	if s.Key == key {
		if s.Desc {
			b.WriteString(` aria-sort="descending"`)
			arrow = `&#160;<span class="sort-arrow" aria-hidden="true">▼</span>`
		} else {
			b.WriteString(` aria-sort="ascending"`)
			arrow = `&#160;<span class="sort-arrow" aria-hidden="true">▲</span>`
		}
	}
	b.WriteString(`><a class="sort" href="`)
	b.WriteString(template.HTMLEscapeString(s.URL(key)))
	b.WriteString(`">`)
	b.WriteString(string(label))
	b.WriteString(arrow)
	b.WriteString(`</a></th>`)
	return template.HTML(b.String())
}

// Export is the address of the list's CSV download at path with the page's
// filters and order (the page number left out: an export has every row).
func (p *Page) Export(path string) string {
	u, err := url.Parse(p.URI)
	if err != nil {
		return path
	}
	q := u.Query()
	q.Del("page")
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
