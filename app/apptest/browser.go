package apptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser starts a fresh headless Chromium for one user of a test and
// returns its context, bounded by BrowserPatience. Without Chromium the
// test is skipped, except with CI=true, where that is a failure (`make
// test` installs it).
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
	browserSlot(t)
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
		// the default 20 s is not enough for a start on a loaded machine
		chromedp.WSURLReadTimeout(BrowserPatience),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, BrowserPatience)
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

// BrowserPatience bounds one browser's work. It only catches a hang: the
// steps wait on the page's own state, never on a time.
const BrowserPatience = 3 * time.Minute

var (
	// One browser test at a time: parallel tests starting several Chromiums
	// at once on a 2-core machine starved each other and the servers they
	// talk to. The slot belongs to the test, not to one browser, so that a
	// test with two users never waits for a second slot (two such tests
	// would wait for each other for ever).
	browserSlots = make(chan struct{}, 1)
	slotMu       sync.Mutex
	slotHolders  = map[testing.TB]bool{}
)

// browserSlot takes the browser slot for t until it ends, once per test.
func browserSlot(t testing.TB) {
	slotMu.Lock()
	held := slotHolders[t]
	slotMu.Unlock()
	if held {
		return
	}
	browserSlots <- struct{}{}
	slotMu.Lock()
	slotHolders[t] = true
	slotMu.Unlock()
	t.Cleanup(func() { // registered first, so it runs after the browsers' own clean-up
		slotMu.Lock()
		delete(slotHolders, t)
		slotMu.Unlock()
		<-browserSlots
	})
}

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
