package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is the provider's webhook endpoint: it verifies each push's
// signature, answers a share of them with 500 (a flaky receiver), and while
// paused holds every request without answering (a receiver that hangs)
// until the pause ends or the sender gives up.
type receiver struct {
	srv       *http.Server
	ln        net.Listener
	failShare atomic.Uint64 // math.Float64bits of the share answered 500
	wh        atomic.Pointer[standardwebhooks.Webhook]

	mu       sync.Mutex
	pausedCh chan struct{} // non-nil while paused; closed when the pause ends
	receipts []receipt
	badSig   int
}

// receipt is one push as the receiver saw it.
type receipt struct {
	EventID string
	At      time.Time
	Status  int // what the receiver answered (0: the sender went away first)
}

func newReceiver(failShare float64) (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{ln: ln}
	r.setFailShare(failShare)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) URL() string { return "http://" + r.ln.Addr().String() + "/hooks/cardata" }

func (r *receiver) setSecret(secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	r.wh.Store(wh)
	return nil
}

func (r *receiver) setFailShare(f float64) { r.failShare.Store(uint64(f * 1e6)) }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	id := req.Header.Get("webhook-id")
	rec := receipt{EventID: id, At: time.Now()}
	r.mu.Lock()
	paused := r.pausedCh
	r.mu.Unlock()
	if paused != nil {
		select {
		case <-paused:
			// Back, but this request is not taken: a handler that returned
			// without a status would answer 200.
			rec.Status = http.StatusServiceUnavailable
			w.WriteHeader(rec.Status)
		case <-req.Context().Done(): // the sender gave up: status 0, never answered
		}
		r.record(rec)
		return
	}
	wh := r.wh.Load()
	if err != nil || wh == nil || wh.Verify(body, req.Header) != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		rec.Status = http.StatusUnauthorized
		r.record(rec)
		w.WriteHeader(rec.Status)
		return
	}
	rec.Status = http.StatusOK
	if rand.Float64()*1e6 < float64(r.failShare.Load()) {
		rec.Status = http.StatusInternalServerError
	}
	w.WriteHeader(rec.Status)
	r.record(rec)
}

func (r *receiver) record(rec receipt) {
	r.mu.Lock()
	r.receipts = append(r.receipts, rec)
	r.mu.Unlock()
}

// pause holds every request until resume.
func (r *receiver) pause() {
	r.mu.Lock()
	if r.pausedCh == nil {
		r.pausedCh = make(chan struct{})
	}
	r.mu.Unlock()
}

func (r *receiver) resume() {
	r.mu.Lock()
	if r.pausedCh != nil {
		close(r.pausedCh)
		r.pausedCh = nil
	}
	r.mu.Unlock()
}

func (r *receiver) snapshot() ([]receipt, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receipt(nil), r.receipts...), r.badSig
}

func (r *receiver) close() {
	r.resume()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}
