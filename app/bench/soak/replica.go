package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"cardata/app/bench"
)

// replica is one `cardata serve` process slot: the same address across
// restarts, a new process (incarnation) each start.
type replica struct {
	name    string
	binary  string
	addr    string
	env     []string
	logPath string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when the current process has exited
	exit  error
	lives []*incarnation
}

// incarnation is one process of a replica and its memory over time.
type incarnation struct {
	pid      int
	started  time.Time
	ended    time.Time
	killed   bool          // by SIGKILL (a fault), not a clean stop
	samples  []rssSample   // VmRSS over time
	peak     int64         // VmHWM, bytes (the kernel's own peak)
	exitErr  string        // how it ended when stopped with SIGTERM
	stopTook time.Duration // SIGTERM to exit
}

type rssSample struct {
	at  time.Time
	rss int64
}

func (r *replica) start(ctx context.Context) error {
	r.mu.Lock()
	if r.cmd != nil {
		r.mu.Unlock()
		return fmt.Errorf("replica %s is running", r.name)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	fmt.Fprintf(logf, "--- soak: start %s at %s\n", r.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.binary, "serve")
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		r.mu.Unlock()
		return err
	}
	inc := &incarnation{pid: cmd.Process.Pid, started: time.Now()}
	done := make(chan struct{})
	r.cmd, r.done = cmd, done
	r.lives = append(r.lives, inc)
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		r.mu.Lock()
		r.exit = err
		inc.ended = time.Now()
		if r.cmd == cmd {
			r.cmd = nil
		}
		r.mu.Unlock()
		close(done)
	}()
	return r.waitReady(ctx, done, 90*time.Second)
}

func (r *replica) waitReady(ctx context.Context, done chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		res, err := client.Get("http://" + r.addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("replica %s exited during start (%v); see %s", r.name, r.exit, r.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("replica %s not ready within %s; see %s", r.name, limit, r.logPath)
}

// current is the running incarnation, or nil.
func (r *replica) current() (*exec.Cmd, *incarnation, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || len(r.lives) == 0 {
		return nil, nil, nil
	}
	return r.cmd, r.lives[len(r.lives)-1], r.done
}

// kill9 kills the process without warning (the fault) and waits for it.
func (r *replica) kill9() error {
	cmd, inc, done := r.current()
	if cmd == nil {
		return fmt.Errorf("replica %s is not running", r.name)
	}
	r.sample() // the last look at its memory
	r.mu.Lock()
	inc.killed = true
	r.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-done
	return nil
}

// stop ends the process gracefully (SIGTERM) and records how that went.
func (r *replica) stop(limit time.Duration) {
	cmd, inc, done := r.current()
	if cmd == nil {
		return
	}
	r.sample()
	t0 := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		r.mu.Lock()
		inc.stopTook = time.Since(t0)
		if r.exit != nil {
			inc.exitErr = r.exit.Error()
		}
		r.mu.Unlock()
	case <-time.After(limit):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		r.mu.Lock()
		inc.exitErr = fmt.Sprintf("did not stop within %s of SIGTERM (killed)", limit)
		r.mu.Unlock()
	}
}

// sample reads the running process's resident and peak memory.
func (r *replica) sample() {
	_, inc, _ := r.current()
	if inc == nil {
		return
	}
	rss, hwm, err := bench.ProcMemory(inc.pid)
	if err != nil {
		return
	}
	r.mu.Lock()
	inc.samples = append(inc.samples, rssSample{at: time.Now(), rss: rss})
	inc.peak = max(inc.peak, hwm)
	r.mu.Unlock()
}

// incarnations returns a copy of the process history.
func (r *replica) incarnations() []incarnation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]incarnation, len(r.lives))
	for i, l := range r.lives {
		out[i] = *l
		out[i].samples = append([]rssSample(nil), l.samples...)
	}
	return out
}
