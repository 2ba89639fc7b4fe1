// Package jobs runs background work: the scheduler with its one registry of
// jobs and run history, and the e-mail outbox. It sits low in the import
// graph so every domain package can enqueue e-mail in its own transaction;
// job bodies are plain functions that app wires in.
package jobs

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies/errs"
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
}

// Enqueue writes msg to the outbox using tx, the caller's transaction, so the
// e-mail exists exactly when the change that causes it commits.
func Enqueue(ctx context.Context, tx *gorm.DB, msg Message) error {
	if strings.TrimSpace(msg.To) == "" {
		return errs.Wrap(errors.New("no recipient"), "enqueue "+msg.Kind)
	}
	e := Email{Kind: msg.Kind, ToAddr: msg.To, Subject: msg.Subject, BodyText: msg.Body,
		ObjectType: msg.ObjectType, ObjectID: msg.ObjectID, Status: "pending", NextAttemptAt: time.Now().UTC()}
	if msg.DedupeKey != "" {
		k := msg.DedupeKey
		e.DedupeKey = &k
	}
	err := tx.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "dedupe_key"}}, DoNothing: true}).Create(&e).Error
	return errs.Wrap(err, "enqueue "+msg.Kind)
}
