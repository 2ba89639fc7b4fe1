package onboarding

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// MaxDocumentSize is the largest document accepted (10 MB).
const MaxDocumentSize = 10 << 20

// Upload is a document as received.
type Upload struct {
	Filename string
	Kind     string // register_extract (default), other
	Data     []byte
}

// Document is a stored document (Data is loaded only for downloads).
type Document struct {
	ID          int64 `gorm:"primaryKey"`
	ProviderID  int64
	Kind        string
	Filename    string
	ContentType string
	SizeBytes   int64
	SHA256      string `gorm:"column:sha256"`
	Data        []byte
	UploadedBy  string
	UploadedAt  time.Time
}

func (Document) TableName() string { return "provider_documents" }

// KindLabel names the document kind.
func (d Document) KindLabel() string {
	if d.Kind == "register_extract" {
		return "Commercial register extract"
	}
	return "Other document"
}

// SniffDocumentType returns the content type from the file's first bytes;
// the name and the browser's claim are not trusted.
func SniffDocumentType(data []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(data, []byte("%PDF-")):
		return "application/pdf", true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png", true
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "image/jpeg", true
	}
	return "", false
}

type checkedUpload struct {
	Upload
	contentType string
	sum         string
}

// checkUploads validates documents; required demands at least one.
func checkUploads(v *errs.Validation, ups []Upload, required bool) []checkedUpload {
	var out []checkedUpload
	if len(ups) == 0 && required {
		v.Add("documents", "document_required", "upload the commercial register extract (PDF, PNG or JPEG)")
		return nil
	}
	if len(ups) > MaxDocumentsPerRegistration {
		v.Add("documents", "too_many_documents", "upload at most %d documents", MaxDocumentsPerRegistration)
		return nil
	}
	for _, u := range ups {
		name := CleanFilename(u.Filename, "document")
		switch {
		case len(u.Data) == 0:
			v.Add("documents", "document_empty", "%s is empty", name)
			continue
		case len(u.Data) > MaxDocumentSize:
			v.Add("documents", "document_too_large", "%s is larger than 10 MB", name)
			continue
		}
		ct, ok := SniffDocumentType(u.Data)
		if !ok {
			v.Add("documents", "document_type", "%s is not a PDF, PNG or JPEG file", name)
			continue
		}
		if u.Kind != "other" {
			u.Kind = "register_extract"
		}
		u.Filename = name
		h := sha256.Sum256(u.Data)
		out = append(out, checkedUpload{Upload: u, contentType: ct, sum: hex.EncodeToString(h[:])})
	}
	return out
}

// CleanFilename keeps an uploaded file's base name without invalid UTF-8,
// control or path characters, at most 150 characters; fallback when nothing
// is left. Every upload (documents, ticket attachments) is named through it.
func CleanFilename(name, fallback string) string {
	name = path.Base(strings.ReplaceAll(strings.ToValidUTF8(name, ""), `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '/' {
			return -1
		}
		return r
	}, name)
	name = clean(name, 150)
	if name == "" || name == "." {
		name = fallback
	}
	return name
}

func (s *Service) storeDocument(tx *gorm.DB, providerID int64, d checkedUpload, by string, now time.Time) error {
	row := &Document{ProviderID: providerID, Kind: d.Kind, Filename: d.Filename, ContentType: d.contentType,
		SizeBytes: int64(len(d.Data)), SHA256: d.sum, Data: d.Data, UploadedBy: by, UploadedAt: now}
	return errs.Wrap(tx.Create(row).Error, "store document")
}

// AddDocuments stores further documents of a provider (e.g. with an answer).
func (s *Service) AddDocuments(ctx context.Context, providerID int64, ups []Upload) error {
	var v errs.Validation
	docs := checkUploads(&v, ups, true)
	if err := v.Err(); err != nil {
		return err
	}
	p, err := s.FindProviderByID(ctx, providerID)
	if err != nil {
		return err
	}
	if p.Status == StatusTerminated || p.Status == StatusRejected {
		return errs.New(errs.Conflict, "provider_closed", "the application is %s; no more documents can be added", errs.Term(p.Status.Label()))
	}
	label := policies.ActorOf(ctx, nil).Name
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var names []string
		for _, d := range docs {
			if err := s.storeDocument(tx, providerID, d, label, s.now()); err != nil {
				return err
			}
			names = append(names, d.Filename)
		}
		return audit.Recordf(ctx, tx, "provider.document", "provider", fmt.Sprint(providerID), "uploaded %s", strings.Join(names, ", "))
	})
}

// FindDocuments lists a provider's documents without their contents.
func (s *Service) FindDocuments(ctx context.Context, providerID int64) ([]Document, error) {
	var out []Document
	err := s.DB.WithContext(ctx).Omit("data").Where("provider_id = ?", providerID).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "list documents")
}

// FindDocument returns one document of a provider with its contents.
func (s *Service) FindDocument(ctx context.Context, providerID, id int64) (*Document, error) {
	var d Document
	err := s.DB.WithContext(ctx).Where("provider_id = ? AND id = ?", providerID, id).Take(&d).Error
	if err != nil {
		return nil, translate(err, "document")
	}
	return &d, nil
}
