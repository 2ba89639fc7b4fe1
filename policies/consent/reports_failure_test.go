package consent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"cardata/policies/errs"
)

// A report build failure is retried only when it may pass (connection,
// timeout, shutdown, serialization); one of the report itself is final.
func TestTransientReportFailures(t *testing.T) {
	cases := []struct {
		err       error
		transient bool
	}{
		{errs.Wrap(&pgconn.PgError{Code: "08006"}, "report values"), true},  // connection failure
		{errs.Wrap(&pgconn.PgError{Code: "57P01"}, "report values"), true},  // admin shutdown
		{errs.Wrap(&pgconn.PgError{Code: "40001"}, "store report"), true},   // serialization failure
		{errs.Wrap(&pgconn.PgError{Code: "22023"}, "store report"), false},  // the data is refused
		{errs.Wrap(&pgconn.PgError{Code: "54000"}, "store report"), false},  // too large
		{errs.Wrap(fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "x"), true}, // connection cut
		{errs.Wrap(context.DeadlineExceeded, "report values"), true},
		{ErrCustomerNotFound, false}, // the account is gone
		{errs.Wrap(errors.New("template: no such field"), "render"), false},
	}
	for _, tc := range cases {
		if got := transientFailure(tc.err); got != tc.transient {
			t.Errorf("%v: transient %v, want %v", tc.err, got, tc.transient)
		}
	}
}
