package support

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// LinkKind is what a ticket link refers to.
type LinkKind string

// The link kinds.
const (
	LinkContainer LinkKind = "container" // a data container, by id
	LinkInvoice   LinkKind = "invoice"   // an invoice, by number (CD-YYYY-NNNNNN)
	LinkVIN       LinkKind = "vin"       // a vehicle, by VIN
)

// LinkKinds lists the kinds for forms.
var LinkKinds = []LinkKind{LinkContainer, LinkInvoice, LinkVIN}

// Label is the kind in words.
func (k LinkKind) Label() string {
	switch k {
	case LinkContainer:
		return "Data container"
	case LinkInvoice:
		return "Invoice"
	case LinkVIN:
		return "Vehicle (VIN)"
	}
	return string(k)
}

// LinkInput is a link as entered.
type LinkInput struct {
	Kind LinkKind
	Ref  string
}

// Link is a stored typed reference of a ticket. URL and Label are filled
// by the resolver when the target exists (and the viewer may open it).
type Link struct {
	ID        int64 `gorm:"primaryKey"`
	TicketID  int64
	Kind      LinkKind
	Ref       string
	CreatedBy string
	CreatedAt time.Time
	URL       string `gorm:"-"`
	Label     string `gorm:"-"`
	Exists    bool   `gorm:"-"`
}

func (Link) TableName() string { return "support_links" }

// LinkTarget is what a resolver knows about a link's target.
type LinkTarget struct {
	Exists bool   // the target was found (for the ticket's provider)
	URL    string // a page the viewer may open ("" none)
	Label  string // e.g. the container's name
}

// LinkResolver looks a link's target up for the ticket's provider; staff
// tells whether the viewer is staff (staff pages) or the provider (portal
// pages). app wires it to the modules that own containers, invoices and
// vehicles.
type LinkResolver func(ctx context.Context, providerID int64, staff bool, kind LinkKind, ref string) (LinkTarget, error)

var invoiceNumberRE = regexp.MustCompile(`^CD-[0-9]{4}-[0-9]{6}$`)

// NormalizeLink validates one link and returns it in stored form.
func NormalizeLink(v *errs.Validation, field string, in LinkInput) (LinkInput, bool) {
	ref := strings.TrimSpace(in.Ref)
	before := len(v.Fields)
	switch in.Kind {
	case LinkContainer:
		ref = strings.TrimPrefix(strings.TrimPrefix(ref, "#"), "C-")
		if id, err := strconv.ParseInt(ref, 10, 64); err != nil || id <= 0 {
			v.Add(field, "container_invalid", "give the data container's number (e.g. 12)")
		} else {
			ref = strconv.FormatInt(id, 10)
		}
	case LinkInvoice:
		ref = strings.ToUpper(ref)
		if !invoiceNumberRE.MatchString(ref) {
			v.Add(field, "invoice_invalid", "give the invoice number as printed, e.g. CD-2026-000123")
		}
	case LinkVIN:
		ref = policies.NormalizeVIN(ref)
		vehicles.ValidateVIN(v, field, ref)
	default:
		v.Add(field, "link_kind_invalid", "choose what the link refers to: container, invoice or VIN")
	}
	return LinkInput{Kind: in.Kind, Ref: ref}, len(v.Fields) == before
}

// LinkInputsFrom reads the link fields of a ticket form: link_container,
// link_invoice and link_vin, each with one or more references separated by
// commas or lines.
func LinkInputsFrom(value func(field string) string) []LinkInput {
	var out []LinkInput
	for _, k := range LinkKinds {
		for _, ref := range strings.FieldsFunc(value("link_"+string(k)), func(r rune) bool { return r == ',' || r == '\n' }) {
			out = append(out, LinkInput{Kind: k, Ref: ref})
		}
	}
	return out
}

// checkLinks validates the links of a new ticket (empty refs are skipped).
func checkLinks(v *errs.Validation, in []LinkInput) []LinkInput {
	var out []LinkInput
	for _, l := range in {
		if strings.TrimSpace(l.Ref) == "" {
			continue
		}
		if n, ok := NormalizeLink(v, "link_"+string(l.Kind), l); ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) > 20 {
		v.Add("links", "too_many_links", "link at most 20 things")
	}
	return out
}

func storeLinks(tx *gorm.DB, ticketID int64, links []LinkInput, by string, now time.Time) error {
	for _, l := range links {
		err := tx.Exec(`INSERT INTO support_links (ticket_id, kind, ref, created_by, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (ticket_id, kind, ref) DO NOTHING`, ticketID, l.Kind, l.Ref, by, now).Error
		if err != nil {
			return errs.Wrap(err, "store link")
		}
	}
	return nil
}

// Links returns the ticket's links, resolved for the viewer.
func (s *Service) Links(ctx context.Context, id int64) ([]Link, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	t, err := loadTicket(db, vw, id, false)
	if err != nil {
		return nil, err
	}
	var out []Link
	if err := db.Where("ticket_id = ?", id).Order("kind, ref").Find(&out).Error; err != nil {
		return nil, errs.Wrap(err, "links")
	}
	if s.Resolver == nil {
		return out, nil
	}
	for i := range out {
		tg, err := s.Resolver(ctx, t.ProviderID, vw.staff(), out[i].Kind, out[i].Ref)
		if err != nil {
			return nil, err
		}
		out[i].Exists, out[i].URL, out[i].Label = tg.Exists, tg.URL, tg.Label
	}
	return out, nil
}

// AddLink links a container, invoice or vehicle to a ticket (staff).
func (s *Service) AddLink(ctx context.Context, id int64, in LinkInput) error {
	vw, err := staffOf(ctx)
	if err != nil {
		return err
	}
	v := &errs.Validation{}
	l, _ := NormalizeLink(v, "ref", in)
	if err := v.Err(); err != nil {
		return err
	}
	now := s.now()
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadTicket(tx, vw, id, true)
		if err != nil {
			return err
		}
		if err := storeLinks(tx, t.ID, []LinkInput{l}, vw.p.Actor().Name, now); err != nil {
			return err
		}
		note := noteOf("linked {{.Kind}} {{.Ref}}", "Kind", term(l.Kind.Label()), "Ref", l.Ref)
		if err := addEvent(tx, vw.p.Actor(), t.ID, "link", "", "", note, true, now); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "support_ticket.link", "support_ticket", ticketRef(t.ID), "%s: linked %s %s", t.Number(), errs.Term(l.Kind.Label()), l.Ref)
	})
}

// RemoveLink removes a link from a ticket (staff).
func (s *Service) RemoveLink(ctx context.Context, id, linkID int64) error {
	vw, err := staffOf(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadTicket(tx, vw, id, true)
		if err != nil {
			return err
		}
		var l Link
		if err := tx.Where("id = ? AND ticket_id = ?", linkID, t.ID).Take(&l).Error; err != nil {
			return errs.New(errs.NotFound, "link_not_found", "link not found")
		}
		if err := tx.Delete(&l).Error; err != nil {
			return errs.Wrap(err, "remove link")
		}
		note := noteOf("removed link to {{.Kind}} {{.Ref}}", "Kind", term(l.Kind.Label()), "Ref", l.Ref)
		if err := addEvent(tx, vw.p.Actor(), t.ID, "unlink", "", "", note, true, now); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "support_ticket.unlink", "support_ticket", ticketRef(t.ID), "%s: removed link to %s %s", t.Number(), errs.Term(l.Kind.Label()), l.Ref)
	})
}
