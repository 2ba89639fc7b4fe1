package apptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser starts a fresh headless Chromium for one test and returns its
// context (with a generous timeout). Without Chromium the test is skipped,
// except with CI=true, where that is a failure (`make test` installs it).
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if found, err := exec.LookPath(p); err == nil {
				path = found
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is required for browser tests (CI=true); `make test` installs it")
		}
		t.Skip("Chromium not installed; run `make test` to install it")
	}
	// Not t.TempDir: Chromium's helper processes may still write to the
	// profile for a moment after the browser exits, and a failed RemoveAll
	// would fail the test. The directory is removed on a best-effort basis.
	dir, err := os.MkdirTemp("", "cardata-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-default-browser-check", true), chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
		// a loaded 2-core machine can take longer than the default 20 s to start one
		chromedp.WSURLReadTimeout(60 * time.Second),
	}
	// At most two browsers at a time: parallel tests starting many at once
	// starved each other of CPU until Chromium's start-up timed out.
	browserSlots <- struct{}{}
	t.Cleanup(func() { <-browserSlots }) // runs last: cleanups are LIFO
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		for i := 0; i < 10 && os.RemoveAll(dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

var browserSlots = make(chan struct{}, 2)

// WaitJS polls a JavaScript expression until it is true. Use it after a
// click that navigates: chromedp's selector waits can stay bound to the old
// document, while each evaluation runs in whatever document is loaded now.
func WaitJS(expr string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			if err := chromedp.Evaluate(expr, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", expr, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}
