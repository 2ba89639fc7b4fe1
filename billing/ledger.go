package billing

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Delivery kinds.
const (
	KindPull = "pull" // an API response that carried values
	KindPush = "push" // a push the provider's endpoint accepted (2xx)
)

// Delivery is one transfer of data to a provider. It is billable, and it
// is what the customer's transaction report lists.
type Delivery struct {
	ProviderID       int64
	ClientID         int64 // the API client (0 for pushes)
	VIN              string
	ContainerID      int64
	ContainerVersion int
	ConsentID        int64
	Kind             string // KindPull or KindPush
	// KeyIDs are the catalog key ids whose values were sent (a key whose
	// value was null is not among them); required, no duplicates.
	KeyIDs []int16
	// KeysDelivered is len(KeyIDs); left 0 it is filled in.
	KeysDelivered int
	// EventID and EventType name the push event (its id as the receiver saw
	// it, evt_...; its type) a push carried; pushes only.
	EventID   string
	EventType string
	Bytes     int64
	// RequestID identifies the transfer; a second record with the same
	// (provider, kind, request id) is ignored, so retried writes count once.
	// For pushes use the event id plus the endpoint id.
	RequestID string
	At        time.Time // when the data left; zero means now
	// Sandbox: the transfer went to a sandbox client or a sandbox webhook
	// endpoint (a simulated vehicle). It is recorded in sandbox_deliveries,
	// which no invoice run, reconcile, coverage figure or customer report
	// reads: never billed, never mixed with the ledger.
	Sandbox bool
}

// LedgerRecord is a stored delivery.
type LedgerRecord struct {
	ID               int64 `gorm:"primaryKey"`
	ProviderID       int64
	ClientID         *int64
	VIN              string `gorm:"column:vin"`
	ContainerID      int64
	ContainerVersion int
	ConsentID        int64
	Kind             string
	KeysDelivered    int
	// KeyIDs is nil for records written before the ledger named its keys:
	// which keys they carried is unknown (see KeysKnown).
	KeyIDs      sqlarray.Int16s `gorm:"column:key_ids"`
	EventID     *string
	EventType   *string
	Bytes       int64
	RequestID   string
	DeliveredAt time.Time
	RecordedAt  time.Time `gorm:"<-:false"`
	// Filled by LedgerPage (the ledger itself never changes): the invoice,
	// the month the delivery belongs to and its position in that month's count.
	InvoiceID     *int64  `gorm:"->"`
	ServicePeriod *string `gorm:"->"`
	MonthPosition *int64  `gorm:"->"`
}

func (LedgerRecord) TableName() string { return "delivery_ledger" }

// KeysKnown reports whether the record names the keys it delivered
// (records written before the ledger stored keys do not).
func (r LedgerRecord) KeysKnown() bool { return r.KeyIDs != nil }

// ErrNotBillable refuses a delivery that carried no values: rule 13 says a
// request that delivered nothing is not billed, and it transmitted nothing
// the customer's transaction report would have to show.
var ErrNotBillable = errs.New(errs.Invalid, "delivery_not_billable", "a delivery with no values is not recorded (not billable)")

// ErrLedgerUnavailable is what a caller gets when its record could not be
// made durable; the provider API answers 503 and sends no data.
var ErrLedgerUnavailable = errs.New(errs.Unavailable, "ledger_unavailable", "the delivery could not be recorded; no data was sent, try again")

func (d *Delivery) check() error {
	if len(d.KeyIDs) == 0 {
		return ErrNotBillable
	}
	v := &errs.Validation{}
	if d.KeysDelivered == 0 {
		d.KeysDelivered = len(d.KeyIDs)
	}
	if d.KeysDelivered != len(d.KeyIDs) {
		v.Add("keys_delivered", "keys_count_mismatch", "keys_delivered must be the number of key ids")
	}
	seen := make(map[int16]bool, len(d.KeyIDs))
	for _, k := range d.KeyIDs {
		if k <= 0 || seen[k] {
			v.Add("key_ids", "key_ids_invalid", "key ids must be positive catalog ids without duplicates")
			break
		}
		seen[k] = true
	}
	if d.Kind != KindPush && (d.EventID != "" || d.EventType != "") {
		v.Add("event_id", "event_not_push", "only a push names a vehicle event")
	}
	if d.ProviderID <= 0 {
		v.Add("provider_id", "required", "provider id is required")
	}
	if strings.TrimSpace(d.VIN) == "" {
		v.Add("vin", "required", "VIN is required")
	}
	if d.ContainerID <= 0 {
		v.Add("container_id", "required", "container id is required")
	}
	if d.ConsentID <= 0 {
		v.Add("consent_id", "required", "consent id is required")
	}
	if d.Kind != KindPull && d.Kind != KindPush {
		v.Add("kind", "kind_invalid", "kind must be pull or push")
	}
	if d.RequestID == "" {
		v.Add("request_id", "required", "request id is required")
	}
	if d.Bytes < 0 {
		v.Add("bytes", "bytes_invalid", "bytes cannot be negative")
	}
	if d.At.IsZero() {
		d.At = time.Now()
	}
	d.At = d.At.UTC()
	return v.Err()
}

const insertOne = `INSERT INTO delivery_ledger
	(provider_id, client_id, vin, container_id, container_version, consent_id, kind, keys_delivered, bytes, request_id, delivered_at,
	 key_ids, event_id, event_type)
	VALUES (?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::smallint[], NULLIF(?, ''), NULLIF(?, ''))
	ON CONFLICT (provider_id, kind, request_id) DO NOTHING`

// Ledger records deliveries inside a caller's transaction (pushes record the
// delivery in the transaction that marks the attempt as accepted).
type Ledger struct{}

// Record writes d with tx. A duplicate (same provider, kind and request id)
// is ignored and not an error.
func (Ledger) Record(ctx context.Context, tx *gorm.DB, d Delivery) error {
	if err := d.check(); err != nil {
		return err
	}
	if d.Sandbox {
		return recordSandbox(ctx, tx, d)
	}
	err := tx.WithContext(ctx).Exec(insertOne, d.ProviderID, d.ClientID, d.VIN, d.ContainerID, d.ContainerVersion,
		d.ConsentID, d.Kind, d.KeysDelivered, d.Bytes, d.RequestID, d.At, sqlarray.Int16s(d.KeyIDs), d.EventID, d.EventType).Error
	return errs.Wrap(err, "record delivery")
}

const insertSingle = `INSERT INTO delivery_ledger
	(provider_id, client_id, vin, container_id, container_version, consent_id, kind, keys_delivered, bytes, request_id, delivered_at,
	 key_ids, event_id, event_type)
	VALUES ($1, NULLIF($2, 0), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::smallint[], NULLIF($13, ''), NULLIF($14, ''))
	ON CONFLICT (provider_id, kind, request_id) DO NOTHING`

// insertBatch writes many deliveries in one statement (one transaction):
// the arrays are unnested server-side, so the statement text is the same
// for every batch size. unnest flattens a two-dimensional array, so each
// record's key ids travel as an array literal and are cast per row.
const insertBatch = `INSERT INTO delivery_ledger
	(provider_id, client_id, vin, container_id, container_version, consent_id, kind, keys_delivered, bytes, request_id, delivered_at,
	 key_ids, event_id, event_type)
	SELECT p, NULLIF(c, 0), v, ct, cv, cs, k, kd, b, r, a, ki::smallint[], NULLIF(ei, ''), NULLIF(et, '')
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::int[], $6::bigint[], $7::text[], $8::int[], $9::bigint[], $10::text[], $11::timestamptz[],
	            $12::text[], $13::text[], $14::text[])
	     AS t(p, c, v, ct, cv, cs, k, kd, b, r, a, ki, ei, et)
	ON CONFLICT (provider_id, kind, request_id) DO NOTHING`

// WriterOptions tune a LedgerWriter.
type WriterOptions struct {
	// MaxBatch caps the records committed together (default 500).
	MaxBatch int
	// Committers is the number of batches that may commit at the same time
	// (default 2): while one waits for its fsync the next one fills.
	Committers int
	// CommitTimeout bounds one batch's commit (default 5s).
	CommitTimeout time.Duration
}

type ledgerReq struct {
	d    Delivery
	done chan error
}

// LedgerWriter is the grouped-commit writer the provider API uses: many
// concurrent requests hand it their delivery; a committer goroutine takes
// every record waiting, writes them in one transaction and only then
// answers each caller. A caller therefore returns only when its record is
// durable, or with ErrLedgerUnavailable when the commit failed (then none
// of the batch was written, and no caller may send its data).
//
// No timer is involved: a batch is whatever queued up while the previous
// commit was in flight, so a lone request is committed at once and a burst
// shares one fsync.
type LedgerWriter struct {
	gdb     *gorm.DB // sandbox deliveries (recordSandbox)
	db      *sql.DB
	opt     WriterOptions
	reqs    chan ledgerReq
	mu      sync.RWMutex
	closed  bool
	wg      sync.WaitGroup
	OnBatch func(n int, err error) // optional observer (metrics, tests)
}

// NewLedgerWriter starts the committers on gdb's pool. Close stops them.
func NewLedgerWriter(gdb *gorm.DB, opt WriterOptions) (*LedgerWriter, error) {
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 500
	}
	if opt.Committers <= 0 {
		opt.Committers = 2
	}
	if opt.CommitTimeout <= 0 {
		opt.CommitTimeout = 5 * time.Second
	}
	w := &LedgerWriter{gdb: gdb, db: sqlDB, opt: opt, reqs: make(chan ledgerReq, opt.MaxBatch*opt.Committers)}
	for i := 0; i < opt.Committers; i++ {
		w.wg.Add(1)
		go w.loop()
	}
	return w, nil
}

// ErrWriterClosed is returned after Close.
var ErrWriterClosed = errs.New(errs.Unavailable, "ledger_unavailable", "the delivery ledger is shutting down; no data was sent, try again")

// Write records d durably and returns when it is committed. Once the
// record is queued Write waits for the commit even if ctx ends, so that a
// durable record never goes unreported (the commit itself is bounded by
// CommitTimeout).
func (w *LedgerWriter) Write(ctx context.Context, d Delivery) error {
	if err := d.check(); err != nil {
		return err
	}
	if d.Sandbox { // never billed: not through the ledger's committers
		if err := recordSandbox(ctx, w.gdb, d); err != nil {
			return &errs.Error{Kind: errs.Unavailable, Code: "ledger_unavailable", Message: ErrLedgerUnavailable.Message, Err: err}
		}
		return nil
	}
	done := make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrWriterClosed
	}
	select {
	case w.reqs <- ledgerReq{d: d, done: done}:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return &errs.Error{Kind: errs.Unavailable, Code: "ledger_unavailable", Message: ErrLedgerUnavailable.Message, Err: ctx.Err()}
	}
	return <-done
}

// Close stops accepting records, commits what is queued and waits.
func (w *LedgerWriter) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.reqs)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *LedgerWriter) loop() {
	defer w.wg.Done()
	batch := make([]ledgerReq, 0, w.opt.MaxBatch)
	for first := range w.reqs {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < w.opt.MaxBatch {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := w.commit(batch)
		if w.OnBatch != nil {
			w.OnBatch(len(batch), err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (w *LedgerWriter) commit(batch []ledgerReq) error {
	n := len(batch)
	var (
		prov, client, cont, consent, bytes = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		vin, kind, req, keyIDs, evID       = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		evType                             = make([]string, n)
		cver, keys                         = make([]int32, n), make([]int32, n)
		at                                 = make([]time.Time, n)
	)
	for i, r := range batch {
		d := r.d
		prov[i], client[i], vin[i], cont[i], cver[i] = d.ProviderID, d.ClientID, d.VIN, d.ContainerID, int32(d.ContainerVersion)
		consent[i], kind[i], keys[i], bytes[i], req[i], at[i] = d.ConsentID, d.Kind, int32(d.KeysDelivered), d.Bytes, d.RequestID, d.At
		keyIDs[i], evID[i], evType[i] = sqlarray.Int16s(d.KeyIDs).Literal(), d.EventID, d.EventType
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.opt.CommitTimeout)
	defer cancel()
	var err error
	if n == 1 { // a lone request: the plain statement is cheaper than unnesting arrays
		_, err = w.db.ExecContext(ctx, insertSingle, prov[0], client[0], vin[0], cont[0], cver[0], consent[0], kind[0], keys[0], bytes[0], req[0], at[0],
			keyIDs[0], evID[0], evType[0])
	} else {
		_, err = w.db.ExecContext(ctx, insertBatch, prov, client, vin, cont, cver, consent, kind, keys, bytes, req, at, keyIDs, evID, evType)
	}
	if err != nil {
		return &errs.Error{Kind: errs.Unavailable, Code: "ledger_unavailable", Message: ErrLedgerUnavailable.Message, Err: err}
	}
	return nil
}

// IsLedgerUnavailable reports whether err means "not recorded, send nothing".
func IsLedgerUnavailable(err error) bool {
	var e *errs.Error
	return errors.As(err, &e) && e.Code == "ledger_unavailable"
}

// LedgerInsertSQL is the statement that records one delivery ($1..$14:
// provider, client (0 none), VIN, container, version, consent, kind, keys
// delivered, bytes, request id, delivered at, key ids as an array literal,
// event id, event type; "" none), for benchmarks that must run exactly
// what the provider API runs.
func LedgerInsertSQL() string { return insertSingle }
