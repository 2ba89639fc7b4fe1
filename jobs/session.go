package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Session is the one PostgreSQL session that holds every advisory lock of
// a process (the scheduler's job locks, the invoice run's period locks)
// and carries the scheduler's own bookkeeping (claims, heartbeats,
// progress, outcomes).
//
// Why one shared session instead of a connection per run: a run that held
// a pooled connection for its lock and then asked the same pool for more
// (its body, its outcome) could wait for itself. A dozen runs falling due
// at once took the whole pool for their locks and waited for each other
// until their deadlines, and no request got a connection meanwhile
// (issue 15). Here all locks of the process cost one connection together,
// every statement on it is short and bounded (StatementTimeout), and the
// session never waits for the pool while a statement is pending on it; the
// bodies, which need pool connections, hold no connection of their own
// while they wait for one. The pool budget (app/db.PoolBudget) counts this
// session as one connection of the jobs' share.
//
// The connection is taken from DB when a statement or a lock needs it and
// given back as soon as no lock is held, so a process that runs no job
// holds nothing. Statements are serialised; the wait for the session
// honours the caller's context, the statement itself does not (it runs to
// completion within StatementTimeout, so that its outcome is known: an
// INSERT cut off by the caller's cancellation may still have committed).
//
// When the connection breaks (a statement fails and a ping confirms it),
// the session ends, PostgreSQL releases every lock on it, and every Lock
// learns it through Lost: the runs must stop, another replica may start
// them. The next use opens a new session.
//
// Session-level advisory locks are reentrant within a session, so the
// session itself refuses a key this process holds already.
type Session struct {
	DB *sql.DB
	// StatementTimeout bounds every statement on the session (default 10s).
	StatementTimeout time.Duration

	once sync.Once
	gate chan struct{} // one user of the connection at a time; held, it guards the fields below

	conn *sql.Conn
	pid  int32
	gen  uint64 // counts the connections this session has lost
	held map[[2]int32]*Lock
}

// Lock is an advisory lock held on a Session.
type Lock struct {
	PID int32 // the backend holding it (job_runs.lock_pid)

	s     *Session
	key   [2]int32
	gen   uint64
	lost  chan struct{}
	cause error
}

// Lost is closed when the lock is gone: released, or lost with its
// session. Err says why.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Err is why the lock is gone (nil while it is held).
func (l *Lock) Err() error {
	select {
	case <-l.lost:
		return l.cause
	default:
		return nil
	}
}

var errReleased = errors.New("the lock was released")

func (s *Session) init() {
	s.once.Do(func() {
		s.gate = make(chan struct{}, 1)
		s.held = map[[2]int32]*Lock{}
	})
}

func (s *Session) timeout() time.Duration { return orDefault(s.StatementTimeout, 10*time.Second) }

func (s *Session) enter(ctx context.Context) error {
	s.init()
	select {
	case s.gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *Session) leave() { <-s.gate }

// acquire enters the session with a connection in place. It waits for the
// pool outside the gate, so that lock holders (heartbeats, progress) are
// never stuck behind a wait for a connection.
func (s *Session) acquire(ctx context.Context) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	for s.conn == nil {
		s.leave()
		if s.DB == nil {
			return errors.New("jobs: the lock session has no database")
		}
		c, err := s.DB.Conn(ctx)
		if err != nil {
			return err
		}
		if err := s.enter(ctx); err != nil {
			c.Close()
			return err
		}
		if s.conn != nil { // opened by someone else meanwhile
			c.Close()
			break
		}
		var pid int32
		sctx, cancel := context.WithTimeout(context.Background(), s.timeout())
		err = c.QueryRowContext(sctx, "SELECT pg_backend_pid()").Scan(&pid)
		cancel()
		if err != nil {
			discard(c)
			s.leave()
			return err
		}
		s.conn, s.pid = c, pid
	}
	return nil
}

// release leaves the session and gives the connection back to the pool
// when no lock needs it.
func (s *Session) release() {
	if s.conn != nil && len(s.held) == 0 {
		s.conn.Close()
		s.conn = nil
	}
	s.leave()
}

// do runs f on the connection (the gate held) with the statement timeout.
// An error that the connection does not survive ends the session.
func (s *Session) do(f func(ctx context.Context, c *sql.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout())
	defer cancel()
	err := f(ctx, s.conn)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		pctx, pcancel := context.WithTimeout(context.Background(), s.timeout())
		perr := s.conn.PingContext(pctx)
		pcancel()
		if perr != nil {
			s.lose(fmt.Errorf("the session broke: %w", err))
		}
	}
	return err
}

// lose ends the session: its connection is discarded, which ends the
// PostgreSQL session and so every lock on it, and every holder is told.
func (s *Session) lose(cause error) {
	if s.conn != nil {
		discard(s.conn)
		s.conn = nil
	}
	s.gen++
	for k, l := range s.held {
		l.end(cause)
		delete(s.held, k)
	}
}

func (l *Lock) end(cause error) {
	l.cause = cause
	close(l.lost)
}

// TryLock takes the advisory lock (space, key) without waiting. It returns
// nil without an error when the lock is held, by another process or by
// this one. ctx bounds the wait for the session only.
func (s *Session) TryLock(ctx context.Context, space, key int32) (*Lock, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	k := [2]int32{space, key}
	if s.held[k] != nil {
		return nil, nil
	}
	var ok bool
	err := s.do(func(ctx context.Context, c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", space, key).Scan(&ok)
	})
	if err != nil || !ok {
		return nil, err
	}
	l := &Lock{PID: s.pid, s: s, key: k, gen: s.gen, lost: make(chan struct{})}
	s.held[k] = l
	return l, nil
}

// Release unlocks. When unlocking fails the session is discarded, which
// ends it and so the lock.
func (l *Lock) Release() {
	s := l.s
	_ = s.enter(context.Background())
	defer s.release()
	if s.held[l.key] != l {
		return // lost with its session already
	}
	delete(s.held, l.key)
	l.end(errReleased)
	var ok bool
	err := s.do(func(ctx context.Context, c *sql.Conn) error {
		return c.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1, $2)", l.key[0], l.key[1]).Scan(&ok)
	})
	if err == nil && !ok && s.conn != nil {
		s.lose(fmt.Errorf("advisory lock (%d, %d) was not held by the session", l.key[0], l.key[1]))
	}
}

// ErrLockLost is returned by Lock.Exec once the lock is gone.
var ErrLockLost = errors.New("the lock is no longer held")

// Exec runs a statement on the lock's session while the lock is held
// (heartbeats, progress). It never opens a new session: once the lock is
// gone it fails at once with ErrLockLost. So a caller inside a transaction
// of its own (a job body reporting progress) never asks the pool for a
// second connection here.
func (l *Lock) Exec(ctx context.Context, query string, args ...any) error {
	s := l.s
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.release()
	if s.held[l.key] != l || s.conn == nil {
		if c := l.Err(); c != nil && c != errReleased {
			return fmt.Errorf("%w: %w", ErrLockLost, c)
		}
		return ErrLockLost
	}
	return s.do(func(ctx context.Context, c *sql.Conn) error {
		_, err := c.ExecContext(ctx, query, args...)
		return err
	})
}

// Exec runs a statement on the session, opening it if needed. ctx bounds
// the wait for the session; the statement runs within StatementTimeout.
func (s *Session) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	if err := s.acquire(ctx); err != nil {
		return 0, err
	}
	defer s.release()
	var n int64
	err := s.do(func(ctx context.Context, c *sql.Conn) error {
		res, err := c.ExecContext(ctx, query, args...)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	return n, err
}

// QueryInt64s runs a query returning one bigint column on the session.
func (s *Session) QueryInt64s(ctx context.Context, query string, args ...any) ([]int64, error) {
	var out []int64
	err := s.query(ctx, func(rows *sql.Rows) error {
		var v int64
		err := rows.Scan(&v)
		out = append(out, v)
		return err
	}, query, args...)
	return out, err
}

// QueryStrings runs a query returning one text column on the session.
func (s *Session) QueryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	var out []string
	err := s.query(ctx, func(rows *sql.Rows) error {
		var v string
		err := rows.Scan(&v)
		out = append(out, v)
		return err
	}, query, args...)
	return out, err
}

func (s *Session) query(ctx context.Context, scan func(*sql.Rows) error, query string, args ...any) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	return s.do(func(ctx context.Context, c *sql.Conn) error {
		rows, err := c.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
}
