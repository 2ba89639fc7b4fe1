package onboarding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/policies/signin"
	"cardata/templates/i18n"
)

// Provider user roles (the casbin rules for /portal use them).
const (
	RoleProviderAdmin     = "provider_admin"
	RoleProviderDeveloper = "provider_developer"
	RoleProviderFinance   = "provider_finance"
)

// ProviderRoles lists the provider roles in display order.
var ProviderRoles = []string{RoleProviderAdmin, RoleProviderDeveloper, RoleProviderFinance}

// ProviderUser is a person who signs in to the partner portal for one
// provider. They are not staff: a separate table, a separate login.
type ProviderUser struct {
	ID              int64 `gorm:"primaryKey"`
	ProviderID      int64
	Email           string
	Name            string
	Role            string
	PasswordHash    string `json:"-"`
	Active          bool
	InviteTokenHash []byte     `json:"-"`
	InviteExpiresAt *time.Time `json:"-"`
	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastLoginAt     *time.Time
	Lang            string // remembered language ("de", "en", "")
	// OIDCIssuer and OIDCSubject name the person at the company's identity
	// provider the user signs in through (SignInCompany); nil until the
	// first such sign-in.
	OIDCIssuer  *string `gorm:"column:oidc_issuer" json:"-"`
	OIDCSubject *string `gorm:"column:oidc_subject" json:"-"`
}

func (ProviderUser) TableName() string { return "provider_users" }

// RoleName is the role in words.
func (u *ProviderUser) RoleName() string { return RoleLabel(u.Role) }

// Pending reports whether the user has neither set a password nor signed
// in through the company's identity provider yet.
func (u *ProviderUser) Pending() bool { return u.PasswordHash == "" && u.OIDCSubject == nil }

// CompanySignIn reports whether the user has signed in through the
// company's identity provider.
func (u *ProviderUser) CompanySignIn() bool { return u.OIDCSubject != nil }

// Principal turns the user into the request principal.
func (u *ProviderUser) Principal(sessionID int64) *policies.Principal {
	return &policies.Principal{Kind: policies.KindProvider, ID: u.ID, Email: u.Email, Name: u.Name,
		Roles: []string{u.Role}, ProviderID: u.ProviderID, SessionID: sessionID, Lang: u.Lang}
}

// SetUserLang remembers the language provider user id chose ("de", "en").
func (s *Service) SetUserLang(ctx context.Context, id int64, lang string) error {
	return errs.Wrap(s.DB.WithContext(ctx).Exec("UPDATE provider_users SET lang = ? WHERE id = ?", lang, id).Error, "set provider user language")
}

// Portal sign-in errors; the message never says whether the account exists.
var (
	ErrBadCredentials = signin.ErrBadCredentials
	ErrThrottled      = signin.ErrThrottled
)

// FindProviderUserByID loads a provider user (for the session resolver).
func (s *Service) FindProviderUserByID(ctx context.Context, id int64) (*ProviderUser, error) {
	var u ProviderUser
	if err := s.DB.WithContext(ctx).Take(&u, id).Error; err != nil {
		return nil, translate(err, "provider_user")
	}
	return &u, nil
}

// ResolvePrincipal returns the principal of a portal session, or nil when
// the user may no longer sign in (deactivated, or the provider terminated).
func (s *Service) ResolvePrincipal(ctx context.Context, userID, sessionID int64) (*policies.Principal, error) {
	var row struct {
		ProviderUser
		ProviderStatus Status
	}
	err := s.DB.WithContext(ctx).Table("provider_users").
		Select("provider_users.*, providers.status AS provider_status").
		Joins("JOIN providers ON providers.id = provider_users.provider_id").
		Where("provider_users.id = ?", userID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, errs.Wrap(err, "resolve provider user")
	}
	if !row.Active || row.Pending() || row.ProviderStatus == StatusTerminated {
		return nil, nil
	}
	return row.ProviderUser.Principal(sessionID), nil
}

// Authenticate checks a portal sign-in, throttled per account and per
// client address, and records the attempt.
func (s *Service) Authenticate(ctx context.Context, email, password, addr string) (*ProviderUser, error) {
	email = signin.Email(email)
	db := s.DB.WithContext(ctx)
	attempts := signin.Attempts{Table: "provider_login_attempts", Throttle: s.Throttle, Cost: s.BcryptCost}
	attempt, err := attempts.Begin(db, email, addr, s.now())
	if err != nil {
		return nil, err
	}
	var u ProviderUser
	err = db.Where("lower(email) = ?", email).Take(&u).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.Wrap(err, "find provider user")
	}
	ok := attempt.Check(u.PasswordHash, password) && u.Active
	if ok {
		var statuses []string
		if err := db.Table("providers").Where("id = ?", u.ProviderID).Pluck("status", &statuses).Error; err != nil {
			return nil, errs.Wrap(err, "provider status")
		}
		ok = len(statuses) == 1 && Status(statuses[0]) != StatusTerminated
	}
	now := s.now()
	if err := attempt.Finish(db, ok); err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if err := db.Model(&ProviderUser{}).Where("id = ?", u.ID).Update("last_login_at", now).Error; err != nil {
		return nil, errs.Wrap(err, "record login")
	}
	return &u, nil
}

// FindProviderUsers lists the users of one provider.
func (s *Service) FindProviderUsers(ctx context.Context, providerID int64) ([]ProviderUser, error) {
	var out []ProviderUser
	err := s.DB.WithContext(ctx).Where("provider_id = ?", providerID).Order("lower(name), id").Find(&out).Error
	return out, errs.Wrap(err, "list provider users")
}

// Invite is the input of InviteProviderUser.
type Invite struct {
	Email string
	Name  string
	Role  string
}

// Invitation is a created user and the link that lets them set a password.
type Invitation struct {
	User *ProviderUser
	Link string
}

// InviteProviderUser adds a user to a provider and e-mails them a one-time
// link to set their password.
func (s *Service) InviteProviderUser(ctx context.Context, providerID int64, in Invite) (*Invitation, error) {
	in.Email = strings.ToLower(clean(in.Email, 254))
	in.Name = clean(in.Name, 120)
	var v errs.Validation
	if !validEmail(in.Email) {
		v.Add("email", "email_invalid", "enter a valid e-mail address")
	}
	if in.Name == "" {
		v.Add("name", "name_required", "enter the name")
	}
	if !slices.Contains(ProviderRoles, in.Role) {
		v.Add("role", "role_unknown", "choose a role: administrator, developer or finance")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := s.FindProviderByID(ctx, providerID)
	if err != nil {
		return nil, err
	}
	if !p.Status.Open() {
		return nil, errs.New(errs.Conflict, "provider_closed", "the provider is %s; no users can be invited", errs.Term(p.Status.Label()))
	}
	token := randomToken(32)
	now := s.now()
	exp := now.Add(s.inviteTTL())
	u := &ProviderUser{ProviderID: providerID, Email: in.Email, Name: in.Name, Role: in.Role, Active: true,
		InviteTokenHash: sha(token), InviteExpiresAt: &exp, CreatedAt: now, UpdatedAt: now}
	link := s.link("/portal/invitations/" + token)
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return &errs.Error{Kind: errs.Invalid, Code: "validation_failed", Message: "some fields are invalid",
					Fields: []errs.FieldError{{Field: "email", Code: "email_taken", Message: "this e-mail address already has a portal account"}}}
			}
			return errs.Wrap(err, "create provider user")
		}
		if err := audit.Recordf(ctx, tx, "provider_user.invite", "provider", fmt.Sprint(providerID),
			"invited %s (%s) as %s", u.Email, u.Name, errs.Term(RoleLabel(u.Role))); err != nil {
			return err
		}
		by := policies.ActorOf(ctx, nil).Name
		// The invitee has no language yet: the inviter's is the best guess.
		var lang i18n.Lang
		if me := policies.PrincipalFrom(ctx); me != nil {
			lang, _ = i18n.Parse(me.Lang)
		}
		z, err := jobs.MailLocale(tx, u.Email, lang)
		if err != nil {
			return err
		}
		subject, body := z.Mail("provider_user.invited", "Name", u.Name, "By", by, "Company", p.LegalName,
			"Role", z.T(RoleLabel(u.Role)), "Days", int(s.inviteTTL().Hours()/24), "Link", link)
		return enqueueMail(ctx, tx, "provider_user.invited", u.Email, subject, body, providerID,
			fmt.Sprintf("provider-user-invite-%d", u.ID))
	})
	if err != nil {
		return nil, err
	}
	return &Invitation{User: u, Link: link}, nil
}

// ErrInvitationInvalid covers unknown, used and expired set-password links.
var ErrInvitationInvalid = errs.New(errs.NotFound, "invitation_invalid", "this link is invalid, already used or expired; ask your administrator for a new invitation")

// FindInvitation returns the user a set-password token belongs to.
func (s *Service) FindInvitation(ctx context.Context, token string) (*ProviderUser, error) {
	if len(token) < 20 || len(token) > 100 {
		return nil, ErrInvitationInvalid
	}
	var u ProviderUser
	err := s.DB.WithContext(ctx).Where("invite_token_hash = ? AND invite_expires_at > ? AND active", sha(token), s.now()).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvitationInvalid
	}
	if err != nil {
		return nil, errs.Wrap(err, "find invitation")
	}
	return &u, nil
}

// AcceptInvitation sets the password behind a one-time token and uses the token up.
func (s *Service) AcceptInvitation(ctx context.Context, token, password string) (*ProviderUser, error) {
	u, err := s.FindInvitation(ctx, token)
	if err != nil {
		return nil, err
	}
	var v errs.Validation
	validatePassword(&v, "password", password)
	if err := v.Err(); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.BcryptCost)
	if err != nil {
		return nil, errs.Wrap(err, "hash password")
	}
	ctx = policies.WithPrincipal(ctx, u.Principal(0))
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&ProviderUser{}).Where("id = ? AND invite_token_hash = ?", u.ID, sha(token)).Updates(map[string]any{
			"password_hash": string(hash), "invite_token_hash": nil, "invite_expires_at": nil, "updated_at": s.now()})
		if res.Error != nil {
			return errs.Wrap(res.Error, "set password")
		}
		if res.RowsAffected == 0 {
			return ErrInvitationInvalid // used concurrently
		}
		return audit.Recordf(ctx, tx, "provider_user.password", "provider", fmt.Sprint(u.ProviderID), "%s set a password", u.Email)
	})
	if err != nil {
		return nil, err
	}
	return s.FindProviderUserByID(ctx, u.ID)
}

// SetProviderUserActive activates or deactivates a user of providerID.
// Deactivation ends the user's sessions; nobody deactivates themselves.
func (s *Service) SetProviderUserActive(ctx context.Context, providerID, userID int64, active bool) error {
	if p := policies.PrincipalFrom(ctx); p != nil && p.Kind == policies.KindProvider && p.ID == userID && !active {
		return errs.New(errs.Conflict, "own_deactivation", "you cannot deactivate yourself")
	}
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var u ProviderUser
		if err := tx.Where("provider_id = ? AND id = ?", providerID, userID).Take(&u).Error; err != nil {
			return translate(err, "provider_user")
		}
		if u.Active == active {
			return nil
		}
		if err := tx.Model(&ProviderUser{}).Where("id = ?", u.ID).Updates(map[string]any{"active": active, "updated_at": s.now()}).Error; err != nil {
			return errs.Wrap(err, "update provider user")
		}
		if !active && s.Sessions != nil {
			if err := s.Sessions.DeleteForSubject(ctx, tx, policies.KindProvider, u.ID); err != nil {
				return err
			}
		}
		if active {
			return audit.Recordf(ctx, tx, "provider_user.reactivate", "provider", fmt.Sprint(providerID), "reactivated %s", u.Email)
		}
		return audit.Recordf(ctx, tx, "provider_user.deactivate", "provider", fmt.Sprint(providerID), "deactivated %s", u.Email)
	})
}

// RoleLabel names a provider or staff role.
func RoleLabel(role string) string {
	switch role {
	case RoleProviderAdmin:
		return "Administrator"
	case RoleProviderDeveloper:
		return "Developer"
	case RoleProviderFinance:
		return "Finance"
	}
	return policies.RoleLabel(role)
}
