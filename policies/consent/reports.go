package consent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
)

// The data report (right of access, MISSION rule 4): for every vehicle the
// customer holds, the latest stored value and reading time of every key,
// with keys never received told apart from values, plus the customer's
// consents and their history.

// DataReport is the content of the archive.
type DataReport struct {
	GeneratedAt time.Time       `json:"generatedAt"`
	Customer    ReportCustomer  `json:"customer"`
	Vehicles    []ReportVehicle `json:"vehicles"`
	Consents    []ReportConsent `json:"consents"`
}

// ReportCustomer names the account.
type ReportCustomer struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// ReportVehicle is one vehicle with the stored value of each key.
type ReportVehicle struct {
	VIN        string        `json:"vin"`
	Brand      string        `json:"brand"`
	Model      string        `json:"model"`
	Drivetrain string        `json:"drivetrain"`
	Market     string        `json:"market"`
	Role       string        `json:"role"` // primary or secondary holder
	Values     []ReportValue `json:"values"`
}

// Received counts the keys with a stored value.
func (v ReportVehicle) Received() int {
	n := 0
	for _, x := range v.Values {
		if x.Received {
			n++
		}
	}
	return n
}

// ReportValue is the latest stored reading of one key, or its absence.
type ReportValue struct {
	Key         string     `json:"key"`
	Category    string     `json:"category"`
	Unit        string     `json:"unit,omitempty"`
	Description string     `json:"description"`
	Sensitive   bool       `json:"sensitive"`
	Received    bool       `json:"received"` // false: never received
	Value       *string    `json:"value"`    // null when never received
	ReadAt      *time.Time `json:"readAt"`   // when the vehicle read it
	ReceivedAt  *time.Time `json:"receivedAt"`
}

// ReportConsent is one consent with its history.
type ReportConsent struct {
	ID           int64          `json:"id"`
	VIN          string         `json:"vin"`
	Provider     string         `json:"provider"`
	ContainerID  int64          `json:"containerId"`
	Container    string         `json:"container"`
	Version      int            `json:"version"`
	PurposeCode  string         `json:"purposeCode"`
	PurposeLabel string         `json:"purposeLabel"`
	Purpose      string         `json:"purpose"`
	Keys         []string       `json:"keys"`
	State        State          `json:"state"`
	RequestedAt  time.Time      `json:"requestedAt"`
	DecidedAt    *time.Time     `json:"decidedAt"`
	EndsAt       *time.Time     `json:"endsAt"`
	EndedAt      *time.Time     `json:"endedAt"`
	History      []ReportChange `json:"history"`
}

// ReportChange is one changelog entry.
type ReportChange struct {
	At        time.Time `json:"at"`
	From      State     `json:"from"`
	To        State     `json:"to"`
	Version   int       `json:"version"`
	ActorKind string    `json:"actorKind"`
	Actor     string    `json:"actor"`
	Note      string    `json:"note,omitempty"`
}

// BuildDataReport gathers the report of one account as stored right now.
func (s *Service) BuildDataReport(ctx context.Context, accountID int64) (*DataReport, error) {
	cust, err := s.FindCustomer(ctx, accountID)
	if err != nil {
		return nil, err
	}
	vehicles, err := s.CustomerVehicles(ctx, accountID)
	if err != nil {
		return nil, err
	}
	r := &DataReport{GeneratedAt: s.now(), Customer: ReportCustomer{ID: cust.ID, Email: cust.Email, Name: cust.Name},
		Vehicles: make([]ReportVehicle, 0, len(vehicles)), Consents: []ReportConsent{}}
	byID := map[int64]int{}
	ids := make([]int64, 0, len(vehicles))
	for _, v := range vehicles {
		byID[v.ID] = len(r.Vehicles)
		ids = append(ids, v.ID)
		r.Vehicles = append(r.Vehicles, ReportVehicle{VIN: v.VIN, Brand: v.Brand, Model: v.Model, Drivetrain: v.Drivetrain,
			Market: v.Market, Role: v.Role, Values: []ReportValue{}})
	}
	// Every key the vehicle can have (its drive train's, not retired), and
	// any other key something was stored for, with the stored value if any.
	const chunk = 200
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := s.DB.WithContext(ctx).Raw(`SELECT v.id AS vehicle_id, k.key, k.category, k.unit, k.description_en, k.sensitivity,
				lv.value, lv.read_at, lv.received_at
			FROM vehicles v
			JOIN catalog_keys k ON TRUE
			LEFT JOIN vehicle_latest_values lv ON lv.vehicle_id = v.id AND lv.key_id = k.id
			WHERE v.id IN ? AND (lv.vehicle_id IS NOT NULL
				OR (NOT k.retired AND (cardinality(k.drivetrains) = 0 OR v.drivetrain = ANY(k.drivetrains))))
			ORDER BY v.id, k.id`, part).Rows()
		if err != nil {
			return nil, errs.Wrap(err, "report values")
		}
		for rows.Next() {
			var (
				vid                        int64
				key, cat, unit, desc, sens string
				value                      *string
				readAt, receivedAt         *time.Time
			)
			if err := rows.Scan(&vid, &key, &cat, &unit, &desc, &sens, &value, &readAt, &receivedAt); err != nil {
				rows.Close()
				return nil, errs.Wrap(err, "report values")
			}
			rv := ReportValue{Key: key, Category: cat, Unit: unit, Description: desc, Sensitive: sens != "normal",
				Received: value != nil, Value: value}
			if readAt != nil {
				t, u := readAt.UTC(), receivedAt.UTC()
				rv.ReadAt, rv.ReceivedAt = &t, &u
			}
			i := byID[vid]
			r.Vehicles[i].Values = append(r.Vehicles[i].Values, rv)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, errs.Wrap(err, "report values")
		}
		rows.Close()
	}

	consents, err := s.FindConsentsOfAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	cids := make([]int64, 0, len(consents))
	vids := make([]int64, 0, len(consents))
	for _, c := range consents {
		cids = append(cids, c.ID)
		vids = append(vids, c.ContainerVersionID)
	}
	changes, err := s.Changes(ctx, cids...)
	if err != nil {
		return nil, err
	}
	keys, err := s.KeysOfVersions(ctx, vids...)
	if err != nil {
		return nil, err
	}
	for _, c := range consents {
		rc := ReportConsent{ID: c.ID, VIN: c.VIN, Provider: c.ProviderName, ContainerID: c.ContainerID, Container: c.ContainerName,
			Version: c.Version, PurposeCode: c.PurposeCode, PurposeLabel: c.PurposeLabel(), Purpose: c.Purpose, Keys: []string{},
			State: c.State, RequestedAt: c.RequestedAt.UTC(), DecidedAt: c.DecidedAt, EndsAt: c.EndsAt, EndedAt: c.EndedAt,
			History: []ReportChange{}}
		for _, k := range keys[c.ContainerVersionID] {
			rc.Keys = append(rc.Keys, k.Key)
		}
		for _, ch := range changes[c.ID] {
			rc.History = append(rc.History, ReportChange{At: ch.At.UTC(), From: ch.FromState, To: ch.ToState, Version: ch.Version,
				ActorKind: ch.ActorKind, Actor: ch.ActorLabel, Note: ch.Note})
		}
		r.Consents = append(r.Consents, rc)
	}
	return r, nil
}

// Report statuses.
const (
	ReportPending  = "pending"
	ReportBuilding = "building"
	ReportReady    = "ready"
	ReportFailed   = "failed"
)

// ReportTTL is how long a built archive is kept.
const ReportTTL = 7 * 24 * time.Hour

// SyncReportMaxVehicles: accounts with at most this many vehicles get their
// archive at once; larger ones (fleets) are built in the background.
const SyncReportMaxVehicles = 20

// maxReportAttempts before a background build is given up.
const maxReportAttempts = 3

// Report is a stored data-report archive (without its bytes).
type Report struct {
	ID            int64 `gorm:"primaryKey"`
	AccountID     int64
	Status        string
	RequestedBy   string
	RequestedKind string
	Vehicles      int
	Filename      string
	SizeBytes     int64
	SHA256        string `gorm:"column:sha256"`
	Error         string
	Attempts      int
	CreatedAt     time.Time
	StartedAt     *time.Time
	ReadyAt       *time.Time
	ExpiresAt     time.Time
}

func (Report) TableName() string { return "data_reports" }

// reportColumns excludes the archive bytes from listings.
var reportColumns = []string{"id", "account_id", "status", "requested_by", "requested_kind", "vehicles", "filename",
	"size_bytes", "sha256", "error", "attempts", "created_at", "started_at", "ready_at", "expires_at"}

// auditStaff records an entry when staff act on a customer's request (the
// customer's own requests are the customer's business, not the audit trail's).
func auditStaff(ctx context.Context, tx *gorm.DB, action string, accountID int64, summary string) error {
	if p := policies.PrincipalFrom(ctx); p == nil || p.Kind != policies.KindStaff {
		return nil
	}
	return audit.Record(ctx, tx, action, "customer_account", strconv.FormatInt(accountID, 10), summary)
}

// RequestDataReport starts a data report for an account: built at once
// for small accounts, queued for the background job for large ones. An
// unfinished request of the same account is returned instead of a second.
func (s *Service) RequestDataReport(ctx context.Context, accountID int64) (*Report, error) {
	vehicles, err := s.CustomerVehicles(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if _, err := s.FindCustomer(ctx, accountID); err != nil {
		return nil, err
	}
	var rep Report
	reused := false
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// One request at a time per account, also under concurrent clicks.
		if err := tx.Exec("SELECT pg_advisory_xact_lock(727035, ?::int)", int32(accountID)).Error; err != nil {
			return errs.Wrap(err, "report lock")
		}
		err := tx.Select(reportColumns).Where("account_id = ? AND status IN ?", accountID, []string{ReportPending, ReportBuilding}).
			Order("id").Take(&rep).Error
		if err == nil {
			reused = true
			return nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return errs.Wrap(err, "pending report")
		}
		_, _, label := actor(ctx)
		kind := "anonymous"
		if p := policies.PrincipalFrom(ctx); p != nil {
			kind = p.Kind
		}
		now := s.now()
		rep = Report{AccountID: accountID, Status: ReportPending, RequestedBy: label, RequestedKind: kind,
			Vehicles: len(vehicles), CreatedAt: now, ExpiresAt: now.Add(ReportTTL)}
		if len(vehicles) <= SyncReportMaxVehicles {
			// Built in this request; the job only takes it over should this
			// process die midway (a build older than 15 minutes).
			rep.Status, rep.StartedAt, rep.Attempts = ReportBuilding, &now, 1
		}
		if err := tx.Select(reportColumns[1:]).Create(&rep).Error; err != nil {
			return errs.Wrap(err, "create report")
		}
		return auditStaff(ctx, tx, "customer.data_report", accountID,
			fmt.Sprintf("data report %d requested on the customer's behalf (%d vehicles)", rep.ID, len(vehicles)))
	})
	if err != nil || reused || len(vehicles) > SyncReportMaxVehicles {
		return &rep, err
	}
	if err := s.buildReport(ctx, rep.ID, accountID); err != nil {
		return nil, err
	}
	return s.FindDataReport(ctx, accountID, rep.ID)
}

// buildReport renders and stores one archive (status building or pending).
func (s *Service) buildReport(ctx context.Context, id, accountID int64) error {
	r, err := s.BuildDataReport(ctx, accountID)
	var data []byte
	if err == nil {
		data, err = RenderArchive(r, s.Location)
	}
	now := s.now()
	if err != nil {
		if errs.KindOf(err) == errs.Internal && ctx.Err() == nil {
			_ = s.DB.WithContext(ctx).Model(&Report{}).Where("id = ?", id).
				Updates(map[string]any{"status": ReportFailed, "error": "the archive could not be built"}).Error
		}
		return err
	}
	sum := sha256.Sum256(data)
	name := fmt.Sprintf("cardata-data-report-%d-%s.zip", accountID, now.Format("20060102-150405"))
	return errs.Wrap(s.DB.WithContext(ctx).Model(&Report{}).Where("id = ?", id).Updates(map[string]any{
		"status": ReportReady, "data": data, "size_bytes": len(data), "sha256": hex.EncodeToString(sum[:]),
		"filename": name, "ready_at": now, "expires_at": now.Add(ReportTTL), "vehicles": len(r.Vehicles), "error": "",
	}).Error, "store report")
}

// FindDataReports lists an account's archives that are not yet deleted, newest first.
func (s *Service) FindDataReports(ctx context.Context, accountID int64) ([]Report, error) {
	var out []Report
	err := s.DB.WithContext(ctx).Select(reportColumns).Where("account_id = ? AND expires_at > ?", accountID, s.now()).
		Order("id DESC").Find(&out).Error
	return out, errs.Wrap(err, "data reports")
}

// ErrReportNotFound is returned for unknown, expired and other accounts' reports.
var ErrReportNotFound = errs.New(errs.NotFound, "report_not_found", "report not found or no longer kept (archives are kept for 7 days)")

// FindDataReport returns one of the account's archives (without bytes).
func (s *Service) FindDataReport(ctx context.Context, accountID, id int64) (*Report, error) {
	var r Report
	err := s.DB.WithContext(ctx).Select(reportColumns).Where("id = ? AND account_id = ? AND expires_at > ?", id, accountID, s.now()).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrReportNotFound
	}
	return &r, errs.Wrap(err, "data report")
}

// DataReportFile returns a ready archive's name and bytes. Staff downloads
// are audited.
func (s *Service) DataReportFile(ctx context.Context, accountID, id int64) (string, []byte, error) {
	var row struct {
		Filename string
		Data     []byte
	}
	err := s.DB.WithContext(ctx).Raw("SELECT filename, data FROM data_reports WHERE id = ? AND account_id = ? AND status = ? AND expires_at > ?",
		id, accountID, ReportReady, s.now()).Scan(&row).Error
	if err != nil {
		return "", nil, errs.Wrap(err, "data report file")
	}
	if row.Data == nil {
		return "", nil, ErrReportNotFound
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return auditStaff(ctx, tx, "customer.data_report_download", accountID, fmt.Sprintf("downloaded data report %d", id))
	})
	return row.Filename, row.Data, err
}

// BuildPendingReports builds queued archives, one claim at a time so that
// several replicas share the work; a build abandoned by a crashed process
// is claimed again after 15 minutes, at most three times.
func (s *Service) BuildPendingReports(ctx context.Context, max int) (built, failed int, err error) {
	for i := 0; i < max; i++ {
		if err := ctx.Err(); err != nil {
			return built, failed, err
		}
		var claim struct {
			ID        int64
			AccountID int64
			Attempts  int
		}
		now := s.now()
		err := s.DB.WithContext(ctx).Raw(`UPDATE data_reports SET status = 'building', started_at = ?, attempts = attempts + 1
			WHERE id = (SELECT id FROM data_reports
				WHERE (status = 'pending' OR (status = 'building' AND started_at < ?)) AND expires_at > ?
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING id, account_id, attempts`, now, now.Add(-15*time.Minute), now).Scan(&claim).Error
		if err != nil {
			return built, failed, errs.Wrap(err, "claim report")
		}
		if claim.ID == 0 {
			return built, failed, nil
		}
		if claim.Attempts > maxReportAttempts {
			failed++
			if err := s.DB.WithContext(ctx).Model(&Report{}).Where("id = ?", claim.ID).
				Updates(map[string]any{"status": ReportFailed, "error": "gave up after three attempts"}).Error; err != nil {
				return built, failed, errs.Wrap(err, "fail report")
			}
			continue
		}
		if err := s.buildReport(ctx, claim.ID, claim.AccountID); err != nil {
			if ctx.Err() != nil {
				return built, failed, err
			}
			failed++
			continue
		}
		built++
	}
	return built, failed, nil
}

// PurgeExpiredReports deletes archives past their 7 days.
func (s *Service) PurgeExpiredReports(ctx context.Context) (int64, error) {
	res := s.DB.WithContext(ctx).Where("expires_at <= ?", s.now()).Delete(&Report{})
	return res.RowsAffected, errs.Wrap(res.Error, "purge reports")
}

// The transaction report (MISSION rule 5): every transfer of the
// customer's vehicle data to a third party on the basis of their consent,
// from the delivery ledger that billing owns.

// LedgerEntry is one delivery-ledger record as the report needs it.
type LedgerEntry struct {
	ID               int64
	ConsentID        int64
	ProviderID       int64
	VIN              string
	ContainerID      int64
	ContainerVersion int
	Kind             string // pull or push
	KeysDelivered    int
	DeliveredAt      time.Time
}

// TransferSource reads the delivery ledger (billing's table); app wires an
// implementation in. from is inclusive, to exclusive; zero times are open.
type TransferSource interface {
	Transfers(ctx context.Context, consentIDs []int64, from, to time.Time) ([]LedgerEntry, error)
}

// Transfer is one line of the transaction report.
type Transfer struct {
	At           time.Time `json:"at"`
	VIN          string    `json:"vin"`
	Provider     string    `json:"provider"`
	ContainerID  int64     `json:"containerId"`
	Container    string    `json:"container"`
	Version      int       `json:"version"`
	PurposeCode  string    `json:"purposeCode"`
	PurposeLabel string    `json:"purposeLabel"`
	Keys         []string  `json:"keys"`
	Kind         string    `json:"kind"`
	Values       int       `json:"values"`
	ConsentID    int64     `json:"consentId"`
}

// TransactionReport lists the transfers in a period.
type TransactionReport struct {
	GeneratedAt time.Time
	Customer    ReportCustomer
	From, To    time.Time // inclusive start, exclusive end; zero: open
	Transfers   []Transfer
	// Containers are the container versions that appear, with their keys.
	Containers []ReportContainer
}

// ReportContainer is a container version named in a transaction report.
type ReportContainer struct {
	Provider     string
	ContainerID  int64
	Name         string
	Version      int
	PurposeLabel string
	Purpose      string
	Keys         []string
}

// BuildTransactionReport lists every transfer of data of the account's
// consents in [from, to) from the ledger, oldest first. Staff requests are
// audited.
func (s *Service) BuildTransactionReport(ctx context.Context, accountID int64, from, to time.Time) (*TransactionReport, error) {
	if s.Transfers == nil {
		return nil, errs.New(errs.Unavailable, "ledger_unavailable", "the delivery ledger is not available")
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		var v errs.Validation
		v.Add("to", "period_invalid", "the end of the period must lie after its start")
		return nil, v.Err()
	}
	cust, err := s.FindCustomer(ctx, accountID)
	if err != nil {
		return nil, err
	}
	consents, err := s.FindConsentsOfAccount(ctx, accountID)
	if err != nil {
		return nil, err
	}
	r := &TransactionReport{GeneratedAt: s.now(), Customer: ReportCustomer{ID: cust.ID, Email: cust.Email, Name: cust.Name},
		From: from, To: to, Transfers: []Transfer{}}
	byID := map[int64]*Consent{}
	ids := make([]int64, 0, len(consents))
	containerIDs := map[int64]bool{}
	for i := range consents {
		byID[consents[i].ID] = &consents[i]
		ids = append(ids, consents[i].ID)
		containerIDs[consents[i].ContainerID] = true
	}
	if len(ids) > 0 {
		entries, err := s.Transfers.Transfers(ctx, ids, from, to)
		if err != nil {
			return nil, err
		}
		// The version a transfer was made under (a carried-over consent may
		// have delivered under several).
		var versions []struct {
			ID          int64
			ContainerID int64
			Version     int
			Name        string
			Purpose     string
			PurposeCode string
		}
		cids := make([]int64, 0, len(containerIDs))
		for id := range containerIDs {
			cids = append(cids, id)
		}
		if err := s.DB.WithContext(ctx).Raw("SELECT id, container_id, version, name, purpose, purpose_code FROM container_versions WHERE container_id IN ?",
			cids).Scan(&versions).Error; err != nil {
			return nil, errs.Wrap(err, "report versions")
		}
		type vkey struct {
			container int64
			version   int
		}
		vIndex := map[vkey]int{}
		vids := make([]int64, 0, len(versions))
		for i, v := range versions {
			vIndex[vkey{v.ContainerID, v.Version}] = i
			vids = append(vids, v.ID)
		}
		keys, err := s.KeysOfVersions(ctx, vids...)
		if err != nil {
			return nil, err
		}
		seen := map[vkey]bool{}
		for _, e := range entries {
			c := byID[e.ConsentID]
			if c == nil {
				continue
			}
			t := Transfer{At: e.DeliveredAt.UTC(), VIN: e.VIN, Provider: c.ProviderName, ContainerID: e.ContainerID,
				Version: e.ContainerVersion, Kind: e.Kind, Values: e.KeysDelivered, ConsentID: e.ConsentID, Keys: []string{}}
			k := vkey{e.ContainerID, e.ContainerVersion}
			if i, ok := vIndex[k]; ok {
				v := versions[i]
				t.Container, t.PurposeCode, t.PurposeLabel = v.Name, v.PurposeCode, PurposeLabel(v.PurposeCode)
				for _, key := range keys[v.ID] {
					t.Keys = append(t.Keys, key.Key)
				}
				if !seen[k] {
					seen[k] = true
					r.Containers = append(r.Containers, ReportContainer{Provider: c.ProviderName, ContainerID: v.ContainerID, Name: v.Name,
						Version: v.Version, PurposeLabel: t.PurposeLabel, Purpose: v.Purpose, Keys: t.Keys})
				}
			}
			r.Transfers = append(r.Transfers, t)
		}
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return auditStaff(ctx, tx, "customer.transaction_report", accountID,
			fmt.Sprintf("transaction report produced on the customer's behalf (%d transfers)", len(r.Transfers)))
	})
	return r, err
}

// ParsePeriod reads a report period from dates (YYYY-MM-DD, either may be
// empty) in loc: from is the start of its day, to the end of its day.
func ParsePeriod(from, to string, loc *time.Location) (time.Time, time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	var v errs.Validation
	var f, t time.Time
	if s := strings.TrimSpace(from); s != "" {
		d, err := time.ParseInLocation("2006-01-02", s, loc)
		if err != nil {
			v.Add("from", "date_invalid", "enter the date as YYYY-MM-DD")
		}
		f = d
	}
	if s := strings.TrimSpace(to); s != "" {
		d, err := time.ParseInLocation("2006-01-02", s, loc)
		if err != nil {
			v.Add("to", "date_invalid", "enter the date as YYYY-MM-DD")
		} else {
			t = d.AddDate(0, 0, 1)
		}
	}
	if !f.IsZero() && !t.IsZero() && !t.After(f) {
		v.Add("to", "period_invalid", "the end date must not lie before the start date")
	}
	return f, t, v.Err()
}
