package staff

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// ExternalSignIn is a person the company's identity provider has signed
// in (a verified ID token, policies/identity), with the cardata roles
// their groups map to.
type ExternalSignIn struct {
	Issuer, Subject string
	Email           string
	EmailVerified   bool
	Name            string
	Groups          []string // the role claim's values, for the audit trail
	Roles           []string // the cardata roles the groups map to
}

// MapRoles returns the cardata roles that groups give under roleMap
// (group -> roles), sorted, each once.
func MapRoles(roleMap map[string][]string, groups []string) []string {
	var out []string
	for _, g := range groups {
		for _, r := range roleMap[g] {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	sort.Strings(out)
	return out
}

// CheckRoleMap reports a role in roleMap that is no staff role.
func CheckRoleMap(roleMap map[string][]string) error {
	for g, roles := range roleMap {
		for _, r := range roles {
			if !policies.IsStaffRole(r) {
				return fmt.Errorf("group %q maps to unknown role %q (known: %s)", g, r, strings.Join(policies.StaffRoles, ", "))
			}
		}
	}
	return nil
}

// Refusals of SignInExternal; the messages are for the person signing in.
var (
	ErrNoMappedRole = errs.New(errs.Forbidden, "oidc_no_role",
		"Your company account is in none of the groups that give access to CarData; ask your administrator")
	ErrDeactivated = errs.New(errs.Forbidden, "staff_user_inactive",
		"Your CarData account is deactivated; ask an administrator")
	ErrIdentityTaken = errs.New(errs.Forbidden, "oidc_email_taken",
		"A CarData account with your e-mail address belongs to another company identity; ask an administrator")
)

// SignInExternal finds or creates the staff account of a person the
// company's identity provider signed in, and makes its roles those their
// groups map to, every time: the provider is the source of truth for
// roles, so a person removed from a group loses the role at the next
// sign-in, and one in no mapped group is refused (their account keeps no
// role and their sessions end). The account is found by (issuer, subject);
// at the first sign-in an existing account with the same e-mail is linked
// when the provider vouches for the address (email_verified), so the local
// account of a person becomes their company sign-in. A role set that
// breaks separation of duties (policies.Conflicts) is refused. Every
// creation, link, role change and refusal is audited.
func (s *Service) SignInExternal(ctx context.Context, in ExternalSignIn) (*User, error) {
	// Changes are made by the sign-in itself, on the provider's word.
	ctx = policies.WithPrincipal(ctx, policies.System("identity provider "+in.Issuer))
	email := normalizeEmail(in.Email)
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		email = ""
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = email
	}
	groups := "[" + strings.Join(in.Groups, ", ") + "]"
	roles := append([]string(nil), in.Roles...)
	sort.Strings(roles)

	if conflicts := policies.Conflicts(roles); len(conflicts) > 0 {
		p := conflicts[0]
		if err := audit.Recordf(ctx, s.DB.WithContext(ctx), "staff_user.roles_refused", "staff_user", "",
			"refused (%s): sign-in of %s (subject %s) with groups %s mapping to roles [%s]", policies.CodeIncompatibleRoles, email, in.Subject, groups, errs.Terms(", ", roles...)); err != nil {
			return nil, err
		}
		return nil, errs.New(errs.Forbidden, policies.CodeIncompatibleRoles,
			"Your company groups give you the roles %s and %s, which cannot be held together: %s. Ask your administrator to change your groups.",
			errs.Term(policies.RoleLabel(p.A)), errs.Term(policies.RoleLabel(p.B)), errs.Term(p.Reason))
	}

	var refusal *errs.Error
	var out *User
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// One sign-in of a subject at a time: two at once must not both
		// create the account.
		if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext('staff_oidc'), hashtext(?))`, in.Issuer+" "+in.Subject).Error; err != nil {
			return errs.Wrap(err, "lock identity")
		}
		var u User
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("oidc_issuer = ? AND oidc_subject = ?", in.Issuer, in.Subject).Take(&u).Error
		found := err == nil
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return errs.Wrap(err, "find staff identity")
		}
		if !found && len(roles) == 0 {
			refusal = ErrNoMappedRole
			return audit.Recordf(ctx, tx, "staff_user.sign_in_refused", "staff_user", "",
				"refused (%s): %s (subject %s) through %s: groups %s give no cardata role", ErrNoMappedRole.Code, email, in.Subject, in.Issuer, groups)
		}
		if !found && email != "" {
			err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("lower(email) = ?", email).Take(&u).Error
			switch {
			case err == nil && (u.OIDCSubject != nil || !in.EmailVerified):
				refusal = ErrIdentityTaken
				return audit.Recordf(ctx, tx, "staff_user.sign_in_refused", "staff_user", fmt.Sprint(u.ID),
					"refused (%s): %s (subject %s) through %s: the account %s is linked to another identity or the provider does not vouch for the address",
					ErrIdentityTaken.Code, email, in.Subject, in.Issuer, u.Email)
			case err == nil:
				found = true
				if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
					"oidc_issuer": in.Issuer, "oidc_subject": in.Subject, "updated_at": time.Now().UTC()}).Error; err != nil {
					return errs.Wrap(err, "link staff identity")
				}
				if err := audit.Recordf(ctx, tx, "staff_user.identity_link", "staff_user", fmt.Sprint(u.ID),
					"%s now signs in through %s as subject %s", u.Email, in.Issuer, in.Subject); err != nil {
					return err
				}
			case !errors.Is(err, gorm.ErrRecordNotFound):
				return errs.Wrap(err, "find staff user")
			}
		}
		if !found {
			if email == "" {
				refusal = errs.New(errs.Forbidden, "oidc_no_email", "Your company account has no e-mail address CarData could use; ask your administrator")
				return audit.Recordf(ctx, tx, "staff_user.sign_in_refused", "staff_user", "",
					"refused (oidc_no_email): subject %s through %s has no usable e-mail address", in.Subject, in.Issuer)
			}
			iss, sub := in.Issuer, in.Subject
			u = User{Email: email, Name: name, Active: true, OIDCIssuer: &iss, OIDCSubject: &sub}
			if err := tx.Create(&u).Error; err != nil {
				return errs.Wrap(err, "create staff user")
			}
			if err := setRoles(tx, u.ID, roles); err != nil {
				return err
			}
			u.Roles = roles
			out = &u
			return audit.Recordf(ctx, tx, "staff_user.create", "staff_user", fmt.Sprint(u.ID),
				"created %s (%s) at the first sign-in through %s (subject %s) with roles %s from groups %s",
				u.Email, u.Name, in.Issuer, in.Subject, errs.Terms(", ", roles...), groups)
		}
		var cur []string
		if err := tx.Model(&userRole{}).Where("user_id = ?", u.ID).Order("role").Pluck("role", &cur).Error; err != nil {
			return errs.Wrap(err, "load roles")
		}
		if !u.Active {
			refusal = ErrDeactivated
			return audit.Recordf(ctx, tx, "staff_user.sign_in_refused", "staff_user", fmt.Sprint(u.ID),
				"refused (%s): %s (subject %s) through %s: the account is deactivated", ErrDeactivated.Code, email, in.Subject, in.Issuer)
		}
		var changes []errs.Phrase
		if !slices.Equal(cur, roles) {
			changes = append(changes, errs.Phrasef("roles [%s] -> [%s] from groups %s", errs.Terms(", ", cur...), errs.Terms(", ", roles...), groups))
			if err := setRoles(tx, u.ID, roles); err != nil {
				return err
			}
			// The old roles must not live on in another session.
			if s.Sessions != nil {
				if err := s.Sessions.DeleteForSubject(ctx, tx, policies.KindStaff, u.ID); err != nil {
					return err
				}
			}
		}
		upd := map[string]any{"last_login_at": time.Now().UTC()}
		if name != "" && name != u.Name {
			changes = append(changes, errs.Phrasef("name %q -> %q", u.Name, name))
			upd["name"] = name
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Updates(upd).Error; err != nil {
			return errs.Wrap(err, "update staff user")
		}
		if len(roles) == 0 {
			refusal = ErrNoMappedRole
			return audit.Recordf(ctx, tx, "staff_user.sign_in_refused", "staff_user", fmt.Sprint(u.ID),
				"refused (%s): %s (subject %s) through %s: groups %s give no cardata role; %s", ErrNoMappedRole.Code, email, in.Subject, in.Issuer, groups, errs.ListOf("; ", changes))
		}
		if len(changes) > 0 {
			if err := audit.Recordf(ctx, tx, "staff_user.update", "staff_user", fmt.Sprint(u.ID),
				"%s at sign-in through %s: %s", u.Email, in.Issuer, errs.ListOf("; ", changes)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if refusal != nil {
		return nil, refusal
	}
	if out != nil {
		return out, nil
	}
	var u User
	if err := s.DB.WithContext(ctx).Where("oidc_issuer = ? AND oidc_subject = ?", in.Issuer, in.Subject).Take(&u).Error; err != nil {
		return nil, errs.Wrap(err, "reload staff user")
	}
	return s.FindByID(ctx, u.ID)
}
