package billing

import (
	"context"

	"cardata/policies/errs"
)

// InvoiceByNumber finds a provider's invoice or credit note by its printed
// number, in any status (support tickets link to it); id 0 when there is
// none for that provider.
func (s *Service) InvoiceByNumber(ctx context.Context, providerID int64, number string) (id int64, status string, err error) {
	var inv struct {
		ID     int64
		Status string
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT id, status FROM invoices WHERE number = ? AND provider_id = ? LIMIT 1`, number, providerID).
		Scan(&inv).Error; err != nil {
		return 0, "", errs.Wrap(err, "resolve invoice link")
	}
	return inv.ID, inv.Status, nil
}
