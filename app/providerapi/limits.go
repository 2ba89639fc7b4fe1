package providerapi

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Limiter is a token bucket per API client: each client may burst up to
// Burst requests and gets Rate tokens back per second.
//
// With Shared set the buckets live in PostgreSQL (api_rate_buckets), one
// per client for all replicas, so a client gets the configured limit however
// many replicas answer it. A replica does not ask the database per request:
// it leases up to a tenth of a second's worth of tokens at a time (at least
// one, at most a quarter of the burst) and spends them locally. Leased
// tokens a replica does not use are simply not spent, so the total never
// exceeds the limit; RateLimit-Remaining is the shared bucket plus the
// replica's lease. If the database cannot be asked, the replica falls back
// to a bucket of its own rather than refusing service.
type Limiter struct {
	Rate   float64 // tokens per second
	Burst  int
	Shared *gorm.DB // nil: buckets in this process only
	Log    *slog.Logger

	mu      sync.Mutex
	buckets map[int64]*bucket
	calls   int
}

type bucket struct {
	tokens float64 // local mode, and the fallback
	at     time.Time
	leased int       // shared mode: tokens leased by this replica, not yet spent
	left   float64   // shared mode: the shared bucket after the last lease
	known  bool      // shared mode: the client's row exists
	seen   time.Time // last Take, so that sweep forgets only idle clients
}

// LimitDecision is the outcome of one Take, with what the headers show.
type LimitDecision struct {
	Allowed           bool
	Limit             int // RateLimit-Limit: the bucket size
	Remaining         int // RateLimit-Remaining: whole requests left now
	ResetSeconds      int // RateLimit-Reset: seconds until the bucket is full again
	RetryAfterSeconds int // Retry-After when refused: seconds until one request is allowed
}

// NewLimiter builds a limiter; rate and burst must be positive.
func NewLimiter(rate float64, burst int) *Limiter {
	return &Limiter{Rate: rate, Burst: burst, buckets: map[int64]*bucket{}}
}

// NewSharedLimiter builds a limiter whose buckets all replicas share
// through db.
func NewSharedLimiter(rate float64, burst int, db *gorm.DB, log *slog.Logger) *Limiter {
	l := NewLimiter(rate, burst)
	l.Shared, l.Log = db, log
	return l
}

// Take spends one token of client's bucket at now when it has one.
func (l *Limiter) Take(ctx context.Context, client int64, now time.Time) LimitDecision {
	if l.Shared == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.takeLocal(l.bucket(client, now), now)
	}
	l.mu.Lock()
	b := l.bucket(client, now)
	if b.leased > 0 {
		b.leased--
		d := l.sharedDecision(b, true)
		l.mu.Unlock()
		return d
	}
	known := b.known
	l.mu.Unlock()
	granted, left, err := l.lease(ctx, client, known)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if l.Log != nil && ctx.Err() == nil {
			l.Log.Warn("shared rate limit unavailable; this replica limits alone", "client", client, "error", err.Error())
		}
		return l.takeLocal(b, now)
	}
	b.known, b.leased, b.left = true, b.leased+granted, left
	if b.leased > 0 {
		b.leased--
		return l.sharedDecision(b, true)
	}
	return l.sharedDecision(b, false)
}

func (l *Limiter) bucket(client int64, now time.Time) *bucket {
	l.calls++
	if l.calls%10000 == 0 {
		l.sweep(now)
	}
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: float64(l.Burst), at: now}
		l.buckets[client] = b
	}
	b.seen = now
	return b
}

// sharedDecision describes the shared bucket as this replica sees it.
func (l *Limiter) sharedDecision(b *bucket, allowed bool) LimitDecision {
	have := b.left + float64(b.leased)
	d := LimitDecision{Allowed: allowed, Limit: l.Burst, Remaining: int(math.Floor(have)),
		ResetSeconds: int(math.Ceil((float64(l.Burst) - have) / l.Rate))}
	if !allowed {
		d.RetryAfterSeconds = max(1, int(math.Ceil((1-b.left)/l.Rate)))
	}
	return d
}

// leaseSQL refills the client's shared bucket by the time since its last
// lease (the database's clock, the same for every replica) and takes up to
// @chunk whole tokens, under the row lock: concurrent leases of two replicas
// queue on it.
const leaseSQL = `WITH cur AS (
    SELECT least(CAST(@burst AS float8), tokens + extract(epoch FROM now() - updated_at) * CAST(@rate AS float8)) AS t
    FROM api_rate_buckets WHERE client_id = @client FOR UPDATE),
g AS (SELECT t, least(CAST(@chunk AS float8), floor(greatest(t, 0))) AS granted FROM cur)
UPDATE api_rate_buckets b SET tokens = g.t - g.granted, updated_at = now()
FROM g WHERE b.client_id = @client
RETURNING g.granted, b.tokens`

func (l *Limiter) lease(ctx context.Context, client int64, known bool) (granted int, left float64, err error) {
	chunk := max(1, min(math.Floor(l.Rate/10), math.Floor(float64(l.Burst)/4)))
	db := l.Shared.WithContext(ctx)
	if !known {
		if err := db.Exec(`INSERT INTO api_rate_buckets (client_id, tokens) VALUES (?, ?) ON CONFLICT (client_id) DO NOTHING`,
			client, float64(l.Burst)).Error; err != nil {
			return 0, 0, err
		}
	}
	var row struct {
		Granted float64
		Tokens  float64
	}
	if err := db.Raw(leaseSQL, map[string]any{"client": client, "burst": float64(l.Burst), "rate": l.Rate, "chunk": chunk}).Scan(&row).Error; err != nil {
		return 0, 0, err
	}
	return int(row.Granted), row.Tokens, nil
}

// takeLocal is the in-process bucket (no Shared, or the fallback).
func (l *Limiter) takeLocal(b *bucket, now time.Time) LimitDecision {
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = math.Min(float64(l.Burst), b.tokens+el*l.Rate)
		b.at = now
	}
	d := LimitDecision{Limit: l.Burst}
	if b.tokens >= 1 {
		b.tokens--
		d.Allowed = true
	} else {
		d.RetryAfterSeconds = max(1, int(math.Ceil((1-b.tokens)/l.Rate)))
	}
	d.Remaining = int(math.Floor(b.tokens))
	d.ResetSeconds = int(math.Ceil((float64(l.Burst) - b.tokens) / l.Rate))
	return d
}

// sweep forgets buckets that have been full for a while.
func (l *Limiter) sweep(now time.Time) {
	full := time.Duration(float64(l.Burst)/l.Rate*float64(time.Second)) + time.Minute
	for id, b := range l.buckets {
		if now.Sub(b.at) > full && now.Sub(b.seen) > full {
			delete(l.buckets, id)
		}
	}
}
