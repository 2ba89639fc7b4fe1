package onboarding

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"cardata/onboarding/vat"
	"cardata/policies/errs"
)

// RegistrationLimits bound what one client address may do with the public
// registration (the form and the API), counted in PostgreSQL so every
// replica sees the same numbers. Zero fields mean no limit.
type RegistrationLimits struct {
	PerHour          int   // applications per client address per hour (REGISTRATION_RATE_LIMIT)
	DailyUploadBytes int64 // document bytes per client address per 24 hours (REGISTRATION_DAILY_UPLOAD_BYTES)
}

// Application is the public registration's answer. It is built from the
// application alone, so it is the same whether the registration was new or
// its e-mail or VAT ID was already known (then only a notice was mailed).
type Application struct {
	Status        string // always "submitted"
	LegalName     string
	Country       string
	VATID         string
	TermsVersion  string
	AdminEmail    string
	PasswordSetup string // "set", or "link_sent" when the admin gets a set-password link
}

// LimitError is a refusal by RegistrationLimits (429); RetryAfter is when
// the address may try again.
type LimitError struct {
	Err        *errs.Error
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Err.Error() }
func (e *LimitError) Unwrap() error { return e.Err }

// Apply is the public registration: Register behind the per-address limits,
// answering an already known e-mail or VAT ID like a new application.
// Every application that passes the limits counts against the hourly rate,
// refused ones too; its documents count against the daily upload cap unless
// it was refused for invalid input (then nothing was stored).
func (s *Service) Apply(ctx context.Context, r Registration) (*Application, error) {
	var size int64
	for _, d := range r.Documents {
		size += int64(len(d.Data))
	}
	slot, err := s.reserveApplication(ctx, r.ClientAddr, size)
	if err != nil {
		return nil, err
	}
	_, err = s.Register(ctx, r)
	switch {
	case err == nil, errors.Is(err, ErrAlreadyRegistered):
	case errs.KindOf(err) == errs.Invalid:
		if rerr := s.DB.WithContext(ctx).Exec(`UPDATE registration_attempts SET upload_bytes = 0 WHERE id = ?`, slot).Error; rerr != nil {
			return nil, errs.Wrap(rerr, "release upload quota")
		}
		return nil, err
	default:
		return nil, err
	}
	r.normalise()
	vatID, _ := vat.Check(r.Country, r.VATID)
	setup := "set"
	if r.AdminPassword == "" {
		setup = "link_sent"
	}
	return &Application{Status: string(StatusSubmitted), LegalName: r.LegalName, Country: r.Country, VATID: vatID,
		TermsVersion: r.TermsVersion, AdminEmail: r.ContactEmail, PasswordSetup: setup}, nil
}

// reserveApplication counts one application of size document bytes for
// addr, or refuses it with a LimitError. The check and the count happen
// under an advisory lock on the address, so parallel requests cannot all
// pass on the same count.
func (s *Service) reserveApplication(ctx context.Context, addr string, size int64) (int64, error) {
	lim := s.RegistrationLimits
	now := s.now()
	var id int64
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext('registration_attempts'), hashtext(?))`, addr).Error; err != nil {
			return errs.Wrap(err, "lock registration attempts")
		}
		// Rows older than a day count for nothing; each application removes
		// a few, so the table needs no clean-up job.
		if err := tx.Exec(`DELETE FROM registration_attempts WHERE id IN
			(SELECT id FROM registration_attempts WHERE at < ? ORDER BY at LIMIT 100)`, now.Add(-24*time.Hour)).Error; err != nil {
			return errs.Wrap(err, "purge registration attempts")
		}
		var rows []struct {
			At          time.Time
			UploadBytes int64
		}
		if err := tx.Raw(`SELECT at, upload_bytes FROM registration_attempts WHERE client_addr = ? AND at > ? ORDER BY at`,
			addr, now.Add(-24*time.Hour)).Scan(&rows).Error; err != nil {
			return errs.Wrap(err, "count registration attempts")
		}
		var lastHour []time.Time
		var stored int64
		for _, r := range rows {
			if r.At.After(now.Add(-time.Hour)) {
				lastHour = append(lastHour, r.At)
			}
			stored += r.UploadBytes
		}
		if lim.PerHour > 0 && len(lastHour) >= lim.PerHour {
			// Free again when enough of the last hour's applications age out.
			wait := lastHour[len(lastHour)-lim.PerHour].Add(time.Hour).Sub(now)
			n, unit := waitWords(wait)
			return &LimitError{RetryAfter: wait, Err: errs.New(errs.TooMany, "registration_rate_limited",
				"too many registrations from your network; try again in %d %s", n, unit)}
		}
		if lim.DailyUploadBytes > 0 && stored+size > lim.DailyUploadBytes {
			wait := 24 * time.Hour
			for _, r := range rows { // free again once enough of the day's uploads age out
				stored -= r.UploadBytes
				if stored+size <= lim.DailyUploadBytes {
					wait = r.At.Add(24 * time.Hour).Sub(now)
					break
				}
			}
			var v errs.Validation
			size, sizeUnit := sizeWords(lim.DailyUploadBytes)
			n, unit := waitWords(wait)
			v.Add("documents", "registration_upload_cap",
				"documents from your network are limited to %d %s a day and this upload would exceed it; nothing was stored, try again in %d %s",
				size, sizeUnit, n, unit)
			return &LimitError{RetryAfter: wait, Err: &errs.Error{Kind: errs.TooMany, Code: "registration_upload_cap",
				Message: "too many documents uploaded from your network today", Fields: v.Fields}}
		}
		return errs.Wrap(tx.Raw(`INSERT INTO registration_attempts (client_addr, at, upload_bytes) VALUES (?, ?, ?) RETURNING id`,
			addr, now, size).Scan(&id).Error, "record registration attempt")
	})
	return id, err
}

// waitWords says a wait in whole minutes or hours: the number and its
// unit (a word a page translates).
func waitWords(d time.Duration) (int, errs.Term) {
	if m := int((d + time.Minute - 1) / time.Minute); m < 120 {
		return max(m, 1), "minutes"
	}
	return int((d + time.Hour - 1) / time.Hour), "hours"
}

// sizeWords says a byte count in MB when it is at least one: the number
// and its unit.
func sizeWords(n int64) (int64, errs.Term) {
	if n >= 1<<20 {
		return n >> 20, "MB"
	}
	return n, "bytes"
}
