package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is `cardata serve` run by a benchmark as a separate process, so
// that the load generator and the server do not share a Go runtime.
type Server struct {
	Addr   string // host:port it listens on
	cmd    *exec.Cmd
	stderr *limitedWriter
}

// StartServer runs `binary serve` on a free loopback port against the
// database at dsn, logging warnings only, with env added to (and
// overriding) the process's environment, and waits until /readyz answers.
func StartServer(binary, dsn string, env ...string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &limitedWriter{w: &strings.Builder{}, n: 64 << 10}}
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = append(append(os.Environ(), "DATABASE_URL="+dsn, "LISTEN_ADDR="+s.Addr, "LOG_LEVEL=warn"), env...)
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		res, err := http.Get("http://" + s.Addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = s.Stop()
	return nil, fmt.Errorf("server did not become ready: %s", s.stderr.String())
}

// PID is the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// PeakRSS is the server process's peak resident memory so far (VmHWM,
// bytes; 0 when unknown).
func (s *Server) PeakRSS() int64 {
	_, hwm, _ := ProcMemory(s.PID())
	return hwm
}

// Stop sends SIGTERM and waits up to 30 s for the server to exit, then
// kills it.
func (s *Server) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return errors.New("server did not stop within 30s")
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ProcMemory reads a process's resident memory now and at its peak (VmRSS
// and VmHWM, bytes) from /proc/PID/status.
func ProcMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 && hwm == 0 {
		return 0, 0, errors.New("no memory figures")
	}
	return rss, hwm, nil
}

// limitedWriter keeps the first n bytes written (a server's start-up
// errors) and drops the rest.
type limitedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func (l *limitedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
