// Package billing turns deliveries into money: the one published price
// list (versioned, immutable once in use), the delivery ledger every
// provider transfer is recorded in before the data leaves, billable support
// items, the monthly invoice run, invoices and credit notes through their
// life cycle, German/EU VAT, and the EN 16931 (UBL 2.1) and PDF documents.
//
// Periods are calendar months in the billing time zone (Europe/Berlin),
// half-open [first day 00:00, next first day 00:00), so the DST nights fall
// inside whichever month they belong to. Money is decimal.Decimal and
// NUMERIC, never float; amounts are rounded half-up to the cent once, per
// invoice line, and every total is the exact sum of what it adds up.
//
// The package does not import onboarding or the support desk: it declares
// ProviderDirectory (who the buyer is) and offers RecordSupportItem (what
// support bills), and app wires the implementations in.
package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/errs"
)

// Service is billing's domain service. Each method owns its transaction.
type Service struct {
	DB *gorm.DB
	// Directory says who a provider is for invoicing (wired to onboarding).
	Directory ProviderDirectory
	// Location is the billing time zone (cfg.BillingTimezone).
	Location *time.Location
	// PublicURL prefixes links in e-mails (cfg.PublicURL).
	PublicURL string
	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time
	// Locks holds the invoice run's period lock for the whole run: the
	// process's lock session (the job scheduler's), so that a run holds no
	// pooled connection while its work asks the pool for more. Nil: a
	// session on DB of the run's own.
	Locks *jobs.Session

	// beforeCommit lets tests fail a provider's transaction at its last
	// step (crash safety); see export_test.go.
	beforeCommit func(providerID int64) error
	// beforeFinalizeCommit fails a finalization after its number was
	// taken (gapless numbers); see export_test.go.
	beforeFinalizeCommit func(invoiceID int64) error
	// bulkMin overrides globalMin (tests count in bulk or alone).
	bulkMin int
	// runs are the runs StartRun started; Close stops them and waits (run.go).
	runs *runGroup
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) loc() *time.Location {
	if s.Location != nil {
		return s.Location
	}
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}

// Period is one billing month in the billing time zone.
type Period struct {
	Year  int
	Month time.Month
	Start time.Time // first instant, in the billing zone
	End   time.Time // first instant of the next month (exclusive)
}

var periodRE = regexp.MustCompile(`^([0-9]{4})-(0[1-9]|1[0-2])$`)

// ParsePeriod reads "YYYY-MM" as a half-open month in loc.
func ParsePeriod(s string, loc *time.Location) (Period, error) {
	m := periodRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Period{}, errs.New(errs.Invalid, "period_invalid", "period must look like 2026-10 (year-month)")
	}
	y, _ := strconv.Atoi(m[1])
	mo, _ := strconv.Atoi(m[2])
	if y < 2000 || y > 2999 {
		return Period{}, errs.New(errs.Invalid, "period_invalid", "period year %d is out of range", y)
	}
	return PeriodOf(time.Date(y, time.Month(mo), 1, 12, 0, 0, 0, loc), loc), nil
}

// PeriodOf returns the month that contains t in loc.
func PeriodOf(t time.Time, loc *time.Location) Period {
	lt := t.In(loc)
	start := time.Date(lt.Year(), lt.Month(), 1, 0, 0, 0, 0, loc)
	return Period{Year: lt.Year(), Month: lt.Month(), Start: start, End: start.AddDate(0, 1, 0)}
}

// String is "YYYY-MM".
func (p Period) String() string { return fmt.Sprintf("%04d-%02d", p.Year, int(p.Month)) }

// Next is the following month.
func (p Period) Next() Period { return PeriodOf(p.End.Add(time.Hour), p.Start.Location()) }

// Prev is the month before.
func (p Period) Prev() Period { return PeriodOf(p.Start.Add(-time.Hour), p.Start.Location()) }

// LastDay is the last calendar day of the month (for documents).
func (p Period) LastDay() time.Time { return p.End.AddDate(0, 0, -1) }

// Label is "October 2026".
func (p Period) Label() string { return p.Start.Format("January 2006") }

// Contains reports whether t lies in the half-open month.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.Start) && t.Before(p.End) }

// Money helpers. Cents are rounded half-up (away from zero for negatives,
// as commercial rounding does).
var hundred = decimal.NewFromInt(100)

// RoundCents rounds d half-up to two decimals.
func RoundCents(d decimal.Decimal) decimal.Decimal { return d.Round(2) }

// Money is an amount in an error message: it prints as FormatMoney (the
// API's English text) and a page formats it in its reader's language
// (templates.Translator asks Amount).
type Money decimal.Decimal

func (m Money) String() string          { return FormatMoney(decimal.Decimal(m)) }
func (m Money) Amount() decimal.Decimal { return decimal.Decimal(m) }

// FormatMoney renders 1234.5 as "1,234.50 EUR".
func FormatMoney(d decimal.Decimal) string { return groupThousands(d.StringFixed(2)) + " EUR" }

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// actor names the principal for created_by columns by policies.ActorOf's
// rule (its unique label; the system when none acts); the id is kept for
// staff only, the columns referencing staff users.
func actor(ctx context.Context) (label string, id *int64) {
	a := policies.ActorOf(ctx, policies.System("system"))
	if a.Kind == policies.KindStaff {
		id = a.ID
	}
	return a.Label, id
}

// dbError translates the billing triggers' exceptions (HINT carries a
// stable code) and unique violations into domain errors.
func dbError(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case pg.Code == "P0001" && pg.Hint != "":
			return &errs.Error{Kind: errs.Conflict, Code: pg.Hint, Message: pg.Message, Err: err}
		case pg.Code == "23505":
			return &errs.Error{Kind: errs.Conflict, Code: "duplicate", Message: "it already exists", Err: err}
		case pg.Code == "40001" || pg.Code == "40P01":
			return &errs.Error{Kind: errs.Conflict, Code: "concurrent_update", Message: "changed concurrently; try again", Err: err}
		}
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return &errs.Error{Kind: errs.Conflict, Code: "duplicate", Message: "it already exists", Err: err}
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errs.New(errs.NotFound, "not_found", "%s: not found", errs.Term(what))
	}
	return errs.Wrap(err, what)
}

func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return (errors.As(err, &pg) && pg.Code == "23505") || errors.Is(err, gorm.ErrDuplicatedKey)
}

func isSerialization(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01")
}
