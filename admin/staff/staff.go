// Package staff manages the internal users of the back office (partner
// managers, finance, support, administrators, auditors): accounts, roles,
// passwords (bcrypt) and login throttling.
package staff

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/listsort"
	"cardata/policies/session"
	"cardata/policies/signin"
)

// User is a staff member.
type User struct {
	ID           int64 `gorm:"primaryKey"`
	Email        string
	Name         string
	PasswordHash string `json:"-"`
	Active       bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	LastLoginAt  *time.Time
	Lang         string // remembered language ("de", "en", "")
	// OIDCIssuer and OIDCSubject name the person at the company's identity
	// provider once they have signed in through it (SignInExternal).
	OIDCIssuer  *string  `gorm:"column:oidc_issuer"`
	OIDCSubject *string  `gorm:"column:oidc_subject"`
	Roles       []string `gorm:"-"`
}

func (User) TableName() string { return "staff_users" }

type userRole struct {
	UserID int64
	Role   string
}

func (userRole) TableName() string { return "staff_user_roles" }

// Service is the staff user service.
type Service struct {
	DB         *gorm.DB
	BcryptCost int
	Throttle   signin.Throttle // limits failed logins
	Sessions   *session.Store
}

// MinPasswordLength applies to every staff password.
const MinPasswordLength = 12

// NewUser is the input of Create.
type NewUser struct {
	Email    string
	Name     string
	Roles    []string
	Password string
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func validateRoles(v *errs.Validation, roles []string) []string {
	var out []string
	for _, r := range roles {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !policies.IsStaffRole(r) {
			v.Add("roles", "role_unknown", "unknown role %q (known: %s)", r, strings.Join(policies.StaffRoles, ", "))
			continue
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 && !v.Has("roles") {
		v.Add("roles", "role_required", "choose at least one role")
	}
	sort.Strings(out)
	return out
}

func validatePassword(v *errs.Validation, field, pw string) {
	if utf8.RuneCountInString(pw) < MinPasswordLength {
		v.Add(field, "password_too_short", "use at least %d characters", MinPasswordLength)
	} else if len(pw) > 72 {
		v.Add(field, "password_too_long", "use at most 72 bytes")
	}
}

// Create adds a staff member (audited). Its roles must pass
// policies.CheckRoleChange; a refusal is audited although nothing is created.
func (s *Service) Create(ctx context.Context, in NewUser) (*User, error) {
	var v errs.Validation
	in.Email = normalizeEmail(in.Email)
	in.Name = strings.TrimSpace(in.Name)
	if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email {
		v.Add("email", "email_invalid", "enter a valid e-mail address")
	}
	if in.Name == "" {
		v.Add("name", "name_required", "enter the name")
	}
	roles := validateRoles(&v, in.Roles)
	sod := policies.CheckRoleChange(policies.PrincipalFrom(ctx), 0, nil, roles)
	if sod != nil {
		v.Fields = append(v.Fields, errs.As(sod).Fields...)
	}
	validatePassword(&v, "password", in.Password)
	if sod != nil {
		return nil, s.refuseRoles(ctx, "", in.Email, nil, roles, sod, v.Fields)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.BcryptCost)
	if err != nil {
		return nil, errs.Wrap(err, "hash password")
	}
	u := &User{Email: in.Email, Name: in.Name, PasswordHash: string(hash), Active: true, Roles: roles}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return &errs.Error{Kind: errs.Invalid, Code: "email_taken", Message: "some fields are invalid",
					Fields: []errs.FieldError{{Field: "email", Code: "email_taken", Message: "a staff member with this e-mail exists"}}}
			}
			return errs.Wrap(err, "create staff user")
		}
		if err := setRoles(tx, u.ID, roles); err != nil {
			return err
		}
		return audit.Recordf(ctx, tx, "staff_user.create", "staff_user", fmt.Sprint(u.ID),
			"created %s (%s) with roles %s", u.Email, u.Name, errs.Terms(", ", roles...))
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

func setRoles(tx *gorm.DB, id int64, roles []string) error {
	if err := tx.Where("user_id = ?", id).Delete(&userRole{}).Error; err != nil {
		return errs.Wrap(err, "clear roles")
	}
	for _, r := range roles {
		if err := tx.Create(&userRole{UserID: id, Role: r}).Error; err != nil {
			return errs.Wrap(err, "set role")
		}
	}
	return nil
}

func (s *Service) loadRoles(ctx context.Context, users []User) error {
	if len(users) == 0 {
		return nil
	}
	ids := make([]int64, len(users))
	for i := range users {
		ids[i] = users[i].ID
	}
	var rows []userRole
	if err := s.DB.WithContext(ctx).Where("user_id IN ?", ids).Order("role").Find(&rows).Error; err != nil {
		return errs.Wrap(err, "load roles")
	}
	byUser := map[int64][]string{}
	for _, r := range rows {
		byUser[r.UserID] = append(byUser[r.UserID], r.Role)
	}
	for i := range users {
		users[i].Roles = byUser[users[i].ID]
	}
	return nil
}

// ErrUserNotFound is returned when no staff user matches.
var ErrUserNotFound = errs.New(errs.NotFound, "staff_user_not_found", "staff user not found")

// FindByID returns one staff user with roles.
func (s *Service) FindByID(ctx context.Context, id int64) (*User, error) {
	var u User
	err := s.DB.WithContext(ctx).Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, errs.Wrap(err, "find staff user")
	}
	users := []User{u}
	if err := s.loadRoles(ctx, users); err != nil {
		return nil, err
	}
	return &users[0], nil
}

// FindByEmail returns one staff user with roles.
func (s *Service) FindByEmail(ctx context.Context, email string) (*User, error) {
	var u User
	err := s.DB.WithContext(ctx).Where("lower(email) = ?", normalizeEmail(email)).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, errs.Wrap(err, "find staff user")
	}
	users := []User{u}
	if err := s.loadRoles(ctx, users); err != nil {
		return nil, err
	}
	return &users[0], nil
}

// Filter narrows List.
type Filter struct {
	Query string // name or e-mail contains
	Role  string
	// Order is the list's sort (UserSort); the zero value is by name.
	Order  listsort.Order
	Offset int
	Limit  int
}

// UserSort is the staff user list's sort whitelist.
var UserSort = listsort.Spec{
	Columns: map[string]string{
		"name":       "lower(name)",
		"email":      "lower(email)",
		"status":     "active",
		"last_login": "last_login_at",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "name"},
}

// List returns staff users by name and the total matching.
func (s *Service) List(ctx context.Context, f Filter) ([]User, int64, error) {
	q := s.DB.WithContext(ctx).Model(&User{})
	if f.Query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Query) + "%"
		q = q.Where("name ILIKE ? OR email ILIKE ?", like, like)
	}
	if f.Role != "" {
		q = q.Where("id IN (SELECT user_id FROM staff_user_roles WHERE role = ?)", f.Role)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count staff users")
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 25
	}
	var users []User
	if err := q.Order(UserSort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&users).Error; err != nil {
		return nil, 0, errs.Wrap(err, "list staff users")
	}
	return users, total, s.loadRoles(ctx, users)
}

// Update is the input of UpdateUser.
type Update struct {
	Name   string
	Roles  []string
	Active bool
}

// UpdateUser changes name, roles and active flag (audited). An
// administrator cannot remove their own admin role or deactivate themselves,
// so the system never loses its last way in by accident. Role changes follow
// policies.CheckRoleChange (no self-granted roles, no incompatible pairs);
// a refusal is audited although nothing changes.
func (s *Service) UpdateUser(ctx context.Context, id int64, in Update) (*User, error) {
	u, err := s.FindByID(ctx, id)
	if err != nil {
		return nil, err
	}
	var v errs.Validation
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		v.Add("name", "name_required", "enter the name")
	}
	roles := validateRoles(&v, in.Roles)
	actor := policies.PrincipalFrom(ctx)
	if actor != nil && actor.Kind == policies.KindStaff && actor.ID == id {
		if !slices.Contains(roles, policies.RoleAdmin) && slices.Contains(u.Roles, policies.RoleAdmin) {
			v.Add("roles", "own_admin_role", "you cannot remove your own administrator role")
		}
		if !in.Active {
			v.Add("active", "own_deactivation", "you cannot deactivate yourself")
		}
	}
	sod := policies.CheckRoleChange(actor, id, u.Roles, roles)
	if sod != nil {
		v.Fields = append(v.Fields, errs.As(sod).Fields...)
		return nil, s.refuseRoles(ctx, fmt.Sprint(id), u.Email, u.Roles, roles, sod, v.Fields)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var changes []errs.Phrase
	if in.Name != u.Name {
		changes = append(changes, errs.Phrasef("name %q -> %q", u.Name, in.Name))
	}
	if strings.Join(roles, ",") != strings.Join(u.Roles, ",") {
		changes = append(changes, errs.Phrasef("roles [%s] -> [%s]", errs.Terms(", ", u.Roles...), errs.Terms(", ", roles...)))
	}
	if in.Active != u.Active {
		changes = append(changes, errs.Phrasef("active %s -> %s", errs.Term(strconv.FormatBool(u.Active)), errs.Term(strconv.FormatBool(in.Active))))
	}
	if len(changes) == 0 {
		return u, nil
	}
	var locked []string // the roles under the row lock, for the audit entry of a refusal
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Decide on the roles as they are under the row lock: a concurrent
		// change by another administrator must not turn a kept role into a
		// self-granted one.
		if err := tx.Exec("SELECT 1 FROM staff_users WHERE id = ? FOR UPDATE", id).Error; err != nil {
			return errs.Wrap(err, "lock staff user")
		}
		var cur []string
		if err := tx.Model(&userRole{}).Where("user_id = ?", id).Order("role").Pluck("role", &cur).Error; err != nil {
			return errs.Wrap(err, "load roles")
		}
		locked = cur
		if err := policies.CheckRoleChange(actor, id, cur, roles); err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"name": in.Name, "active": in.Active, "updated_at": time.Now().UTC()}).Error; err != nil {
			return errs.Wrap(err, "update staff user")
		}
		if err := setRoles(tx, id, roles); err != nil {
			return err
		}
		// A changed role set or deactivation takes effect at once: end sessions.
		if s.Sessions != nil {
			if err := s.Sessions.DeleteForSubject(ctx, tx, policies.KindStaff, id); err != nil {
				return err
			}
		}
		return audit.Recordf(ctx, tx, "staff_user.update", "staff_user", fmt.Sprint(id),
			"%s: %s", u.Email, errs.ListOf("; ", changes))
	})
	if errs.Is(err, policies.CodeSelfGrant) || errs.Is(err, policies.CodeIncompatibleRoles) {
		return nil, s.refuseRoles(ctx, fmt.Sprint(id), u.Email, locked, roles, err, errs.As(err).Fields)
	}
	if err != nil {
		return nil, err
	}
	return s.FindByID(ctx, id)
}

// refuseRoles records a refused role change in the audit trail and returns
// the refusal with every field error of the form. The entry is written in
// its own transaction: the change itself is not made, but who tried to get
// which roles must stay on record.
func (s *Service) refuseRoles(ctx context.Context, objectID, email string, oldRoles, newRoles []string, sod error, fields []errs.FieldError) error {
	e := errs.As(sod)
	item := audit.ItemOf("staff_user.roles_refused", "staff_user", objectID,
		"refused (%s): %s roles [%s] -> [%s]", e.Code, email, errs.Terms(", ", oldRoles...), errs.Terms(", ", newRoles...))
	if objectID == "" {
		item = audit.ItemOf("staff_user.roles_refused", "staff_user", objectID,
			"refused (%s): create %s with roles [%s]", e.Code, email, errs.Terms(", ", newRoles...))
	}
	if err := audit.RecordMany(ctx, s.DB.WithContext(ctx), []audit.Item{item}); err != nil {
		return err
	}
	return &errs.Error{Kind: errs.Invalid, Code: e.Code, Message: e.Message, Fields: fields, Format: e.Format, Args: e.Args}
}

// SetPassword replaces a user's password (audited, sessions ended).
func (s *Service) SetPassword(ctx context.Context, id int64, password string) error {
	var v errs.Validation
	validatePassword(&v, "password", password)
	if err := v.Err(); err != nil {
		return err
	}
	u, err := s.FindByID(ctx, id)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.BcryptCost)
	if err != nil {
		return errs.Wrap(err, "hash password")
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", id).Updates(map[string]any{
			"password_hash": string(hash), "updated_at": time.Now().UTC()}).Error; err != nil {
			return errs.Wrap(err, "set password")
		}
		if s.Sessions != nil {
			if err := s.Sessions.DeleteForSubject(ctx, tx, policies.KindStaff, id); err != nil {
				return err
			}
		}
		return audit.Recordf(ctx, tx, "staff_user.password", "staff_user", fmt.Sprint(id), "password changed for %s", u.Email)
	})
}

// Login errors. The message never says whether the account exists.
var (
	ErrBadCredentials = signin.ErrBadCredentials
	ErrThrottled      = signin.ErrThrottled
)

// Authenticate checks email and password from addr, enforcing the throttle
// per account and per client address, and records the attempt.
func (s *Service) Authenticate(ctx context.Context, email, password, addr string) (*User, error) {
	email = signin.Email(email)
	db := s.DB.WithContext(ctx)
	attempts := signin.Attempts{Table: "login_attempts", Throttle: s.Throttle, Cost: s.BcryptCost}
	attempt, err := attempts.Begin(db, email, addr, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	u, err := s.FindByEmail(ctx, email)
	hash := ""
	switch {
	case err == nil:
		hash = u.PasswordHash
	case errs.KindOf(err) != errs.NotFound:
		return nil, err
	}
	ok := attempt.Check(hash, password) && u != nil && u.Active
	now := time.Now().UTC()
	if err := attempt.Finish(db, ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if err := db.Model(&User{}).Where("id = ?", u.ID).Update("last_login_at", now).Error; err != nil {
		return nil, errs.Wrap(err, "record login")
	}
	return u, nil
}

// Principal turns a user into the request principal.
func (u *User) Principal(sessionID int64) *policies.Principal {
	return &policies.Principal{Kind: policies.KindStaff, ID: u.ID, Email: u.Email, Name: u.Name,
		Roles: append([]string(nil), u.Roles...), SessionID: sessionID, Lang: u.Lang}
}

// SetLang remembers the language staff user id chose ("de", "en").
func (s *Service) SetLang(ctx context.Context, id int64, lang string) error {
	return errs.Wrap(s.DB.WithContext(ctx).Exec("UPDATE staff_users SET lang = ? WHERE id = ?", lang, id).Error, "set staff language")
}
