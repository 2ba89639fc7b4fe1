package providerapi

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"

	"cardata/app/db"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
)

// The hot path: GET /api/v1/vehicles/{vin}/telematicData costs one SQL
// round trip before the ledger write. The bearer resolver (which runs before
// the route guard) sends sqlRead, which in one statement
//
//   - resolves the token with its client and provider state exactly as
//     Tokens.Resolve does (no row: 401 invalid_token);
//   - gathers the consent module's facts for policies.Decide with
//     consent.FactsSQL itself, the same statement FactsAt sends, so both
//     paths decide on the same facts;
//   - reads the latest values of the container's keys for the vehicle (the
//     keys of the version the facts name, which are f.container_keys).
//
// Nothing is cached between requests: a revoked client, a suspended
// provider or a revoked consent committed before the statement is seen by
// it. The values are read before the guard and the decision have run, but
// they are used only when both allow; otherwise they are dropped. Requests
// the fast path does not recognise (another spelling of the route, a bad
// containerId) take the general path: Tokens.Resolve, then FactsFunc and
// SQLLatestValues in the handler.

// sqlRead is the statement of the fast path. $1 token hash (bytea), $2 now,
// $3 normalized VIN, $4 container id.
var sqlRead = `SELECT tok.client_id, tok.client_key, tok.provider_id, tok.sandbox,
	f.provider_active, f.provider_pending, f.client_active, f.sandbox, f.vehicle_sandbox_of, f.container_sandbox,
	f.vehicle_id, f.brand, f.market, f.telematics_capable, f.sim_active, f.mapped, f.market_supported, f.covers,
	f.consent_id, f.consent_state, f.consent_ends_at, f.version_id, f.version, f.container_state, f.container_keys,
	lv.keys, lv.units, lv.types, lv.vals, lv.read_ats, lv.ids
FROM (SELECT t.client_id, c.client_id AS client_key, t.provider_id, c.sandbox
	FROM api_access_tokens t
	JOIN api_clients c ON c.id = t.client_id AND c.revoked_at IS NULL
	JOIN providers p ON p.id = t.provider_id AND ` + providerAdmits + `
	WHERE t.token_hash = $1 AND t.expires_at > $2) tok
CROSS JOIN LATERAL (` + strings.NewReplacer("@provider", "tok.provider_id", "@client", "tok.client_id", "@vin", "$3::text",
	"@container", "$4::bigint").Replace(strings.Replace(consent.FactsSQL, consent.ClientSandboxSQL, "tok.sandbox", 1)) + `) f
LEFT JOIN LATERAL (SELECT array_agg(k.key) AS keys, array_agg(k.unit) AS units, array_agg(k.data_type) AS types,
		array_agg(l.value) AS vals, array_agg(l.read_at) AS read_ats, array_agg(k.id) AS ids
	FROM container_version_keys ck JOIN catalog_keys k ON k.id = ck.key_id
	JOIN vehicle_latest_values l ON l.key_id = ck.key_id AND l.vehicle_id = f.vehicle_id
	WHERE ck.version_id = f.version_id) lv ON true`

// TelematicReadSQL is the fast path's statement: $1 token hash (bytea),
// $2 now, $3 normalized VIN, $4 container id. The API benchmark runs it as
// the database ceiling's read, so that both sides run the same SQL.
func TelematicReadSQL() string { return sqlRead }

// prefetched is what the fast path found for one request (c.Locals).
type prefetched struct {
	vin         string // normalized
	containerID int64
	facts       ReadFacts
	values      []latestRow
	row         consent.FactsRow // what the statement found; facts are decided from it
}

const localRead = "providerapi.read"

// telematicPath recognises /api/v1/vehicles/{vin}/telematicData with a
// well-formed containerId; anything else takes the general path.
func telematicPath(c *fiber.Ctx) (vin string, containerID int64, ok bool) {
	if c.Method() != fiber.MethodGet {
		return "", 0, false
	}
	rest, found := strings.CutPrefix(c.Path(), "/api/v1/vehicles/")
	if !found {
		return "", 0, false
	}
	vin, found = strings.CutSuffix(rest, "/telematicData")
	if !found || vin == "" || strings.IndexByte(vin, '/') >= 0 {
		return "", 0, false
	}
	containerID, err := strconv.ParseInt(c.Query("containerId"), 10, 64)
	if err != nil || containerID <= 0 {
		return "", 0, false
	}
	return policies.NormalizeVIN(vin), containerID, true
}

// readFast runs sqlRead for one request through the read pipeline (see
// readPipeline). It returns nil without an error when the token is unknown,
// expired or revoked.
func (h *Handler) readFast(ctx context.Context, tok, vin string, containerID int64, now time.Time) (*Caller, *prefetched, error) {
	r := &readReq{hash: tokenSum(tok), now: now, vin: vin, containerID: containerID, done: make(chan readRes, 1)}
	h.reads().submit(h, r)
	select {
	case res := <-r.done:
		if res.err != nil || res.caller == nil {
			return nil, nil, res.err
		}
		f, refs := h.Consents.FactsOf(&res.read.row, now)
		f.ProviderID = res.caller.ProviderID
		res.read.facts = ReadFacts{Facts: f, VehicleID: refs.VehicleID, ContainerVersion: refs.ContainerVersion, ConsentID: refs.ConsentID}
		return res.caller, res.read, nil
	case <-ctx.Done():
		return nil, nil, errs.New(errs.Unavailable, "request_cancelled", "the request ended before it could be served")
	}
}

// readReq is one fast read waiting for, or in, a pipeline batch.
type readReq struct {
	hash        [32]byte
	now         time.Time
	vin         string
	containerID int64
	done        chan readRes // buffered: the batch never blocks on a caller
}

type readRes struct {
	caller *Caller
	read   *prefetched
	err    error
}

// readPipeline batches concurrent fast reads: a request joins the queue,
// and whoever holds one of the few leader slots sends everything queued
// (up to maxReadBatch) as one pipelined batch on one connection: one write
// and one wake-up of one PostgreSQL backend for many statements instead of
// one each, which was most of the server's and much of PostgreSQL's time
// (loopback TCP) per read. Every statement is still the whole sqlRead with
// the request's own token, facts and values; each runs in its own snapshot
// (READ COMMITTED), so nothing is shared or cached between requests. A lone
// request is sent at once: it becomes the leader of a batch of one.
type readPipeline struct {
	mu     sync.Mutex
	queue  []*readReq
	leader chan struct{} // slots: at most cap(leader) batches in PostgreSQL at once

	// The leaders' lifetime: Close cancels ctx (a batch in PostgreSQL is
	// abandoned, its requests answered with an error) and waits for them
	// (wg); once closed, no leader starts and a new request is refused.
	ctx     context.Context
	cancel  context.CancelFunc
	closed  bool
	leaders sync.WaitGroup
}

// errReadsClosed answers a read that arrives after Close.
var errReadsClosed = errs.New(errs.Unavailable, "shutting_down", "the server is shutting down; try again")

// Close stops the fast-read leaders and waits until each has returned. The
// app calls it at shutdown, once the in-flight requests have been served.
func (h *Handler) Close() { h.reads().close() }

func (p *readPipeline) close() {
	p.mu.Lock()
	p.closed = true
	p.cancel()
	p.mu.Unlock()
	p.leaders.Wait()
}

const maxReadBatch = 16

func (h *Handler) reads() *readPipeline {
	h.readOnce.Do(func() {
		n := h.ReadConcurrency
		if n <= 0 {
			n = 2 * runtime.GOMAXPROCS(0)
		}
		ctx, cancel := context.WithCancel(context.Background())
		h.readPipe = &readPipeline{leader: make(chan struct{}, n), ctx: ctx, cancel: cancel}
	})
	return h.readPipe
}

// submit queues r and, when a leader slot is free, starts a leader. A
// leader runs in its own goroutine, so no request waits for batches other
// than its own; it sends batches until the queue is empty, gives its slot
// back and looks at the queue once more, so no request is left behind by a
// leader that was just finishing.
func (p *readPipeline) submit(h *Handler, r *readReq) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		r.done <- readRes{err: errReadsClosed}
		return
	}
	p.queue = append(p.queue, r)
	p.mu.Unlock()
	p.startLeader(h)
}

func (p *readPipeline) startLeader(h *Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		// No leader starts any more: what is queued is refused (a leader
		// would only have answered it with its cancelled context's error).
		for _, r := range p.queue {
			r.done <- readRes{err: errReadsClosed}
		}
		p.queue = nil
		return
	}
	select {
	case p.leader <- struct{}{}:
		p.leaders.Add(1)
		go p.lead(h)
	default: // every slot is taken; their leaders will look at the queue
	}
}

func (p *readPipeline) lead(h *Handler) {
	defer p.leaders.Done()
	for {
		p.mu.Lock()
		n := min(len(p.queue), maxReadBatch)
		batch := make([]*readReq, n)
		copy(batch, p.queue)
		p.queue = append(p.queue[:0], p.queue[n:]...)
		p.mu.Unlock()
		if n == 0 {
			break
		}
		ctx, cancel := context.WithTimeout(p.ctx, readBatchTimeout)
		h.runReadBatch(ctx, batch)
		cancel()
	}
	<-p.leader
	p.mu.Lock()
	waiting := len(p.queue) > 0
	p.mu.Unlock()
	if waiting {
		p.startLeader(h)
	}
}

// readBatchTimeout bounds one batch (a dead connection must not hold its
// requests forever); a request's own context ends its wait sooner.
const readBatchTimeout = 30 * time.Second

// runReadBatch sends the batch pipelined on one pgx connection and answers
// each request as its result arrives. A failure in the pipeline (which
// aborts the statements after it) is retried statement by statement, so a
// request gets its own error only.
func (h *Handler) runReadBatch(ctx context.Context, batch []*readReq) {
	answered := 0
	err := db.WithPgx(ctx, h.DB, func(pc *pgx.Conn) error {
		b := &pgx.Batch{}
		for _, r := range batch {
			b.Queue(sqlRead, r.hash[:], r.now, r.vin, r.containerID)
		}
		br := pc.SendBatch(ctx, b)
		for _, r := range batch {
			rows, err := br.Query()
			if err != nil {
				br.Close()
				return err
			}
			cl, pf, err := scanRead(rows, r)
			if err != nil {
				br.Close()
				return err
			}
			r.done <- readRes{caller: cl, read: pf}
			answered++
		}
		return br.Close()
	})
	if err == nil || answered == len(batch) {
		return
	}
	for _, r := range batch[answered:] {
		var cl *Caller
		var pf *prefetched
		err := db.WithPgx(ctx, h.DB, func(pc *pgx.Conn) error {
			rows, err := pc.Query(ctx, sqlRead, r.hash[:], r.now, r.vin, r.containerID)
			if err != nil {
				return err
			}
			cl, pf, err = scanRead(rows, r)
			return err
		})
		if err != nil {
			r.done <- readRes{err: errs.Wrap(err, "telematic read")}
			continue
		}
		r.done <- readRes{caller: cl, read: pf}
	}
}

// scanRead reads sqlRead's one row (none: the token is not valid) and
// closes rows.
func scanRead(rows pgx.Rows, r *readReq) (*Caller, *prefetched, error) {
	defer rows.Close()
	var (
		cl                       Caller
		f                        consent.FactsRow
		keys, units, types, vals []string
		readAts                  []time.Time
		ids                      []int16
	)
	if !rows.Next() {
		return nil, nil, rows.Err()
	}
	if err := rows.Scan(&cl.ClientID, &cl.ClientKey, &cl.ProviderID, &cl.Sandbox,
		&f.ProviderActive, &f.ProviderPending, &f.ClientActive, &f.Sandbox, &f.VehicleSandboxOf, &f.ContainerSandbox,
		&f.VehicleID, &f.Brand, &f.Market, &f.TelematicsCapable, &f.SIMActive, &f.Mapped, &f.MarketSupported, &f.Covers,
		&f.ConsentID, &f.ConsentState, &f.ConsentEndsAt, &f.VersionID, &f.Version, &f.ContainerState, &f.ContainerKeys,
		&keys, &units, &types, &vals, &readAts, &ids); err != nil {
		return nil, nil, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	pf := &prefetched{vin: r.vin, containerID: r.containerID, row: f}
	if len(keys) > 0 && len(units) == len(keys) && len(types) == len(keys) && len(vals) == len(keys) && len(readAts) == len(keys) && len(ids) == len(keys) {
		pf.values = make([]latestRow, len(keys))
		for i := range keys {
			pf.values[i] = latestRow{ID: ids[i], Key: keys[i], Unit: units[i], DataType: types[i], Value: vals[i], ReadAt: readAts[i]}
		}
	}
	return &cl, pf, nil
}

// fastBearer is Bearer for a recognised telematicData read: the token, the
// facts and the values in one round trip. It reports false when the
// request is not one (the caller then resolves the token the general way).
func (h *Handler) fastBearer(c *fiber.Ctx, tok string) (bool, error) {
	if h.Consents == nil || h.Facts == nil {
		return false, nil
	}
	vin, containerID, ok := telematicPath(c)
	if !ok {
		return false, nil
	}
	cl, pf, err := h.readFast(c.UserContext(), tok, vin, containerID, h.now())
	if err != nil {
		return true, err
	}
	if cl == nil {
		return true, invalidToken(c)
	}
	c.Locals(localRead, pf)
	return true, h.admit(c, cl)
}

// takePrefetched returns the fast path's read when it is for vin and
// containerID (normalized as the handler does).
func takePrefetched(c *fiber.Ctx, vin string, containerID int64) *prefetched {
	pf, _ := c.Locals(localRead).(*prefetched)
	if pf == nil || pf.containerID != containerID || pf.vin != policies.NormalizeVIN(vin) {
		return nil
	}
	return pf
}

// appendTelematicData encodes a TelematicData answer the way encoding/json
// does (keys sorted, HTML-safe strings, RFC 3339 timestamps) without
// reflection: every key of the container, null for a key never received.
func appendTelematicData(b []byte, vin string, containerID int64, keys []string, values []latestRow) []byte {
	b = append(b, `{"vin":`...)
	b = appendJSONString(b, vin)
	b = append(b, `,"containerId":`...)
	b = strconv.AppendInt(b, containerID, 10)
	b = append(b, `,"telematicData":{`...)
	sorted := keys
	if !sortedStrings(keys) {
		sorted = append([]string(nil), keys...)
		insertionSort(sorted)
	}
	for i, k := range sorted {
		if i > 0 && k == sorted[i-1] {
			continue // a map holds a key once
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var v *latestRow
		for j := range values {
			if values[j].Key == k {
				v = &values[j]
			}
		}
		if v == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, `{"value":`...)
		b = appendValue(b, v.DataType, v.Value)
		b = append(b, `,"unit":`...)
		if v.Unit == "" {
			b = append(b, "null"...)
		} else {
			b = appendJSONString(b, v.Unit)
		}
		b = append(b, `,"timestamp":"`...)
		b = v.ReadAt.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `"}`...)
	}
	return append(b, "}}"...)
}

// appendValue writes a value typed by its catalog data type, as
// webhooks.TypedValue does; text that is not valid for its type is a string.
func appendValue(b []byte, dataType, text string) []byte {
	switch dataType {
	case "integer", "decimal":
		if jsonNumber(text) {
			return append(b, text...)
		}
	case "boolean":
		if v, err := strconv.ParseBool(text); err == nil {
			return strconv.AppendBool(b, v)
		}
	case "json":
		raw := webhooks.TypedValue(dataType, text)
		if len(raw) > 0 && raw[0] != '"' {
			var compact, safe bytes.Buffer
			if json.Compact(&compact, raw) == nil {
				json.HTMLEscape(&safe, compact.Bytes())
				return append(b, safe.Bytes()...)
			}
		}
	}
	return appendJSONString(b, text)
}

// jsonNumber reports whether s is a JSON number (RFC 8259 grammar).
func jsonNumber(s string) bool {
	i, n := 0, len(s)
	if i < n && s[i] == '-' {
		i++
	}
	switch {
	case i < n && s[i] == '0':
		i++
	case i < n && s[i] >= '1' && s[i] <= '9':
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < n && s[i] == '.' {
		i++
		if i >= n || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < n && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= n || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < n && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == n
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping:
// <, > and & as \u00XX, U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			return false
		}
	}
	return true
}

func insertionSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
