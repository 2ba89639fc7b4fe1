package app

import (
	"context"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/admin"
	"cardata/app/customer"
	"cardata/app/portal"
	"cardata/app/providerapi"
	"cardata/app/web"
	"cardata/billing"
	"cardata/jobs"
	"cardata/onboarding"
	"cardata/onboarding/catalog"
	"cardata/onboarding/containers"
	"cardata/onboarding/vehicles"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/signin"
)

// newConsentService builds the consent domain from the config. It holds no
// state, so each surface (and the demo) may have its own instance.
func (a *App) newConsentService() *consent.Service {
	s := &consent.Service{DB: a.DB, IsEU: onboarding.IsEU, PublicURL: a.Cfg.PublicURL, BcryptCost: a.Cfg.BcryptCost,
		Throttle: signin.Throttle{PerAccount: a.Cfg.LoginMaxFailuresPerAccount, PerAddress: a.Cfg.LoginMaxFailuresPerAddress,
			Window: a.Cfg.LoginThrottleWindow},
		Location:  a.Cfg.BillingTimezone,
		Transfers: ledgerTransfers{&billing.Service{DB: a.DB, Location: a.Cfg.BillingTimezone}},
		Mailer: func(ctx context.Context, tx *gorm.DB, m consent.Mail) error {
			return jobs.Enqueue(ctx, tx, jobs.Message{Kind: m.Kind, To: m.To, Subject: m.Subject, Body: m.Body,
				ObjectType: m.ObjectType, ObjectID: m.ObjectID, DedupeKey: m.DedupeKey})
		},
	}
	// The capability service decides which vehicles a consent can be asked
	// for; it is stateless, so it runs on the caller's transaction. keys: a
	// container's (consent requests); none: the vehicle alone (/my).
	s.Eligibility = func(ctx context.Context, db *gorm.DB, vin string, keys []string, at time.Time) ([]consent.Ineligibility, error) {
		vs := &vehicles.Service{DB: db, Catalog: catalog.Default()}
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
	if a.Webhooks != nil {
		hooks := a.Webhooks
		s.DropPushes = func(ctx context.Context, tx *gorm.DB, consentID int64, reason string) error {
			_, err := hooks.DropForConsent(ctx, tx, consentID, reason)
			return err
		}
		s.Notify = func(ctx context.Context, tx *gorm.DB, e consent.Event) error {
			_, err := hooks.Emit(ctx, tx, webhooks.NewEvent{ProviderID: e.ProviderID, Type: e.Type, VIN: e.VIN,
				ContainerID: e.ContainerID, ContainerVersion: e.Version, ConsentID: e.ConsentID,
				Data: map[string]any{"consentId": e.ConsentID, "vin": e.VIN, "containerId": e.ContainerID,
					"containerVersion": e.Version, "state": e.State, "at": e.At}})
			return err
		}
	}
	return s
}

// newContainerService builds the container domain on a consent service.
func (a *App) newContainerService(cs *consent.Service) *containers.Service {
	ct := &containers.Service{DB: a.DB, Catalog: catalog.Default(), Consents: cs, PublicURL: a.Cfg.PublicURL}
	if a.Webhooks != nil {
		ct.DropPushes = a.Webhooks.DropForContainer
	}
	return ct
}

// mountConsent mounts data containers (portal, staff review, provider
// API), the customer portal /my with its reports, the staff's customer
// requests, and the consent jobs; and it wires the consent module into the
// provider API (the decision's facts on every read, push recipients and the
// send-time check) and into the session resolver for customers.
//
// It runs after mountAPI and mountIngest, whose services it completes.
func (a *App) mountConsent() error {
	cs := a.newConsentService()
	cs.Register(a.Registry) // the data report builder's dead letters
	ct := a.newContainerService(cs)
	a.resolvers[policies.KindCustomer] = cs.ResolveCustomer

	if a.API != nil {
		a.API.Facts = func(ctx context.Context, providerID, clientID int64, vin string, containerID int64, at time.Time) (*providerapi.ReadFacts, error) {
			f, refs, err := cs.FactsAt(ctx, providerID, clientID, vin, containerID, at)
			if err != nil {
				return nil, err
			}
			return &providerapi.ReadFacts{Facts: f, VehicleID: refs.VehicleID, ContainerVersion: refs.ContainerVersion, ConsentID: refs.ConsentID}, nil
		}
	}
	if a.Webhooks != nil {
		a.Webhooks.Recipients = cs.RecipientsOf
		a.Webhooks.ConsentActive = func(ctx context.Context, c webhooks.ConsentCheck) (bool, string, error) {
			return cs.ConsentActive(ctx, c.ProviderID, c.ConsentID, time.Now())
		}
	}

	// Partner portal and provider API: the provider's own containers and consents.
	ph := &portal.ContainerHandlers{View: a.View, Containers: ct, Consents: cs, Catalog: catalog.Default()}
	ph.Routes(a.surface("/portal"))
	ph.APIRoutes(a.Fiber)
	a.View.AddNav("Partner portal", portal.ContainerNav())

	// Staff: container review, customer requests.
	staffGroup := a.surface("/admin")
	(&admin.ContainerHandlers{View: a.View, Containers: ct}).Routes(staffGroup)
	(&admin.CustomerHandlers{View: a.View, Consents: cs, Location: a.Cfg.BillingTimezone}).Routes(staffGroup)
	a.View.AddNav("Partners", admin.ContainerNav())
	a.View.AddNav("Customers", admin.CustomerNav())

	// Customer portal.
	ch := &customer.Handlers{View: a.View, Consents: cs, Sessions: a.Sessions, Location: a.Cfg.BillingTimezone,
		StartSession: func(c *fiber.Ctx, token string) { web.SetSessionCookie(c, a.Cookies, token, a.Cfg.SessionMaxAge) },
		EndSession:   func(c *fiber.Ctx) { web.ClearSessionCookie(c, a.Cookies) },
	}
	ch.Routes(a.surface("/my"))
	for _, r := range customer.PublicRoutes {
		a.Access.Public(r[0], r[1])
	}
	for _, item := range customer.Nav() {
		a.View.AddNav("My CarData", item)
	}

	if a.Jobs == nil {
		return nil
	}
	for _, j := range append(consentJobs(cs), containerJobs(ct)...) {
		if err := a.Jobs.Register(j); err != nil {
			return err
		}
	}
	return nil
}

// consentJobs are the consent module's scheduled jobs.
func consentJobs(cs *consent.Service) []jobs.Job {
	return []jobs.Job{{
		Name:  "consent.expire",
		Title: "Consent expiry",
		Description: "Lets consent requests unanswered for 30 days expire, ends grants past their end date, " +
			"and ends the consents of customers who no longer hold the vehicle.",
		Spec: "*/10 * * * *", Timeout: 20 * time.Minute, CatchUp: time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			x, err := cs.ExpireDue(ctx, 1000)
			r.Set("requests_expired", int64(x.Unanswered))
			r.Set("grants_expired", int64(x.EndDateReached))
			r.Set("former_holders_ended", int64(x.FormerHolder))
			return err
		},
	}, {
		Name:        "consent.reports_build",
		Title:       "Data report archives",
		Description: "Builds the data-report archives of large accounts requested by customers or support.",
		Spec:        "* * * * *", Timeout: 30 * time.Minute,
		Roles: []string{policies.RoleSupport},
		Run: func(ctx context.Context, r *jobs.Run) error {
			built, failed, err := cs.BuildPendingReports(ctx, 50)
			r.Set("built", int64(built))
			r.Set("failed", int64(failed))
			return err
		},
	}, {
		Name:        "consent.reports_purge",
		Title:       "Data report clean-up",
		Description: "Deletes data-report archives older than 7 days and customer sign-in attempts older than a day.",
		Spec:        "40 3 * * *", Timeout: 10 * time.Minute, CatchUp: 24 * time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			n, err := cs.PurgeExpiredReports(ctx)
			r.Set("reports_deleted", n)
			if err != nil {
				return err
			}
			m, err := cs.PurgeLoginAttempts(ctx)
			r.Set("login_attempts_deleted", m)
			return err
		},
	}}
}

// containerJobs are the container module's scheduled jobs.
func containerJobs(ct *containers.Service) []jobs.Job {
	return []jobs.Job{{
		Name:  "containers.purge-withdrawn",
		Title: "Purge of withdrawn containers",
		// The decision (onboarding/containers.PurgeWithdrawn): 29 days after
		// its withdrawal a container disappears from its provider's portal
		// and API; versions, keys and ended consents stay for the ledger,
		// invoices (§ 147 AO) and transaction reports; staff still see it.
		Description: "Purges data containers withdrawn at least 29 days ago: hidden from their provider (portal and API), " +
			"open consent requests expired, queued pushes dropped; versions, keys and ended consents are kept for invoices " +
			"and transaction reports, and staff still see the container as purged.",
		Spec: "30 4 * * *", Timeout: 30 * time.Minute, CatchUp: 24 * time.Hour,
		Run: func(ctx context.Context, r *jobs.Run) error {
			res, err := ct.PurgeWithdrawn(ctx, 100, func(done int) { r.Progress(ctx, int64(done), 0, "purging withdrawn containers") })
			r.Set("containers_purged", int64(res.Purged))
			r.Set("requests_expired", int64(res.RequestsExpired))
			r.Set("pushes_dropped", res.PushesDropped)
			return err
		},
	}}
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
