package apptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Browser gives one user of a test a browser of their own and returns its
// context, bounded by BrowserPatience: a new browser context (its own
// cookies, storage and cache, like a fresh profile) and tab in the headless
// Chromium this test binary shares, started at the first call (CloseBrowser
// ends it). Without Chromium the test is skipped, except with CI=true, where
// that is a failure (`make test` installs it).
func Browser(t testing.TB) context.Context {
	t.Helper()
	return browser(t, BrowserPatience)
}

// BrowserForSteps is Browser for a user who goes through many independent
// steps (a crawl of every page): the user's browser has no bound of its
// own, since the number of steps times a busy machine's pace has none;
// each step is bounded instead, by the context Step gives.
func BrowserForSteps(t testing.TB) context.Context {
	t.Helper()
	return browser(t, 0)
}

// Step bounds one step of a BrowserForSteps user by BrowserPatience (it
// only catches a hang). Cancelling it does not close the user's tab.
func Step(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, BrowserPatience)
}

// browser opens a user's browser, bounded by patience (0: by the test).
func browser(t testing.TB, patience time.Duration) context.Context {
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
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var bctx context.Context
		if bctx, err = chromium.get(path); err != nil {
			continue
		}
		var ctx context.Context
		if ctx, err = newUser(t, bctx, patience); err != nil {
			// The shared browser may have died: start another one.
			chromium.stop(bctx)
			continue
		}
		return ctx
	}
	t.Fatalf("start chromium: %v", err)
	return nil
}

// newUser opens a tab in a new browser context of the browser behind bctx,
// both closed when t ends. The tab is a window of its own (newWindow):
// Chromium opens no tab in a browser context that has no window yet.
func newUser(t testing.TB, bctx context.Context, patience time.Duration) (context.Context, error) {
	start, cancelStart := context.WithTimeout(bctx, BrowserPatience)
	defer cancelStart()
	exec := cdp.WithExecutor(start, chromedp.FromContext(bctx).Browser)
	id, err := target.CreateBrowserContext().Do(exec)
	if err != nil {
		return nil, err
	}
	dispose := func() {
		end, cancel := context.WithTimeout(bctx, BrowserPatience)
		defer cancel()
		_ = target.DisposeBrowserContext(id).Do(cdp.WithExecutor(end, chromedp.FromContext(bctx).Browser))
	}
	tab, err := target.CreateTarget("about:blank").WithBrowserContextID(id).WithNewWindow(true).Do(exec)
	if err != nil {
		dispose()
		return nil, err
	}
	ctx, cancelCtx := chromedp.NewContext(bctx, chromedp.WithTargetID(tab))
	cancelTimeout := func() {}
	if patience > 0 {
		ctx, cancelTimeout = context.WithTimeout(ctx, patience)
	}
	// The first Run attaches the tab and keeps serving it for as long as
	// ctx lives, so it runs on ctx itself; BrowserPatience bounds the wait.
	attached := make(chan error, 1)
	go func() { attached <- chromedp.Run(ctx) }()
	select {
	case err = <-attached:
	case <-time.After(BrowserPatience):
		err = fmt.Errorf("the tab did not open within %s", BrowserPatience)
	}
	if err != nil {
		cancelTimeout()
		cancelCtx()
		dispose()
		return nil, err
	}
	chromedp.FromContext(ctx).BrowserContextID = id // for calls that name it (browser.SetPermission)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx() // closes the tab
		dispose()   // and forgets the user's cookies and storage
	})
	return ctx, nil
}

// chromium is the headless browser the tests of one binary share: a start
// costs seconds of CPU on a small machine, a new browser context almost
// nothing.
var chromium sharedBrowser

type sharedBrowser struct {
	mu     sync.Mutex
	ctx    context.Context // the browser's first tab
	cancel func()
	dir    string
}

// get returns the running browser's context, starting the browser first
// when there is none.
func (b *sharedBrowser) get(path string) (context.Context, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx != nil && b.ctx.Err() == nil {
		return b.ctx, nil
	}
	b.closeLocked()
	// Not t.TempDir: the browser outlives every test, and Chromium's helper
	// processes may still write to the profile for a moment after it exits.
	dir, err := os.MkdirTemp("", "cardata-chromium-")
	if err != nil {
		return nil, err
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
	b.ctx, b.dir = ctx, dir
	b.cancel = func() { cancelCtx(); cancelAlloc() }
	start, cancelStart := context.WithTimeout(context.Background(), BrowserPatience)
	defer cancelStart()
	errc := make(chan error, 1)
	go func() { errc <- chromedp.Run(ctx) }()
	select {
	case err = <-errc:
	case <-start.Done():
		err = fmt.Errorf("chromium did not start within %s", BrowserPatience)
	}
	if err != nil {
		b.closeLocked()
		return nil, err
	}
	return ctx, nil
}

// stop ends the browser behind ctx if it is still the shared one.
func (b *sharedBrowser) stop(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == ctx {
		b.closeLocked()
	}
}

func (b *sharedBrowser) closeLocked() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.dir != "" {
		for i := 0; i < 10 && os.RemoveAll(b.dir) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.ctx, b.cancel, b.dir = nil, nil, ""
}

// CloseBrowser ends the shared browser (a test binary's TestMain calls it
// after the tests; without it the browser dies with the test process).
func CloseBrowser() {
	chromium.mu.Lock()
	defer chromium.mu.Unlock()
	chromium.closeLocked()
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
