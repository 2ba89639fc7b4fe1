package app_test

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
	tt.App.Fiber.Get("/api/v1/test-slow", func(c *fiber.Ctx) error {
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
	served := make(chan error, 1)
	go func() { served <- tt.App.ServeListener(ctx, ln, nil) }()
	base := "http://" + ln.Addr().String()

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
	time.Sleep(200 * time.Millisecond) // the request is now in flight
	cancel()                           // SIGTERM arrives
	time.Sleep(200 * time.Millisecond)
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("new connections still accepted during shutdown")
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
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not complete")
	}
	select {
	case <-workerStopped:
	default:
		t.Fatal("worker not stopped")
	}
}
