package app

import (
	"context"
	"io"
)

// demoOnboarding loads the onboarding module's demo data.
func (a *App) demoOnboarding(ctx context.Context, out io.Writer) error { return nil }
