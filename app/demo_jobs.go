package app

import (
	"context"
	"io"
)

// demoJobs loads the jobs module's demo data.
func (a *App) demoJobs(ctx context.Context, out io.Writer) error { return nil }
