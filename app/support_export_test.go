package app

import (
	"context"
	"io"
)

// DemoSupportOnly runs the demo steps the support desk's demo builds on
// (staff and providers) and then its own, without the slow vehicle fleet.
func (a *App) DemoSupportOnly(ctx context.Context, out io.Writer) error {
	for _, step := range []func(context.Context, io.Writer) error{a.demoStaff, a.demoOnboarding, a.demoSupport} {
		if err := step(ctx, out); err != nil {
			return err
		}
	}
	return nil
}
