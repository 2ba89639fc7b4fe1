package consent

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/errs"
	"cardata/templates/i18n"
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
	// SentFromLedger: each consent's Sent was read from the delivery
	// ledger (false only where no ledger is wired: then Sent is null,
	// which means unknown, not "nothing sent").
	SentFromLedger bool `json:"sentFromLedger"`
}

// ReportCustomer names the account.
type ReportCustomer struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	// Lang is the language the customer chose ("" when never), for
	// documents staff produce for them; not part of the report's files.
	Lang string `json:"-"`
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

// DescriptionIn is the key's description in lang (the catalog's DE/EN).
func (v ReportValue) DescriptionIn(lang i18n.Lang) string {
	return pick(lang, v.Description, v.DescriptionDE)
}

// ReportValue is the latest stored reading of one key, or its absence.
type ReportValue struct {
	Key         string `json:"key"`
	Category    string `json:"category"`
	Unit        string `json:"unit,omitempty"`
	Description string `json:"description"`
	// DescriptionDE is the catalog's German description.
	DescriptionDE string     `json:"descriptionDe"`
	Sensitive     bool       `json:"sensitive"`
	Received      bool       `json:"received"` // false: never received
	Value         *string    `json:"value"`    // null when never received
	ReadAt        *time.Time `json:"readAt"`   // when the vehicle read it
	ReceivedAt    *time.Time `json:"receivedAt"`
}

// ReportConsent is one consent with its history.
type ReportConsent struct {
	ID           int64    `json:"id"`
	VIN          string   `json:"vin"`
	Provider     string   `json:"provider"`
	ContainerID  int64    `json:"containerId"`
	Container    string   `json:"container"`
	Version      int      `json:"version"`
	PurposeCode  string   `json:"purposeCode"`
	PurposeLabel string   `json:"purposeLabel"`
	Purpose      string   `json:"purpose"`
	Keys         []string `json:"keys"`
	// Sent is what actually left under the consent, from the delivery
	// ledger: each key whose value was delivered to the provider, how often
	// and when first and last. KeysNotRecorded counts deliveries made
	// before the ledger named keys (which keys they carried is unknown).
	Sent            []ReportSentKey   `json:"sent"`
	KeysNotRecorded *ReportUnrecorded `json:"keysNotRecorded"`
	State           State             `json:"state"`
	RequestedAt     time.Time         `json:"requestedAt"`
	DecidedAt       *time.Time        `json:"decidedAt"`
	EndsAt          *time.Time        `json:"endsAt"`
	EndedAt         *time.Time        `json:"endedAt"`
	History         []ReportChange    `json:"history"`
}

// ReportSentKey is one key delivered under a consent.
type ReportSentKey struct {
	Key        string    `json:"key"`
	Label      string    `json:"label"`
	LabelDE    string    `json:"labelDe"`
	Deliveries int64     `json:"deliveries"`
	FirstAt    time.Time `json:"firstSentAt"`
	LastAt     time.Time `json:"lastSentAt"`
}

// ReportUnrecorded counts a consent's deliveries whose keys the ledger did
// not record.
type ReportUnrecorded struct {
	Deliveries int64     `json:"deliveries"`
	FirstAt    time.Time `json:"firstSentAt"`
	LastAt     time.Time `json:"lastSentAt"`
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
	r := &DataReport{GeneratedAt: s.now(), Customer: ReportCustomer{ID: cust.ID, Email: cust.Email, Name: cust.Name, Lang: cust.Lang},
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
		rows, err := s.DB.WithContext(ctx).Raw(`SELECT v.id AS vehicle_id, k.key, k.category, k.unit, k.description_en, k.description_de, k.sensitivity,
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
				descDE                     string
				value                      *string
				readAt, receivedAt         *time.Time
			)
			if err := rows.Scan(&vid, &key, &cat, &unit, &desc, &descDE, &sens, &value, &readAt, &receivedAt); err != nil {
				rows.Close()
				return nil, errs.Wrap(err, "report values")
			}
			rv := ReportValue{Key: key, Category: cat, Unit: unit, Description: desc, DescriptionDE: descDE, Sensitive: sens != "normal",
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
	if err := s.addSentKeys(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// addSentKeys fills in, per consent, the keys the ledger says were sent.
func (s *Service) addSentKeys(ctx context.Context, r *DataReport) error {
	if s.Transfers == nil || len(r.Consents) == 0 {
		return nil
	}
	ids := make([]int64, len(r.Consents))
	at := map[int64]int{}
	for i, c := range r.Consents {
		ids[i], at[c.ID] = c.ID, i
		r.Consents[i].Sent = []ReportSentKey{}
	}
	r.SentFromLedger = true
	sent, err := s.Transfers.SentKeys(ctx, ids)
	if err != nil {
		return err
	}
	for _, k := range sent {
		i, ok := at[k.ConsentID]
		if !ok {
			continue
		}
		c := &r.Consents[i]
		if k.Key == nil {
			c.KeysNotRecorded = &ReportUnrecorded{Deliveries: k.Deliveries, FirstAt: k.First.UTC(), LastAt: k.Last.UTC()}
			continue
		}
		c.Sent = append(c.Sent, ReportSentKey{Key: k.Key.Key, Label: k.Key.Label, LabelDE: k.Key.LabelDE, Deliveries: k.Deliveries,
			FirstAt: k.First.UTC(), LastAt: k.Last.UTC()})
	}
	return nil
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

// maxReportAttempts: a build that fails for a passing reason (the database
// unreachable, a timeout) or is abandoned by a stopped process is tried this
// many times in all before the report is dead-lettered.
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
	FailedAt      *time.Time // when it was dead-lettered (status failed)
	// Lang is the archive's language ("" : the customer's remembered one,
	// else English).
	Lang string
}

func (Report) TableName() string { return "data_reports" }

// reportColumns excludes the archive bytes from listings.
var reportColumns = []string{"id", "account_id", "status", "requested_by", "requested_kind", "vehicles", "filename",
	"size_bytes", "sha256", "error", "attempts", "created_at", "started_at", "ready_at", "expires_at", "failed_at", "lang"}

// auditStaff records an entry when staff act on a customer's request (the
// customer's own requests are the customer's business, not the audit trail's).
// The summary is a format and its arguments (audit.Recordf).
func auditStaff(ctx context.Context, tx *gorm.DB, action string, accountID int64, format string, args ...any) error {
	if p := policies.PrincipalFrom(ctx); p == nil || p.Kind != policies.KindStaff {
		return nil
	}
	return audit.Recordf(ctx, tx, action, "customer_account", strconv.FormatInt(accountID, 10), format, args...)
}

// RequestDataReport starts a data report for an account: built at once
// for small accounts, queued for the background job for large ones. An
// unfinished request of the same account is returned instead of a second.
func (s *Service) RequestDataReport(ctx context.Context, accountID int64, lang i18n.Lang) (*Report, error) {
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
		label := policies.ActorOf(ctx, nil).Name
		kind := "anonymous"
		if p := policies.PrincipalFrom(ctx); p != nil {
			kind = p.Kind
		}
		now := s.now()
		rep = Report{AccountID: accountID, Status: ReportPending, RequestedBy: label, RequestedKind: kind,
			Vehicles: len(vehicles), CreatedAt: now, ExpiresAt: now.Add(ReportTTL), Lang: string(lang)}
		if len(vehicles) <= SyncReportMaxVehicles {
			// Built in this request; the job only takes it over should this
			// process die midway (a build older than 15 minutes).
			rep.Status, rep.StartedAt, rep.Attempts = ReportBuilding, &now, 1
		}
		if err := tx.Select(reportColumns[1:]).Create(&rep).Error; err != nil {
			return errs.Wrap(err, "create report")
		}
		return auditStaff(ctx, tx, "customer.data_report", accountID,
			"data report %d requested on the customer's behalf (%d vehicles)", rep.ID, len(vehicles))
	})
	if err != nil || reused || len(vehicles) > SyncReportMaxVehicles {
		return &rep, err
	}
	if err := s.buildReport(ctx, rep.ID, accountID); err != nil {
		if ctx.Err() != nil {
			return nil, err // left building: the job takes it over after 15 minutes
		}
		if dead, ferr := s.reportFailed(ctx, rep.ID, rep.Attempts, err); ferr != nil || dead {
			return nil, err
		}
		// A passing failure: the report is queued for the background job.
	}
	return s.FindDataReport(ctx, accountID, rep.ID)
}

// reportLang is an archive's language: the one it was asked in, else the
// customer's remembered one, else English.
func reportLang(asked, remembered string) i18n.Lang {
	if l, ok := i18n.Parse(asked); ok {
		return l
	}
	if l, ok := i18n.Parse(remembered); ok {
		return l
	}
	return i18n.EN
}

// buildReport renders and stores one claimed archive (status building). A
// failure changes nothing here (reportFailed decides what becomes of the
// report); a panic while building is returned as an error, so that one
// report is set aside rather than the builder stopped.
func (s *Service) buildReport(ctx context.Context, id, accountID int64) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errs.Wrap(fmt.Errorf("panic while building: %v", p), "build report")
		}
	}()
	r, err := s.BuildDataReport(ctx, accountID)
	var data []byte
	if err == nil {
		var asked string
		if err = s.DB.WithContext(ctx).Raw("SELECT lang FROM data_reports WHERE id = ?", id).Scan(&asked).Error; err != nil {
			return errs.Wrap(err, "report language")
		}
		data, err = RenderArchive(r, s.Location, reportLang(asked, r.Customer.Lang))
	}
	if err != nil {
		return err
	}
	now := s.now()
	sum := sha256.Sum256(data)
	// The name carries the generation time in the customer's zone, the same
	// date and time the report's pages and CSV files print.
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	name := fmt.Sprintf("cardata-data-report-%d-%s.zip", accountID, r.GeneratedAt.In(loc).Format("20060102-150405"))
	return errs.Wrap(s.DB.WithContext(ctx).Model(&Report{}).Where("id = ?", id).Updates(map[string]any{
		"status": ReportReady, "data": data, "size_bytes": len(data), "sha256": hex.EncodeToString(sum[:]),
		"filename": name, "ready_at": now, "expires_at": now.Add(ReportTTL), "vehicles": len(r.Vehicles), "error": "",
	}).Error, "store report")
}

// FindDataReports lists an account's archives that are not yet deleted,
// and its dead-lettered (failed) reports, newest first.
func (s *Service) FindDataReports(ctx context.Context, accountID int64) ([]Report, error) {
	var out []Report
	err := s.DB.WithContext(ctx).Select(reportColumns).Where("account_id = ? AND (expires_at > ? OR status = ?)", accountID, s.now(), ReportFailed).
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
		return auditStaff(ctx, tx, "customer.data_report_download", accountID, "downloaded data report %d", id)
	})
	return row.Filename, row.Data, err
}

// BuildPendingReports builds queued archives, one claim at a time so that
// several replicas share the work; a build abandoned by a crashed process
// is claimed again after 15 minutes. A report whose build fails never holds
// up the others: a passing failure waits for the next run (each report is
// tried at most once per run), and a failure the same report meets again,
// or the last of three attempts, dead-letters it (reportFailed).
func (s *Service) BuildPendingReports(ctx context.Context, max int) (built, failed int, err error) {
	tried := []int64{0} // the reports claimed in this run (0: never an id; NOT IN () is not SQL)
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
				WHERE (status = 'pending' OR (status = 'building' AND started_at < ?)) AND expires_at > ? AND id NOT IN ?
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING id, account_id, attempts`, now, now.Add(-15*time.Minute), now, tried).Scan(&claim).Error
		if err != nil {
			return built, failed, errs.Wrap(err, "claim report")
		}
		if claim.ID == 0 {
			return built, failed, nil
		}
		tried = append(tried, claim.ID)
		if claim.Attempts > maxReportAttempts {
			// Abandoned midway by a stopped process every time.
			failed++
			if _, err := s.deadLetterReport(ctx, claim.ID, claim.Attempts-1,
				fmt.Sprintf("the build was abandoned midway %d times (the process building it stopped)", claim.Attempts-1)); err != nil {
				return built, failed, err
			}
			continue
		}
		if err := s.buildReport(ctx, claim.ID, claim.AccountID); err != nil {
			if ctx.Err() != nil {
				return built, failed, err
			}
			failed++
			if _, err := s.reportFailed(ctx, claim.ID, claim.Attempts, err); err != nil {
				return built, failed, err
			}
			continue
		}
		built++
	}
	return built, failed, nil
}

// Register adds the report builder's metric to reg (the service that runs
// the builder and the customers' requests).
func (s *Service) Register(reg prometheus.Registerer) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "cardata_report_dead_letters_total",
		Help: "Data reports set aside (status failed) because they could not be built; staff retry them from the customer requests page."})
	reg.MustRegister(c)
	s.reportDead = c
}

// reportFailed records a failed build of a claimed report (cause, at its
// attempts-th attempt): a failure that the same report meets again (its
// data, the archive, a missing account), or the last of maxReportAttempts,
// dead-letters it; a passing one (the database unreachable, a timeout)
// gives it back to the queue with the error. It reports whether the report
// was dead-lettered.
func (s *Service) reportFailed(ctx context.Context, id int64, attempts int, cause error) (bool, error) {
	if attempts >= maxReportAttempts || !transientFailure(cause) {
		return s.deadLetterReport(ctx, id, attempts, causeText(cause))
	}
	slog.Default().Warn("data report build failed; it is tried again", "report", id, "attempts", attempts, "error", cause.Error())
	err := s.DB.WithContext(context.WithoutCancel(ctx)).Model(&Report{}).Where("id = ? AND status = ?", id, ReportBuilding).
		Updates(map[string]any{"status": ReportPending, "error": clipText(causeText(cause), 1000)}).Error
	return false, errs.Wrap(err, "record report failure")
}

// deadLetterReport sets a claimed report aside as failed with its error
// and counts it; staff see it on the customer requests pages and may retry
// it (RetryDataReport).
func (s *Service) deadLetterReport(ctx context.Context, id int64, attempts int, cause string) (bool, error) {
	res := s.DB.WithContext(context.WithoutCancel(ctx)).Model(&Report{}).Where("id = ? AND status = ?", id, ReportBuilding).
		Updates(map[string]any{"status": ReportFailed, "error": clipText(cause, 1000), "failed_at": s.now()})
	if res.Error != nil {
		return false, errs.Wrap(res.Error, "dead-letter report")
	}
	if res.RowsAffected == 0 {
		return false, nil // taken over meanwhile
	}
	if s.reportDead != nil {
		s.reportDead.Inc()
	}
	slog.Default().Error("data report dead-lettered", "report", id, "attempts", attempts, "error", cause)
	return true, nil
}

// transientFailure reports whether err is a passing condition (connection
// lost or refused, a timeout, the server shutting down, a serialization
// failure) that a later attempt may not meet, rather than one of the report.
func transientFailure(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 08 connection exception, 40 transaction rollback, 53 insufficient
		// resources, 57 operator intervention (shutdown, cancel).
		for _, class := range []string{"08", "40", "53", "57"} {
			if strings.HasPrefix(pe.Code, class) {
				return true
			}
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err)
}

// causeText is the cause of an error for staff (errs.Error shows its
// client-safe message only).
func causeText(err error) string {
	var e *errs.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// DeadReport is a data report the builder set aside, for staff.
type DeadReport struct {
	ID            int64
	AccountID     int64
	CustomerName  string
	CustomerEmail string
	RequestedBy   string
	Vehicles      int
	Attempts      int
	Error         string
	CreatedAt     time.Time
	FailedAt      time.Time
}

// DeadReports lists the dead-lettered data reports of all customers, most
// recently failed first, and how many there are.
func (s *Service) DeadReports(ctx context.Context, limit int) ([]DeadReport, int64, error) {
	var out []DeadReport
	err := s.DB.WithContext(ctx).Raw(`SELECT r.id, r.account_id, coalesce(a.name, '') AS customer_name, coalesce(a.email, '') AS customer_email,
			r.requested_by, r.vehicles, r.attempts, r.error, r.created_at, coalesce(r.failed_at, r.created_at) AS failed_at
		FROM data_reports r LEFT JOIN customer_accounts a ON a.id = r.account_id
		WHERE r.status = 'failed' ORDER BY r.failed_at DESC, r.id DESC LIMIT ?`, limit).Scan(&out).Error
	if err != nil {
		return nil, 0, errs.Wrap(err, "dead data reports")
	}
	var n int64
	if err := s.DB.WithContext(ctx).Raw("SELECT count(*) FROM data_reports WHERE status = 'failed'").Scan(&n).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count dead data reports")
	}
	return out, n, nil
}

// ErrDeadReportNotFound: the account has no dead-lettered report with that id.
var ErrDeadReportNotFound = errs.New(errs.NotFound, "dead_report_not_found", "no failed data report of this customer with that id")

// RetryDataReport queues a dead-lettered report of the account again (staff
// on the customer's request), audited: its attempts start again from zero
// and it is kept 7 days from now; the background job builds it.
func (s *Service) RetryDataReport(ctx context.Context, accountID, id int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var old []struct {
			Error    string
			Attempts int
		}
		err := tx.Raw(`UPDATE data_reports r SET status = 'pending', attempts = 0, error = '', failed_at = NULL, started_at = NULL, expires_at = ?
			FROM (SELECT id, error, attempts FROM data_reports WHERE id = ? AND account_id = ? AND status = 'failed' FOR UPDATE) old
			WHERE r.id = old.id RETURNING old.error, old.attempts`, s.now().Add(ReportTTL), id, accountID).Scan(&old).Error
		if err != nil {
			return errs.Wrap(err, "retry data report")
		}
		if len(old) == 0 {
			return ErrDeadReportNotFound
		}
		return audit.Recordf(ctx, tx, "customer.data_report_retry", "customer_account", strconv.FormatInt(accountID, 10),
			"data report %d queued again after it failed (%d attempts): %s", id, old[0].Attempts, clipText(old[0].Error, 300))
	})
}

// PurgeExpiredReports deletes archives past their 7 days; dead-lettered
// reports are kept until staff retry them.
func (s *Service) PurgeExpiredReports(ctx context.Context) (int64, error) {
	res := s.DB.WithContext(ctx).Where("expires_at <= ? AND status <> ?", s.now(), ReportFailed).Delete(&Report{})
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
	// Keys are the keys whose values the record carried; nil when the
	// record was written before the ledger named its keys (unknown).
	Keys        []TransferKey
	EventID     string // pushes: the event the provider received
	EventType   string
	DeliveredAt time.Time
}

// TransferKey is a delivered key: its raw name and its plain-language
// description (the catalog's English and German texts).
type TransferKey struct {
	Key     string `json:"key"`
	Label   string `json:"label"`
	LabelDE string `json:"labelDe"`
}

// SentKey sums a consent's deliveries of one key; Key nil stands for the
// deliveries whose keys were not recorded.
type SentKey struct {
	ConsentID   int64
	Key         *TransferKey
	Deliveries  int64
	First, Last time.Time
}

// TransferSource reads the delivery ledger (billing owns it); app wires an
// implementation in. from is inclusive, to exclusive; zero times are open.
type TransferSource interface {
	Transfers(ctx context.Context, consentIDs []int64, from, to time.Time) ([]LedgerEntry, error)
	// SentKeys sums, per consent and key, what the ledger says was sent.
	SentKeys(ctx context.Context, consentIDs []int64) ([]SentKey, error)
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
	// Keys are the raw keys whose values this transfer carried (exactly
	// the ledger record's, not the container's); KeyNames the same in
	// plain language. Both are null when KeysKnown is false: the record
	// predates the ledger naming its keys, and none are invented.
	Keys      []string      `json:"keys"`
	KeyNames  []TransferKey `json:"keyNames"`
	KeysKnown bool          `json:"keysKnown"`
	Kind      string        `json:"kind"`
	Values    int           `json:"values"`
	ConsentID int64         `json:"consentId"`
	EventID   string        `json:"eventId,omitempty"`
	EventType string        `json:"eventType,omitempty"`
}

// TransactionReport lists the transfers in a period.
type TransactionReport struct {
	GeneratedAt time.Time
	Customer    ReportCustomer
	From, To    time.Time // inclusive start, exclusive end; zero: open
	Transfers   []Transfer
	// Containers are the container versions that appear, with the keys
	// their consent covers (what a transfer carried is in its Keys).
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
	r := &TransactionReport{GeneratedAt: s.now(), Customer: ReportCustomer{ID: cust.ID, Email: cust.Email, Name: cust.Name, Lang: cust.Lang},
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
				Version: e.ContainerVersion, Kind: e.Kind, Values: e.KeysDelivered, ConsentID: e.ConsentID,
				KeysKnown: e.Keys != nil, EventID: e.EventID, EventType: e.EventType}
			if e.Keys != nil {
				t.Keys, t.KeyNames = make([]string, len(e.Keys)), e.Keys
				for i, key := range e.Keys {
					t.Keys[i] = key.Key
				}
			}
			k := vkey{e.ContainerID, e.ContainerVersion}
			if i, ok := vIndex[k]; ok {
				v := versions[i]
				t.Container, t.PurposeCode, t.PurposeLabel = v.Name, v.PurposeCode, PurposeLabel(v.PurposeCode)
				if !seen[k] {
					seen[k] = true
					covered := []string{}
					for _, key := range keys[v.ID] {
						covered = append(covered, key.Key)
					}
					r.Containers = append(r.Containers, ReportContainer{Provider: c.ProviderName, ContainerID: v.ContainerID, Name: v.Name,
						Version: v.Version, PurposeLabel: t.PurposeLabel, Purpose: v.Purpose, Keys: covered})
				}
			}
			r.Transfers = append(r.Transfers, t)
		}
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return auditStaff(ctx, tx, "customer.transaction_report", accountID,
			"transaction report produced on the customer's behalf (%d transfers)", len(r.Transfers))
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
