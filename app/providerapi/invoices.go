package providerapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"

	"cardata/app/web"
	"cardata/billing"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
)

// The provider's invoices and credit notes (issue 7: "providers see their
// invoices (PDF and XML) and usage in the portal and through the API").
// Only issued documents (finalized, sent, paid) are visible; a draft, a
// discarded draft and another provider's document all answer 404
// not_found, so nothing is learnt about them. Ownership and status are
// conditions in billing's queries.

// APIInvoice is an invoice or credit note as the list shows it. Amounts
// are decimal strings with two decimals (EUR).
type APIInvoice struct {
	ID          int64     `json:"id"`
	Number      string    `json:"number"`
	Type        string    `json:"type"`   // invoice, credit_note
	Status      string    `json:"status"` // finalized, sent, paid
	Period      string    `json:"period"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
	IssueDate   *string   `json:"issueDate"`
	DueDate     *string   `json:"dueDate"`
	Currency    string    `json:"currency"`
	TaxCategory string    `json:"taxCategory"`
	TaxRate     string    `json:"taxRate"`
	TaxNote     string    `json:"taxNote,omitempty"`
	NetTotal    string    `json:"netTotal"`
	TaxTotal    string    `json:"taxTotal"`
	GrossTotal  string    `json:"grossTotal"`
	PaidTotal   string    `json:"paidTotal"`
	// CreditedTotal and Outstanding are set on invoices: the gross of the
	// issued credit notes correcting it, and gross minus payments minus
	// credits. A credit note has neither (it lowers its invoice's).
	CreditedTotal *string `json:"creditedTotal"`
	Outstanding   *string `json:"outstanding"`
	// PaymentStatus is set on invoices: unpaid, partially_paid (a payment
	// arrived, money is still outstanding) or paid. Status keeps the
	// document's life cycle (finalized, sent, paid), so a partially paid
	// invoice is still "sent" there. A credit note has none (null).
	PaymentStatus     *string             `json:"paymentStatus"`
	Overdue           bool                `json:"overdue"`
	CorrectsInvoiceID *int64              `json:"correctsInvoiceId"`
	CorrectsNumber    *string             `json:"correctsNumber"`
	Reason            string              `json:"reason,omitempty"`
	FinalizedAt       *time.Time          `json:"finalizedAt"`
	SentAt            *time.Time          `json:"sentAt"`
	PaidAt            *time.Time          `json:"paidAt"`
	Documents         APIInvoiceDocuments `json:"documents"`
}

// APIInvoiceDocuments are the paths of the stored documents.
type APIInvoiceDocuments struct {
	PDF string `json:"pdf"`
	XML string `json:"xml"`
}

// APIInvoiceDetail is GET /invoices/{id}: the header and totals, the
// buyer as invoiced, the lines, the per-container usage, the payments and
// the issued credit notes.
type APIInvoiceDetail struct {
	APIInvoice
	Buyer        APIInvoiceBuyer      `json:"buyer"`
	Lines        []APIInvoiceLine     `json:"lines"`
	UsageDetails []APIUsageDetail     `json:"usageDetails"`
	Payments     []APIPayment         `json:"payments"`
	CreditNotes  []APICreditNoteEntry `json:"creditNotes"`
}

// APIInvoiceBuyer is the buyer snapshot printed on the document.
type APIInvoiceBuyer struct {
	Name       string `json:"name"`
	Street     string `json:"street"`
	PostalCode string `json:"postalCode"`
	City       string `json:"city"`
	Country    string `json:"country"`
	VATID      string `json:"vatId"`
}

// APIInvoiceLine is one line of a document.
type APIInvoiceLine struct {
	Position      int    `json:"position"`
	Item          string `json:"item"`
	Description   string `json:"description"`
	ServicePeriod string `json:"servicePeriod,omitempty"`
	Priority      string `json:"priority,omitempty"`
	TierFrom      *int64 `json:"tierFrom,omitempty"`
	TierTo        *int64 `json:"tierTo,omitempty"`
	TicketID      *int64 `json:"ticketId,omitempty"`
	Quantity      string `json:"quantity"`
	UnitCode      string `json:"unitCode"`
	UnitPrice     string `json:"unitPrice"`
	NetAmount     string `json:"netAmount"`
	Reason        string `json:"reason,omitempty"`
}

// APIUsageDetail is the per-container count behind a usage line.
type APIUsageDetail struct {
	Item             string `json:"item"`
	ServicePeriod    string `json:"servicePeriod"`
	ContainerID      int64  `json:"containerId"`
	ContainerVersion int    `json:"containerVersion"`
	Quantity         int64  `json:"quantity"`
}

// APIPayment is a booked payment.
type APIPayment struct {
	Amount     string `json:"amount"`
	ReceivedOn string `json:"receivedOn"`
	Reference  string `json:"reference"`
}

// APICreditNoteEntry is an issued credit note correcting the invoice.
type APICreditNoteEntry struct {
	ID         int64   `json:"id"`
	Number     string  `json:"number"`
	IssueDate  *string `json:"issueDate"`
	GrossTotal string  `json:"grossTotal"`
}

// InvoicePage is the answer of GET /invoices.
type InvoicePage struct {
	Invoices   []APIInvoice `json:"invoices"`
	NextCursor *string      `json:"nextCursor"`
}

func money(d decimal.Decimal) string { return d.StringFixed(2) }

func isoDate(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format("2006-01-02")
	return &s
}

func (h *Handler) apiInvoice(inv *billing.Invoice, credited *decimal.Decimal, correctsNumber string, now time.Time) APIInvoice {
	base := "/api/v1/invoices/" + strconv.FormatInt(inv.ID, 10)
	out := APIInvoice{ID: inv.ID, Number: inv.NumberOrDraft(), Type: inv.DocType, Status: inv.Status, Period: inv.Period,
		PeriodStart: inv.PeriodStart.UTC(), PeriodEnd: inv.PeriodEnd.UTC(), IssueDate: isoDate(inv.IssueDate), DueDate: isoDate(inv.DueDate),
		Currency: inv.Currency, TaxCategory: inv.TaxCategory, TaxRate: inv.TaxRate.String(), TaxNote: inv.TaxNote,
		NetTotal: money(inv.NetTotal), TaxTotal: money(inv.TaxTotal), GrossTotal: money(inv.GrossTotal), PaidTotal: money(inv.PaidTotal),
		Overdue: inv.Overdue(now), CorrectsInvoiceID: inv.CorrectsInvoiceID, FinalizedAt: inv.FinalizedAt, SentAt: inv.SentAt, PaidAt: inv.PaidAt,
		Documents: APIInvoiceDocuments{PDF: base + "/pdf", XML: base + "/xml"}}
	if inv.IsCreditNote() {
		out.Reason = inv.Reason
		if correctsNumber != "" {
			out.CorrectsNumber = &correctsNumber
		}
	} else {
		c := decimal.Zero
		if credited != nil {
			c = *credited
		}
		cs, open := money(c), money(inv.Open(c))
		out.CreditedTotal, out.Outstanding = &cs, &open
		if ps := inv.PaymentStatus(); ps != "" {
			out.PaymentStatus = &ps
		}
	}
	for _, t := range []**time.Time{&out.FinalizedAt, &out.SentAt, &out.PaidAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return out
}

// invoiceQuery reads the filters of GET /invoices.
func (h *Handler) invoiceQuery(c *fiber.Ctx) (billing.ProviderInvoiceFilter, int, error) {
	var v errs.Validation
	f := billing.ProviderInvoiceFilter{Period: strings.TrimSpace(c.Query("period")), Status: c.Query("status"), DocType: c.Query("type")}
	if f.Period != "" {
		if p, err := billing.ParsePeriod(f.Period, h.Location); err != nil {
			v.Add("period", "period_invalid", "period must look like 2026-10 (year-month)")
		} else {
			f.Period = p.String()
		}
	}
	switch f.Status {
	case "", billing.StatusFinalized, billing.StatusSent, billing.StatusPaid:
	default:
		v.Add("status", "status_invalid", "status is finalized, sent or paid")
	}
	switch f.DocType {
	case "", billing.DocInvoice, billing.DocCreditNote:
	default:
		v.Add("type", "type_invalid", "type is invoice or credit_note")
	}
	pg, err := web.ParsePage(c, &v)
	if err != nil {
		return f, 0, err
	}
	f.AfterAt, f.AfterID = pg.After.At, pg.After.ID
	return f, pg.Limit, v.Err()
}

// invoices is GET /invoices?period=&status=&type=&limit=&cursor=: the
// provider's issued invoices and credit notes, newest first.
func (h *Handler) invoices(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	f, limit, err := h.invoiceQuery(c)
	if err != nil {
		return err
	}
	f.Limit = limit
	ctx := c.UserContext()
	list, more, err := h.Billing.ProviderInvoicePage(ctx, p.ProviderID, f)
	if err != nil {
		return err
	}
	var invoiceIDs, corrected []int64
	for i := range list {
		if list[i].IsCreditNote() && list[i].CorrectsInvoiceID != nil {
			corrected = append(corrected, *list[i].CorrectsInvoiceID)
		} else {
			invoiceIDs = append(invoiceIDs, list[i].ID)
		}
	}
	credits, err := h.Billing.ProviderCredits(ctx, p.ProviderID, invoiceIDs)
	if err != nil {
		return err
	}
	numbers, err := h.Billing.ProviderInvoiceNumbers(ctx, p.ProviderID, corrected)
	if err != nil {
		return err
	}
	now := h.now()
	out := InvoicePage{Invoices: make([]APIInvoice, 0, len(list))}
	for i := range list {
		inv := &list[i]
		cred, num := credits[inv.ID], ""
		if inv.CorrectsInvoiceID != nil {
			num = numbers[*inv.CorrectsInvoiceID]
		}
		out.Invoices = append(out.Invoices, h.apiInvoice(inv, &cred, num, now))
	}
	if n := len(list); n > 0 && list[n-1].FinalizedAt != nil {
		out.NextCursor = web.NextCursor(web.Cursor{At: *list[n-1].FinalizedAt, ID: list[n-1].ID}, more)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

// ownInvoice is the caller's issued invoice named by the path's {id}
// (404 for anything else: another provider's, a draft, an unknown id).
func (h *Handler) ownInvoice(c *fiber.Ctx) (*policies.Principal, *billing.Invoice, error) {
	p, err := caller(c)
	if err != nil {
		return nil, nil, err
	}
	id, err := pathInt(c, "id")
	if err != nil {
		return nil, nil, err
	}
	inv, err := h.Billing.FindProviderInvoice(c.UserContext(), p.ProviderID, id)
	if err != nil {
		return nil, nil, err
	}
	return p, inv, nil
}

// invoice is GET /invoices/{id}.
func (h *Handler) invoice(c *fiber.Ctx) error {
	p, inv, err := h.ownInvoice(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	var credited decimal.Decimal
	var corrects string
	out := APIInvoiceDetail{Lines: make([]APIInvoiceLine, 0, len(inv.Lines)), UsageDetails: []APIUsageDetail{}, Payments: []APIPayment{},
		CreditNotes: []APICreditNoteEntry{}}
	if inv.IsCreditNote() {
		if inv.CorrectsInvoiceID != nil {
			nums, err := h.Billing.ProviderInvoiceNumbers(ctx, p.ProviderID, []int64{*inv.CorrectsInvoiceID})
			if err != nil {
				return err
			}
			corrects = nums[*inv.CorrectsInvoiceID]
		}
	} else {
		notes, err := h.Billing.ProviderCreditNotes(ctx, p.ProviderID, inv.ID)
		if err != nil {
			return err
		}
		for i := range notes {
			credited = credited.Add(notes[i].GrossTotal)
			out.CreditNotes = append(out.CreditNotes, APICreditNoteEntry{ID: notes[i].ID, Number: notes[i].NumberOrDraft(),
				IssueDate: isoDate(notes[i].IssueDate), GrossTotal: money(notes[i].GrossTotal)})
		}
		pays, err := h.Billing.Payments(ctx, inv.ID)
		if err != nil {
			return err
		}
		for _, pay := range pays {
			out.Payments = append(out.Payments, APIPayment{Amount: money(pay.Amount), ReceivedOn: pay.ReceivedOn.UTC().Format("2006-01-02"),
				Reference: pay.Reference})
		}
	}
	details, err := h.Billing.UsageDetails(ctx, inv.ID)
	if err != nil {
		return err
	}
	for _, d := range details {
		out.UsageDetails = append(out.UsageDetails, APIUsageDetail{Item: string(d.Item), ServicePeriod: d.ServicePeriod, ContainerID: d.ContainerID,
			ContainerVersion: d.ContainerVersion, Quantity: d.Quantity})
	}
	out.APIInvoice = h.apiInvoice(inv, &credited, corrects, h.now())
	b := inv.Buyer()
	out.Buyer = APIInvoiceBuyer{Name: b.LegalName, Street: b.Street, PostalCode: b.PostalCode, City: b.City, Country: b.Country, VATID: b.VATID}
	for _, l := range inv.Lines {
		out.Lines = append(out.Lines, APIInvoiceLine{Position: l.Position, Item: string(l.Item), Description: l.Description,
			ServicePeriod: l.ServicePeriod, Priority: l.Priority, TierFrom: l.TierFrom, TierTo: l.TierTo, TicketID: l.TicketID,
			Quantity: l.Quantity.String(), UnitCode: l.UnitCode, UnitPrice: l.UnitPrice.String(), NetAmount: money(l.NetAmount), Reason: l.Reason})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

// invoiceDocument is GET /invoices/{id}/pdf and /xml: the document stored
// at finalization, byte for byte, with its SHA-256 as a strong ETag and as
// an RFC 9530 Repr-Digest. If-None-Match with that ETag answers 304.
func (h *Handler) invoiceDocument(format string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		_, inv, err := h.ownInvoice(c)
		if err != nil {
			return err
		}
		ctx := c.UserContext()
		d, err := h.Billing.Document(ctx, inv.ID, format)
		if err != nil {
			return err
		}
		sum := d.SHA256
		raw, herr := hex.DecodeString(sum)
		if herr != nil || len(raw) != sha256.Size {
			s := sha256.Sum256(d.Content)
			raw, sum = s[:], hex.EncodeToString(s[:])
		}
		etag := `"` + sum + `"`
		c.Set(fiber.HeaderETag, etag)
		c.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(raw)+":")
		c.Set(fiber.HeaderCacheControl, "private, no-cache")
		if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && etagMatches(match, etag) {
			c.Status(fiber.StatusNotModified)
			return nil
		}
		name, ctype := d.File(inv)
		templates.Attachment(c, name, ctype)
		return c.Send(d.Content)
	}
}

// etagMatches applies If-None-Match (a list of tags, weak ones compared
// weakly, or *).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
