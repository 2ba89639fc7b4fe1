package consent

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/policies/signin"
)

// RoleCustomer is the one role of a signed-in customer (policies/rules).
const RoleCustomer = "customer"

// Customer is a customer account as the consent pages see it. Accounts
// themselves belong to the vehicle registry (onboarding/vehicles); this
// package adds the customer's password for /my.
type Customer struct {
	ID          int64
	Email       string
	Name        string
	HasPassword bool
	LastLoginAt *time.Time
	Lang        string // remembered language ("de", "en", "")
	// IdentitySubject is the account's subject at the manufacturer's
	// customer identity (set by the vehicle master data or at the first
	// sign-in through it); empty when unknown.
	IdentitySubject string
}

// Principal is the customer acting in a /my session.
func (c *Customer) Principal(sessionID int64) *policies.Principal {
	return &policies.Principal{Kind: policies.KindCustomer, ID: c.ID, Email: c.Email, Name: c.Name,
		Roles: []string{RoleCustomer}, SessionID: sessionID, Lang: c.Lang}
}

// SetCustomerLang remembers the language customer account id chose ("de", "en").
func (s *Service) SetCustomerLang(ctx context.Context, id int64, lang string) error {
	return errs.Wrap(s.DB.WithContext(ctx).Exec("UPDATE customer_accounts SET lang = ? WHERE id = ?", lang, id).Error, "set customer language")
}

const selectCustomer = `a.id, a.email, a.name, a.lang, (cc.account_id IS NOT NULL) AS has_password, cc.last_login_at,
	COALESCE(a.identity_subject, '') AS identity_subject
	FROM customer_accounts a LEFT JOIN customer_credentials cc ON cc.account_id = a.id`

// ErrCustomerNotFound is returned for unknown accounts.
var ErrCustomerNotFound = errs.New(errs.NotFound, "customer_not_found", "customer not found")

// FindCustomer loads one account.
func (s *Service) FindCustomer(ctx context.Context, id int64) (*Customer, error) {
	var c Customer
	err := s.DB.WithContext(ctx).Raw("SELECT "+selectCustomer+" WHERE a.id = ?", id).Scan(&c).Error
	if err != nil {
		return nil, errs.Wrap(err, "find customer")
	}
	if c.ID == 0 {
		return nil, ErrCustomerNotFound
	}
	return &c, nil
}

// FindCustomers searches accounts by e-mail, name or the VIN of a vehicle
// they hold, and returns the total.
func (s *Service) FindCustomers(ctx context.Context, query string, offset, limit int) ([]Customer, int64, error) {
	return s.FindCustomersSorted(ctx, query, listsort.Order{}, offset, limit)
}

// CustomerSort is the staff customer search's sort whitelist (by e-mail by default).
var CustomerSort = listsort.Spec{
	Columns:  map[string]string{"name": "lower(a.name)", "email": "lower(a.email)"},
	Tiebreak: "a.id",
	Default:  listsort.Order{Key: "email"},
}

// FindCustomersSorted is FindCustomers in o's order (CustomerSort).
func (s *Service) FindCustomersSorted(ctx context.Context, query string, o listsort.Order, offset, limit int) ([]Customer, int64, error) {
	query = strings.TrimSpace(query)
	where, args := "a.sandbox_provider_id IS NULL", []any{} // simulated customers are the providers' sandboxes
	if query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
		where += ` AND (a.email ILIKE ? OR a.name ILIKE ? OR a.id IN (SELECT h.account_id FROM vehicle_holders h
			JOIN vehicles v ON v.id = h.vehicle_id WHERE v.vin = ?))`
		args = append(args, like, like, policies.NormalizeVIN(query))
	}
	var total int64
	if err := s.DB.WithContext(ctx).Raw("SELECT count(*) FROM customer_accounts a WHERE "+where, args...).Scan(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count customers")
	}
	if limit <= 0 || limit > 200 {
		limit = 25
	}
	var out []Customer
	err := s.DB.WithContext(ctx).Raw("SELECT "+selectCustomer+" WHERE "+where+" ORDER BY "+CustomerSort.SQL(o)+" OFFSET ? LIMIT ?",
		append(args, offset, limit)...).Scan(&out).Error
	return out, total, errs.Wrap(err, "list customers")
}

// MinPasswordLength is the shortest customer password accepted.
const MinPasswordLength = 12

// SetCustomerPassword sets (or replaces) an account's password.
func (s *Service) SetCustomerPassword(ctx context.Context, accountID int64, password string) error {
	var v errs.Validation
	if utf8.RuneCountInString(password) < MinPasswordLength {
		v.Add("password", "password_too_short", "use at least %d characters", MinPasswordLength)
	} else if len(password) > 72 {
		v.Add("password", "password_too_long", "use at most 72 bytes")
	}
	if err := v.Err(); err != nil {
		return err
	}
	cost := s.BcryptCost
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return errs.Wrap(err, "hash password")
	}
	return s.SetCustomerPasswordHash(ctx, accountID, string(hash))
}

// SetCustomerPasswordHash stores a bcrypt hash made elsewhere (the demo
// hashes its one password once for every demo customer).
func (s *Service) SetCustomerPasswordHash(ctx context.Context, accountID int64, hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return errs.Wrap(err, "password hash")
	}
	if _, err := s.FindCustomer(ctx, accountID); err != nil {
		return err
	}
	err := s.DB.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "account_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"password_hash", "updated_at"})}).
		Table("customer_credentials").Create(map[string]any{"account_id": accountID, "password_hash": hash, "updated_at": s.now()}).Error
	return errs.Wrap(err, "set customer password")
}

// SetCustomerPasswordHashes gives accounts without a password the same
// bcrypt hash (the demo's one password), in one statement.
func (s *Service) SetCustomerPasswordHashes(ctx context.Context, hash string, accountIDs []int64) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return errs.Wrap(err, "password hash")
	}
	err := s.DB.WithContext(ctx).Exec(`INSERT INTO customer_credentials (account_id, password_hash, updated_at)
		SELECT id, ?, ? FROM customer_accounts WHERE id IN ? ON CONFLICT (account_id) DO NOTHING`, hash, s.now(), accountIDs).Error
	return errs.Wrap(err, "set customer passwords")
}

// Customer sign-in errors; the message never says whether the account exists.
var (
	ErrBadCredentials = signin.ErrBadCredentials
	ErrThrottled      = signin.ErrThrottled
)

// AuthenticateCustomer checks a /my sign-in, throttled per account and per
// client address, and records the attempt.
func (s *Service) AuthenticateCustomer(ctx context.Context, email, password, addr string) (*Customer, error) {
	email = signin.Email(email)
	db := s.DB.WithContext(ctx)
	attempts := signin.Attempts{Table: "customer_login_attempts", Throttle: s.Throttle, Cost: s.BcryptCost}
	attempt, err := attempts.Begin(db, email, addr, s.now())
	if err != nil {
		return nil, err
	}
	var row struct {
		ID           int64
		PasswordHash string
	}
	err = db.Raw(`SELECT a.id, COALESCE(cc.password_hash, '') AS password_hash FROM customer_accounts a
		LEFT JOIN customer_credentials cc ON cc.account_id = a.id WHERE lower(a.email) = ?`, email).Scan(&row).Error
	if err != nil {
		return nil, errs.Wrap(err, "find customer")
	}
	ok := attempt.Check(row.PasswordHash, password)
	now := s.now()
	if err := attempt.Finish(db, ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if err := db.Exec("UPDATE customer_credentials SET last_login_at = ? WHERE account_id = ?", now, row.ID).Error; err != nil {
		return nil, errs.Wrap(err, "record login")
	}
	return s.FindCustomer(ctx, row.ID)
}

// ResolveCustomer returns the principal of a /my session, or nil when the
// account is gone or has neither a password nor a customer identity any
// more.
func (s *Service) ResolveCustomer(ctx context.Context, accountID, sessionID int64) (*policies.Principal, error) {
	c, err := s.FindCustomer(ctx, accountID)
	if errors.Is(err, ErrCustomerNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !c.HasPassword && c.IdentitySubject == "" {
		return nil, nil
	}
	return c.Principal(sessionID), nil
}

// ErrNoCustomerAccount refuses a customer identity CarData maps no vehicle
// account to.
var ErrNoCustomerAccount = errs.New(errs.Forbidden, "customer_account_unknown",
	"CarData has no vehicle for this account yet: your vehicles appear here once they are assigned to your account")

// SignInExternal finds the account of a vehicle owner the manufacturer's
// customer identity signed in (a verified ID token, policies/identity):
// the account whose identity subject it is, as the vehicle master data
// maps it. At the first sign-in of an account that has no subject yet, the
// account with the e-mail address the identity vouches for
// (email_verified) is linked to the subject (audited), so the accounts the
// master data named by e-mail find their owner. Anyone else is refused.
func (s *Service) SignInExternal(ctx context.Context, subject, email string, emailVerified bool) (*Customer, error) {
	if subject == "" {
		return nil, ErrNoCustomerAccount
	}
	var id int64
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Raw("SELECT id FROM customer_accounts WHERE identity_subject = ?", subject).Scan(&id).Error; err != nil {
			return errs.Wrap(err, "find customer")
		}
		if id != 0 || !emailVerified || signin.Email(email) == "" {
			return nil
		}
		res := tx.Raw(`UPDATE customer_accounts SET identity_subject = ?, updated_at = ? WHERE lower(email) = ? AND identity_subject IS NULL RETURNING id`,
			subject, s.now(), signin.Email(email)).Scan(&id)
		if res.Error != nil {
			return errs.Wrap(res.Error, "link customer identity")
		}
		if id == 0 {
			return nil
		}
		ctx := policies.WithPrincipal(ctx, policies.System("customer identity"))
		return audit.Recordf(ctx, tx, "customer_account.identity_link", "customer_account", strconv.FormatInt(id, 10),
			"%s now signs in through the customer identity as subject %s", signin.Email(email), subject)
	})
	if err != nil {
		return nil, err
	}
	if id == 0 {
		return nil, ErrNoCustomerAccount
	}
	return s.FindCustomer(ctx, id)
}

// PurgeLoginAttempts deletes sign-in attempts older than a day.
func (s *Service) PurgeLoginAttempts(ctx context.Context) (int64, error) {
	res := s.DB.WithContext(ctx).Exec("DELETE FROM customer_login_attempts WHERE at < ?", s.now().Add(-24*time.Hour))
	return res.RowsAffected, errs.Wrap(res.Error, "purge customer login attempts")
}

// Vehicle is a vehicle a customer holds.
type Vehicle struct {
	ID                int64
	VIN               string `gorm:"column:vin"`
	Brand             string
	Model             string
	Drivetrain        string
	Market            string
	TelematicsCapable bool
	Role              string // primary or secondary
}

// IsPrimary reports whether the customer decides on consents for it.
func (v Vehicle) IsPrimary() bool { return v.Role == "primary" }

// CustomerVehicles lists the vehicles an account holds, by VIN.
func (s *Service) CustomerVehicles(ctx context.Context, accountID int64) ([]Vehicle, error) {
	var out []Vehicle
	err := s.DB.WithContext(ctx).Raw(`SELECT v.id, v.vin, v.brand, v.model, v.drivetrain, v.market, v.telematics_capable, h.role
		FROM vehicle_holders h JOIN vehicles v ON v.id = h.vehicle_id WHERE h.account_id = ? ORDER BY v.vin`, accountID).Scan(&out).Error
	return out, errs.Wrap(err, "customer vehicles")
}

// WhyNoData says why a vehicle sends nothing a provider could receive (a
// grant stays in force, but no data flows under it), in the capability
// service's words; empty when it can send, or when no capability service
// is wired.
func (s *Service) WhyNoData(ctx context.Context, vin string) ([]Ineligibility, error) {
	if s.Eligibility == nil {
		return nil, nil
	}
	return s.Eligibility(ctx, s.DB, vin, nil, s.now())
}
