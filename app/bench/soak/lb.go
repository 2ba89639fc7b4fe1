package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// ProxyErrorHeader marks an answer the load balancer made itself (no
// replica answered), so the clients can tell a lost answer from a
// replica's own error.
const ProxyErrorHeader = "X-Soak-Proxy-Error"

// balancer is the load balancer in front of the replicas: round robin over
// the backends whose /readyz answered 200 last time, a health check every
// 250 ms, and a connection that cannot be made is tried on the next
// backend (nothing was sent, so that is safe for every method, as
// HAProxy's retry-on conn-failure). A backend that dies mid-request makes
// that request fail with 502.
type balancer struct {
	backends []*backend
	next     atomic.Uint64
	tr       *http.Transport
	srv      *http.Server
	ln       net.Listener
	stopped  chan struct{}
	wg       sync.WaitGroup
}

type backend struct {
	addr    string
	healthy atomic.Bool
}

func newBalancer(addrs []string) (*balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &balancer{ln: ln, stopped: make(chan struct{}),
		tr: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			// A response header within the replicas' own write timeout.
			ResponseHeaderTimeout: 65 * time.Second,
		}}
	for _, a := range addrs {
		b.backends = append(b.backends, &backend{addr: a})
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "backend" // the transport picks the backend
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport: b,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set(ProxyErrorHeader, err.Error())
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); _ = b.srv.Serve(ln) }()
	go func() { defer b.wg.Done(); b.healthLoop() }()
	return b, nil
}

func (b *balancer) URL() string { return "http://" + b.ln.Addr().String() }

var errNoBackend = errors.New("no healthy replica")

// RoundTrip sends the request to the next healthy backend.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	var lastErr error = errNoBackend
	for range len(b.backends) {
		be := b.pick()
		if be == nil {
			break
		}
		out := req.Clone(req.Context())
		out.URL.Host = be.addr
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		res, err := b.tr.RoundTrip(out)
		var op *net.OpError
		if err != nil && errors.As(err, &op) && op.Op == "dial" {
			be.healthy.Store(false) // refused: nothing was sent, try the next one
			lastErr = err
			continue
		}
		return res, err
	}
	return nil, lastErr
}

func (b *balancer) pick() *backend {
	n := len(b.backends)
	start := int(b.next.Add(1))
	for i := range n {
		be := b.backends[(start+i)%n]
		if be.healthy.Load() {
			return be
		}
	}
	return nil
}

func (b *balancer) healthLoop() {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		for _, be := range b.backends {
			res, err := client.Get("http://" + be.addr + "/readyz")
			ok := err == nil && res.StatusCode == 200
			if err == nil {
				res.Body.Close()
			}
			be.healthy.Store(ok)
		}
		select {
		case <-b.stopped:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// healthyCount is the number of backends answering /readyz.
func (b *balancer) healthyCount() int {
	n := 0
	for _, be := range b.backends {
		if be.healthy.Load() {
			n++
		}
	}
	return n
}

func (b *balancer) close() {
	close(b.stopped)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	b.wg.Wait()
	b.tr.CloseIdleConnections()
}
