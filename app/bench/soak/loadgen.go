package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"cardata/app/bench"
	"cardata/app/ingest"
	"cardata/app/providerapi"
)

// surface counts one kind of request: answers by class and the latency of
// the successful ones.
type surface struct {
	mu        sync.Mutex
	name      string
	ok        int
	replyErr  map[int]int // a replica answered with this status
	noAnswer  int         // no replica answered (connection lost, proxy 502, timeout)
	latencies []time.Duration
	units     int64 // signals for the ingest, events for pushes
}

func newSurface(name string) *surface { return &surface{name: name, replyErr: map[int]int{}} }

func (s *surface) add(status int, proxied bool, err error, took time.Duration, units int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil || proxied:
		s.noAnswer++
	case status >= 200 && status < 300:
		s.ok++
		s.latencies = append(s.latencies, took)
		s.units += int64(units)
	default:
		s.replyErr[status]++
	}
}

// summary is one line of the load table.
type summary struct {
	Name                    string
	OK, ReplyErrs, NoAnswer int
	Codes                   string
	Rate, UnitRate          float64
	P50, P99, Max           time.Duration
}

func (s *surface) summary(secs float64) summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat := bench.Percentiles(slices.Clone(s.latencies))
	sum := summary{Name: s.name, OK: s.ok, NoAnswer: s.noAnswer, Rate: float64(s.ok) / secs, UnitRate: float64(s.units) / secs}
	codes := make([]int, 0, len(s.replyErr))
	for c, n := range s.replyErr {
		sum.ReplyErrs += n
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		sum.Codes += fmt.Sprintf(" %d×%d", s.replyErr[c], c)
	}
	sum.P50, sum.P99, sum.Max = lat.P50, lat.P99, lat.Max
	return sum
}

// sentSignal is one signal of a batch the ingest answered 200 and accepted.
type sentSignal struct {
	VIN, Key, Value, Timestamp string
}

// ingestLoad is the gateway: it posts realistic batches (the simulator's
// fleet, ingest.Fleet) at a steady rate, open loop (a slow answer does not
// slow the sending), and keeps every signal the ingest acknowledged.
type ingestLoad struct {
	url, token string
	fleet      *ingest.Fleet
	rate       int // signals per second
	client     *http.Client
	stats      *surface

	mu    sync.Mutex
	acked []sentSignal
}

func (l *ingestLoad) run(ctx context.Context) {
	const interval = 250 * time.Millisecond
	perTick := max(1, l.rate/4)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			body, _ := l.fleet.AppendJSON(nil, perTick, now)
			select {
			case sem <- struct{}{}:
			default:
				l.stats.add(0, true, nil, 0, 0) // 32 requests in flight: counted as not answered
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				l.post(body)
			}()
		}
	}
}

func (l *ingestLoad) post(body []byte) {
	// The request is not tied to the load's context: a batch sent is
	// followed to its answer, so that what was acknowledged is known.
	req, _ := http.NewRequest(http.MethodPost, l.url+"/ingest/v1/signals", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	t0 := time.Now()
	res, err := l.client.Do(req)
	if err != nil {
		l.stats.add(0, false, err, 0, 0)
		return
	}
	raw, rerr := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(t0)
	proxied := res.Header.Get(ProxyErrorHeader) != ""
	var r ingest.Result
	if res.StatusCode == 200 && !proxied {
		if rerr != nil || json.Unmarshal(raw, &r) != nil {
			l.stats.add(0, false, errors.New("unreadable answer"), took, 0)
			return
		}
	}
	l.stats.add(res.StatusCode, proxied, nil, took, r.Accepted)
	if res.StatusCode != 200 || proxied {
		return
	}
	signals, err := ingest.DecodeJSON(body, ingest.MaxSignals, nil)
	if err != nil {
		return
	}
	rejected := map[int]bool{}
	for _, rj := range r.Rejected {
		rejected[rj.Index] = true
	}
	kept := make([]sentSignal, 0, len(signals))
	for i, sg := range signals {
		if !rejected[i] {
			kept = append(kept, sentSignal{VIN: sg.VIN, Key: sg.Key, Value: sg.Value, Timestamp: sg.Timestamp})
		}
	}
	l.mu.Lock()
	l.acked = append(l.acked, kept...)
	l.mu.Unlock()
}

func (l *ingestLoad) signals() []sentSignal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

// pullRecord is one provider API read as the provider saw it.
type pullRecord struct {
	VIN        string
	Start      time.Time
	Status     int
	DeliveryID string // the ledger record named by the answer (data carried)
	NoAnswer   bool   // no replica answered: connection lost, proxy 502, timeout
}

// apiLoad is the provider: OAuth client credentials (the secret can be
// rotated under it), then telematicData reads of random consented vehicles
// at a steady rate, open loop.
type apiLoad struct {
	base        string
	clientID    string
	secret      atomic.Pointer[string]
	containerID int64
	vins        []string
	rate        int
	client      *http.Client
	reads       *surface
	tokens      *surface

	tokMu sync.Mutex
	tok   *oauth2.Token

	mu      sync.Mutex
	records []pullRecord
}

func (l *apiLoad) setSecret(s string) { l.secret.Store(&s) }

// token returns a valid access token, fetching one when there is none,
// it is about to expire, or stale (a 401 said so) names the one to replace.
func (l *apiLoad) token(ctx context.Context, stale string) (string, error) {
	l.tokMu.Lock()
	defer l.tokMu.Unlock()
	if l.tok != nil && l.tok.AccessToken != stale && time.Until(l.tok.Expiry) > 20*time.Second {
		return l.tok.AccessToken, nil
	}
	cfg := clientcredentials.Config{ClientID: l.clientID, ClientSecret: *l.secret.Load(), TokenURL: l.base + "/oauth/token",
		AuthStyle: oauth2.AuthStyleInHeader}
	tctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, l.client), 30*time.Second)
	defer cancel()
	t0 := time.Now()
	tok, err := cfg.Token(tctx)
	status, proxied := 200, false
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		status, proxied, err = re.Response.StatusCode, re.Response.Header.Get(ProxyErrorHeader) != "", nil
	}
	l.tokens.add(status, proxied, err, time.Since(t0), 1)
	if err != nil {
		return "", err
	}
	if tok == nil || status != 200 || proxied {
		return "", fmt.Errorf("token request answered %d", status)
	}
	l.tok = tok
	return tok.AccessToken, nil
}

func (l *apiLoad) run(ctx context.Context) {
	interval := time.Second / time.Duration(l.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			vin := l.vins[rand.IntN(len(l.vins))]
			select {
			case sem <- struct{}{}:
			default:
				l.reads.add(0, true, nil, 0, 0)
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				l.read(context.WithoutCancel(ctx), vin)
			}()
		}
	}
}

func (l *apiLoad) read(ctx context.Context, vin string) {
	tok, err := l.token(ctx, "")
	if err != nil {
		l.reads.add(0, false, err, 0, 0) // no token, no read: counted as not answered
		return
	}
	for attempt := 0; ; attempt++ {
		rec := pullRecord{VIN: vin, Start: time.Now()}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
			l.base+"/api/v1/vehicles/"+vin+"/telematicData?containerId="+strconv.FormatInt(l.containerID, 10), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := l.client.Do(req)
		if err != nil {
			rec.NoAnswer = true
			l.reads.add(0, false, err, 0, 0)
			l.keep(rec)
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		took := time.Since(rec.Start)
		rec.Status = res.StatusCode
		rec.NoAnswer = res.Header.Get(ProxyErrorHeader) != ""
		rec.DeliveryID = res.Header.Get(providerapi.DeliveryHeader)
		if res.StatusCode == http.StatusUnauthorized && attempt == 0 {
			// The token ran out or its client's secret was rotated: a
			// provider fetches a new one and asks again.
			l.keep(rec)
			if tok, err = l.token(ctx, tok); err != nil {
				l.reads.add(0, false, err, 0, 0)
				return
			}
			continue
		}
		l.reads.add(rec.Status, rec.NoAnswer, nil, took, 1)
		l.keep(rec)
		return
	}
}

func (l *apiLoad) keep(r pullRecord) {
	l.mu.Lock()
	l.records = append(l.records, r)
	l.mu.Unlock()
}

func (l *apiLoad) pulls() []pullRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}
