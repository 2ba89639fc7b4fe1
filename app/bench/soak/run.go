package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"cardata/billing"
	"cardata/onboarding"
	"cardata/policies"
)

// fault is one injected fault, as the table lists it.
type fault struct {
	At     time.Duration // since the load started
	Name   string
	Detail string
	Took   time.Duration
	Err    string
}

// step is one planned fault.
type step struct {
	at   float64 // share of the load duration
	name string
	do   func(ctx context.Context) (string, error)
}

// pauseFor is how long the webhook receiver hangs: a minute, less in short soaks.
func (s *soak) pauseFor() time.Duration {
	return min(time.Minute, max(10*time.Second, s.cfg.Duration/10))
}

func (s *soak) plan() []step {
	half := len(s.w.consents) / 12 // two batches of revocations, a twelfth each
	first, second := s.w.consents[:half], s.w.consents[half:2*half]
	return []step{
		{0.10, "kill -9 replica B, start it again", func(ctx context.Context) (string, error) { return s.killAndRestart(ctx, 1) }},
		{0.20, "rotate the API client secret", s.rotateSecret},
		{0.25, "customers revoke consents", func(ctx context.Context) (string, error) { return s.revoke(ctx, first) }},
		{0.30, "pause the webhook receiver", s.pauseReceiver},
		{0.45, "restart PostgreSQL", s.restartPostgres},
		{0.55, "invoice run, finalize, send (mid-traffic)", s.invoice},
		{0.65, "kill -9 replica C, start it again", func(ctx context.Context) (string, error) { return s.killAndRestart(ctx, 2) }},
		{0.75, "customers revoke consents", func(ctx context.Context) (string, error) { return s.revoke(ctx, second) }},
		{0.85, "kill -9 replica A, start it again", func(ctx context.Context) (string, error) { return s.killAndRestart(ctx, 0) }},
	}
}

// run drives the load and the faults for the configured duration, then
// stops the load and lets the system drain.
func (s *soak) run(ctx context.Context) error {
	s.revoked = map[int64]time.Time{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var wg sync.WaitGroup
	s.loadStart = time.Now()
	s.logf("load starts: %d signals/s through the ingest, %d reads/s through the provider API", s.cfg.IngestRate, s.cfg.APIRate)
	wg.Add(3)
	go func() { defer wg.Done(); s.ingest.run(loadCtx) }()
	go func() { defer wg.Done(); s.api.run(loadCtx) }()
	go func() {
		defer wg.Done()
		for {
			for _, r := range s.reps {
				r.sample()
			}
			select {
			case <-loadCtx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()

	for _, st := range s.plan() {
		due := s.loadStart.Add(time.Duration(st.at * float64(s.cfg.Duration)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(due)):
		}
		t0 := time.Now()
		f := fault{At: t0.Sub(s.loadStart), Name: st.name}
		detail, err := st.do(ctx)
		f.Took, f.Detail = time.Since(t0), detail
		if err != nil {
			f.Err = err.Error()
			s.logf("FAULT %s failed: %v", st.name, err)
		} else {
			s.logf("fault: %s: %s (%s)", st.name, detail, f.Took.Round(time.Millisecond))
		}
		s.faults = append(s.faults, f)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(s.loadStart.Add(s.cfg.Duration))):
	}
	stopLoad()
	wg.Wait()
	s.loadEnd = time.Now()
	s.logf("load stopped; draining (pushes, e-mails, job runs) ...")
	if err := s.drain(ctx); err != nil {
		s.logf("drain: %v", err)
	}
	s.drainEnd = time.Now()
	for _, r := range s.reps {
		r.sample()
	}
	s.logf("stopping the replicas (SIGTERM) ...")
	for _, r := range s.reps {
		r.stop(30 * time.Second)
	}
	return nil
}

func (s *soak) killAndRestart(ctx context.Context, i int) (string, error) {
	r := s.reps[i]
	if err := r.kill9(); err != nil {
		return "", err
	}
	killedAt := time.Now()
	// Down for a few seconds, as long as a supervisor takes to notice.
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(3 * time.Second):
	}
	if err := r.start(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("replica %s down %s, ready again", r.name, time.Since(killedAt).Round(100*time.Millisecond)), nil
}

func (s *soak) rotateSecret(ctx context.Context) (string, error) {
	ob := &onboarding.Service{DB: s.gdb, BcryptCost: 4}
	pctx := policies.WithPrincipal(ctx, &policies.Principal{Kind: policies.KindProvider, Name: "soak", Email: "admin@demo-insurer.example",
		Roles: []string{"provider_admin"}, ProviderID: s.w.providerID})
	ns, err := ob.RotateAPIClientSecret(pctx, s.w.providerID, s.w.clientDBID, 0)
	if err != nil {
		return "", err
	}
	old := *s.api.secret.Load()
	s.api.setSecret(ns.Secret)
	// The old secret must be refused at once (no overlap was asked for);
	// tokens issued before stay valid until they expire.
	probe := &apiLoad{base: s.lb.URL(), clientID: s.api.clientID, client: s.api.client, tokens: newSurface("probe")}
	probe.setSecret(old)
	if _, err := probe.token(ctx, ""); err == nil {
		return "", fmt.Errorf("the old secret still gets tokens after a rotation without overlap")
	}
	return "new secret in use; the old one is refused at /oauth/token", nil
}

func (s *soak) revoke(ctx context.Context, cs []consentRef) (string, error) {
	var failed []string
	for _, c := range cs {
		err := revokeAsCustomer(ctx, s.lb.URL(), c.Email, c.ID)
		done := time.Now()
		var state string
		if qerr := s.gdb.WithContext(ctx).Raw("SELECT state FROM consents WHERE id = ?", c.ID).Scan(&state).Error; qerr != nil {
			return "", qerr
		}
		if state == "revoked" {
			s.revoked[c.ID] = done
		}
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return "", fmt.Errorf("%d of %d revocations failed: %s", len(failed), len(cs), strings.Join(failed, "; "))
	}
	return fmt.Sprintf("%d consents revoked at /my by their customers", len(cs)), nil
}

func (s *soak) pauseReceiver(ctx context.Context) (string, error) {
	d := s.pauseFor()
	s.hooks.pause()
	defer s.hooks.resume()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(d):
	}
	return fmt.Sprintf("held every push for %s without answering", d), nil
}

// restartPostgres restarts the server so that the outage straddles a whole
// minute: the every-minute job's tick falls into it, which is when a
// replica that cannot claim a tick would lose it.
func (s *soak) restartPostgres(ctx context.Context) (string, error) {
	at := time.Now().Truncate(time.Minute).Add(time.Minute - 500*time.Millisecond)
	if time.Until(at) < 0 {
		at = at.Add(time.Minute)
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(time.Until(at)):
	}
	t0 := time.Now()
	cmd, err := s.pg.restart(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s at %s, accepting connections again after %s", cmd, t0.Format("15:04:05.0"), time.Since(t0).Round(100*time.Millisecond)), nil
}

// invoice invoices last month again while the load runs: finance discards
// its drafts (made by the demo, or by the replicas' catch-up of the monthly
// run at their start), then the invoice run makes them anew from the
// ledger, finance finalizes them, and the send job e-mails them.
func (s *soak) invoice(ctx context.Context) (string, error) {
	fin, err := s.app.Staff.FindByEmail(ctx, "finance@demo.local")
	if err != nil {
		return "", err
	}
	fctx := policies.WithPrincipal(ctx, fin.Principal(0))
	drafts, _, err := s.app.Billing.ListInvoices(fctx, billing.InvoiceFilter{Period: s.w.period, Status: billing.StatusDraft,
		DocType: billing.DocInvoice, Limit: 500})
	if err != nil {
		return "", err
	}
	for _, d := range drafts {
		if err := s.app.Billing.Discard(fctx, d.ID, "fault soak: invoiced again while the load runs"); err != nil {
			return "", err
		}
	}
	parts := []string{fmt.Sprintf("%d drafts of %s discarded", len(drafts), s.w.period)}
	for _, args := range [][]string{
		{"invoice", "run", "--period", s.w.period},
		{"invoice", "finalize", "--period", s.w.period},
		{"jobs", "run", "invoice.send_finalized"},
	} {
		out, err := s.cli(ctx, args...)
		if err != nil {
			return "", err
		}
		parts = append(parts, lastLines(out, 1))
	}
	return strings.Join(parts, "; "), nil
}

// drain waits until what the load left behind has settled: every push of
// the soak's endpoint delivered or dropped, every e-mail sent, no job run
// in progress. The receiver stops refusing pushes, so that only the
// retry schedule decides how long this takes.
func (s *soak) drain(ctx context.Context) error {
	s.hooks.setFailShare(0)
	limit := 10 * time.Minute
	deadline := time.Now().Add(limit)
	var last string
	for {
		var st struct {
			Pushes, Emails, Jobs int64
		}
		err := s.gdb.WithContext(ctx).Raw(`SELECT
			(SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending') AS pushes,
			(SELECT count(*) FROM email_outbox WHERE status = 'pending') AS emails,
			(SELECT count(*) FROM job_runs WHERE outcome = 'running') AS jobs`, s.w.endpointID).Scan(&st).Error
		if err == nil {
			if st.Pushes == 0 && st.Emails == 0 && st.Jobs == 0 {
				s.logf("drained in %s", time.Since(s.loadEnd).Round(time.Second))
				return nil
			}
			if msg := fmt.Sprintf("waiting: %d pushes, %d e-mails, %d job runs", st.Pushes, st.Emails, st.Jobs); msg != last {
				s.logf("%s", msg)
				last = msg
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not drained within %s: %s", limit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
