package billing

import "context"

// Test hooks, compiled only into this package's tests.

// SetBeforeCommit makes every provider transaction of a run call f just
// before it commits; an error rolls that provider back (a crash midway).
func SetBeforeCommit(s *Service, f func(providerID int64) error) { s.beforeCommit = f }

// SetBeforeFinalizeCommit makes Finalize call f after the number was taken.
func SetBeforeFinalizeCommit(s *Service, f func(invoiceID int64) error) { s.beforeFinalizeCommit = f }

// ErrSkip is what invoiceProvider returns when the invoice exists.
var ErrSkip = errSkip

// InvoiceProvider runs one provider's invoice transaction without the
// run's period lock (to prove the database alone keeps one invoice).
func (s *Service) InvoiceProvider(ctx context.Context, providerID int64, period string) (*Invoice, error) {
	p, err := ParsePeriod(period, s.loc())
	if err != nil {
		return nil, err
	}
	pl, err := s.PriceList(ctx)
	if err != nil {
		return nil, err
	}
	return s.invoiceProvider(ctx, nil, providerID, p, pl)
}

// SetBulkMin sets the smallest group of providers counted in one pass
// (1: always in bulk; a large number: always provider by provider).
func SetBulkMin(s *Service, n int) { s.bulkMin = n }
