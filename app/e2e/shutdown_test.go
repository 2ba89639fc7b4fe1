package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/apptest"
)

// On shutdown the server stops accepting, lets the in-flight request finish,
// and stops background workers, within the configured bound.
func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	tt.App.Fiber.Get("/api/v1/test-slow", func(c *fiber.Ctx) error {
		close(entered)
		<-release
		return c.SendString("finished")
	})
	tt.App.Access.Public("GET", "/api/v1/test-slow")
	workerStopped := make(chan struct{})
	tt.App.AddWorker(func(ctx context.Context) { <-ctx.Done(); close(workerStopped) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- tt.App.ServeListener(ctx, ln, nil) }()
	base := "http://" + ln.Addr().String()
	apptest.WaitServing(t, base)

	got := make(chan string, 1)
	go func() {
		res, err := http.Get(base + "/api/v1/test-slow")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got <- string(b)
	}()
	select {
	case <-entered: // the request is in flight
	case <-time.After(apptest.Patience):
		t.Fatal("the slow request never reached its handler")
	}
	cancel() // SIGTERM arrives
	// While the in-flight request holds the shutdown open, the listener closes.
	apptest.WaitFor(t, apptest.Patience, "new connections to be refused during shutdown", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-served:
		t.Fatalf("shutdown finished before the in-flight request did: %v", err)
	default:
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Fatalf("in-flight request: %q", body)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(apptest.ShutdownTimeout + time.Minute):
		t.Fatal("shutdown did not complete")
	}
	select {
	case <-workerStopped:
	default:
		t.Fatal("worker not stopped")
	}
}

// A shutdown that comes before the server has begun to accept still closes
// the listener: nothing keeps serving after ServeListener returned.
func TestShutdownBeforeServingClosesTheListener(t *testing.T) {
	t.Parallel()
	tt := apptest.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tt.App.ServeListener(ctx, ln, nil); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener still accepts after ServeListener returned")
	}
}
