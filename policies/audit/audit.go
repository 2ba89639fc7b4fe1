// Package audit is the append-only, hash-chained audit trail. Every
// state-changing staff action records one entry in the same transaction as
// the change. The database refuses UPDATE, DELETE and TRUNCATE on the table;
// the hash chain makes any tampering that bypasses that visible to Verify.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// Entry is one audit row.
type Entry struct {
	ID         int64 `gorm:"primaryKey"`
	At         time.Time
	ActorKind  string
	ActorID    *int64
	ActorLabel string
	Action     string // verb in dotted form, e.g. "staff_user.create"
	ObjectType string
	ObjectID   string
	Summary    string
	// SummaryFormat and SummaryArgs are what Summary was made of
	// (Recordf): the page says it in its reader's language (SummaryIn).
	// They are outside the hash; SummaryIn uses them only when they give
	// back Summary exactly.
	SummaryFormat string
	SummaryArgs   Args `gorm:"type:jsonb"`
	RequestID     string
	ClientAddr    string
	PrevHash      string
	Hash          string
}

func (Entry) TableName() string { return "audit_entries" }

// genesis is the previous hash of the first entry.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// chainLock serialises appends so the chain stays linear under concurrency.
const chainLock = 727_001

// computeHash covers every field except the id and the hash itself; the
// time is truncated to the microsecond PostgreSQL stores.
func computeHash(e *Entry) string {
	actor := ""
	if e.ActorID != nil {
		actor = strconv.FormatInt(*e.ActorID, 10)
	}
	fields := []string{
		e.PrevHash, e.At.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		e.ActorKind, actor, e.ActorLabel, e.Action, e.ObjectType, e.ObjectID,
		e.Summary, e.RequestID, e.ClientAddr,
	}
	h := sha256.New()
	for _, f := range fields {
		// length-prefix each field so that no two field lists collide
		fmt.Fprintf(h, "%d:%s|", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Record appends an entry for the principal and request in ctx. Call it with
// the transaction that performs the change, so both commit or neither does.
func Record(ctx context.Context, tx *gorm.DB, action, objectType, objectID, summary string) error {
	return RecordMany(ctx, tx, []Item{{Action: action, ObjectType: objectType, ObjectID: objectID, Summary: summary}})
}

// Recordf is Record with the summary as a printf format and its arguments
// (errs.Term for a word of the product), so the audit trail can say it in
// German too: the format is the id of its translation in the catalogs
// (templates/i18n/audit-*.toml), with %d and %v written as %s.
func Recordf(ctx context.Context, tx *gorm.DB, action, objectType, objectID, format string, args ...any) error {
	return RecordMany(ctx, tx, []Item{ItemOf(action, objectType, objectID, format, args...)})
}

// ItemOf is an Item with its summary as a format and arguments (Recordf).
func ItemOf(action, objectType, objectID, format string, args ...any) Item {
	f, a := storedFormat(format, args)
	return Item{Action: action, ObjectType: objectType, ObjectID: objectID,
		Summary: fmt.Sprintf(format, args...), Format: f, Args: a}
}

// Item is one entry of RecordMany (Format and Args: see ItemOf).
type Item struct {
	Action, ObjectType, ObjectID, Summary string
	Format                                string
	Args                                  Args
}

// RecordMany appends several entries for the principal and request in ctx
// in one chain step (one lock, one read of the head, one insert), in order:
// for bulk changes such as an invoice run's drafts.
func RecordMany(ctx context.Context, tx *gorm.DB, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	p := policies.PrincipalFrom(ctx)
	r := policies.RequestFrom(ctx)
	at := time.Now().UTC().Truncate(time.Microsecond)
	entries := make([]Entry, len(items))
	for i, it := range items {
		e := Entry{At: at, Action: it.Action, ObjectType: it.ObjectType, ObjectID: it.ObjectID, Summary: it.Summary,
			SummaryFormat: it.Format, SummaryArgs: it.Args,
			RequestID: r.ID, ClientAddr: r.ClientAddr, ActorKind: "anonymous", ActorLabel: "anonymous"}
		if e.SummaryArgs == nil {
			e.SummaryArgs = Args{}
		}
		if p != nil {
			e.ActorKind, e.ActorLabel = p.Kind, p.Label()
			if p.ID != 0 {
				id := p.ID
				e.ActorID = &id
			}
		}
		entries[i] = e
	}
	return tx.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", chainLock).Error; err != nil {
			return errs.Wrap(err, "audit lock")
		}
		var prev string
		if err := tx.Raw("SELECT hash FROM audit_entries ORDER BY id DESC LIMIT 1").Scan(&prev).Error; err != nil {
			return errs.Wrap(err, "audit head")
		}
		if prev == "" {
			prev = genesis
		}
		for i := range entries {
			entries[i].PrevHash = prev
			entries[i].Hash = computeHash(&entries[i])
			prev = entries[i].Hash
		}
		// One statement: its rows take their ids in order.
		return errs.Wrap(tx.CreateInBatches(&entries, len(entries)).Error, "audit append")
	})
}

// Broken describes the first entry whose chain does not verify.
type Broken struct {
	ID     int64
	Reason string
}

// Verify walks the chain in id order and returns the first broken entry, or
// nil when the whole chain verifies. checked is the number of entries read.
func Verify(ctx context.Context, db *gorm.DB) (checked int, broken *Broken, err error) {
	prev := genesis
	var lastID int64
	for {
		var batch []Entry
		if err := db.WithContext(ctx).Where("id > ?", lastID).Order("id").Limit(5000).Find(&batch).Error; err != nil {
			return checked, nil, errs.Wrap(err, "audit read")
		}
		if len(batch) == 0 {
			return checked, nil, nil
		}
		for i := range batch {
			e := &batch[i]
			checked++
			if e.PrevHash != prev {
				return checked, &Broken{ID: e.ID, Reason: "previous-hash link does not match the entry before it (an entry was removed or reordered)"}, nil
			}
			if computeHash(e) != e.Hash {
				return checked, &Broken{ID: e.ID, Reason: "content does not match its hash (the entry was altered)"}, nil
			}
			prev, lastID = e.Hash, e.ID
		}
	}
}

// Filter narrows List.
type Filter struct {
	Actor      string // substring of the actor label
	Action     string // prefix
	ObjectType string
	ObjectID   string
	From, To   time.Time // To is exclusive
	Order      listsort.Order
	Offset     int
	Limit      int
}

// Sort is the audit trail's sort whitelist (newest first by default).
var Sort = listsort.Spec{
	Columns: map[string]string{
		"id":     "id",
		"at":     "at",
		"actor":  "lower(actor_label)",
		"action": "action",
		"object": "object_type",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "id", Desc: true},
}

func query(ctx context.Context, db *gorm.DB, f Filter) *gorm.DB {
	q := db.WithContext(ctx).Model(&Entry{})
	if f.Actor != "" {
		q = q.Where("actor_label ILIKE ?", "%"+escapeLike(f.Actor)+"%")
	}
	if f.Action != "" {
		q = q.Where("action LIKE ?", escapeLike(f.Action)+"%")
	}
	if f.ObjectType != "" {
		q = q.Where("object_type = ?", f.ObjectType)
	}
	if f.ObjectID != "" {
		q = q.Where("object_id = ?", f.ObjectID)
	}
	if !f.From.IsZero() {
		q = q.Where("at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q = q.Where("at < ?", f.To)
	}
	return q
}

// List returns entries in f's order (newest first unless chosen) and the
// total matching.
func List(ctx context.Context, db *gorm.DB, f Filter) ([]Entry, int64, error) {
	q := query(ctx, db, f)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "audit count")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var out []Entry
	err := q.Order(Sort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&out).Error
	return out, total, errs.Wrap(err, "audit list")
}

// Each calls fn for every entry matching f in f's order, one at a time
// (the CSV export of a long trail).
func Each(ctx context.Context, db *gorm.DB, f Filter, fn func(*Entry) error) error {
	return listsort.Each[Entry](query(ctx, db, f).Order(Sort.SQL(f.Order)), fn)
}

// ForObject returns an object's entries oldest first (its timeline).
func ForObject(ctx context.Context, db *gorm.DB, objectType, objectID string) ([]Entry, error) {
	var out []Entry
	err := db.WithContext(ctx).Where("object_type = ? AND object_id = ?", objectType, objectID).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "audit timeline")
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
