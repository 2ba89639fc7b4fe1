package onboarding

import (
	"context"
	"errors"
	"slices"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
)

// ClaimLimit caps one bulk claim.
const ClaimLimit = 200

// ClaimOutcome is one application of a bulk claim and what became of it.
type ClaimOutcome struct {
	ID     int64
	Name   string
	Reason string // why it was skipped or refused: a message id, with By
	By     string // who claimed it before
}

// ClaimResult lists what ClaimMany did: claimed, skipped (already the
// caller's) and refused (claimed by someone else, or not waiting).
type ClaimResult struct {
	Claimed, Skipped, Refused []ClaimOutcome
}

// ClaimMany claims the given applications for the signed-in partner
// manager, each through the single claim (Review with ActionClaim: its own
// transaction, event, audit entry and e-mail), so the same rules hold. An
// application someone else claimed meanwhile is refused and named, never
// taken over; one already the caller's is skipped.
func (s *Service) ClaimMany(ctx context.Context, ids []int64) (*ClaimResult, error) {
	p := policies.PrincipalFrom(ctx)
	if p == nil || p.Kind != policies.KindStaff {
		return nil, errs.New(errs.Forbidden, "staff_only", "only partner managers review providers")
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil, errs.New(errs.BadRequest, "nothing_selected", "select at least one application")
	}
	if len(ids) > ClaimLimit {
		return nil, errs.New(errs.BadRequest, "too_many_selected", "select at most %d applications at once", ClaimLimit)
	}
	res := &ClaimResult{}
	for _, id := range ids {
		cur, err := s.reviewState(ctx, id)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return nil, err
			}
			res.Refused = append(res.Refused, ClaimOutcome{ID: id, Reason: "no such application"})
			continue
		}
		out := ClaimOutcome{ID: id, Name: cur.LegalName}
		if why, skip, refuse := claimStanding(cur, p.ID); skip || refuse {
			out.Reason, out.By = why, cur.ReviewerName
			if skip {
				res.Skipped = append(res.Skipped, out)
			} else {
				res.Refused = append(res.Refused, out)
			}
			continue
		}
		if _, err := s.Review(ctx, id, ActionClaim, ""); err != nil {
			if errs.KindOf(err) == errs.Internal {
				return nil, err
			}
			out.Reason = errs.As(err).Message
			if now, ferr := s.reviewState(ctx, id); ferr == nil { // claimed meanwhile: say by whom
				if why, _, refuse := claimStanding(now, p.ID); refuse || why != "" {
					out.Reason, out.By = why, now.ReviewerName
				}
			}
			res.Refused = append(res.Refused, out)
			continue
		}
		res.Claimed = append(res.Claimed, out)
	}
	return res, nil
}

// reviewState is the application's status and reviewer (with the name).
func (s *Service) reviewState(ctx context.Context, id int64) (*Provider, error) {
	var p Provider
	err := s.DB.WithContext(ctx).Table("providers").
		Select("providers.*, COALESCE(NULLIF(staff_users.name, ''), staff_users.email, '') AS reviewer_name").
		Joins("LEFT JOIN staff_users ON staff_users.id = providers.reviewer_id").
		Where("providers.id = ?", id).Take(&p).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrProviderNotFound
		}
		return nil, errs.Wrap(err, "review state")
	}
	return &p, nil
}

// claimStanding says whether claiming p as staff me is skipped (already
// mine) or refused (someone else's, or not waiting for a claim), and why.
func claimStanding(p *Provider, me int64) (why string, skip, refuse bool) {
	switch {
	case p.Status == StatusSubmitted:
		return "", false, false
	case p.Status == StatusInReview && p.ReviewerID != nil && *p.ReviewerID == me:
		return "already yours", true, false
	case p.Status == StatusInReview && p.ReviewerName != "":
		return "already claimed by {{.By}}", false, true
	}
	return "not waiting for a claim", false, true
}
