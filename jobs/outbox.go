package jobs

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// Email is one outbox row.
type Email struct {
	ID            int64 `gorm:"primaryKey"`
	Kind          string
	ToAddr        string
	Subject       string
	BodyText      string
	ObjectType    string
	ObjectID      string
	DedupeKey     *string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	CreatedAt     time.Time
	SentAt        *time.Time
	SentVia       string // "smtp host:port" or "local" (SMTP not configured)

	// Attachments are loaded by the worker before Send (not a column).
	Attachments []Attachment `gorm:"-"`
}

func (Email) TableName() string { return "email_outbox" }

// Message is what a domain service enqueues.
type Message struct {
	Kind       string // stable kind, e.g. "provider.approved"
	To         string
	Subject    string
	Body       string // plain text
	ObjectType string // what it is about, for the admin outbox view
	ObjectID   string
	DedupeKey  string // optional: a second enqueue with the same key is ignored
	// Attachments are stored with the e-mail, in the same transaction, and
	// sent as a multipart/mixed message (text body + base64 parts).
	Attachments []Attachment
}

// Attachment is a file sent with an e-mail.
type Attachment struct {
	Filename    string // e.g. CD-2026-000001.pdf; no path, no control characters
	ContentType string // e.g. application/pdf
	Content     []byte
}

// MaxAttachmentBytes bounds the attachments of one e-mail together (common
// SMTP servers refuse messages over 10 MB; base64 adds a third).
const MaxAttachmentBytes = 7 << 20

// AttachmentInfo describes a stored attachment without its content (the
// admin outbox lists names and sizes).
type AttachmentInfo struct {
	EmailID     int64
	Position    int
	Filename    string
	ContentType string
	Size        int64
	SHA256      string `gorm:"column:sha256"`
}

// attachmentRow is one row of email_outbox_attachments; size and sha256 are
// computed by the database.
type attachmentRow struct {
	EmailID     int64
	Position    int
	Filename    string
	ContentType string
	Content     []byte
}

func (attachmentRow) TableName() string { return "email_outbox_attachments" }

// checkAttachments refuses attachments a mail client could not handle
// safely, as field errors of v ("attachments"): a 422, not a 500, should a
// caller pass one on from its input.
func checkAttachments(v *errs.Validation, list []Attachment) {
	const field = "attachments"
	total := 0
	for i, a := range list {
		name := a.Filename
		switch {
		case strings.TrimSpace(name) == "" || len(name) > 255:
			v.Add(field, "attachment_filename_invalid", "attachment %d: the filename %q must be 1-255 characters", i+1, name)
		case strings.ContainsAny(name, "/\\\"") || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
			v.Add(field, "attachment_filename_invalid", "attachment %d: the filename %q has a path separator, a quote or a control character", i+1, name)
		case len(a.Content) == 0:
			v.Add(field, "attachment_empty", "attachment %q is empty", name)
		}
		if _, _, err := mime.ParseMediaType(a.ContentType); err != nil {
			v.Add(field, "attachment_type_invalid", "attachment %q: content type %q is not a media type", name, a.ContentType)
		}
		total += len(a.Content)
	}
	if total > MaxAttachmentBytes {
		v.Add(field, "attachments_too_large", "attachments of %d bytes exceed %d", total, MaxAttachmentBytes)
	}
}

// Enqueue writes msg to the outbox using tx, the caller's transaction, so the
// e-mail exists exactly when the change that causes it commits. A message
// without a recipient or with attachments a mail client could not handle is
// refused as a validation error (errs.Invalid) and nothing is written.
func Enqueue(ctx context.Context, tx *gorm.DB, msg Message) error {
	var v errs.Validation
	if strings.TrimSpace(msg.To) == "" {
		v.Add("to", "recipient_missing", "the %s e-mail has no recipient", msg.Kind)
	}
	checkAttachments(&v, msg.Attachments)
	if err := v.Err(); err != nil {
		return err
	}
	e := Email{Kind: msg.Kind, ToAddr: msg.To, Subject: msg.Subject, BodyText: msg.Body,
		ObjectType: msg.ObjectType, ObjectID: msg.ObjectID, Status: "pending", NextAttemptAt: time.Now().UTC()}
	if msg.DedupeKey != "" {
		k := msg.DedupeKey
		e.DedupeKey = &k
	}
	res := tx.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "dedupe_key"}}, DoNothing: true}).Create(&e)
	if res.Error != nil || res.RowsAffected == 0 || len(msg.Attachments) == 0 {
		return errs.Wrap(res.Error, "enqueue "+msg.Kind) // RowsAffected 0: a duplicate, already enqueued with its attachments
	}
	rows := make([]attachmentRow, len(msg.Attachments))
	for i, a := range msg.Attachments {
		rows[i] = attachmentRow{EmailID: e.ID, Position: i + 1, Filename: a.Filename, ContentType: a.ContentType, Content: a.Content}
	}
	return errs.Wrap(tx.WithContext(ctx).Create(&rows).Error, "enqueue "+msg.Kind+" attachments")
}

// loadAttachments reads e's attachments (with their content) in order.
func loadAttachments(tx *gorm.DB, e *Email) error {
	var rows []attachmentRow
	if err := tx.Where("email_id = ?", e.ID).Order("position").Find(&rows).Error; err != nil {
		return errs.Wrap(err, "e-mail attachments")
	}
	e.Attachments = nil
	for _, r := range rows {
		e.Attachments = append(e.Attachments, Attachment{Filename: r.Filename, ContentType: r.ContentType, Content: r.Content})
	}
	return nil
}

// EmailAttachments lists the attachments of the given e-mails without their
// content, by e-mail id, in order.
func EmailAttachments(ctx context.Context, db *gorm.DB, ids ...int64) (map[int64][]AttachmentInfo, error) {
	out := map[int64][]AttachmentInfo{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []AttachmentInfo
	err := db.WithContext(ctx).Raw(`SELECT email_id, position, filename, content_type, size, sha256
		FROM email_outbox_attachments WHERE email_id IN ? ORDER BY email_id, position`, ids).Scan(&rows).Error
	if err != nil {
		return nil, errs.Wrap(err, "e-mail attachments")
	}
	for _, r := range rows {
		out[r.EmailID] = append(out[r.EmailID], r)
	}
	return out, nil
}

// Outbox statuses.
const (
	EmailPending = "pending" // waiting for its (next) attempt
	EmailSent    = "sent"    // accepted by the SMTP server
	EmailFailed  = "failed"  // gave up: permanent rejection or too many attempts
	EmailLocal   = "local"   // SMTP not configured: kept in the local outbox only
)

// Transport delivers one e-mail.
type Transport interface {
	// Name is recorded in sent_via ("smtp mail.example:587", "local").
	Name() string
	// Send delivers e; it must honour ctx. Wrap errors not worth retrying
	// with Permanent.
	Send(ctx context.Context, e *Email) error
}

// LocalTransport is used when SMTP_HOST is empty: nothing leaves the
// machine; e-mails are marked "local" and stay browsable in the admin outbox.
type LocalTransport struct{}

func (LocalTransport) Name() string                       { return "local" }
func (LocalTransport) Send(context.Context, *Email) error { return nil }

type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

// Permanent marks err as not worth retrying (e.g. SMTP 550 mailbox unknown).
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool { var p permanentError; return errors.As(err, &p) }

// Outbox is the e-mail outbox worker. Any number of workers (in one process
// or across replicas) may run on one database:
//
//   - A worker claims one due row with SELECT ... FOR UPDATE SKIP LOCKED and
//     keeps the row locked while it sends, so no two workers ever send the
//     same row at the same time.
//   - After a successful send the row is marked sent in that same
//     transaction. A failed attempt schedules the next with exponential
//     backoff; a permanent rejection, or MaxAttempts attempts, marks it failed.
//   - Nothing is lost on restart: a row is pending until that commit.
//
// The at-least-once edge: if the process dies (or the database becomes
// unreachable) after the SMTP server accepted the message but before the
// commit, the row is still pending and is sent again. Every e-mail carries a
// Message-ID derived from its outbox id, so the copies are recognisably the
// same message. This window is a few milliseconds per e-mail; closing it
// entirely is impossible without the SMTP server taking part in the
// transaction.
type Outbox struct {
	DB           *gorm.DB
	Transport    Transport // nil: LocalTransport
	Log          *slog.Logger
	MaxAttempts  int                             // default 10
	Backoff      func(attempt int) time.Duration // delay after the nth failed attempt; default ExpBackoff
	PollInterval time.Duration                   // default 2s
	SendTimeout  time.Duration                   // default 60s per e-mail

	dead prometheus.Counter // Register sets it
}

// Register adds the outbox's metrics to reg.
func (o *Outbox) Register(reg prometheus.Registerer) {
	o.dead = prometheus.NewCounter(prometheus.CounterOpts{Name: "cardata_outbox_dead_letters_total",
		Help: "E-mails set aside (status failed) because processing them failed, not their sending."})
	reg.MustRegister(o.dead)
}

// ExpBackoff waits 30s after the first failure, doubling up to one hour,
// with ±10% jitter so that workers do not retry in lockstep.
func ExpBackoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + jitter
}

func (o *Outbox) transport() Transport {
	if o.Transport == nil {
		return LocalTransport{}
	}
	return o.Transport
}

func (o *Outbox) log() *slog.Logger {
	if o.Log == nil {
		return slog.Default()
	}
	return o.Log
}

// Run sends due e-mails until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	poll := o.PollInterval
	if poll <= 0 {
		poll = 2 * time.Second
	}
	for ctx.Err() == nil {
		n, err := o.ProcessDue(ctx, 100)
		if err != nil && ctx.Err() == nil {
			o.log().Error("outbox worker", "error", err.Error())
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// ProcessDue handles up to max due e-mails and returns how many it handled
// (sent, failed or rescheduled).
func (o *Outbox) ProcessDue(ctx context.Context, max int) (int, error) {
	n := 0
	for n < max {
		ok, err := o.SendOne(ctx)
		if err != nil || !ok {
			return n, err
		}
		n++
	}
	return n, nil
}

// SendOne claims one due e-mail and attempts it; false when none was due.
func (o *Outbox) SendOne(ctx context.Context) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	maxAttempts := o.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = 10
	}
	backoff := o.Backoff
	if backoff == nil {
		backoff = ExpBackoff
	}
	sendTimeout := o.SendTimeout
	if sendTimeout <= 0 {
		sendTimeout = 60 * time.Second
	}
	tr := o.transport()
	found := false
	var claimed int64
	// The transaction must not die with ctx once the server has accepted
	// the message: the "sent" mark is what prevents a second send.
	txCtx := context.WithoutCancel(ctx)
	err := o.DB.WithContext(txCtx).Transaction(func(tx *gorm.DB) error {
		var rows []Email
		if err := tx.Raw(`SELECT * FROM email_outbox WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&rows).Error; err != nil {
			return errs.Wrap(err, "claim e-mail")
		}
		if len(rows) == 0 {
			return nil
		}
		found = true
		e := &rows[0]
		claimed = e.ID
		if err := loadAttachments(tx, e); err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, sendTimeout)
		sendErr := tr.Send(sctx, e)
		cancel()
		attempts := e.Attempts + 1
		switch {
		case sendErr == nil:
			status := EmailSent
			if _, local := tr.(LocalTransport); local {
				status = EmailLocal
			}
			return errs.Wrap(tx.Exec(`UPDATE email_outbox SET status = ?, attempts = ?, sent_at = now(), sent_via = ?, last_error = ''
				WHERE id = ?`, status, attempts, tr.Name(), e.ID).Error, "mark e-mail sent")
		case ctx.Err() != nil:
			// Stopped (shutdown) mid-send: roll back, the attempt does not count.
			return ctx.Err()
		case IsPermanent(sendErr) || attempts >= maxAttempts:
			o.log().Error("e-mail failed for good", "email", e.ID, "kind", e.Kind, "attempts", attempts, "error", sendErr.Error())
			return errs.Wrap(tx.Exec(`UPDATE email_outbox SET status = 'failed', attempts = ?, last_error = ?, sent_via = ? WHERE id = ?`,
				attempts, truncate(sendErr.Error(), 1000), tr.Name(), e.ID).Error, "mark e-mail failed")
		default:
			o.log().Warn("e-mail attempt failed; will retry", "email", e.ID, "attempts", attempts, "error", sendErr.Error())
			return errs.Wrap(tx.Exec(`UPDATE email_outbox SET attempts = ?, last_error = ?, next_attempt_at = now() + make_interval(secs => ?)
				WHERE id = ?`, attempts, truncate(sendErr.Error(), 1000), backoff(attempts).Seconds(), e.ID).Error, "reschedule e-mail")
		}
	})
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, err
	}
	if err != nil && claimed != 0 && dataError(err) {
		// The row itself cannot be processed (its attachments do not load,
		// its outcome cannot be stored): it would be claimed first again and
		// again and hold up every e-mail behind it. Set it aside as failed
		// with the error; staff see it in the outbox and may retry it.
		o.log().Error("e-mail set aside: it cannot be processed", "email", claimed, "error", err.Error())
		merr := o.DB.WithContext(txCtx).Exec(`UPDATE email_outbox SET status = 'failed', last_error = ? WHERE id = ? AND status = 'pending'`,
			truncate("processing failed: "+errText(err), 1000), claimed).Error
		if merr != nil {
			return found, errs.Wrap(merr, "set e-mail aside")
		}
		if o.dead != nil {
			o.dead.Inc()
		}
		return true, nil
	}
	return found, err
}

// dataError reports whether err is the database refusing this row's data
// (SQLSTATE class 22 data exception, 23 integrity constraint), which the
// same row meets again on every try, rather than a lost connection.
func dataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// errText is the cause of an error for staff (errs.Error shows its
// client-safe message only).
func errText(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// EmailFilter narrows ListEmails.
type EmailFilter struct {
	Status string // one of the statuses, or "" for all
	Query  string // substring of recipient, subject or kind
	// Order is the list's sort (EmailSort); the zero value is newest first.
	Order  listsort.Order
	Offset int
	Limit  int
}

// EmailSort is the outbox list's sort whitelist.
var EmailSort = listsort.Spec{
	Columns: map[string]string{
		"id":        "id",
		"created":   "created_at",
		"status":    "status",
		"recipient": "lower(to_addr)",
		"subject":   "lower(subject)",
		"attempts":  "attempts",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "id", Desc: true},
}

// ListEmails returns outbox rows newest first and the total matching.
func ListEmails(ctx context.Context, db *gorm.DB, f EmailFilter) ([]Email, int64, error) {
	q := db.WithContext(ctx).Model(&Email{})
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if s := strings.TrimSpace(f.Query); s != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
		q = q.Where("to_addr ILIKE ? OR subject ILIKE ? OR kind ILIKE ?", like, like, like)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count e-mails")
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var out []Email
	err := q.Order(EmailSort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&out).Error
	return out, total, errs.Wrap(err, "list e-mails")
}

// FindEmail returns one outbox row.
func FindEmail(ctx context.Context, db *gorm.DB, id int64) (*Email, error) {
	var e Email
	err := db.WithContext(ctx).Take(&e, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.New(errs.NotFound, "email_not_found", "no such e-mail")
	}
	return &e, errs.Wrap(err, "find e-mail")
}

// CountByStatus counts outbox rows per status.
func CountByStatus(ctx context.Context, db *gorm.DB) (map[string]int64, error) {
	var rows []struct {
		Status string
		N      int64
	}
	err := db.WithContext(ctx).Raw(`SELECT status, count(*) AS n FROM email_outbox GROUP BY status`).Scan(&rows).Error
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, errs.Wrap(err, "count e-mails")
}

// RetryEmail puts a failed e-mail back in the queue for one more attempt
// now (if that attempt fails too it is failed again at once). Audited.
func RetryEmail(ctx context.Context, db *gorm.DB, id int64) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var e Email
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&e, id).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errs.New(errs.NotFound, "email_not_found", "no such e-mail")
		}
		if err != nil {
			return errs.Wrap(err, "find e-mail")
		}
		if e.Status != EmailFailed {
			return errs.New(errs.Conflict, "email_not_failed", "only failed e-mails can be retried; this one is %s", errs.Term(e.Status))
		}
		if err := tx.Exec(`UPDATE email_outbox SET status = 'pending', next_attempt_at = now() WHERE id = ?`, id).Error; err != nil {
			return errs.Wrap(err, "retry e-mail")
		}
		return audit.Recordf(ctx, tx, "email.retry", "email", strconv.FormatInt(id, 10),
			"retry of %s e-mail to %s after %d attempts (%s)", e.Kind, e.ToAddr, e.Attempts, truncate(e.LastError, 200))
	})
}

// PurgeSentEmails deletes e-mails delivered before before: status sent
// (accepted by the SMTP server) or local (SMTP not configured: they were
// only ever kept in the outbox). Pending e-mails are still to be sent and
// failed ones are kept for inspection and retry, whatever their age. The
// job outbox.purge calls it daily with now minus OUTBOX_RETENTION.
//
// It deletes in batches of batch rows (default 1000), each its own
// statement, so a run stopped midway has deleted whole batches and the next
// run deletes the rest. Deleting a row frees its dedupe key; the keys in
// use name an event that happens once (a consent request, an invoice sent,
// a ticket message) or carry the day, so nothing is sent twice because of
// it; only re-running `cardata demo` after the period would enqueue its
// welcome e-mails again.
func PurgeSentEmails(ctx context.Context, db *gorm.DB, before time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 1000
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := db.WithContext(ctx).Exec(`DELETE FROM email_outbox WHERE id IN (
			SELECT id FROM email_outbox WHERE status IN (?, ?) AND sent_at < ? ORDER BY id LIMIT ?)`,
			EmailSent, EmailLocal, before.UTC(), batch)
		if res.Error != nil {
			return total, errs.Wrap(res.Error, "purge sent e-mails")
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}
