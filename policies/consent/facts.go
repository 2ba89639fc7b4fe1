package consent

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/errs"
	"cardata/policies/sqlarray"
)

// Refs are the ids behind a decision that the provider API records in the
// delivery ledger (zero when absent).
type Refs struct {
	ConsentID          int64
	VehicleID          int64
	ContainerVersionID int64
	ContainerVersion   int
}

// FactsSQL gathers everything policies.Decide needs in one round trip.
// Its parameters are the named @provider, @client, @vin, @container and
// @sandbox (the realm of a push, whose @client is 0: see ClientSandboxSQL); the
// provider API embeds it (with SQL expressions in their place) in the one
// statement of a telematicData read, which scans the columns by name into a
// FactsRow, so the decision's facts have one definition.
//
// The consent looked at is the provider's consent for this container and
// vehicle that is in force, else the most recently changed one; consents of
// an account that is no longer the vehicle's primary holder do not count
// once someone else is (a new owner decides afresh). The container version
// is the consent's version (what the customer agreed to), else the
// container's approved version, else its most relevant one. A container of
// another provider is treated as absent. The realm columns (sandbox,
// vehicle_sandbox_of, container_sandbox, provider_pending) let the decision
// keep the sandbox and production apart.
const FactsSQL = `
SELECT
	COALESCE(p.status = 'active', false) AS provider_active,
	COALESCE(p.status IN ('submitted','in_review','info_requested'), false) AS provider_pending,
	(@client = 0 OR EXISTS (SELECT 1 FROM api_clients ac
		WHERE ac.id = @client AND ac.provider_id = @provider AND ac.revoked_at IS NULL)) AS client_active,
	` + ClientSandboxSQL + ` AS sandbox, COALESCE(v.sandbox_provider_id, 0) AS vehicle_sandbox_of,
	COALESCE(cv.sandbox, false) AS container_sandbox,
	COALESCE(v.id, 0) AS vehicle_id, COALESCE(v.brand, '') AS brand, COALESCE(v.market, '') AS market,
	COALESCE(v.telematics_capable, false) AS telematics_capable, COALESCE(v.sim_active, false) AS sim_active,
	(ph.account_id IS NOT NULL) AS mapped,
	EXISTS (SELECT 1 FROM markets m WHERE m.code = v.market) AS market_supported,
	EXISTS (SELECT 1 FROM market_access ma JOIN markets m ON m.code = ma.market
		WHERE ma.provider_id = @provider AND ma.market = v.market AND ma.status = 'approved' AND m.active) AS covers,
	COALESCE(cs.id, 0) AS consent_id, COALESCE(cs.state, '') AS consent_state, cs.ends_at AS consent_ends_at,
	COALESCE(cv.id, 0) AS version_id, COALESCE(cv.version, 0) AS version, COALESCE(cv.state, '') AS container_state,
	(SELECT string_agg(k.key, ',' ORDER BY ck.position) FROM container_version_keys ck JOIN catalog_keys k ON k.id = ck.key_id
		WHERE ck.version_id = cv.id) AS container_keys
FROM (SELECT 1) AS one
LEFT JOIN providers p ON p.id = @provider
LEFT JOIN vehicles v ON v.vin = @vin
LEFT JOIN vehicle_holders ph ON ph.vehicle_id = v.id AND ph.role = 'primary'
LEFT JOIN LATERAL (
	SELECT c.id, c.state, c.ends_at, c.container_version_id FROM consents c
	WHERE c.provider_id = @provider AND c.container_id = @container AND c.vehicle_id = v.id
	  AND (ph.account_id IS NULL OR c.account_id = ph.account_id)
	ORDER BY (c.state = 'granted') DESC, c.updated_at DESC, c.id DESC LIMIT 1
) cs ON true
LEFT JOIN LATERAL (
	SELECT x.id, x.version, x.state, x.sandbox FROM container_versions x
	WHERE x.container_id = @container AND x.provider_id = @provider
	  AND (cs.container_version_id IS NULL OR x.id = cs.container_version_id)
	ORDER BY CASE x.state WHEN 'approved' THEN 0 WHEN 'deprecated' THEN 1 WHEN 'withdrawn' THEN 2 WHEN 'submitted' THEN 3 ELSE 4 END,
		x.version DESC LIMIT 1
) cv ON true`

// ClientSandboxSQL is FactsSQL's expression of the caller's realm: the API
// client's sandbox flag, else (@client 0: a push) the named @sandbox, the
// receiving webhook endpoint's flag. The provider API's fast read puts its
// token's client flag in its place (no second look-up of the client).
const ClientSandboxSQL = `COALESCE((SELECT ac.sandbox FROM api_clients ac WHERE ac.id = @client), @sandbox)`

// FactsRow is one row of FactsSQL.
type FactsRow struct {
	ProviderActive    bool
	ProviderPending   bool
	ClientActive      bool
	Sandbox           bool
	VehicleSandboxOf  int64
	ContainerSandbox  bool
	VehicleID         int64
	Brand             string
	Market            string
	TelematicsCapable bool
	SIMActive         bool `gorm:"column:sim_active"`
	Mapped            bool
	MarketSupported   bool
	Covers            bool
	ConsentID         int64
	ConsentState      string
	ConsentEndsAt     *time.Time
	VersionID         int64
	Version           int
	ContainerState    string
	ContainerKeys     *string // comma-separated (keys never contain commas)
}

// Facts gathers, fresh from the database in one round trip, what the
// data-access decision needs for provider providerID reading container
// containerID of vehicle vin through API client clientID (the api_clients
// id; 0 when no client is involved, as for pushes). Nothing is cached: a
// revocation committed before the call is seen by it. RequestedKeys is left
// empty (all of the container's keys); the caller sets it.
func (s *Service) Facts(ctx context.Context, providerID, clientID int64, vin string, containerID int64) (policies.AccessFacts, Refs, error) {
	return s.FactsAt(ctx, providerID, clientID, vin, containerID, s.now())
}

// FactsAt is Facts with the decision's clock set to at (end dates are
// compared with it).
func (s *Service) FactsAt(ctx context.Context, providerID, clientID int64, vin string, containerID int64, at time.Time) (policies.AccessFacts, Refs, error) {
	return s.factsAt(ctx, providerID, clientID, vin, containerID, at, false)
}

// factsAt is FactsAt; sandbox is the realm of a push (clientID 0): the
// receiving endpoint's flag. An API client's realm is its own.
func (s *Service) factsAt(ctx context.Context, providerID, clientID int64, vin string, containerID int64, at time.Time, sandbox bool) (policies.AccessFacts, Refs, error) {
	var r FactsRow
	err := s.DB.WithContext(ctx).Raw(FactsSQL, map[string]any{
		"provider": providerID, "client": clientID, "vin": policies.NormalizeVIN(vin), "container": containerID, "sandbox": sandbox,
	}).Scan(&r).Error
	if err != nil {
		return policies.AccessFacts{}, Refs{}, errs.Wrap(err, "access facts")
	}
	f, refs := s.FactsOf(&r, at)
	f.ProviderID = providerID
	return f, refs, nil
}

// FactsOf turns a row of FactsSQL into the decision's facts at `at` and
// the ids behind them.
func (s *Service) FactsOf(r *FactsRow, at time.Time) (policies.AccessFacts, Refs) {
	inEU := false
	if s.IsEU != nil {
		inEU = s.IsEU(r.Market)
	}
	f := policies.AccessFacts{
		Now:                  at.UTC(),
		ProviderActive:       r.ProviderActive,
		ProviderPending:      r.ProviderPending,
		Sandbox:              r.Sandbox,
		ContainerSandbox:     r.ContainerSandbox,
		ClientActive:         r.ClientActive,
		ProviderCoversMarket: r.Covers,
		ContainerState:       r.ContainerState,
		ConsentState:         r.ConsentState,
		ConsentEndsAt:        r.ConsentEndsAt,
		Vehicle: policies.VehicleFacts{Known: r.VehicleID != 0, Brand: r.Brand, Market: r.Market,
			TelematicsCapable: r.TelematicsCapable, Mapped: r.Mapped, MarketSupported: r.MarketSupported, MarketInEU: inEU,
			SIMInactive: r.VehicleID != 0 && !r.SIMActive, SandboxOf: r.VehicleSandboxOf},
	}
	if r.ContainerKeys != nil && *r.ContainerKeys != "" {
		f.ContainerKeys = strings.Split(*r.ContainerKeys, ",")
	}
	return f, Refs{ConsentID: r.ConsentID, VehicleID: r.VehicleID, ContainerVersionID: r.VersionID, ContainerVersion: r.Version}
}

// Decide gathers the facts and decides in one call, for keys (empty: all of
// the container's keys). The provider API calls it on every read and push.
func (s *Service) Decide(ctx context.Context, providerID, clientID int64, vin string, containerID int64, keys []string) (policies.Decision, policies.AccessFacts, Refs, error) {
	f, refs, err := s.Facts(ctx, providerID, clientID, vin, containerID)
	if err != nil {
		return policies.Decision{}, f, refs, err
	}
	f.RequestedKeys = keys
	return policies.Decide(f), f, refs, nil
}

// VehicleEvent is a vehicle event the push fan-out looks for recipients
// of: the keys a vehicle read at one time (a position update: latitude,
// longitude, heading, altitude).
type VehicleEvent struct {
	VehicleID int64
	At        time.Time
	KeyIDs    []int16
}

// Recipient is a provider entitled to (part of) a vehicle event: it holds a
// grant in force for a container version with at least one of the event's
// keys; KeyIDs are those keys, in id order (what its push may carry).
type Recipient struct {
	ProviderID int64
	// Sandbox: the consent is for a sandbox container (a simulated
	// vehicle): its pushes go to the provider's sandbox endpoints only.
	Sandbox          bool
	ConsentID        int64
	ContainerID      int64
	ContainerVersion int
	KeyIDs           []int16
}

// RecipientsOf finds who may be pushed each vehicle event, in tx (the push
// fan-out's transaction), in one query: out[i] are the recipients of
// events[i], by provider and consent, each with the event's keys its
// container allows. The send-time check (ConsentActive) decides again
// before anything leaves.
func (s *Service) RecipientsOf(ctx context.Context, tx *gorm.DB, events []VehicleEvent) ([][]Recipient, error) {
	out := make([][]Recipient, len(events))
	if len(events) == 0 {
		return out, nil
	}
	// One row per event and key (the event's vehicle and time repeated), so
	// the query joins nothing but indexed tables to it.
	var idx, vehicles []int64
	var ats []time.Time
	var keys []int16
	for i, e := range events {
		for _, k := range e.KeyIDs {
			idx, vehicles, ats, keys = append(idx, int64(i+1)), append(vehicles, e.VehicleID), append(ats, e.At.UTC()), append(keys, k)
		}
	}
	// The fan-out asks for thousands of events at a time: the arrays go to
	// pgx as Go slices (binary), not through gorm, which would expand them.
	rows, err := tx.Statement.ConnPool.QueryContext(ctx, `SELECT q.i, c.provider_id, c.id, c.container_id, cv.version, cv.sandbox,
			array_agg(DISTINCT q.key_id ORDER BY q.key_id)
		FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::smallint[]) AS q(i, vehicle_id, at, key_id)
		JOIN consents c ON c.vehicle_id = q.vehicle_id AND c.state = 'granted' AND (c.ends_at IS NULL OR c.ends_at > q.at)
		JOIN container_versions cv ON cv.id = c.container_version_id AND cv.state IN ('approved','deprecated')
		JOIN providers p ON p.id = c.provider_id
			AND (p.status = 'active' OR (cv.sandbox AND p.status IN ('submitted','in_review','info_requested')))
		JOIN container_version_keys ck ON ck.version_id = cv.id AND ck.key_id = q.key_id
		WHERE EXISTS (SELECT 1 FROM vehicle_holders h WHERE h.vehicle_id = c.vehicle_id AND h.account_id = c.account_id AND h.role = 'primary')
		GROUP BY q.i, c.provider_id, c.id, c.container_id, cv.version, cv.sandbox
		ORDER BY q.i, c.provider_id, c.id`, idx, vehicles, ats, keys)
	if err != nil {
		return nil, errs.Wrap(err, "push recipients")
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var r Recipient
		var keyIDs sqlarray.Int16s
		if err := rows.Scan(&i, &r.ProviderID, &r.ConsentID, &r.ContainerID, &r.ContainerVersion, &r.Sandbox, &keyIDs); err != nil {
			return nil, errs.Wrap(err, "push recipients")
		}
		r.KeyIDs = keyIDs
		out[i-1] = append(out[i-1], r)
	}
	if err := rows.Err(); err != nil {
		return nil, errs.Wrap(err, "push recipients")
	}
	return out, nil
}

// ConsentActive decides, at send time, whether data may still go out under
// consent consentID of the provider: the full decision, on fresh facts, and
// the consent must still be the one in force. reason is the decision's code
// when not.
func (s *Service) ConsentActive(ctx context.Context, providerID, consentID int64, at time.Time) (bool, string, error) {
	return s.ConsentActiveFor(ctx, providerID, consentID, at, false)
}

// ConsentActiveFor is ConsentActive for a push to an endpoint of the realm
// sandbox (a sandbox webhook endpoint): the decision refuses a consent of
// the other realm as it refuses an API client of it.
func (s *Service) ConsentActiveFor(ctx context.Context, providerID, consentID int64, at time.Time, sandbox bool) (bool, string, error) {
	var c struct {
		VIN         string `gorm:"column:vin"`
		ContainerID int64
	}
	if err := s.DB.WithContext(ctx).Raw("SELECT vin, container_id FROM consents WHERE id = ? AND provider_id = ?", consentID, providerID).
		Scan(&c).Error; err != nil {
		return false, "", errs.Wrap(err, "consent for push")
	}
	if c.ContainerID == 0 {
		return false, policies.ReasonNoConsent, nil
	}
	f, refs, err := s.factsAt(ctx, providerID, 0, c.VIN, c.ContainerID, at, sandbox)
	if err != nil {
		return false, "", err
	}
	d := policies.Decide(f)
	if !d.Allowed {
		return false, d.Reason, nil
	}
	if refs.ConsentID != consentID {
		return false, policies.ReasonConsentRevoked, nil // replaced by a grant of a newer version
	}
	return true, policies.ReasonAllowed, nil
}

// GrantedAtDelivery reports, in tx (the transaction that records a
// delivery), whether consent consentID is still granted, and holds a share
// lock on it until tx ends. A revoke that committed before is seen, and
// one that comes later waits for tx: a push whose send raced a revoke is
// recorded (and billed) only if its record commits before the revoke.
func GrantedAtDelivery(ctx context.Context, tx *gorm.DB, consentID int64) (bool, error) {
	var granted bool
	err := tx.WithContext(ctx).Raw("SELECT state = 'granted' FROM consents WHERE id = ? FOR SHARE", consentID).Scan(&granted).Error
	return granted, errs.Wrap(err, "consent at delivery")
}
