package consent

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
)

// sandboxOpen reports whether a provider in status may use the sandbox:
// registered (before approval) or active.
func sandboxOpen(status string) bool {
	switch status {
	case "submitted", "in_review", "info_requested", "active":
		return true
	}
	return false
}

// SandboxGrants is the simulated customers' rule: a consent request for a
// simulated vehicle whose VIN ends in an odd digit is granted, an even
// digit denied (after SandboxAnswerDelay, by the sandbox job).
func SandboxGrants(vin string) bool {
	if vin == "" {
		return false
	}
	d, err := strconv.Atoi(vin[len(vin)-1:])
	return err == nil && d%2 == 1
}

// SandboxAnswerDelay is how long a simulated customer takes to answer a
// request by the rule ("a moment": the provider sees the request pending
// first, as with a real customer).
const SandboxAnswerDelay = 10 * time.Second

// simulatedCustomer is the principal a simulated customer decides as.
func simulatedCustomer(ctx context.Context, accountID int64) context.Context {
	return policies.WithPrincipal(ctx, &policies.Principal{Kind: policies.KindCustomer, ID: accountID,
		Name: fmt.Sprintf("simulated customer (sandbox account %d)", accountID)})
}

type sandboxRequest struct {
	ID        int64
	VIN       string `gorm:"column:vin"`
	AccountID int64
}

// sandboxRequests are the open requests for simulated vehicles: of
// provider providerID (0: every provider) and, when id is not 0, that one.
func (s *Service) sandboxRequests(tx *gorm.DB, providerID, id int64, before time.Time) ([]sandboxRequest, error) {
	q := `SELECT c.id, c.vin, c.account_id FROM consents c
		JOIN vehicles v ON v.id = c.vehicle_id AND v.sandbox_provider_id = c.provider_id
		JOIN container_versions cv ON cv.id = c.container_version_id AND cv.sandbox
		WHERE c.state = 'requested' AND c.requested_at <= ?`
	args := []any{before}
	if providerID != 0 {
		q += " AND c.provider_id = ?"
		args = append(args, providerID)
	}
	if id != 0 {
		q += " AND c.id = ?"
		args = append(args, id)
	}
	var out []sandboxRequest
	err := tx.Raw(q+" ORDER BY c.id LIMIT 1000", args...).Scan(&out).Error
	return out, errs.Wrap(err, "sandbox requests")
}

// AnswerSandboxRequests lets the simulated customers answer the consent
// requests for simulated vehicles that have waited SandboxAnswerDelay, by
// SandboxGrants. The sandbox job runs it; a request answered meanwhile (by
// the portal's button) is skipped.
func (s *Service) AnswerSandboxRequests(ctx context.Context) (granted, denied int, err error) {
	reqs, err := s.sandboxRequests(s.DB.WithContext(ctx), 0, 0, s.now().Add(-SandboxAnswerDelay))
	if err != nil {
		return 0, 0, err
	}
	for _, r := range reqs {
		grant := SandboxGrants(r.VIN)
		if err := s.answerSandbox(ctx, r, grant); err != nil {
			if errs.KindOf(err) == errs.Conflict {
				continue // answered meanwhile, or the container no longer takes consents
			}
			return granted, denied, err
		}
		if grant {
			granted++
		} else {
			denied++
		}
	}
	return granted, denied, nil
}

// AnswerSandboxRequest is the portal's sandbox button: the simulated
// customer of provider providerID's simulated vehicle grants (or denies)
// consent request consentID at once, whatever the rule says. A consent of
// a real vehicle, or another provider's, is not found.
func (s *Service) AnswerSandboxRequest(ctx context.Context, providerID, consentID int64, grant bool) error {
	reqs, err := s.sandboxRequests(s.DB.WithContext(ctx), providerID, consentID, s.now().Add(time.Hour))
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		return errs.New(errs.NotFound, "consent_not_found", "no open consent request of your sandbox with id %d", consentID)
	}
	return s.answerSandbox(ctx, reqs[0], grant)
}

func (s *Service) answerSandbox(ctx context.Context, r sandboxRequest, grant bool) error {
	cctx := simulatedCustomer(ctx, r.AccountID)
	if grant {
		return s.Grant(cctx, r.AccountID, r.ID, nil)
	}
	return s.Deny(cctx, r.AccountID, r.ID)
}
