// Package totp is the second factor of local accounts: time-based one-time
// codes (RFC 6238, github.com/pquerna/otp) from an authenticator app, and
// recovery codes for the day the app is lost.
//
// An account enrols by scanning a QR code (or typing the secret) and
// confirming with a first valid code; it then gets recovery codes, shown
// once and stored as bcrypt hashes, each usable once. The secret is sealed
// at rest by the app's sealing under SECRETS_KEY (Store.Seal). A code is
// accepted once: the time step of the last accepted code is kept and no
// code of that step or an earlier one passes again. Failed codes are
// throttled like passwords (policies/signin) and, like enrolments,
// disabling, recovery-code uses and new recovery codes, audited.
//
// The store is keyed by the session's subject (kind and id), so every
// surface with local accounts can use it; the staff sign-in does.
package totp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/signin"
)

// Period, Digits and Skew are the code's parameters: 6 digits every 30
// seconds (what every authenticator app expects), accepted one step early
// or late for clocks that drift.
const (
	Period = 30
	Digits = 6
	Skew   = 1
	// RecoveryCodes is how many recovery codes an account gets at a time.
	RecoveryCodes = 10
)

// Refusals of a code. The message never says whether a recovery code or a
// one-time code was expected.
var (
	ErrCodeWrong   = errs.New(errs.Unauthorized, "code_wrong", "the code is wrong")
	ErrCodeReused  = errs.New(errs.Unauthorized, "code_reused", "this code has been used already; wait for the next one")
	ErrNotEnrolled = errs.New(errs.Conflict, "second_factor_missing", "no authenticator is set up for this account")
	ErrEnrolled    = errs.New(errs.Conflict, "second_factor_present", "an authenticator is set up already")
	ErrThrottled   = errs.New(errs.TooMany, "code_throttled", "too many wrong codes; wait a few minutes and try again")
)

// Subject is the account a second factor belongs to.
type Subject struct {
	Kind    string // session subject kind: staff, provider
	ID      int64
	Account string // the e-mail address: the authenticator's label
}

// objectType is the audit trail's object type of the subject's account.
func (s Subject) objectType() string { return s.Kind + "_user" }
func (s Subject) key() string        { return fmt.Sprintf("%s:%d", s.Kind, s.ID) }

// Store keeps the second factors.
type Store struct {
	DB *gorm.DB
	// Issuer names the service in the authenticator app.
	Issuer string
	// Seal and Open seal a secret at rest and open it again (the app's
	// SECRETS_KEY sealing); nil without a key (development only): the
	// secret is then kept in clear.
	Seal, Open func(plain []byte) ([]byte, error)
	BcryptCost int
	Throttle   signin.Throttle
	Now        func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

type factor struct {
	SubjectKind string
	SubjectID   int64
	Secret      string
	CreatedAt   time.Time
	ConfirmedAt *time.Time
	LastStep    int64
}

func (factor) TableName() string { return "second_factors" }

const (
	sealedPrefix = "sealed:"
	clearPrefix  = "clear:"
)

func (s *Store) seal(secret string) (string, error) {
	if s.Seal == nil {
		return clearPrefix + secret, nil
	}
	b, err := s.Seal([]byte(secret))
	if err != nil {
		return "", errs.Wrap(err, "seal authenticator secret")
	}
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(b), nil
}

func (s *Store) open(stored string) (string, error) {
	if plain, ok := strings.CutPrefix(stored, clearPrefix); ok {
		return plain, nil
	}
	raw, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return "", errs.Wrap(errors.New("unknown format"), "open authenticator secret")
	}
	if s.Open == nil {
		return "", errs.Wrap(errors.New("the secret is sealed but SECRETS_KEY is not set"), "open authenticator secret")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err == nil {
		b, err = s.Open(b)
	}
	if err != nil {
		return "", errs.Wrap(fmt.Errorf("cannot decrypt (wrong SECRETS_KEY?): %w", err), "open authenticator secret")
	}
	return string(b), nil
}

func (s *Store) find(ctx context.Context, db *gorm.DB, sub Subject) (*factor, error) {
	var f factor
	err := db.WithContext(ctx).Where("subject_kind = ? AND subject_id = ?", sub.Kind, sub.ID).Take(&f).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(err, "find second factor")
	}
	return &f, nil
}

// Status is what an account has set up.
type Status struct {
	Enabled       bool       // a confirmed authenticator
	Since         *time.Time // when it was confirmed
	RecoveryCodes int        // unused recovery codes
}

// Status reports the subject's second factor.
func (s *Store) Status(ctx context.Context, sub Subject) (Status, error) {
	f, err := s.find(ctx, s.DB, sub)
	if err != nil || f == nil || f.ConfirmedAt == nil {
		return Status{}, err
	}
	st := Status{Enabled: true, Since: f.ConfirmedAt}
	var n int64
	err = s.DB.WithContext(ctx).Table("recovery_codes").Where("subject_kind = ? AND subject_id = ? AND used_at IS NULL", sub.Kind, sub.ID).Count(&n).Error
	st.RecoveryCodes = int(n)
	return st, errs.Wrap(err, "count recovery codes")
}

// Enabled reports whether the subject has a confirmed authenticator.
func (s *Store) Enabled(ctx context.Context, sub Subject) (bool, error) {
	st, err := s.Status(ctx, sub)
	return st.Enabled, err
}

// Enrolment is what the enrolment page shows: the secret as text, the
// otpauth URI and the QR code that carries it.
type Enrolment struct {
	Secret  string // base32, as authenticator apps take it typed
	URI     string // otpauth://totp/...
	QRImage string // data:image/png;base64,... of URI
}

// Grouped is the secret in groups of four, easier to type.
func (e *Enrolment) Grouped() string {
	var b strings.Builder
	for i, r := range e.Secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// BeginEnrolment starts (or shows again) the subject's enrolment: a new
// secret, sealed and stored unconfirmed; an unconfirmed one from before is
// shown again, so reloading the page does not invalidate what was scanned.
func (s *Store) BeginEnrolment(ctx context.Context, sub Subject) (*Enrolment, error) {
	f, err := s.find(ctx, s.DB, sub)
	if err != nil {
		return nil, err
	}
	if f != nil && f.ConfirmedAt != nil {
		return nil, ErrEnrolled
	}
	var secret string
	if f != nil {
		if secret, err = s.open(f.Secret); err != nil {
			return nil, err
		}
	} else {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.issuer(), AccountName: sub.Account,
			Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return nil, errs.Wrap(err, "generate authenticator secret")
		}
		secret = key.Secret()
		sealed, err := s.seal(secret)
		if err != nil {
			return nil, err
		}
		// Two tabs enrolling at once: the first secret stays.
		err = s.DB.WithContext(ctx).Exec(`INSERT INTO second_factors (subject_kind, subject_id, secret, created_at)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`, sub.Kind, sub.ID, sealed, s.now()).Error
		if err != nil {
			return nil, errs.Wrap(err, "store authenticator secret")
		}
		return s.BeginEnrolment(ctx, sub)
	}
	return s.enrolment(sub, secret)
}

func (s *Store) issuer() string {
	if s.Issuer == "" {
		return "CarData"
	}
	return s.Issuer
}

func (s *Store) enrolment(sub Subject, secret string) (*Enrolment, error) {
	q := url.Values{}
	q.Set("secret", secret)
	q.Set("issuer", s.issuer())
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(Digits))
	q.Set("period", fmt.Sprint(Period))
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + s.issuer() + ":" + sub.Account, RawQuery: q.Encode()}
	key, err := otp.NewKeyFromURL(u.String())
	if err != nil {
		return nil, errs.Wrap(err, "authenticator key")
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, errs.Wrap(err, "QR code")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, errs.Wrap(err, "QR code")
	}
	return &Enrolment{Secret: secret, URI: key.URL(),
		QRImage: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// ConfirmEnrolment checks the first code of the subject's new
// authenticator; when it is right, the authenticator is the account's
// second factor from now on and the recovery codes returned (shown once)
// replace any earlier ones. Audited; a wrong code is throttled and audited
// like any other.
func (s *Store) ConfirmEnrolment(ctx context.Context, sub Subject, code, addr string) ([]string, error) {
	f, err := s.find(ctx, s.DB, sub)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, ErrNotEnrolled
	}
	if f.ConfirmedAt != nil {
		return nil, ErrEnrolled
	}
	var codes []string
	err = s.attempt(ctx, sub, addr, "enrolment", func(tx *gorm.DB) (bool, error) {
		step, ok, err := s.match(f, code)
		if err != nil || !ok {
			return false, err
		}
		res := tx.Exec(`UPDATE second_factors SET confirmed_at = ?, last_step = ? WHERE subject_kind = ? AND subject_id = ? AND confirmed_at IS NULL`,
			s.now(), step, sub.Kind, sub.ID)
		if res.Error != nil {
			return false, errs.Wrap(res.Error, "confirm second factor")
		}
		if res.RowsAffected == 0 {
			return false, ErrEnrolled
		}
		if codes, err = s.replaceRecoveryCodes(tx, sub); err != nil {
			return false, err
		}
		return true, audit.Recordf(ctx, tx, "second_factor.enrol", sub.objectType(), fmt.Sprint(sub.ID),
			"%s set up an authenticator app (TOTP); %d recovery codes issued", sub.Account, len(codes))
	})
	return codes, err
}

// Verify checks a code at sign-in: a one-time code of the authenticator
// (each accepted once) or an unused recovery code (used up by it). It
// reports whether a recovery code was used. Throttled per account and
// address; every refusal and every recovery code used is audited.
func (s *Store) Verify(ctx context.Context, sub Subject, code, addr string) (recovery bool, err error) {
	f, err := s.find(ctx, s.DB, sub)
	if err != nil {
		return false, err
	}
	if f == nil || f.ConfirmedAt == nil {
		return false, ErrNotEnrolled
	}
	err = s.attempt(ctx, sub, addr, "sign-in", func(tx *gorm.DB) (bool, error) {
		ok, used, err := s.check(ctx, tx, sub, f, code)
		recovery = used
		return ok, err
	})
	return recovery, err
}

// check accepts a one-time code (once) or a recovery code (once).
func (s *Store) check(ctx context.Context, tx *gorm.DB, sub Subject, f *factor, code string) (ok, recovery bool, err error) {
	code = normalize(code)
	if len(code) == Digits && isDigits(code) {
		step, ok, err := s.match(f, code)
		if err != nil || !ok {
			return false, false, err
		}
		// Accepted once: only a later step than the last accepted one
		// passes, decided by the row itself, so two requests racing with
		// one code cannot both pass.
		res := tx.Exec(`UPDATE second_factors SET last_step = ? WHERE subject_kind = ? AND subject_id = ? AND last_step < ?`,
			step, sub.Kind, sub.ID, step)
		if res.Error != nil {
			return false, false, errs.Wrap(res.Error, "record code")
		}
		if res.RowsAffected == 0 {
			return false, false, ErrCodeReused
		}
		return true, false, nil
	}
	var rows []struct {
		ID       int64
		CodeHash string
	}
	if err := tx.Raw(`SELECT id, code_hash FROM recovery_codes WHERE subject_kind = ? AND subject_id = ? AND used_at IS NULL ORDER BY id`,
		sub.Kind, sub.ID).Scan(&rows).Error; err != nil {
		return false, false, errs.Wrap(err, "read recovery codes")
	}
	for _, r := range rows {
		if bcrypt.CompareHashAndPassword([]byte(r.CodeHash), []byte(code)) != nil {
			continue
		}
		res := tx.Exec(`UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL`, s.now(), r.ID)
		if res.Error != nil {
			return false, false, errs.Wrap(res.Error, "use recovery code")
		}
		if res.RowsAffected == 0 {
			return false, false, ErrCodeReused
		}
		return true, true, audit.Recordf(ctx, tx, "second_factor.recovery_code_used", sub.objectType(), fmt.Sprint(sub.ID),
			"%s signed in with a recovery code; %d left", sub.Account, len(rows)-1)
	}
	return false, false, nil
}

// attempt runs one throttled check of a code: fn reports whether it
// passed. A refusal is audited in a transaction of its own (it must stay
// on record although nothing changed).
func (s *Store) attempt(ctx context.Context, sub Subject, addr, during string, fn func(tx *gorm.DB) (bool, error)) error {
	db := s.DB.WithContext(ctx)
	attempts := signin.Attempts{Table: "second_factor_attempts", Throttle: s.Throttle, Cost: s.BcryptCost}
	at, err := attempts.Begin(db, sub.key(), addr, s.now())
	if errs.Is(err, signin.ErrThrottled.Code) {
		s.refused(ctx, sub, during, "throttled")
		return ErrThrottled
	}
	if err != nil {
		return err
	}
	ok := false
	err = db.Transaction(func(tx *gorm.DB) error {
		var err error
		ok, err = fn(tx)
		if err != nil || !ok {
			ok = false
			if err == nil {
				err = ErrCodeWrong
			}
			return err
		}
		return nil
	})
	if ferr := at.Finish(db, ok); ferr != nil && err == nil {
		err = ferr
	}
	if k := errs.KindOf(err); k == errs.Unauthorized {
		s.refused(ctx, sub, during, errs.As(err).Code)
	}
	return err
}

func (s *Store) refused(ctx context.Context, sub Subject, during, why string) {
	// Best effort: the refusal itself is the answer either way.
	_ = audit.Recordf(ctx, s.DB.WithContext(ctx), "second_factor.code_refused", sub.objectType(), fmt.Sprint(sub.ID),
		"%s: code refused at %s (%s)", sub.Account, errs.Term(during), why)
}

// match finds the time step whose code is code, within the skew.
func (s *Store) match(f *factor, code string) (int64, bool, error) {
	code = normalize(code)
	if len(code) != Digits || !isDigits(code) {
		return 0, false, nil
	}
	secret, err := s.open(f.Secret)
	if err != nil {
		return 0, false, err
	}
	now := s.now()
	opts := totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for d := -Skew; d <= Skew; d++ {
		t := now.Add(time.Duration(d*Period) * time.Second)
		want, err := totp.GenerateCodeCustom(secret, t, opts)
		if err != nil {
			return 0, false, errs.Wrap(err, "generate code")
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return t.Unix() / Period, true, nil
		}
	}
	return 0, false, nil
}

// Code is the authenticator's code for secret at t (for tests and tools
// that play the app).
func Code(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: Period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

func normalize(code string) string {
	return strings.ToLower(strings.NewReplacer(" ", "", "\t", "", "-", "").Replace(strings.TrimSpace(code)))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// RegenerateRecoveryCodes replaces the subject's recovery codes with new
// ones (returned to be shown once). Audited.
func (s *Store) RegenerateRecoveryCodes(ctx context.Context, sub Subject) ([]string, error) {
	var codes []string
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		f, err := s.find(ctx, tx, sub)
		if err != nil {
			return err
		}
		if f == nil || f.ConfirmedAt == nil {
			return ErrNotEnrolled
		}
		if codes, err = s.replaceRecoveryCodes(tx, sub); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "second_factor.recovery_codes", sub.objectType(), fmt.Sprint(sub.ID),
			"%s replaced the recovery codes (%d new; the old ones no longer work)", sub.Account, len(codes))
	})
	return codes, err
}

// recoveryAlphabet leaves out look-alikes (0/o, 1/l/i).
const recoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

func (s *Store) replaceRecoveryCodes(tx *gorm.DB, sub Subject) ([]string, error) {
	if err := tx.Exec(`DELETE FROM recovery_codes WHERE subject_kind = ? AND subject_id = ?`, sub.Kind, sub.ID).Error; err != nil {
		return nil, errs.Wrap(err, "drop recovery codes")
	}
	codes := make([]string, RecoveryCodes)
	for i := range codes {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return nil, errs.Wrap(err, "recovery code")
		}
		for j := range b {
			b[j] = recoveryAlphabet[int(b[j])%len(recoveryAlphabet)]
		}
		codes[i] = string(b[:5]) + "-" + string(b[5:])
		hash, err := bcrypt.GenerateFromPassword([]byte(normalize(codes[i])), s.BcryptCost)
		if err != nil {
			return nil, errs.Wrap(err, "hash recovery code")
		}
		if err := tx.Exec(`INSERT INTO recovery_codes (subject_kind, subject_id, code_hash, created_at) VALUES (?, ?, ?, ?)`,
			sub.Kind, sub.ID, string(hash), s.now()).Error; err != nil {
			return nil, errs.Wrap(err, "store recovery code")
		}
	}
	return codes, nil
}

// Disable removes the subject's authenticator and recovery codes after a
// current code (or a recovery code) proves the person holds them.
// Audited; a wrong code is throttled and audited.
func (s *Store) Disable(ctx context.Context, sub Subject, code, addr string) error {
	f, err := s.find(ctx, s.DB, sub)
	if err != nil {
		return err
	}
	if f == nil || f.ConfirmedAt == nil {
		return ErrNotEnrolled
	}
	return s.attempt(ctx, sub, addr, "disabling", func(tx *gorm.DB) (bool, error) {
		ok, _, err := s.check(ctx, tx, sub, f, code)
		if err != nil || !ok {
			return false, err
		}
		return true, s.remove(ctx, tx, sub, audit.ItemOf("second_factor.disable", sub.objectType(), fmt.Sprint(sub.ID), "%s removed their authenticator app and recovery codes", sub.Account))
	})
}

// Reset removes another person's authenticator and recovery codes (an
// administrator helping someone who lost both); their next password
// sign-in asks for no code, or for a new set-up where the role requires
// one. Audited.
func (s *Store) Reset(ctx context.Context, sub Subject) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		f, err := s.find(ctx, tx, sub)
		if err != nil {
			return err
		}
		if f == nil {
			return ErrNotEnrolled
		}
		return s.remove(ctx, tx, sub, audit.ItemOf("second_factor.reset", sub.objectType(), fmt.Sprint(sub.ID), "authenticator app and recovery codes of %s removed by an administrator", sub.Account))
	})
}

// remove drops sub's second factor and records entry.
func (s *Store) remove(ctx context.Context, tx *gorm.DB, sub Subject, entry audit.Item) error {
	if err := tx.Exec(`DELETE FROM recovery_codes WHERE subject_kind = ? AND subject_id = ?`, sub.Kind, sub.ID).Error; err != nil {
		return errs.Wrap(err, "drop recovery codes")
	}
	if err := tx.Exec(`DELETE FROM second_factors WHERE subject_kind = ? AND subject_id = ?`, sub.Kind, sub.ID).Error; err != nil {
		return errs.Wrap(err, "drop second factor")
	}
	return audit.RecordMany(ctx, tx, []audit.Item{entry})
}

// PurgeAttempts deletes recorded code attempts older than before.
func (s *Store) PurgeAttempts(ctx context.Context, before time.Time) (int64, error) {
	res := s.DB.WithContext(ctx).Exec("DELETE FROM second_factor_attempts WHERE at < ?", before.UTC())
	return res.RowsAffected, errs.Wrap(res.Error, "purge code attempts")
}
