package providerapi

import (
	"sync"
	"time"
)

// authFailures throttles failed client authentications at /oauth/token per
// client address: after failureLimit failures within failureWindow the
// address gets 429 with Retry-After until the window has passed, whatever
// it sends. Client secrets are 256-bit random values, so this is about
// load and noise, not guessing; it is per replica (each replica allows the
// limit), which is enough for that.
type authFailures struct {
	mu   sync.Mutex
	byIP map[string]*failWindow
}

type failWindow struct {
	n     int
	since time.Time
}

const (
	failureLimit  = 20
	failureWindow = 10 * time.Minute
)

// blocked reports how long addr must wait, or 0.
func (a *authFailures) blocked(addr string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.byIP[addr]
	if w == nil || now.Sub(w.since) >= failureWindow {
		return 0
	}
	if w.n >= failureLimit {
		return failureWindow - now.Sub(w.since)
	}
	return 0
}

// fail counts a failed authentication from addr.
func (a *authFailures) fail(addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byIP == nil {
		a.byIP = map[string]*failWindow{}
	}
	if len(a.byIP) > 100_000 { // bounded: forget stale windows
		for k, w := range a.byIP {
			if now.Sub(w.since) >= failureWindow {
				delete(a.byIP, k)
			}
		}
	}
	w := a.byIP[addr]
	if w == nil || now.Sub(w.since) >= failureWindow {
		w = &failWindow{since: now}
		a.byIP[addr] = w
	}
	w.n++
}
