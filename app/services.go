package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"cardata/admin/staff"
	"cardata/admin/support"
	"cardata/app/config"
	"cardata/app/db"
	"cardata/app/ingest"
	"cardata/app/providerapi"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/session"
	"cardata/policies/signin"
	"cardata/policies/totp"
)

// Services are the domain services of one app, each built once and
// complete from the configuration (NewServices): the HTTP surfaces, the
// jobs (registered here, jobs.go), the CLI and the demo all use these values, and every hook one
// service has into another is wired in NewServices, so nothing depends on
// the order in which the surfaces are mounted.
type Services struct {
	Cfg config.Config // the configuration they were built from
	DB  *gorm.DB      // the open, migrated database they run on
	// Budget is the pool's split between the subsystems that take
	// connections on their own (app/db.PlanPool).
	Budget     db.PoolBudget
	Sessions   *session.Store
	Staff      *staff.Service
	Catalog    *catalog.Catalog
	Onboarding *onboarding.Service   // providers, reviews, provider users, markets
	Vehicles   *vehicles.Service     // vehicle registry and capabilities
	Containers *containers.Service   // data containers
	Consents   *consent.Service      // consents, customers, data reports
	Billing    *billing.Service      // price list, ledger reads, invoices
	Ledger     *billing.LedgerWriter // the provider API's batched ledger writes
	Tokens     *providerapi.Tokens   // the provider API's access tokens
	Support    *support.Service      // the support desk
	Webhooks   *webhooks.Service     // push notifications
	Ingest     *ingest.Service       // telemetry ingest and master data
	Jobs       *jobs.Scheduler       // the job registry and its loop
	Outbox     *jobs.Outbox          // the e-mail worker
	Secrets    *webhooks.Secrets     // SECRETS_KEY: seals signing secrets and stored answers
	// SecondFactors are the local accounts' authenticator apps (TOTP) and
	// recovery codes; their secrets sealed under SECRETS_KEY too.
	SecondFactors *totp.Store
	log           *slog.Logger
}

// NewServices builds every domain service from the configuration on an
// open, migrated database, connects their hooks into each other and
// registers every job (jobs.go). It syncs the catalog, seals signing
// secrets still stored in clear and creates the coming reading-history
// partitions. pageMounted tells the
// support desk which GET route patterns have a page (nil: none), to link a
// ticket's references to them. Close stops what the services started.
func NewServices(cfg config.Config, gdb *gorm.DB, log *slog.Logger, pageMounted func(pattern string) bool) (*Services, error) {
	budget, err := planPool(cfg, gdb)
	if err != nil {
		return nil, err
	}
	s := &Services{Cfg: cfg, DB: gdb, Budget: budget, Catalog: catalog.Default(), log: log}
	boot := policies.WithPrincipal(context.Background(), policies.System("boot"))
	if err := s.Catalog.Sync(boot, gdb); err != nil {
		return nil, err
	}
	throttle := signin.Throttle{PerAccount: cfg.LoginMaxFailuresPerAccount,
		PerAddress: cfg.LoginMaxFailuresPerAddress, Window: cfg.LoginThrottleWindow}

	// First every value, ...
	s.Sessions = &session.Store{DB: gdb, Idle: cfg.SessionIdleTimeout, MaxAge: cfg.SessionMaxAge}
	s.Staff = &staff.Service{DB: gdb, BcryptCost: cfg.BcryptCost, Sessions: s.Sessions, Throttle: throttle}

	s.Jobs = jobs.NewScheduler(gdb, cfg.BillingTimezone, log)
	// The jobs' share: the scheduler's session, the outbox worker (one
	// connection, one e-mail at a time) and the job bodies at once.
	s.Jobs.MaxRuns = budget.JobRuns()
	// The e-mail worker: SMTP when SMTP_HOST is set; otherwise the local
	// transport, which marks e-mails "kept locally" so they stay browsable
	// in the admin outbox and nothing leaves the machine.
	s.Outbox = &jobs.Outbox{DB: gdb, Log: log}
	if cfg.SMTPHost != "" {
		s.Outbox.Transport = &jobs.SMTPTransport{Host: cfg.SMTPHost, Port: cfg.SMTPPort, User: cfg.SMTPUser,
			Password: cfg.SMTPPassword, From: cfg.SMTPFrom}
	}

	s.Onboarding = &onboarding.Service{DB: gdb, BcryptCost: cfg.BcryptCost, PublicURL: cfg.PublicURL, Sessions: s.Sessions,
		Throttle: throttle,
		RegistrationLimits: onboarding.RegistrationLimits{PerHour: cfg.RegistrationRateLimit,
			DailyUploadBytes: cfg.RegistrationDailyUploadBytes}}
	s.Vehicles = &vehicles.Service{DB: gdb, Catalog: s.Catalog}
	// The ingest's share of the pool: batches written at once (each holds
	// one connection for its COPY and apply); more wait their turn.
	s.Ingest = ingest.New(gdb, ingest.Options{Retention: cfg.ReadingsRetention, MaxWriters: budget.Ingest})
	if _, err := s.Ingest.EnsurePartitions(boot, time.Now(), 3); err != nil {
		return nil, err
	}

	// Signing secrets are sealed at rest under SECRETS_KEY; any still in
	// clear (made before the key was set) are sealed now. The key is this
	// app's: handed to the services that seal and open.
	if s.Secrets, err = webhooks.NewSecrets(cfg.SecretsKey); err != nil {
		return nil, err
	}
	if n, err := webhooks.SealStoredSecrets(context.Background(), gdb, s.Secrets); err != nil {
		return nil, err
	} else if n > 0 {
		log.Info("sealed webhook signing secrets", "count", n)
	}
	s.Webhooks = &webhooks.Service{DB: gdb, Log: log, PublicURL: cfg.PublicURL, Secrets: s.Secrets}
	s.SecondFactors = &totp.Store{DB: gdb, Issuer: "CarData", BcryptCost: cfg.BcryptCost, Throttle: throttle}
	if aead := s.Secrets.AEAD(); aead != nil {
		s.SecondFactors.Seal = func(p []byte) ([]byte, error) { return webhooks.SealBytes(aead, p, totpPurpose) }
		s.SecondFactors.Open = func(b []byte) ([]byte, error) { return webhooks.OpenBytes(aead, b, totpPurpose) }
	}
	// The loop (fan-out, claims) takes one connection of the push share,
	// the attempts the rest; their HTTP calls hold none and stay as many.
	s.Webhooks.Opt.DBConcurrency = budget.PushAttempts()

	// Billing owns the ledger: the deliveries lists and usage of the API,
	// the portal and the staff pages, and the customer's reports read it
	// through billing's methods.
	s.Billing = &billing.Service{DB: gdb, Location: cfg.BillingTimezone, PublicURL: cfg.PublicURL}
	if s.Ledger, err = billing.NewLedgerWriter(gdb, billing.WriterOptions{Committers: budget.Ledger}); err != nil {
		return nil, err
	}
	s.Tokens = &providerapi.Tokens{DB: gdb, TTL: cfg.APITokenTTL}

	s.Consents = &consent.Service{DB: gdb, IsEU: onboarding.IsEU, PublicURL: cfg.PublicURL, BcryptCost: cfg.BcryptCost,
		Throttle: throttle, Location: cfg.BillingTimezone,
		Mailer: func(ctx context.Context, tx *gorm.DB, m consent.Mail) error {
			return jobs.Enqueue(ctx, tx, jobs.Message{Kind: m.Kind, To: m.To, Subject: m.Subject, Body: m.Body,
				ObjectType: m.ObjectType, ObjectID: m.ObjectID, DedupeKey: m.DedupeKey})
		}}
	s.Containers = &containers.Service{DB: gdb, Catalog: s.Catalog, PublicURL: cfg.PublicURL}
	s.Support = &support.Service{DB: gdb, Clock: support.NewClock(cfg.BillingTimezone), PublicURL: cfg.PublicURL}

	// ... then the hooks between them.
	s.Onboarding.EligibleVehicles = s.Vehicles.CountEligible
	// The first sandbox client creates the provider's simulated fleet.
	s.Onboarding.SandboxFleet = func(ctx context.Context, providerID int64) error {
		_, err := s.Vehicles.EnsureSandboxFleet(ctx, providerID)
		return err
	}
	// A provider's company sign-in: its client secret sealed like signing
	// secrets, its identity provider reached like webhook receivers (public
	// addresses only; loopback where cardata itself runs on loopback).
	s.Onboarding.Secrets = s.Secrets
	s.Onboarding.SignInHTTP = s.Webhooks.PublicClient(15 * time.Second)
	s.Onboarding.SignInLoopback = s.Webhooks.LoopbackOK()
	s.Onboarding.SignInRPs = &onboarding.RPCache{}
	// A change of owner ends the former owner's consents at once, as the
	// consent expiry job does.
	s.Vehicles.FormerOwnerConsents = func(ctx context.Context) (int, error) {
		x, err := s.Consents.ExpireDue(ctx, 1000)
		return x.FormerHolder, err
	}
	s.Billing.Directory = onboardingDirectory{svc: s.Onboarding}
	s.Billing.Locks = s.Jobs.LockSession() // the invoice run's long lock of its period
	s.Consents.Transfers = ledgerTransfers{s.Billing}
	s.Consents.Eligibility = s.consentEligibility
	s.Consents.DropPushes = func(ctx context.Context, tx *gorm.DB, consentID int64, reason string) error {
		_, err := s.Webhooks.DropForConsent(ctx, tx, consentID, reason)
		return err
	}
	s.Consents.Notify = func(ctx context.Context, tx *gorm.DB, e consent.Event) error {
		_, err := s.Webhooks.Emit(ctx, tx, webhooks.NewEvent{ProviderID: e.ProviderID, Type: e.Type, VIN: e.VIN,
			ContainerID: e.ContainerID, ContainerVersion: e.Version, ConsentID: e.ConsentID,
			Data: map[string]any{"consentId": e.ConsentID, "vin": e.VIN, "containerId": e.ContainerID,
				"containerVersion": e.Version, "state": e.State, "at": e.At}, Sandbox: e.Sandbox})
		return err
	}
	s.Containers.Consents = s.Consents
	s.Containers.DropPushes = s.Webhooks.DropForContainer
	s.Webhooks.Recipients = s.Consents.RecipientsOf
	s.Webhooks.ConsentActive = func(ctx context.Context, c webhooks.ConsentCheck) (bool, string, error) {
		return s.Consents.ConsentActiveFor(ctx, c.ProviderID, c.ConsentID, time.Now(), c.Sandbox)
	}
	s.Webhooks.RecordPush = recordPush
	s.Support.Resolver = s.supportLinks(pageMounted)
	// ... and last every job on the registry, on the complete services.
	if err := s.registerJobs(); err != nil {
		return nil, err
	}
	return s, nil
}

// totpPurpose is the sealing purpose of authenticator secrets: a sealed
// signing secret or stored answer never opens as one.
const totpPurpose = "cardata totp secret"

// ReadFacts are the consent module's facts for the decision on a provider
// API read of a vehicle's data in a container (providerapi.Handler.Facts).
func (s *Services) ReadFacts(ctx context.Context, providerID, clientID int64, vin string, containerID int64, at time.Time) (*providerapi.ReadFacts, error) {
	f, refs, err := s.Consents.FactsAt(ctx, providerID, clientID, vin, containerID, at)
	if err != nil {
		return nil, err
	}
	return &providerapi.ReadFacts{Facts: f, VehicleID: refs.VehicleID, ContainerVersion: refs.ContainerVersion, ConsentID: refs.ConsentID}, nil
}

// Register puts the services' metrics on reg: e-mails, dead-lettered
// vehicle events and deliveries, the ingest, the data report builder.
func (s *Services) Register(reg prometheus.Registerer) {
	s.Outbox.Register(reg)
	s.Webhooks.Register(reg)
	s.Ingest.Register(reg)
	s.Consents.Register(reg)
}

// Workers are the services' background loops, run by Serve until
// shutdown: the job scheduler, the e-mail outbox, the push sender, and
// the ingest's VIN cache warm-up.
func (s *Services) Workers() []func(ctx context.Context) {
	return []func(ctx context.Context){s.Jobs.Loop, s.Outbox.Run, s.Webhooks.Run, func(ctx context.Context) {
		if n, err := s.Ingest.WarmVINs(ctx); err != nil {
			s.log.Warn("ingest: warming the VIN cache failed; it fills as batches arrive", "error", err.Error())
		} else {
			s.log.Info("ingest: VIN cache warm", "vehicles", n)
		}
	}}
}

// Close stops the invoice runs still at work and then the ledger writer;
// the app calls it after the handlers that write the ledger have returned.
func (s *Services) Close() {
	s.Billing.Close()
	s.Ledger.Close()
}

// planPool splits the app's pool between the subsystems that take
// connections on their own (app/db.PlanPool): the DB_POOL_* settings, the
// rest sized from the pool the app really runs on (DB_MAX_OPEN_CONNS in
// production; tests open smaller pools). Each subsystem is bounded by its
// share, and what remains is the HTTP requests'. An app whose shares do not
// fit its pool does not start.
func planPool(cfg config.Config, gdb *gorm.DB) (db.PoolBudget, error) {
	total := cfg.DBMaxOpenConns
	if sqlDB, err := gdb.DB(); err == nil {
		if n := sqlDB.Stats().MaxOpenConnections; n > 0 {
			total = n
		}
	}
	return db.PlanPool(total, db.PoolBudget{Jobs: cfg.DBPoolJobs, Push: cfg.DBPoolPush, Ingest: cfg.DBPoolIngest,
		APIReads: cfg.DBPoolAPIReads, Ledger: cfg.DBPoolLedger})
}

// recordPush records an accepted data-carrying push in billing's ledger.
// A revoke that committed while the push was on the wire: the receiver has
// it, but it is not billed (the consent had ended).
func recordPush(ctx context.Context, tx *gorm.DB, r webhooks.PushRecord) error {
	if granted, err := consent.GrantedAtDelivery(ctx, tx, r.ConsentID); err != nil || !granted {
		return err
	}
	return billing.Ledger{}.Record(ctx, tx, billing.Delivery{ProviderID: r.ProviderID, VIN: r.VIN, ContainerID: r.ContainerID,
		ContainerVersion: r.ContainerVersion, ConsentID: r.ConsentID, Kind: billing.KindPush, KeyIDs: r.KeyIDs,
		EventID: r.EventID, EventType: r.EventType, Bytes: r.Bytes, RequestID: r.RequestID, At: r.At, Sandbox: r.Sandbox})
}

// consentEligibility is the capability service's decision which vehicles a
// consent can be asked for; the service is stateless, so it runs on the
// caller's transaction. keys: a container's (consent requests); none: the
// vehicle alone (/my).
func (s *Services) consentEligibility(ctx context.Context, tx *gorm.DB, vin string, keys []string, at time.Time) ([]consent.Ineligibility, error) {
	vs := &vehicles.Service{DB: tx, Catalog: s.Catalog}
	c, err := vs.Capabilities(ctx, vin, at)
	if err != nil {
		return nil, err
	}
	reasons := slices.Clone(c.Reasons)
	if len(reasons) == 0 && len(keys) > 0 && c.NoServiceFor(keys) {
		reasons = append(reasons, vehicles.ReasonNoServiceForKeys)
	}
	out := make([]consent.Ineligibility, len(reasons))
	for i, r := range reasons {
		out[i] = consent.Ineligibility{Code: r, Text: vehicles.ReasonText(r)}
	}
	return out, nil
}

// onboardingDirectory is billing's ProviderDirectory over onboarding.
type onboardingDirectory struct{ svc *onboarding.Service }

func (d onboardingDirectory) BillingParty(ctx context.Context, id int64) (billing.Party, error) {
	p, err := d.svc.FindProviderByID(ctx, id)
	if err != nil {
		return billing.Party{}, err
	}
	return billingParty(p), nil
}

// BillingParties is BillingParty for many providers in one query.
func (d onboardingDirectory) BillingParties(ctx context.Context, ids []int64) (map[int64]billing.Party, error) {
	list, err := d.svc.FindProvidersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]billing.Party, len(list))
	for i := range list {
		out[list[i].ID] = billingParty(&list[i])
	}
	return out, nil
}

func billingParty(p *onboarding.Provider) billing.Party {
	email := p.BillingEmail
	if email == "" {
		email = p.ContactEmail
	}
	return billing.Party{ProviderID: p.ID, LegalName: p.LegalName, Street: p.Street, PostalCode: p.PostalCode, City: p.City,
		Country: strings.TrimSpace(p.Country), VATID: p.VATID, Email: email}
}

func (d onboardingDirectory) ActiveProviderIDs(ctx context.Context) ([]int64, error) {
	var out []int64
	for offset := 0; ; offset += 200 {
		list, total, err := d.svc.FindProviders(ctx, onboarding.ProviderFilter{Status: onboarding.StatusActive, Offset: offset, Limit: 200})
		if err != nil {
			return nil, err
		}
		for _, p := range list {
			out = append(out, p.ID)
		}
		if int64(offset+len(list)) >= total || len(list) == 0 {
			return out, nil
		}
	}
}

// ledgerTransfers gives the consent module billing's ledger reads for the
// customer's transaction and data reports, with each record's keys named
// from the catalog (nil, unknown, for records written before keys were
// recorded).
type ledgerTransfers struct{ billing *billing.Service }

func transferKeys(ks []billing.DeliveredKey) []consent.TransferKey {
	if ks == nil {
		return nil
	}
	out := make([]consent.TransferKey, len(ks))
	for i, k := range ks {
		out[i] = consent.TransferKey{Key: k.Key, Label: k.Label, LabelDE: k.LabelDE}
	}
	return out
}

func (l ledgerTransfers) Transfers(ctx context.Context, consentIDs []int64, from, to time.Time) ([]consent.LedgerEntry, error) {
	recs, err := l.billing.Transfers(ctx, consentIDs, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]consent.LedgerEntry, len(recs))
	for i, r := range recs {
		out[i] = consent.LedgerEntry{ID: r.ID, ConsentID: r.ConsentID, ProviderID: r.ProviderID, VIN: r.VIN, ContainerID: r.ContainerID,
			ContainerVersion: r.ContainerVersion, Kind: r.Kind, KeysDelivered: r.KeysDelivered, Keys: transferKeys(r.Keys()),
			DeliveredAt: r.DeliveredAt}
		if r.EventID != nil {
			out[i].EventID = *r.EventID
		}
		if r.EventType != nil {
			out[i].EventType = *r.EventType
		}
	}
	return out, nil
}

func (l ledgerTransfers) SentKeys(ctx context.Context, consentIDs []int64) ([]consent.SentKey, error) {
	sent, err := l.billing.SentKeys(ctx, consentIDs)
	if err != nil {
		return nil, err
	}
	out := make([]consent.SentKey, len(sent))
	for i, k := range sent {
		out[i] = consent.SentKey{ConsentID: k.ConsentID, Deliveries: k.Deliveries, First: k.First, Last: k.Last}
		if k.KeyID != 0 {
			out[i].Key = &transferKeys(billing.NameKeys([]int16{k.KeyID}))[0]
		}
	}
	return out, nil
}

// supportLinks resolves the target of a ticket link for the ticket's
// provider through the module that owns it and names the page to open,
// when the viewer has one mounted: vehicles (staff only), that provider's
// invoices, and that provider's containers.
func (s *Services) supportLinks(pageMounted func(pattern string) bool) support.LinkResolver {
	// page returns the first candidate page that is mounted for the viewer's
	// side: each candidate is a route pattern and the path filling it in.
	page := func(staff bool, staffPages, portalPages [][2]string) string {
		pages := portalPages
		if staff {
			pages = staffPages
		}
		for _, p := range pages {
			if pageMounted != nil && pageMounted(p[0]) {
				return p[1]
			}
		}
		return ""
	}
	return func(ctx context.Context, providerID int64, staff bool, kind support.LinkKind, ref string) (support.LinkTarget, error) {
		var out support.LinkTarget
		switch kind {
		case support.LinkVIN:
			if !staff {
				return out, nil // the vehicle registry has no provider page
			}
			ok, err := s.Vehicles.IsRegistered(ctx, ref)
			if err != nil {
				return out, err
			}
			if out.Exists = ok; out.Exists {
				out.URL = page(staff, [][2]string{{"/admin/vehicles/:vin", "/admin/vehicles/" + ref}}, nil)
			}
		case support.LinkInvoice:
			id, status, err := s.Billing.InvoiceByNumber(ctx, providerID, ref)
			if err != nil {
				return out, err
			}
			if out.Exists = id != 0; out.Exists {
				out.Label = status
				out.URL = page(staff, [][2]string{{"/admin/billing/invoices/:id", fmt.Sprintf("/admin/billing/invoices/%d", id)}},
					[][2]string{{"/portal/invoices/:id", fmt.Sprintf("/portal/invoices/%d", id)}, {"/portal/billing/invoices/:id", fmt.Sprintf("/portal/billing/invoices/%d", id)}})
			}
		case support.LinkContainer:
			name, readErr, err := s.Containers.LinkName(ctx, providerID, ref)
			if err != nil {
				return out, err
			}
			if readErr != nil {
				s.log.Warn("support: cannot resolve a container link", "ref", ref, "err", readErr)
				return out, nil
			}
			if out.Exists = name != ""; out.Exists {
				out.Label = name
				out.URL = page(staff, [][2]string{{"/admin/containers/:id", "/admin/containers/" + ref}}, [][2]string{{"/portal/containers/:id", "/portal/containers/" + ref}})
			}
		}
		return out, nil
	}
}
