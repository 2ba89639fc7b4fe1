package providerapi

import (
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket per API client, in this process: each client
// may burst up to Burst requests and gets Rate tokens back per second.
//
// With several replicas behind a load balancer each replica keeps its own
// buckets, so a client may reach up to replicas x Rate in total; the
// headers describe the replica that answered. That is acceptable for the
// one-replica deployment this is built for; a shared limit would move the
// buckets into PostgreSQL (one UPDATE ... RETURNING per request) or a
// gateway in front.
type Limiter struct {
	Rate  float64 // tokens per second
	Burst int

	mu      sync.Mutex
	buckets map[int64]*bucket
	calls   int
}

type bucket struct {
	tokens float64
	at     time.Time
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

// Take spends one token of client's bucket at now when it has one.
func (l *Limiter) Take(client int64, now time.Time) LimitDecision {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%10000 == 0 {
		l.sweep(now)
	}
	b := l.buckets[client]
	if b == nil {
		b = &bucket{tokens: float64(l.Burst), at: now}
		l.buckets[client] = b
	}
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
		if now.Sub(b.at) > full {
			delete(l.buckets, id)
		}
	}
}
