package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/templates/i18n"
)

// Document types.
const (
	DocInvoice    = "invoice"
	DocCreditNote = "credit_note"
)

// Invoice statuses. The allowed moves are in transitions.
const (
	StatusDraft     = "draft"
	StatusFinalized = "finalized"
	StatusSent      = "sent"
	StatusPaid      = "paid"
	StatusDiscarded = "discarded"
)

// StatusPartiallyPaid is not stored: it is how a finalized or sent invoice
// with a payment booked but money still open is shown and filtered
// (DisplayStatus). The stored status keeps the document's life cycle
// (finalized, then sent); the payment state is derived from paid_total, so
// a partial payment never hides whether the invoice was sent.
const StatusPartiallyPaid = "partially_paid"

// Statuses lists the statuses in life-cycle order (filters).
var Statuses = []string{StatusDraft, StatusFinalized, StatusSent, StatusPaid, StatusDiscarded}

// DisplayStatuses are the statuses people see and filter by: the stored
// ones with "partially paid" between sent and paid.
var DisplayStatuses = []string{StatusDraft, StatusFinalized, StatusSent, StatusPartiallyPaid, StatusPaid, StatusDiscarded}

// transitions is the one table of allowed status moves.
var transitions = map[string][]string{
	StatusDraft:     {StatusFinalized, StatusDiscarded},
	StatusFinalized: {StatusSent, StatusPaid},
	StatusSent:      {StatusPaid},
}

func canMove(from, to string) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Invoice is an invoice or a credit note.
type Invoice struct {
	ID                int64 `gorm:"primaryKey"`
	DocType           string
	ProviderID        int64
	Period            string
	PeriodStart       time.Time
	PeriodEnd         time.Time
	Status            string
	Number            *string
	IssueDate         *time.Time
	DueDate           *time.Time
	Currency          string
	BuyerName         string
	BuyerStreet       string
	BuyerPostalCode   string
	BuyerCity         string
	BuyerCountry      string
	BuyerVATID        string `gorm:"column:buyer_vat_id"`
	BuyerEmail        string
	SellerSnapshot    []byte `gorm:"type:jsonb"`
	TaxCategory       string
	TaxRate           decimal.Decimal
	TaxNote           string
	NetTotal          decimal.Decimal
	TaxTotal          decimal.Decimal
	GrossTotal        decimal.Decimal
	PaidTotal         decimal.Decimal
	CorrectsInvoiceID *int64
	Reason            string
	RunID             *int64
	CreatedBy         string
	CreatedByID       *int64
	FinalizedBy       string
	FinalizedByID     *int64
	CreatedAt         time.Time
	FinalizedAt       *time.Time
	SentAt            *time.Time
	PaidAt            *time.Time
	DiscardedAt       *time.Time
	LastReminderAt    *time.Time

	Lines []Line `gorm:"foreignKey:InvoiceID"`

	// Credited is the gross of the issued credit notes correcting this
	// invoice, filled by the lists (ListInvoices, ProviderInvoices) and
	// FindInvoice; not a column.
	Credited decimal.Decimal `gorm:"-"`
}

func (Invoice) TableName() string { return "invoices" }

// IsCreditNote reports the document type.
func (inv *Invoice) IsCreditNote() bool { return inv.DocType == DocCreditNote }

// NumberOrDraft is the number, or "draft #id".
func (inv *Invoice) NumberOrDraft() string {
	if inv.Number != nil {
		return *inv.Number
	}
	return "draft #" + strconv.FormatInt(inv.ID, 10)
}

// NumberOrDraftIn is NumberOrDraft for a person reading l ("Entwurf #21").
func (inv *Invoice) NumberOrDraftIn(l i18n.Lang) string {
	if inv.Number != nil {
		return *inv.Number
	}
	return i18n.T(l, "draft #{{.ID}}", "ID", inv.ID)
}

// Title is the document title in German and English.
func (inv *Invoice) Title() string {
	if inv.IsCreditNote() {
		return "Rechnungskorrektur / Credit note"
	}
	return "Rechnung / Invoice"
}

// Seller returns the snapshot of the seller taken at finalization.
func (inv *Invoice) Seller() *Seller {
	if len(inv.SellerSnapshot) == 0 {
		return nil
	}
	var s Seller
	if json.Unmarshal(inv.SellerSnapshot, &s) != nil {
		return nil
	}
	return &s
}

// Buyer returns the buyer snapshot as a Party.
func (inv *Invoice) Buyer() Party {
	return Party{ProviderID: inv.ProviderID, LegalName: inv.BuyerName, Street: inv.BuyerStreet, PostalCode: inv.BuyerPostalCode,
		City: inv.BuyerCity, Country: inv.BuyerCountry, VATID: inv.BuyerVATID, Email: inv.BuyerEmail}
}

func (inv *Invoice) setBuyer(p Party) {
	inv.BuyerName, inv.BuyerStreet, inv.BuyerPostalCode, inv.BuyerCity = p.LegalName, p.Street, p.PostalCode, p.City
	inv.BuyerCountry, inv.BuyerVATID, inv.BuyerEmail = strings.ToUpper(p.Country), compact(p.VATID), p.Email
}

// Open is what remains to be paid (gross minus payments minus issued credits).
func (inv *Invoice) Open(credited decimal.Decimal) decimal.Decimal {
	return inv.GrossTotal.Sub(inv.PaidTotal).Sub(credited)
}

// OpenAmount is Open with the credits the invoice was loaded with
// (Credited): gross minus payments minus issued credit notes. Credit
// notes and drafts have nothing open.
func (inv *Invoice) OpenAmount() decimal.Decimal {
	if inv.IsCreditNote() || inv.Number == nil || inv.Status == StatusDiscarded {
		return decimal.Zero
	}
	return inv.Open(inv.Credited)
}

// PartiallyPaid reports an issued invoice with a payment booked that is
// not paid yet.
func (inv *Invoice) PartiallyPaid() bool {
	return inv.DocType == DocInvoice && (inv.Status == StatusFinalized || inv.Status == StatusSent) && inv.PaidTotal.IsPositive()
}

// DisplayStatus is the status shown to people and filtered by: the stored
// status, or "partially_paid" for an issued invoice paid in part.
func (inv *Invoice) DisplayStatus() string {
	if inv.PartiallyPaid() {
		return StatusPartiallyPaid
	}
	return inv.Status
}

// PaymentStatus is an issued invoice's payment state: "unpaid",
// "partially_paid" or "paid"; "" for drafts, discarded drafts and credit
// notes (which are not paid, they reduce what their invoice asks for).
func (inv *Invoice) PaymentStatus() string {
	switch {
	case inv.IsCreditNote() || inv.Number == nil || inv.Status == StatusDiscarded:
		return ""
	case inv.Status == StatusPaid:
		return "paid"
	case inv.PaidTotal.IsPositive():
		return StatusPartiallyPaid
	}
	return "unpaid"
}

// Signed is an amount of this document as people read it: a credit note's
// amounts are negative everywhere they are shown (lists, detail pages, the
// PDF, the CSV export), an invoice's as stored. The database and the
// EN 16931 e-invoice keep a credit note's amounts positive (its document
// type says it is a credit; BR-27 forbids negative prices).
func (inv *Invoice) Signed(d decimal.Decimal) decimal.Decimal {
	if inv.IsCreditNote() {
		return d.Neg()
	}
	return d
}

// SignedNet, SignedTax and SignedGross are the totals with Signed's sign.
func (inv *Invoice) SignedNet() decimal.Decimal   { return inv.Signed(inv.NetTotal) }
func (inv *Invoice) SignedTax() decimal.Decimal   { return inv.Signed(inv.TaxTotal) }
func (inv *Invoice) SignedGross() decimal.Decimal { return inv.Signed(inv.GrossTotal) }

// Overdue reports an unpaid finalized invoice past its due date.
func (inv *Invoice) Overdue(now time.Time) bool {
	return (inv.Status == StatusFinalized || inv.Status == StatusSent) && inv.DocType == DocInvoice &&
		inv.DueDate != nil && now.After(inv.DueDate.AddDate(0, 0, 1))
}

// Line is one invoice line.
type Line struct {
	ID            int64 `gorm:"primaryKey"`
	InvoiceID     int64
	Position      int
	Item          Item
	Description   string
	ServicePeriod string
	VersionID     *int64
	TierFrom      *int64
	TierTo        *int64
	TicketID      *int64
	Priority      string
	Quantity      decimal.Decimal
	UnitCode      string
	UnitPrice     decimal.Decimal
	NetAmount     decimal.Decimal
	Reason        string
	CreatedBy     string
}

func (Line) TableName() string { return "invoice_lines" }

// IsUsage reports a line priced from ledger records.
func (l *Line) IsUsage() bool { return l.Item == ItemTelematics || l.Item == ItemPush }

// UsageDetail is the per-container breakdown of a usage group.
type UsageDetail struct {
	InvoiceID        int64
	Item             Item
	ServicePeriod    string
	ContainerID      int64
	ContainerVersion int
	Quantity         int64
}

func (UsageDetail) TableName() string { return "invoice_usage_details" }

// Payment is a booked payment.
type Payment struct {
	ID         int64 `gorm:"primaryKey"`
	InvoiceID  int64
	Amount     decimal.Decimal
	ReceivedOn time.Time
	Reference  string
	BookedBy   string
	CreatedAt  time.Time
}

func (Payment) TableName() string { return "invoice_payments" }

// StoredDocument is a rendered document kept since finalization.
type StoredDocument struct {
	InvoiceID int64
	Format    string // pdf, ubl
	Content   []byte
	SHA256    string `gorm:"column:sha256"`
	CreatedAt time.Time
}

func (StoredDocument) TableName() string { return "invoice_documents" }

// DocumentFormats are the stored formats of a finalized document, with
// the file extension and media type each is delivered under.
var DocumentFormats = []struct{ Format, Ext, ContentType string }{
	{"pdf", "pdf", "application/pdf"},
	{"ubl", "xml", "application/xml"},
}

// File is the name and media type the document is delivered under:
// the invoice's number with the format's extension.
func (d *StoredDocument) File(inv *Invoice) (name, contentType string) {
	for _, f := range DocumentFormats {
		if f.Format == d.Format {
			return inv.NumberOrDraft() + "." + f.Ext, f.ContentType
		}
	}
	return inv.NumberOrDraft(), "application/octet-stream"
}

// InvoiceFilter narrows ListInvoices.
type InvoiceFilter struct {
	Period     string
	Status     string
	ProviderID int64
	Provider   string // substring of the buyer name
	Number     string // substring of the number, any case (the header's search)
	DocType    string
	Overdue    bool
	// Order is the list's sort (InvoiceSort); the zero value is newest period first.
	Order  listsort.Order
	Offset int
	Limit  int
}

// invoiceColumns are the sortable columns of the invoice lists; amounts
// sort as shown (credit notes negative).
var invoiceColumns = map[string]string{
	"number":   "number",
	"period":   "period",
	"provider": "lower(buyer_name)",
	"issued":   "issue_date",
	"due":      "due_date",
	"net":      "CASE WHEN doc_type = 'credit_note' THEN -net_total ELSE net_total END",
	"gross":    "CASE WHEN doc_type = 'credit_note' THEN -gross_total ELSE gross_total END",
	"paid":     "paid_total",
	"status":   "status",
}

// InvoiceSort is the staff invoice list's sort whitelist (newest period first).
var InvoiceSort = listsort.Spec{Columns: invoiceColumns, Tiebreak: "id", DefaultSQL: "period DESC, id DESC"}

// ProviderInvoiceSort is the portal's (latest finalized first).
var ProviderInvoiceSort = listsort.Spec{Columns: invoiceColumns, Tiebreak: "id", DefaultSQL: "finalized_at DESC, id DESC"}

// ListInvoices returns invoices newest first and the total matching.
func (s *Service) ListInvoices(ctx context.Context, f InvoiceFilter) ([]Invoice, int64, error) {
	q := s.DB.WithContext(ctx).Model(&Invoice{})
	if f.Period != "" {
		q = q.Where("period = ?", f.Period)
	}
	if n := strings.TrimSpace(f.Number); n != "" {
		q = q.Where("number ILIKE ?", containsPattern(n))
	}
	switch f.Status {
	case "":
	case StatusPartiallyPaid:
		q = q.Where("doc_type = 'invoice' AND status IN ('finalized','sent') AND paid_total > 0")
	case StatusFinalized, StatusSent:
		// as shown: a finalized or sent invoice paid in part is "partially paid"
		q = q.Where("status = ? AND NOT (doc_type = 'invoice' AND paid_total > 0)", f.Status)
	default:
		q = q.Where("status = ?", f.Status)
	}
	if f.ProviderID != 0 {
		q = q.Where("provider_id = ?", f.ProviderID)
	}
	if f.Provider != "" {
		q = q.Where("buyer_name ILIKE ?", containsPattern(f.Provider))
	}
	if f.DocType != "" {
		q = q.Where("doc_type = ?", f.DocType)
	}
	if f.Overdue {
		today := s.now().In(s.loc()).Format("2006-01-02")
		q = q.Where("doc_type = 'invoice' AND status IN ('finalized','sent') AND due_date < ?", today)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count invoices")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var out []Invoice
	if err := q.Order(InvoiceSort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&out).Error; err != nil {
		return nil, 0, errs.Wrap(err, "list invoices")
	}
	return out, total, fillCredited(s.DB.WithContext(ctx), out)
}

// containsPattern is the ILIKE pattern for a substring typed by a person:
// the pattern's own characters (%, _ and \) match themselves.
func containsPattern(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// fillCredited sets Credited on the invoices of list (one query).
func fillCredited(db *gorm.DB, list []Invoice) error {
	var ids []int64
	for i := range list {
		if !list[i].IsCreditNote() && list[i].Number != nil {
			ids = append(ids, list[i].ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var rows []struct {
		InvoiceID int64
		Gross     decimal.Decimal
	}
	if err := db.Raw(`SELECT corrects_invoice_id AS invoice_id, sum(gross_total) AS gross FROM invoices
		WHERE corrects_invoice_id IN ? AND doc_type = 'credit_note' AND status IN ('finalized','sent','paid')
		GROUP BY corrects_invoice_id`, ids).Scan(&rows).Error; err != nil {
		return errs.Wrap(err, "credited amounts")
	}
	by := make(map[int64]decimal.Decimal, len(rows))
	for _, r := range rows {
		by[r.InvoiceID] = r.Gross
	}
	for i := range list {
		list[i].Credited = by[list[i].ID]
	}
	return nil
}

// FindInvoice loads an invoice with its lines.
func (s *Service) FindInvoice(ctx context.Context, id int64) (*Invoice, error) {
	return findInvoice(s.DB.WithContext(ctx), id)
}

// FindProviderInvoice loads one of a provider's own finalized documents
// (the portal and the API use it; the ownership check is in the query).
func (s *Service) FindProviderInvoice(ctx context.Context, providerID, id int64) (*Invoice, error) {
	var inv Invoice
	err := s.DB.WithContext(ctx).Preload("Lines", orderLines).
		Where("id = ? AND provider_id = ? AND status IN ('finalized','sent','paid')", id, providerID).First(&inv).Error
	if err != nil {
		return nil, dbError(err, "invoice")
	}
	return &inv, nil
}

// ProviderInvoices lists a provider's finalized documents, newest first.
func (s *Service) ProviderInvoices(ctx context.Context, providerID int64) ([]Invoice, error) {
	return s.ProviderInvoicesSorted(ctx, providerID, listsort.Order{})
}

// ProviderInvoicesSorted lists a provider's finalized documents in o's
// order (ProviderInvoiceSort). A provider has a few documents a month, so
// the list is read whole (the portal shows them on one page).
func (s *Service) ProviderInvoicesSorted(ctx context.Context, providerID int64, o listsort.Order) ([]Invoice, error) {
	var out []Invoice
	err := s.DB.WithContext(ctx).Where("provider_id = ? AND status IN ('finalized','sent','paid')", providerID).
		Order(ProviderInvoiceSort.SQL(o)).Find(&out).Error
	if err != nil {
		return nil, errs.Wrap(err, "provider invoices")
	}
	return out, fillCredited(s.DB.WithContext(ctx), out)
}

func orderLines(db *gorm.DB) *gorm.DB { return db.Order("position") }

func findInvoice(tx *gorm.DB, id int64) (*Invoice, error) {
	var inv Invoice
	if err := tx.Preload("Lines", orderLines).First(&inv, id).Error; err != nil {
		return nil, dbError(err, "invoice")
	}
	one := []Invoice{inv}
	if err := fillCredited(tx, one); err != nil {
		return nil, err
	}
	inv.Credited = one[0].Credited
	return &inv, nil
}

// UsageDetails returns an invoice's per-container breakdown.
func (s *Service) UsageDetails(ctx context.Context, invoiceID int64) ([]UsageDetail, error) {
	var out []UsageDetail
	err := s.DB.WithContext(ctx).Where("invoice_id = ?", invoiceID).Order("service_period, item, container_id, container_version").Find(&out).Error
	return out, errs.Wrap(err, "usage details")
}

// Payments lists an invoice's payments.
func (s *Service) Payments(ctx context.Context, invoiceID int64) ([]Payment, error) {
	var out []Payment
	err := s.DB.WithContext(ctx).Where("invoice_id = ?", invoiceID).Order("received_on, id").Find(&out).Error
	return out, errs.Wrap(err, "payments")
}

// CreditNotes lists the credit notes that correct an invoice.
func (s *Service) CreditNotes(ctx context.Context, invoiceID int64) ([]Invoice, error) {
	var out []Invoice
	err := s.DB.WithContext(ctx).Where("corrects_invoice_id = ? AND status <> 'discarded'", invoiceID).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "credit notes")
}

// credited sums the issued credit notes' gross totals of an invoice.
func credited(tx *gorm.DB, invoiceID int64) (net, gross decimal.Decimal, err error) {
	var row struct{ Net, Gross decimal.Decimal }
	err = tx.Raw(`SELECT COALESCE(sum(net_total),0) AS net, COALESCE(sum(gross_total),0) AS gross FROM invoices
		WHERE corrects_invoice_id = ? AND doc_type = 'credit_note' AND status IN ('finalized','sent','paid')`, invoiceID).Scan(&row).Error
	return row.Net, row.Gross, errs.Wrap(err, "credited amount")
}

// Credited returns the issued credit notes' gross total of an invoice.
func (s *Service) Credited(ctx context.Context, invoiceID int64) (decimal.Decimal, error) {
	_, g, err := credited(s.DB.WithContext(ctx), invoiceID)
	return g, err
}

// LedgerPage lists an invoice's ledger records (paged), or those of one
// usage line: the records of its item and month whose positions fall in
// the line's tier range. The records are those of the invoice's claim; a
// record's position is its rank by delivery time within its kind and month
// after the units earlier invoices billed (the line's first position).
func (s *Service) LedgerPage(ctx context.Context, invoiceID, lineID int64, offset, limit int) ([]LedgerRecord, int64, error) {
	db := s.DB.WithContext(ctx)
	var c Claim
	if err := db.Where("invoice_id = ?", invoiceID).Limit(1).Find(&c).Error; err != nil {
		return nil, 0, errs.Wrap(err, "invoice claim")
	}
	if c.ID == 0 {
		return nil, 0, nil
	}
	cs, err := providerClaims(db, c.ProviderID)
	if err != nil {
		return nil, 0, err
	}
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	q := `WITH b AS (
    SELECT CASE item WHEN 'push' THEN 'push' ELSE 'pull' END AS kind, service_period, min(tier_from) - 1 AS base
    FROM invoice_lines WHERE invoice_id = @invoice AND item IN ('telematics','push') GROUP BY 1, 2
), r AS (
    SELECT l.*, CAST(@invoice AS bigint) AS invoice_id, to_char(l.delivered_at AT TIME ZONE @tz, 'YYYY-MM') AS service_period
    FROM delivery_ledger l WHERE l.provider_id = @provider AND ` + sqlRects(claimRegion(cs, c)) + `
), p AS (
    SELECT r.*, COALESCE(b.base, 0) + row_number() OVER (PARTITION BY r.kind, r.service_period ORDER BY r.delivered_at, r.id) AS month_position
    FROM r LEFT JOIN b ON b.kind = r.kind AND b.service_period = r.service_period
)
SELECT *, count(*) OVER () AS total FROM p`
	args := []any{sql.Named("invoice", invoiceID), sql.Named("provider", c.ProviderID), sql.Named("tz", s.loc().String())}
	if lineID != 0 {
		var l Line
		if err := db.Where("id = ? AND invoice_id = ?", lineID, invoiceID).First(&l).Error; err != nil {
			return nil, 0, dbError(err, "invoice line")
		}
		if !l.IsUsage() || l.TierFrom == nil || l.TierTo == nil {
			return nil, 0, nil
		}
		q += ` WHERE kind = @kind AND service_period = @sp AND month_position BETWEEN @from AND @to`
		args = append(args, sql.Named("kind", kindOf(l.Item)), sql.Named("sp", l.ServicePeriod), sql.Named("from", *l.TierFrom),
			sql.Named("to", *l.TierTo))
	}
	q += ` ORDER BY kind, service_period, month_position LIMIT @limit OFFSET @offset`
	args = append(args, sql.Named("limit", limit), sql.Named("offset", offset))
	var out []struct {
		LedgerRecord
		Total int64
	}
	if err := db.Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, 0, errs.Wrap(err, "ledger records")
	}
	var total int64
	recs := make([]LedgerRecord, len(out))
	for i := range out {
		recs[i], total = out[i].LedgerRecord, out[i].Total
	}
	if len(out) == 0 && offset > 0 {
		// Past the end: count without paging.
		if _, t, err := s.LedgerPage(ctx, invoiceID, lineID, 0, 1); err == nil {
			total = t
		}
	}
	return recs, total, nil
}

// InvoiceSupportItems lists the support items billed on an invoice.
func (s *Service) InvoiceSupportItems(ctx context.Context, invoiceID int64) ([]SupportItem, error) {
	var out []SupportItem
	err := s.DB.WithContext(ctx).Where("invoice_id = ?", invoiceID).Order("ticket_id, occurred_at, id").Find(&out).Error
	return out, errs.Wrap(err, "invoice support items")
}

// Document returns a stored document of a finalized invoice.
func (s *Service) Document(ctx context.Context, invoiceID int64, format string) (*StoredDocument, error) {
	var d StoredDocument
	err := s.DB.WithContext(ctx).Where("invoice_id = ? AND format = ?", invoiceID, format).First(&d).Error
	if err != nil {
		if errs.KindOf(dbError(err, "document")) == errs.NotFound {
			return nil, errs.New(errs.NotFound, "document_not_found", "documents exist once the invoice is finalized")
		}
		return nil, errs.Wrap(err, "document")
	}
	return &d, nil
}

// Periods lists the periods that have invoices, newest first (filters).
func (s *Service) Periods(ctx context.Context) ([]string, error) {
	var out []string
	err := s.DB.WithContext(ctx).Raw(`SELECT DISTINCT period FROM invoices ORDER BY period DESC LIMIT 60`).Scan(&out).Error
	return out, errs.Wrap(err, "periods")
}

// RevenueMonth is one bar of the revenue chart.
type RevenueMonth struct {
	Period string
	Net    decimal.Decimal
	Gross  decimal.Decimal
	Count  int64
}

// Revenue sums finalized invoices minus credit notes per period (last 12).
func (s *Service) Revenue(ctx context.Context) ([]RevenueMonth, error) {
	var out []RevenueMonth
	err := s.DB.WithContext(ctx).Raw(`SELECT period,
		sum(CASE WHEN doc_type = 'credit_note' THEN -net_total ELSE net_total END) AS net,
		sum(CASE WHEN doc_type = 'credit_note' THEN -gross_total ELSE gross_total END) AS gross,
		count(*) FILTER (WHERE doc_type = 'invoice') AS count
		FROM invoices WHERE status IN ('finalized','sent','paid')
		GROUP BY period ORDER BY period DESC LIMIT 12`).Scan(&out).Error
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, errs.Wrap(err, "revenue")
}

// lineTexts are the descriptions the invoice run and the credit note write
// on a line (English, as issued on the PDF and the e-invoice): a page
// says them in its reader's language (DescriptionIn); what finance typed
// (a manual line, a credit's reason) stays as typed.
var lineTexts = []struct {
	re *regexp.Regexp
	id string
}{
	{regexp.MustCompile(`^(Telematics deliveries|Push deliveries), [A-Z][a-z]+ \d{4}, units ([\d,]+)–([\d,]+) of the month \(price list of (\d{4}-\d{2}-\d{2})\)$`),
		"{{.Item}}, {{.Month}}, units {{.From}}–{{.To}} of the month (price list of {{.Date}})"},
	{regexp.MustCompile(`^Support case fee (P\d), [A-Z][a-z]+ \d{4}: ((?s).*)$`),
		"Support case fee {{.Priority}}, {{.Month}}: {{.Tickets}}"},
	{regexp.MustCompile(`^Support time, ticket (\S+) \((P\d)\), [A-Z][a-z]+ \d{4}: (\d+) min = (\d+) × started 15 min$`),
		"Support time, ticket {{.Ticket}} ({{.Priority}}), {{.Month}}: {{.Minutes}} min = {{.Blocks}} × started 15 min"},
	{regexp.MustCompile(`^Credit on invoice (\S+): ((?s).*)$`), "Credit on invoice {{.Number}}: {{.Reason}}"},
}

// DescriptionIn is the line's description in lang (the stored text when it
// is not one the service wrote).
func (l *Line) DescriptionIn(lang string) string {
	lg, _ := i18n.Parse(lang)
	if lg != i18n.DE {
		return l.Description // the issued text
	}
	z := i18n.Locale{Lang: lg}
	num := func(s string) string {
		n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
		if err != nil {
			return s
		}
		return z.Number(n)
	}
	for i, t := range lineTexts {
		m := t.re.FindStringSubmatch(l.Description)
		if m == nil {
			continue
		}
		month := z.Month(l.ServicePeriod)
		switch i {
		case 0:
			d, _ := time.Parse("2006-01-02", m[4])
			return i18n.T(lg, t.id, "Item", i18n.T(lg, m[1]), "Month", month, "From", num(m[2]), "To", num(m[3]), "Date", z.Date(d))
		case 1:
			return i18n.T(lg, t.id, "Priority", m[1], "Month", month, "Tickets", m[2])
		case 2:
			return i18n.T(lg, t.id, "Ticket", m[1], "Priority", m[2], "Month", month, "Minutes", num(m[3]), "Blocks", num(m[4]))
		case 3:
			return i18n.T(lg, t.id, "Number", m[1], "Reason", m[2])
		}
	}
	return l.Description
}
