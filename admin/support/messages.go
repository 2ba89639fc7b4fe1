package support

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"time"

	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/onboarding"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// Message is one entry of the conversation. Internal notes are for staff only.
type Message struct {
	ID          int64 `gorm:"primaryKey"`
	TicketID    int64
	AuthorKind  string
	AuthorID    *int64
	AuthorLabel string
	Internal    bool
	Body        string
	CreatedAt   time.Time
	Attachments []Attachment `gorm:"-"`
}

func (Message) TableName() string { return "support_messages" }

// Attachment is a stored file. Data is loaded only for downloads.
type Attachment struct {
	ID          int64 `gorm:"primaryKey"`
	TicketID    int64
	MessageID   *int64
	Internal    bool
	Filename    string
	ContentType string
	SizeBytes   int64
	SHA256      string `gorm:"column:sha256"`
	Data        []byte
	UploadedBy  string
	CreatedAt   time.Time
}

func (Attachment) TableName() string { return "support_attachments" }

// Size is the file size for people: "812 B", "14.2 KB", "3.1 MB".
func (a Attachment) Size() string {
	switch {
	case a.SizeBytes >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(a.SizeBytes)/(1<<20))
	case a.SizeBytes >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(a.SizeBytes)/(1<<10))
	}
	return fmt.Sprintf("%d B", a.SizeBytes)
}

// DownloadHeaders are the response headers of a download: always a file,
// never rendered inline or sniffed by the browser.
func (a *Attachment) DownloadHeaders() map[string]string {
	return map[string]string{
		"Content-Type":            a.ContentType,
		"Content-Disposition":     mime.FormatMediaType("attachment", map[string]string{"filename": a.Filename}),
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
		"Repr-Digest":             "sha-256=:" + a.SHA256 + ":",
	}
}

// Upload is a file as received.
type Upload struct {
	Filename string
	Data     []byte
}

// Attachment limits.
const (
	MaxAttachmentSize  = 10 << 20 // 10 MB per file
	MaxAttachmentsEach = 5        // per message or ticket form
)

// allowedTypes are the file types a ticket accepts, as sniffed from the
// bytes (http.DetectContentType); the name and the browser's claim are not
// trusted. HTML, scripts and executables are refused.
var allowedTypes = map[string]string{
	"application/pdf":           "application/pdf",
	"image/png":                 "image/png",
	"image/jpeg":                "image/jpeg",
	"image/gif":                 "image/gif",
	"image/webp":                "image/webp",
	"application/zip":           "application/zip",
	"application/x-gzip":        "application/gzip",
	"text/plain; charset=utf-8": "text/plain; charset=utf-8",
}

// SniffType returns the stored content type of data, or false when the
// type is not accepted.
func SniffType(data []byte) (string, bool) {
	ct, ok := allowedTypes[http.DetectContentType(data)]
	return ct, ok
}

// UploadsFrom reads the files of a multipart form field (empty file inputs
// are skipped). A file over the limit is read one byte past it, so the
// check can name it without holding more.
func UploadsFrom(form *multipart.Form, field string) ([]Upload, error) {
	if form == nil {
		return nil, nil
	}
	var out []Upload
	for _, fh := range form.File[field] {
		if fh.Filename == "" && fh.Size == 0 {
			continue
		}
		f, err := fh.Open()
		if err != nil {
			return nil, errs.Wrap(err, "open upload")
		}
		data, err := io.ReadAll(io.LimitReader(f, MaxAttachmentSize+1))
		f.Close()
		if err != nil {
			return nil, errs.Wrap(err, "read upload")
		}
		out = append(out, Upload{Filename: fh.Filename, Data: data})
	}
	return out, nil
}

type checkedUpload struct {
	Upload
	contentType string
	sum         string
}

// checkUploads validates attachments under the field "attachments".
func checkUploads(v *errs.Validation, ups []Upload) []checkedUpload {
	if len(ups) > MaxAttachmentsEach {
		v.Add("attachments", "too_many_attachments", "attach at most %d files at a time", MaxAttachmentsEach)
		return nil
	}
	var out []checkedUpload
	for _, u := range ups {
		name := onboarding.CleanFilename(u.Filename, "attachment")
		switch {
		case len(u.Data) == 0:
			v.Add("attachments", "attachment_empty", "%s is empty", name)
			continue
		case len(u.Data) > MaxAttachmentSize:
			v.Add("attachments", "attachment_too_large", "%s is larger than 10 MB", name)
			continue
		}
		ct, ok := SniffType(u.Data)
		if !ok {
			v.Add("attachments", "attachment_type", "%s is not an accepted file type (PDF, PNG, JPEG, GIF, WebP, ZIP, gzip or plain text)", name)
			continue
		}
		sum := sha256.Sum256(u.Data)
		u.Filename = name
		out = append(out, checkedUpload{Upload: u, contentType: ct, sum: hex.EncodeToString(sum[:])})
	}
	return out
}

func storeUploads(tx *gorm.DB, ticketID int64, messageID *int64, internal bool, files []checkedUpload, by string, now time.Time) error {
	for _, f := range files {
		a := Attachment{TicketID: ticketID, MessageID: messageID, Internal: internal, Filename: f.Filename,
			ContentType: f.contentType, SizeBytes: int64(len(f.Data)), SHA256: f.sum, Data: f.Data, UploadedBy: by, CreatedAt: now}
		if err := tx.Create(&a).Error; err != nil {
			return errs.Wrap(err, "store attachment")
		}
	}
	return nil
}

func checkBody(v *errs.Validation, body, field string) {
	switch n := len([]rune(body)); {
	case n == 0:
		v.Add(field, field+"_required", "write a message")
	case n > 20000:
		v.Add(field, field+"_too_long", "keep the message under 20,000 characters")
	}
}

// NewMessage is a reply or an internal note.
type NewMessage struct {
	Body        string
	Internal    bool // staff only
	Attachments []Upload
}

// Reply adds a message to the conversation. A provider's reply to a
// ticket waiting on it sets the clock running again; a staff member's
// first public reply is the first response, and a public reply on a new
// ticket assigns it to the agent who answers. Public replies of staff are
// e-mailed to the ticket's contact; internal notes never leave the desk.
func (s *Service) Reply(ctx context.Context, id int64, in NewMessage) (*Message, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	if in.Internal && !vw.staff() {
		return nil, errs.New(errs.Forbidden, "internal_notes_staff_only", "only support staff write internal notes")
	}
	v := &errs.Validation{}
	body := clean(in.Body, 30000)
	checkBody(v, body, "body")
	files := checkUploads(v, in.Attachments)
	if err := v.Err(); err != nil {
		return nil, err
	}
	now := s.now()
	var out *Message
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := loadOpenTicket(tx, vw, id)
		if err != nil {
			return err
		}
		var tr Transition
		if vw.provider() {
			switch t.Status {
			case StatusResolved, StatusClosed:
				return errs.New(errs.Conflict, "ticket_resolved", "%s is %s; reopen it to continue the conversation", t.Number(), errs.Term(t.Status.Label()))
			case StatusWaiting:
				tr, _ = TransitionFor(ActionProviderReply)
				if err := s.apply(ctx, tx, vw, t, tr, Note{}, now); err != nil {
					return err
				}
			}
		} else if !in.Internal && t.Status == StatusNew && checkAgentIn(tx, vw.p.ID) == nil {
			if err := s.assign(ctx, tx, vw, t, vw.p.ID, now); err != nil {
				return err
			}
		}
		out, err = s.post(ctx, tx, vw, t, body, in.Internal, files, now, tr)
		return err
	})
	return out, err
}

// post stores a message with its attachments, keeps the first response,
// and sends the e-mails a public message causes. tr is the transition the
// message goes with (zero for a plain reply).
func (s *Service) post(ctx context.Context, tx *gorm.DB, vw viewer, t *Ticket, body string, internal bool, files []checkedUpload, now time.Time, tr Transition) (*Message, error) {
	m := &Message{TicketID: t.ID, AuthorKind: vw.p.Actor().Kind, AuthorID: vw.p.Actor().ID, AuthorLabel: vw.p.Actor().Name,
		Internal: internal, Body: body, CreatedAt: now}
	if err := tx.Omit("Attachments").Create(m).Error; err != nil {
		return nil, errs.Wrap(err, "store message")
	}
	mid := m.ID
	if err := storeUploads(tx, t.ID, &mid, internal, files, m.AuthorLabel, now); err != nil {
		return nil, err
	}
	what := "reply"
	if internal {
		what = "internal note"
	}
	format := "%s: %s by %s (%d characters, %d attachments)"
	if len(files) == 1 {
		format = "%s: %s by %s (%d characters, %d attachment)"
	}
	if err := audit.Recordf(ctx, tx, "support_ticket.message", "support_ticket", ticketRef(t.ID),
		format, t.Number(), errs.Term(what), m.AuthorLabel, len(body), len(files)); err != nil {
		return nil, err
	}
	if internal {
		return m, nil
	}
	if vw.staff() {
		if t.FirstResponseAt == nil {
			t.FirstResponseAt = &now
			if err := saveTicket(tx, t, now); err != nil {
				return nil, err
			}
		}
		return m, s.mailProvider(ctx, tx, t, m, len(files), tr)
	}
	return m, s.mailAssignee(ctx, tx, t, m, tr)
}

// mailProvider sends a public staff message to the ticket's contact.
func (s *Service) mailProvider(ctx context.Context, tx *gorm.DB, t *Ticket, m *Message, files int, tr Transition) error {
	z, err := jobs.ProviderMailLocale(tx, t.ContactEmail, t.ProviderID)
	if err != nil {
		return err
	}
	action := ""
	subjectID := "mail.support.reply.subject"
	switch tr.Action {
	case ActionWait, ActionResolve, ActionReopen:
		action = string(tr.Action)
		subjectID = "mail.support." + action + ".subject"
	}
	args := []any{"Name", t.ContactName, "Number", t.Number(), "Subject", t.Subject, "Author", m.AuthorLabel,
		"Message", m.Body, "Action", action, "Files", files, "Link", s.link("/portal/tickets/" + ticketRef(t.ID))}
	return jobs.Enqueue(ctx, tx, jobs.Message{Kind: "support.reply", To: t.ContactEmail,
		ObjectType: "support_ticket", ObjectID: ticketRef(t.ID), DedupeKey: fmt.Sprintf("support.reply:%d", m.ID),
		Subject: z.T(subjectID, args...), Body: z.T("mail.support.reply.body", args...)})
}

// mailAssignee tells the assignee that the provider wrote.
func (s *Service) mailAssignee(ctx context.Context, tx *gorm.DB, t *Ticket, m *Message, tr Transition) error {
	if t.AssigneeID == nil {
		return nil
	}
	var to string
	if err := tx.Table("staff_users").Select("email").Where("id = ? AND active", *t.AssigneeID).Scan(&to).Error; err != nil {
		return errs.Wrap(err, "assignee e-mail")
	}
	if to == "" {
		return nil
	}
	z, err := jobs.MailLocale(tx, to, "")
	if err != nil {
		return err
	}
	kind := "support.provider_message"
	if tr.Action == ActionReopen {
		kind = "support.provider_reopened"
	}
	subject, body := z.Mail(kind, "Number", t.Number(), "Subject", t.Subject, "Provider", t.ProviderName, "Author", m.AuthorLabel,
		"Message", m.Body, "Link", s.link("/admin/tickets/"+ticketRef(t.ID)))
	return jobs.Enqueue(ctx, tx, jobs.Message{Kind: "support.provider_message", To: to,
		ObjectType: "support_ticket", ObjectID: ticketRef(t.ID), DedupeKey: fmt.Sprintf("support.provider_message:%d", m.ID),
		Subject: subject, Body: body})
}

// Entry is one line of a ticket's timeline: a message or an event.
type Entry struct {
	At      time.Time
	Message *Message
	Event   *Event
	From    string // the duplicate's number when the entry comes from a merged ticket
}

// Timeline returns the ticket's conversation and events, oldest first,
// including those of tickets merged into it. Providers get public entries
// only.
func (s *Service) Timeline(ctx context.Context, id int64) ([]Entry, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := loadTicket(db, vw, id, false); err != nil {
		return nil, err
	}
	ids, err := familyIDs(db, vw, id)
	if err != nil {
		return nil, err
	}
	var msgs []Message
	mq := db.Where("ticket_id IN ?", ids)
	if vw.provider() {
		mq = mq.Where("NOT internal")
	}
	if err := mq.Order("created_at, id").Find(&msgs).Error; err != nil {
		return nil, errs.Wrap(err, "messages")
	}
	var atts []Attachment
	aq := db.Omit("Data").Where("ticket_id IN ?", ids)
	if vw.provider() {
		aq = aq.Where("NOT internal")
	}
	if err := aq.Order("id").Find(&atts).Error; err != nil {
		return nil, errs.Wrap(err, "attachments")
	}
	byMsg := map[int64][]Attachment{}
	for _, a := range atts {
		if a.MessageID != nil {
			byMsg[*a.MessageID] = append(byMsg[*a.MessageID], a)
		}
	}
	var evs []Event
	eq := db.Where("ticket_id IN ?", ids)
	if vw.provider() {
		eq = eq.Where("NOT internal")
	}
	if err := eq.Order("at, id").Find(&evs).Error; err != nil {
		return nil, errs.Wrap(err, "events")
	}
	from := func(tid int64) string {
		if tid == id {
			return ""
		}
		return TicketNumber(tid)
	}
	out := make([]Entry, 0, len(msgs)+len(evs))
	for i := range msgs {
		m := &msgs[i]
		m.Attachments = byMsg[m.ID]
		out = append(out, Entry{At: m.CreatedAt, Message: m, From: from(m.TicketID)})
	}
	for i := range evs {
		e := &evs[i]
		if e.TicketID != id && e.Action != "created" {
			continue // of a duplicate, only its opening is of interest here
		}
		out = append(out, Entry{At: e.At, Event: e, From: from(e.TicketID)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// familyIDs returns id and the ids of every ticket merged into it
// (transitively), within the viewer's provider.
func familyIDs(db *gorm.DB, vw viewer, id int64) ([]int64, error) {
	var ids []int64
	provider := vw.providerID
	err := db.Raw(`WITH RECURSIVE fam(id) AS (
			SELECT id FROM support_tickets WHERE id = ? AND (? = 0 OR provider_id = ?)
			UNION SELECT t.id FROM support_tickets t JOIN fam ON t.merged_into_id = fam.id WHERE (? = 0 OR t.provider_id = ?))
		SELECT id FROM fam ORDER BY id`, id, provider, provider, provider, provider).Scan(&ids).Error
	return ids, errs.Wrap(err, "merged tickets")
}

// Duplicates lists the tickets merged into id (numbers for the page).
func (s *Service) Duplicates(ctx context.Context, id int64) ([]int64, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := familyIDs(s.DB.WithContext(ctx), vw, id)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	return ids[1:], nil
}

// TicketAttachments lists the files attached when the ticket was opened.
func (s *Service) TicketAttachments(ctx context.Context, id int64) ([]Attachment, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	if _, err := loadTicket(db, vw, id, false); err != nil {
		return nil, err
	}
	var out []Attachment
	err = db.Omit("Data").Where("ticket_id = ? AND message_id IS NULL", id).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "ticket attachments")
}

// FindAttachment returns a file with its bytes, if the principal may see
// it: providers only their own tickets' public files (including those of
// tickets merged into it).
func (s *Service) FindAttachment(ctx context.Context, ticketID, attachmentID int64) (*Attachment, error) {
	vw, err := viewerOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.DB.WithContext(ctx)
	ids, err := familyIDs(db, vw, ticketID)
	if err != nil {
		return nil, err
	}
	notFound := errs.New(errs.NotFound, "attachment_not_found", "attachment not found")
	if len(ids) == 0 {
		return nil, notFound
	}
	q := db.Where("id = ? AND ticket_id IN ?", attachmentID, ids)
	if vw.provider() {
		q = q.Where("NOT internal")
	}
	var a Attachment
	err = q.Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound
	}
	return &a, errs.Wrap(err, "find attachment")
}
