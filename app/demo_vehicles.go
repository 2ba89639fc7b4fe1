package app

import (
	"context"
	"io"
)

// demoVehicles loads the vehicles module's demo data.
func (a *App) demoVehicles(ctx context.Context, out io.Writer) error { return nil }
