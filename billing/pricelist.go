package billing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/templates/i18n"
)

// Item names what a price applies to.
type Item string

// The billable items of the price list, plus the invoice-only line kinds.
const (
	ItemTelematics  Item = "telematics"   // per delivered telematics response, graduated by monthly count
	ItemPush        Item = "push"         // per accepted push, graduated by monthly count
	ItemSupportCase Item = "support_case" // per billable support case, by priority
	ItemSupportTime Item = "support_time" // per started 15 minutes of billable support time
	ItemManual      Item = "manual"       // a line finance added to a draft, with a reason
	ItemCredit      Item = "credit"       // a partial credit on a credit note
)

// Label is the item in words (English / German for documents).
func (i Item) Label() string {
	switch i {
	case ItemTelematics:
		return "Telematics data delivery / Telematikdaten-Abruf"
	case ItemPush:
		return "Push notification / Push-Benachrichtigung"
	case ItemSupportCase:
		return "Support case / Supportfall"
	case ItemSupportTime:
		return "Support time per started 15 min / Supportzeit je angefangene 15 Min."
	case ItemManual:
		return "Adjustment / Korrektur"
	case ItemCredit:
		return "Credit / Gutschrift"
	}
	return string(i)
}

// ShortLabel is the item in a few English words (UI).
func (i Item) ShortLabel() string {
	switch i {
	case ItemTelematics:
		return "Telematics deliveries"
	case ItemPush:
		return "Push deliveries"
	case ItemSupportCase:
		return "Support case"
	case ItemSupportTime:
		return "Support time (per started 15 min)"
	case ItemManual:
		return "Manual line"
	case ItemCredit:
		return "Credit"
	}
	return string(i)
}

func itemRank(i Item) int {
	switch i {
	case ItemTelematics:
		return 0
	case ItemPush:
		return 1
	case ItemSupportCase:
		return 2
	}
	return 3
}

// PriceString is the unit price as published: four decimals for the
// per-delivery items, cents for support.
func (p PriceItem) PriceString() string {
	if p.Item == ItemTelematics || p.Item == ItemPush {
		return p.UnitPrice.StringFixed(4)
	}
	return p.UnitPrice.StringFixed(2)
}

// InZone returns a copy of the version with its validity in loc (display).
func (v Version) InZone(loc *time.Location) Version {
	v.ValidFrom = v.ValidFrom.In(loc)
	if v.ValidTo != nil {
		t := v.ValidTo.In(loc)
		v.ValidTo = &t
	}
	return v
}

// Priorities of support cases.
var Priorities = []string{"P1", "P2", "P3", "P4"}

// SupportBlock is the billing unit of support time.
const SupportBlock = 15 // minutes

// PriceItem is one price of a version.
type PriceItem struct {
	ID        int64           `gorm:"primaryKey" json:"-"`
	VersionID int64           `json:"-"`
	Item      Item            `json:"item"`
	Priority  string          `json:"priority,omitempty"`
	TierFrom  int64           `json:"tierFrom"`
	TierTo    *int64          `json:"tierTo"`
	UnitPrice decimal.Decimal `json:"unitPrice"`
}

func (PriceItem) TableName() string { return "price_list_items" }

// TierLabel is "1 – 10,000" or "from 100,001".
func (p PriceItem) TierLabel() string {
	if p.Item != ItemTelematics && p.Item != ItemPush {
		return ""
	}
	if p.TierTo == nil {
		if p.TierFrom == 1 {
			return "every unit"
		}
		return "from " + groupThousands(strconv.FormatInt(p.TierFrom, 10))
	}
	return groupThousands(strconv.FormatInt(p.TierFrom, 10)) + " – " + groupThousands(strconv.FormatInt(*p.TierTo, 10))
}

// Version is one version of the published price list.
type Version struct {
	ID        int64       `gorm:"primaryKey" json:"id"`
	ValidFrom time.Time   `json:"validFrom"`
	ValidTo   *time.Time  `gorm:"-" json:"validTo"` // the next version's ValidFrom (exclusive), nil when open
	Currency  string      `json:"currency"`
	Note      string      `json:"note,omitempty"`
	CreatedBy string      `json:"-"`
	CreatedAt time.Time   `gorm:"<-:false" json:"-"`
	Items     []PriceItem `gorm:"foreignKey:VersionID" json:"items"`
}

func (Version) TableName() string { return "price_list_versions" }

// InUse reports whether the version's validity has started (it can no longer change).
func (v *Version) InUse(now time.Time) bool { return !v.ValidFrom.After(now) }

// Current reports whether now lies in the version's validity.
func (v *Version) Current(now time.Time) bool {
	return v.InUse(now) && (v.ValidTo == nil || now.Before(*v.ValidTo))
}

// Tiers returns the graduated tiers of item, ordered.
func (v *Version) Tiers(item Item) []PriceItem {
	var out []PriceItem
	for _, it := range v.Items {
		if it.Item == item {
			out = append(out, it)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TierFrom < out[j].TierFrom })
	return out
}

// Price returns the flat price of item (and priority for support cases).
func (v *Version) Price(item Item, priority string) (decimal.Decimal, bool) {
	for _, it := range v.Items {
		if it.Item == item && (item != ItemSupportCase || it.Priority == priority) {
			return it.UnitPrice, true
		}
	}
	return decimal.Zero, false
}

// PriceList is every version, oldest first, with validity ends filled in.
type PriceList []Version

// At returns the version valid at t.
func (pl PriceList) At(t time.Time) (*Version, bool) {
	for i := len(pl) - 1; i >= 0; i-- {
		if !pl[i].ValidFrom.After(t) {
			return &pl[i], true
		}
	}
	return nil, false
}

// ByID returns a version.
func (pl PriceList) ByID(id int64) (*Version, bool) {
	for i := range pl {
		if pl[i].ID == id {
			return &pl[i], true
		}
	}
	return nil, false
}

// PriceList loads every version with its items.
func (s *Service) PriceList(ctx context.Context) (PriceList, error) {
	return loadPriceList(s.DB.WithContext(ctx))
}

func loadPriceList(tx *gorm.DB) (PriceList, error) {
	var vs []Version
	if err := tx.Preload("Items", func(db *gorm.DB) *gorm.DB { return db.Order("item, priority, tier_from") }).
		Order("valid_from").Find(&vs).Error; err != nil {
		return nil, errs.Wrap(err, "load price list")
	}
	for i := range vs {
		if i+1 < len(vs) {
			to := vs[i+1].ValidFrom
			vs[i].ValidTo = &to
		}
		sort.SliceStable(vs[i].Items, func(a, b int) bool {
			x, y := vs[i].Items[a], vs[i].Items[b]
			if x.Item != y.Item {
				return itemRank(x.Item) < itemRank(y.Item)
			}
			if x.Priority != y.Priority {
				return x.Priority < y.Priority
			}
			return x.TierFrom < y.TierFrom
		})
	}
	return PriceList(vs), nil
}

// FindVersion returns one version.
func (s *Service) FindVersion(ctx context.Context, id int64) (*Version, error) {
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	v, ok := pl.ByID(id)
	if !ok {
		return nil, errs.New(errs.NotFound, "price_list_version_not_found", "no such price list version")
	}
	return v, nil
}

// Published is what providers see: the version valid now and every
// announced future version.
func (s *Service) Published(ctx context.Context) ([]Version, error) {
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []Version
	for _, v := range pl {
		if v.ValidTo == nil || v.ValidTo.After(now) {
			out = append(out, v)
		}
	}
	return out, nil
}

// Tier is one graduated tier of a new version: from this unit on (1-based)
// the unit price applies; a tier ends where the next begins.
type Tier struct {
	From      int64
	UnitPrice decimal.Decimal
}

// NewVersion is finance's input for a new price list version.
type NewVersion struct {
	ValidFrom   time.Time // must be in the future (an instant; the UI gives a date at 00:00 Berlin)
	Note        string
	Telematics  []Tier
	Push        []Tier
	SupportCase map[string]decimal.Decimal // by priority P1..P4
	SupportTime decimal.Decimal            // per started 15 minutes
}

// TierRow is one row of the tier editor as typed: the first unit the
// row's price applies to, and the unit price.
type TierRow struct{ From, Price string }

// Blank reports a row left empty (the editor skips it).
func (r TierRow) Blank() bool {
	return strings.TrimSpace(r.From) == "" && strings.TrimSpace(r.Price) == ""
}

// TierRows are a version's tiers of one item as editor rows.
func TierRows(items []PriceItem) []TierRow {
	var out []TierRow
	for _, it := range items {
		out = append(out, TierRow{From: strconv.FormatInt(it.TierFrom, 10), Price: it.UnitPrice.StringFixed(4)})
	}
	return out
}

// TierFieldFrom and TierFieldPrice name row i's fields of the item whose
// tiers field names (telematics, push): the form's inputs and the keys of
// their field errors.
func TierFieldFrom(field string, i int) string  { return fmt.Sprintf("%s_from_%d", field, i) }
func TierFieldPrice(field string, i int) string { return fmt.Sprintf("%s_price_%d", field, i) }

var groupedUnits = regexp.MustCompile(`^[0-9]{1,3}([.,' ][0-9]{3})+$`)

// parseUnit reads a first unit: digits, grouped or not (10001, 10.001, 10,001).
func parseUnit(s string) (int64, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), "_", "")
	if groupedUnits.MatchString(s) {
		s = strings.NewReplacer(".", "", ",", "", "'", "", " ", "").Replace(s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 1 && n <= 1_000_000_000_000
}

// ParseTierRows reads the editor rows of one item's tiers into tiers,
// skipping blank rows. Each row's errors are field errors of its own
// inputs (TierFieldFrom, TierFieldPrice), so the form shows them beside
// the row; an item without any tier is an error of field itself.
func ParseTierRows(v *errs.Validation, field string, rows []TierRow) []Tier {
	var out []Tier
	var prev int64
	first := true
	for i, r := range rows {
		if r.Blank() {
			continue
		}
		ff, pf := TierFieldFrom(field, i), TierFieldPrice(field, i)
		from, okFrom := parseUnit(r.From)
		switch {
		case strings.TrimSpace(r.From) == "":
			v.Add(ff, "tier_from_required", "give the first unit of this tier")
		case !okFrom:
			v.Add(ff, "tier_from_invalid", "the first unit is a whole number from 1, e.g. 10001")
		case first && from != 1:
			v.Add(ff, "tiers_start", "the first tier must start at unit 1")
		case !first && prev > 0 && from <= prev:
			v.Add(ff, "tiers_order", "a tier starts above the previous tier's first unit")
		}
		price, err := parsePrice(r.Price)
		switch {
		case strings.TrimSpace(r.Price) == "":
			v.Add(pf, "price_required", "give the unit price, e.g. 0.0150")
		case errors.Is(err, i18n.ErrAmbiguous):
			v.Add(pf, "price_ambiguous", "write the price with a decimal separator and up to 4 decimals, e.g. 0.0150 or 0,0150")
		case err != nil:
			v.Add(pf, "price_invalid", "a unit price is a number from 0 with at most 4 decimals, e.g. 0.0150 or 0,0150")
		}
		first = false
		if okFrom {
			prev = from
		} else {
			prev = 0
		}
		out = append(out, Tier{From: from, UnitPrice: price})
	}
	if first {
		v.Add(field, "tiers_required", "give at least one tier, starting at unit 1")
	}
	return out
}

func parsePrice(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	d, err := i18n.ParseAmount(s)
	if errors.Is(err, i18n.ErrAmbiguous) {
		return decimal.Zero, fmt.Errorf("%s: %w", s, err)
	}
	if err != nil {
		return decimal.Zero, fmt.Errorf("%q is not a price (e.g. 0.0150 or 0,0150)", s)
	}
	if d.IsNegative() {
		return decimal.Zero, fmt.Errorf("a price cannot be negative")
	}
	if d.Exponent() < -4 {
		return decimal.Zero, fmt.Errorf("%s: at most 4 decimals", s)
	}
	if d.GreaterThanOrEqual(decimal.NewFromInt(100_000_000)) {
		return decimal.Zero, fmt.Errorf("%s is too large", s)
	}
	return d, nil
}

// ParsePrice reads a unit price (at most 4 decimals, not negative).
func ParsePrice(s string) (decimal.Decimal, error) { return parsePrice(s) }

func validateTiers(v *errs.Validation, field string, tiers []Tier) {
	if len(tiers) == 0 {
		v.Add(field, "tiers_required", "give at least one tier, starting at unit 1")
		return
	}
	if tiers[0].From != 1 {
		v.Add(field, "tiers_start", "the first tier must start at unit 1")
	}
	for i := 1; i < len(tiers); i++ {
		if tiers[i].From <= tiers[i-1].From {
			v.Add(field, "tiers_order", "tiers must start at increasing units")
			break
		}
	}
}

// CreateVersion adds a version effective from a future instant. Versions
// already in use never change; a future version may be withdrawn.
func (s *Service) CreateVersion(ctx context.Context, in NewVersion) (*Version, error) {
	now := s.now()
	v := &errs.Validation{}
	if in.ValidFrom.IsZero() {
		v.Add("valid_from", "valid_from_required", "give the date from which the prices apply")
	} else if !in.ValidFrom.After(now) {
		v.Add("valid_from", "valid_from_past", "a new version must start in the future; versions in use never change")
	}
	validateTiers(v, "telematics", in.Telematics)
	validateTiers(v, "push", in.Push)
	for _, p := range Priorities {
		if _, ok := in.SupportCase[p]; !ok {
			v.Add("support_case_"+strings.ToLower(p), "price_required", "give the case price for %s (0 when free)", p)
		}
	}
	if len(in.Note) > 500 {
		v.Add("note", "note_too_long", "keep the note under 500 characters")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return s.insertVersion(ctx, in)
}

// insertVersion writes a version and its items in one transaction (the
// DB accepts items for an in-use version only in the transaction that
// creates it, which is how the initial list and test fixtures are loaded).
func (s *Service) insertVersion(ctx context.Context, in NewVersion) (*Version, error) {
	by, _ := actor(ctx)
	ver := &Version{ValidFrom: in.ValidFrom.UTC(), Currency: "EUR", Note: strings.TrimSpace(in.Note), CreatedBy: by}
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Omit("Items").Create(ver).Error; err != nil {
			if isUniqueViolation(err) {
				v := &errs.Validation{}
				v.Add("valid_from", "valid_from_taken", "a version already starts at that moment")
				return v.Err()
			}
			return dbError(err, "create price list version")
		}
		var items []PriceItem
		addTiers := func(item Item, tiers []Tier) {
			for i, t := range tiers {
				pi := PriceItem{VersionID: ver.ID, Item: item, TierFrom: t.From, UnitPrice: t.UnitPrice}
				if i+1 < len(tiers) {
					to := tiers[i+1].From - 1
					pi.TierTo = &to
				}
				items = append(items, pi)
			}
		}
		addTiers(ItemTelematics, in.Telematics)
		addTiers(ItemPush, in.Push)
		for _, p := range Priorities {
			if price, ok := in.SupportCase[p]; ok {
				items = append(items, PriceItem{VersionID: ver.ID, Item: ItemSupportCase, Priority: p, TierFrom: 1, UnitPrice: price})
			}
		}
		items = append(items, PriceItem{VersionID: ver.ID, Item: ItemSupportTime, TierFrom: 1, UnitPrice: in.SupportTime})
		if err := tx.Create(&items).Error; err != nil {
			return dbError(err, "create price list items")
		}
		ver.Items = items
		return audit.Recordf(ctx, tx, "price_list.create_version", "price_list_version", strconv.FormatInt(ver.ID, 10),
			"price list version valid from %s", ver.ValidFrom.In(s.loc()).Format("2006-01-02 15:04 MST"))
	})
	if err != nil {
		return nil, err
	}
	return ver, nil
}

// WithdrawVersion deletes a version that is not in use yet.
func (s *Service) WithdrawVersion(ctx context.Context, id int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ver Version
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).First(&ver, id).Error; err != nil {
			return dbError(err, "price list version")
		}
		if ver.InUse(s.now()) {
			return errs.New(errs.Conflict, "price_list_version_in_use", "this version is in use since %s and can no longer change",
				ver.ValidFrom.In(s.loc()).Format("2006-01-02"))
		}
		if err := tx.Delete(&Version{}, id).Error; err != nil {
			return dbError(err, "withdraw price list version")
		}
		return audit.Recordf(ctx, tx, "price_list.withdraw_version", "price_list_version", strconv.FormatInt(id, 10),
			"withdrew the version that would have applied from %s", errs.Day{T: ver.ValidFrom.In(s.loc())})
	})
}

// DefaultPrices is the list cardata starts with (and the demo publishes).
func DefaultPrices(validFrom time.Time) NewVersion {
	p := decimal.RequireFromString
	return NewVersion{
		ValidFrom: validFrom,
		Note:      "Initial published price list",
		Telematics: []Tier{
			{From: 1, UnitPrice: p("0.0200")},
			{From: 10_001, UnitPrice: p("0.0150")},
			{From: 100_001, UnitPrice: p("0.0100")},
			{From: 1_000_001, UnitPrice: p("0.0060")},
		},
		Push: []Tier{
			{From: 1, UnitPrice: p("0.0100")},
			{From: 100_001, UnitPrice: p("0.0075")},
		},
		SupportCase: map[string]decimal.Decimal{"P1": p("150.00"), "P2": p("90.00"), "P3": p("45.00"), "P4": p("0.00")},
		SupportTime: p("27.50"),
	}
}

// EnsureInitialPriceList publishes in as the first version when no version
// exists yet (demo and first start). It bypasses the future-date rule only
// for that very first version.
func (s *Service) EnsureInitialPriceList(ctx context.Context, in NewVersion) (*Version, bool, error) {
	var n int64
	if err := s.DB.WithContext(ctx).Model(&Version{}).Count(&n).Error; err != nil {
		return nil, false, errs.Wrap(err, "count price list versions")
	}
	if n > 0 {
		return nil, false, nil
	}
	v, err := s.insertVersion(ctx, in)
	return v, err == nil, err
}

// VersionSort is the price list page's sort whitelist. The list is small
// and loaded whole (ValidTo is derived from the next version), so
// SortVersions orders it in memory; the SQL expressions are unused.
var VersionSort = listsort.Spec{
	Columns: map[string]string{
		"version":    "id",
		"valid_from": "valid_from",
		"note":       "lower(note)",
		"created_by": "lower(created_by)",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "valid_from", Desc: true},
}

// SortVersions orders vs by o (a VersionSort order), the id breaking ties.
func SortVersions(vs []Version, o listsort.Order) {
	byKey := func(a, b *Version) int {
		switch o.Key {
		case "version":
			return 0
		case "note":
			return strings.Compare(strings.ToLower(a.Note), strings.ToLower(b.Note))
		case "created_by":
			return strings.Compare(strings.ToLower(a.CreatedBy), strings.ToLower(b.CreatedBy))
		default:
			return a.ValidFrom.Compare(b.ValidFrom)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool {
		c := byKey(&vs[i], &vs[j])
		if c == 0 {
			c = cmp.Compare(vs[i].ID, vs[j].ID)
		}
		if o.Desc {
			return c > 0
		}
		return c < 0
	})
}
