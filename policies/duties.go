package policies

import (
	"slices"

	"cardata/policies/errs"
)

// Separation-of-duties codes; part of the staff forms' field errors and the
// audit trail, so they stay stable.
const (
	CodeSelfGrant         = "sod_self_grant"
	CodeIncompatibleRoles = "sod_incompatible_roles"
)

// RolePair is two staff roles one person may not hold together, and why.
type RolePair struct {
	A, B   string
	Reason string
}

// IncompatibleRoles is the separation-of-duties table. Administrators manage
// accounts and roles but have no billing access on purpose: one person who
// could both create users and book payments or issue credit notes could
// also cover their own tracks. Admin and auditor stay compatible: the
// auditor role is read-only and the audit trail cannot be altered by anyone.
var IncompatibleRoles = []RolePair{
	{A: RoleAdmin, B: RoleFinance, Reason: "administrators have no billing access; give finance work to another person"},
}

// Conflicts returns the incompatible pairs contained in roles, in table order.
func Conflicts(roles []string) []RolePair {
	var out []RolePair
	for _, p := range IncompatibleRoles {
		if slices.Contains(roles, p.A) && slices.Contains(roles, p.B) {
			out = append(out, p)
		}
	}
	return out
}

// CheckRoleChange decides whether actor may give the staff user targetID
// (0 for an account being created) the role set newRoles instead of
// oldRoles. Two rules:
//
//   - nobody adds a role to their own account: an administrator who needs
//     another role asks a second administrator. Dropping one's own roles is
//     allowed (it only reduces power; UpdateUser separately keeps the last
//     administrator from locking themselves out), and so is renaming oneself.
//   - the new set holds no pair of IncompatibleRoles, whoever asks (also the
//     CLI and the demo loader, which act as system principals).
//
// The error is of kind Invalid with a field error on "roles", so forms can
// show it beside the checkboxes.
func CheckRoleChange(actor *Principal, targetID int64, oldRoles, newRoles []string) error {
	var v errs.Validation
	code := ""
	if actor != nil && actor.Kind == KindStaff && targetID != 0 && actor.ID == targetID {
		var added []string
		for _, r := range newRoles {
			if !slices.Contains(oldRoles, r) {
				added = append(added, r)
			}
		}
		switch {
		case len(added) == 1:
			code = CodeSelfGrant
			v.Add("roles", CodeSelfGrant, "you cannot add roles to your own account (%s); ask another administrator", errs.Term(RoleLabel(added[0])))
		case len(added) > 1:
			// the form shows the roles ticked; a list here would stay English
			code = CodeSelfGrant
			v.Add("roles", CodeSelfGrant, "you cannot add roles to your own account; ask another administrator")
		}
	}
	for _, p := range Conflicts(newRoles) {
		if code == "" {
			code = CodeIncompatibleRoles
		}
		v.Add("roles", CodeIncompatibleRoles, "%s and %s cannot be held together: %s",
			errs.Term(RoleLabel(p.A)), errs.Term(RoleLabel(p.B)), errs.Term(p.Reason))
	}
	if code == "" {
		return nil
	}
	return &errs.Error{Kind: errs.Invalid, Code: code, Message: "this role change breaks separation of duties", Fields: v.Fields}
}
