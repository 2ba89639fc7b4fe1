package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"cardata/app/db"
	"cardata/onboarding/catalog"
	"cardata/onboarding/vehicles"
	"cardata/policies/errs"
)

// Limits and defaults.
const (
	MaxSignals       = 50_000
	MaxBodyBytes     = 16 << 20
	DefaultMaxFuture = 5 * time.Minute // clock skew tolerated on reading times
	DefaultRetention = 30 * 24 * time.Hour
)

// oldest plausible reading time; anything earlier is a broken clock.
var oldest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Rejection codes (besides the catalog's value codes and the decoder's).
const (
	CodeFieldMissing    = "field_missing"
	CodeUnknownVIN      = "unknown_vin"
	CodeUnknownKey      = "unknown_key"
	CodeUnitMismatch    = "unit_mismatch"
	CodeTimestamp       = "timestamp_invalid"
	CodeTimestampFuture = "timestamp_in_future"
	CodeTimestampRange  = "timestamp_out_of_range"
)

// Rejection says why one signal was not accepted; Index is its position in
// the request (0-based; for NDJSON the n-th non-blank line).
type Rejection struct {
	Index  int    `json:"index"`
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

// Result is the answer to one batch.
type Result struct {
	Received int         `json:"received"`
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
}

// Options tune the service; zero values take the defaults.
type Options struct {
	MaxFuture time.Duration
	Retention time.Duration
	// MaxWriters bounds the batches written concurrently (each holds a
	// database connection); further batches wait their turn.
	MaxWriters int
}

// Service validates and stores batches.
type Service struct {
	DB      *gorm.DB
	Catalog *catalog.Catalog
	Opts    Options
	Now     func() time.Time // nil: time.Now

	vins    vinCache
	sim     sandboxSim // the providers' simulated fleets (sandbox.go)
	writers chan struct{}
	once    sync.Once
	metrics *metrics
}

// New builds the service.
func New(db *gorm.DB, opts Options) *Service {
	if opts.MaxFuture <= 0 {
		opts.MaxFuture = DefaultMaxFuture
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxWriters <= 0 {
		opts.MaxWriters = 4
	}
	return &Service{DB: db, Catalog: catalog.Default(), Opts: opts}
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

type metrics struct {
	signals *prometheus.CounterVec
	batch   prometheus.Histogram
}

// Register adds the ingest's metrics to reg.
func (s *Service) Register(reg prometheus.Registerer) {
	m := &metrics{
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cardata_ingest_signals_total",
			Help: "Signals received by the ingest, by outcome."}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cardata_ingest_batch_write_seconds",
			Help: "Time to write one accepted batch to the database.", Buckets: prometheus.DefBuckets}),
	}
	reg.MustRegister(m.signals, m.batch)
	s.metrics = m
}

// vinCache maps VINs to vehicle ids. Vehicles are never renumbered, so hits
// stay valid; misses are remembered briefly so a gateway repeating an unknown
// VIN does not query the database for every batch.
type vinCache struct {
	mu     sync.RWMutex
	ids    map[string]int64
	misses map[string]time.Time // VIN -> until when it counts as unknown
}

const missTTL = 30 * time.Second

// WarmVINs loads every registered VIN into the lookup cache, so the first
// batches after a start do not each query the registry. Serve runs it in
// the background; the cache fills lazily without it.
func (s *Service) WarmVINs(ctx context.Context) (int, error) {
	var last int64
	n := 0
	for {
		var rows []struct {
			ID  int64
			VIN string
		}
		if err := s.DB.WithContext(ctx).Raw("SELECT id, vin FROM vehicles WHERE id > ? ORDER BY id LIMIT 50000", last).Scan(&rows).Error; err != nil {
			return n, errs.Wrap(err, "warm VIN cache")
		}
		if len(rows) == 0 {
			return n, nil
		}
		s.vins.mu.Lock()
		if s.vins.ids == nil {
			s.vins.ids, s.vins.misses = map[string]int64{}, map[string]time.Time{}
		}
		for _, r := range rows {
			s.vins.ids[r.VIN] = r.ID
		}
		s.vins.mu.Unlock()
		n += len(rows)
		last = rows[len(rows)-1].ID
	}
}

// resolveVINs fills ids[i] with the vehicle id of signals[i] (0: unknown).
func (s *Service) resolveVINs(ctx context.Context, signals []Signal, ids []int64, now time.Time) error {
	c := &s.vins
	var lookup []string
	seen := map[string]bool{}
	c.mu.RLock()
	for i := range signals {
		vin := signals[i].VIN
		if signals[i].problem != "" || !vehicles.IsVIN(vin) {
			continue
		}
		if id, ok := c.ids[vin]; ok {
			ids[i] = id
			continue
		}
		if until, ok := c.misses[vin]; ok && now.Before(until) {
			continue
		}
		if !seen[vin] {
			seen[vin] = true
			lookup = append(lookup, strings.Clone(vin))
		}
	}
	c.mu.RUnlock()
	if len(lookup) == 0 {
		return nil
	}
	found := make(map[string]int64, len(lookup))
	for start := 0; start < len(lookup); start += 10_000 {
		chunk := lookup[start:min(start+10_000, len(lookup))]
		var rows []struct {
			ID  int64
			VIN string
		}
		if err := s.DB.WithContext(ctx).Raw("SELECT id, vin FROM vehicles WHERE vin IN ?", chunk).Scan(&rows).Error; err != nil {
			return errs.Wrap(err, "resolve VINs")
		}
		for _, r := range rows {
			found[r.VIN] = r.ID
		}
	}
	c.mu.Lock()
	if c.ids == nil {
		c.ids, c.misses = map[string]int64{}, map[string]time.Time{}
	}
	if len(c.misses) > 100_000 {
		clear(c.misses)
	}
	for _, vin := range lookup {
		if id, ok := found[vin]; ok {
			c.ids[vin] = id
			delete(c.misses, vin)
		} else {
			c.misses[vin] = now.Add(missTTL)
		}
	}
	c.mu.Unlock()
	if len(found) == 0 {
		return nil
	}
	for i := range signals {
		if ids[i] == 0 && signals[i].problem == "" {
			ids[i] = found[signals[i].VIN]
		}
	}
	return nil
}

// Ingest validates every signal on its own, stores the accepted ones and
// returns once they are committed.
func (s *Service) Ingest(ctx context.Context, signals []Signal) (*Result, error) {
	now := s.now()
	res := &Result{Received: len(signals), Rejected: []Rejection{}}
	ids := make([]int64, len(signals))
	if err := s.resolveVINs(ctx, signals, ids, now); err != nil {
		return nil, err
	}
	rows := make([]row, 0, len(signals))
	latest := now.Add(s.Opts.MaxFuture)
	for i := range signals {
		sig := &signals[i]
		k, ts, code, reason := s.check(sig, ids[i], latest)
		if code != "" {
			res.Rejected = append(res.Rejected, Rejection{Index: i, Code: code, Reason: reason})
			continue
		}
		r := row{vehicleID: ids[i], keyID: k.ID, readAt: pgMicros(ts), value: sig.Value}
		if k.Pushable {
			r.push = pushOnChange
			if k.IsEvent() {
				r.push = pushAlways
			}
		}
		rows = append(rows, r)
	}
	res.Accepted = len(rows)
	if s.metrics != nil {
		s.metrics.signals.WithLabelValues("accepted").Add(float64(res.Accepted))
		s.metrics.signals.WithLabelValues("rejected").Add(float64(len(res.Rejected)))
	}
	if len(rows) == 0 {
		return res, nil
	}
	if err := s.write(ctx, rows); err != nil {
		return nil, err
	}
	return res, nil
}

// check validates one signal and returns its key and reading time, or the
// rejection code and reason. It allocates only to explain a rejection.
func (s *Service) check(sig *Signal, vehicleID int64, latest time.Time) (*catalog.Key, time.Time, string, string) {
	reject := func(code, reason string) (*catalog.Key, time.Time, string, string) {
		return nil, time.Time{}, code, reason
	}
	if sig.problem != "" {
		return reject(sig.problem, sig.detail)
	}
	for _, f := range []struct {
		bit  uint8
		name string
	}{{hasVIN, "vin"}, {hasKey, "key"}, {hasValue, "value"}, {hasTimestamp, "timestamp"}} {
		if sig.has&f.bit == 0 {
			return reject(CodeFieldMissing, f.name+" is required")
		}
	}
	if vehicleID == 0 {
		if !vehicles.IsVIN(sig.VIN) {
			return reject(CodeUnknownVIN, fmt.Sprintf("%q is not a VIN (17 characters, digits and capital letters except I, O, Q)", clip(sig.VIN)))
		}
		return reject(CodeUnknownVIN, "no vehicle with VIN "+sig.VIN+" is registered")
	}
	k, ok := s.Catalog.Lookup(sig.Key)
	if !ok {
		return reject(CodeUnknownKey, fmt.Sprintf("%q is not a key of the telematics catalog", clip(sig.Key)))
	}
	if sig.has&hasUnit != 0 && sig.Unit != "" && sig.Unit != k.Unit {
		want := k.Unit
		if want == "" {
			want = "no unit"
		}
		return reject(CodeUnitMismatch, fmt.Sprintf("%s is sent in %s, not %q", k.Name, want, clip(sig.Unit)))
	}
	ts, err := time.Parse(time.RFC3339, sig.Timestamp)
	switch {
	case err != nil:
		return reject(CodeTimestamp, fmt.Sprintf("timestamp %q is not RFC 3339 (e.g. 2025-05-01T12:00:00Z)", clip(sig.Timestamp)))
	case ts.After(latest):
		return reject(CodeTimestampFuture, fmt.Sprintf("timestamp %s lies more than %s in the future", ts.UTC().Format(time.RFC3339), s.Opts.MaxFuture))
	case ts.Before(oldest):
		return reject(CodeTimestampRange, "timestamp is before 2000: the vehicle clock is not set")
	}
	if err := k.Validate(sig.Value); err != nil {
		e := errs.As(err)
		return reject(e.Code, e.Message)
	}
	return k, ts, "", ""
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// write commits the rows: COPY into the staging table, then history,
// latest values and events in one transaction. A deadlock is retried; a
// missing history partition is created and the batch retried.
func (s *Service) write(ctx context.Context, rows []row) error {
	s.once.Do(func() { s.writers = make(chan struct{}, s.Opts.MaxWriters) })
	select {
	case s.writers <- struct{}{}:
	case <-ctx.Done():
		return errs.New(errs.Unavailable, "ingest_busy", "the ingest is busy; retry")
	}
	defer func() { <-s.writers }()
	start := time.Now()
	prepareRows(rows)
	bp := copyBufs.Get().(*[]byte)
	data := encodeCopy(*bp, rows)
	defer func() {
		if cap(data) <= 64<<20 {
			*bp = data[:0]
			copyBufs.Put(bp)
		}
	}()
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		err = db.WithPgx(ctx, s.DB, func(c *pgx.Conn) error { return copyAndApply(ctx, c.PgConn(), data, applySQL) })
		var np errNoPartition
		var rt errRetry
		switch {
		case err == nil:
			if s.metrics != nil {
				s.metrics.batch.Observe(time.Since(start).Seconds())
			}
			return nil
		case errors.As(err, &np):
			if _, perr := s.EnsurePartitions(ctx, s.now(), 2); perr != nil {
				return perr
			}
		case errors.As(err, &rt):
			time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
		default:
			return errs.Wrap(err, "ingest write")
		}
	}
	return errs.Wrap(err, "ingest write (retries exhausted)")
}
