// Package containers is the purpose-bound data container: a provider's
// named set of telematics keys bound to one stated purpose, reviewed by
// partner managers before any consent can refer to it.
//
// What is reviewed, approved and consented to is a version. An approved
// version never changes; a change is a new version, which goes through
// review again. Approving a new version deprecates the previous one: when
// the new version only removes keys, the consents of the previous version
// carry over to it (consent to share more covers sharing less); when it adds
// keys, the previous version's grants keep flowing under what the customers
// agreed to until they grant the new version, and the provider asks them
// again. A version with any sensitive key (location, driving behaviour)
// needs the approval of two different partner managers.
package containers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"cardata/jobs"
	"cardata/onboarding/catalog"
	"cardata/policies"
	"cardata/policies/audit"
	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/lifecycle"
	"cardata/templates/i18n"
)

// State is where a container version stands.
type State string

// The states.
const (
	Draft      State = "draft"
	Submitted  State = "submitted"
	Approved   State = "approved"
	Rejected   State = "rejected"
	Deprecated State = "deprecated" // no new consents; existing ones still flow
	Withdrawn  State = "withdrawn"  // all its consents ended; no data flows
)

// States in life-cycle order.
var States = []State{Draft, Submitted, Approved, Rejected, Deprecated, Withdrawn}

// Live reports whether a version in this state counts against the limit.
func (s State) Live() bool { return s == Draft || s == Submitted || s == Approved || s == Deprecated }

// Tone names the badge colour.
func (s State) Tone() string {
	switch s {
	case Approved:
		return "ok"
	case Submitted, Deprecated:
		return "warn"
	case Rejected:
		return "bad"
	}
	return "off"
}

// Action moves a version between states.
type Action string

// The actions.
const (
	ActSubmit    Action = "submit"
	ActApprove   Action = "approve"
	ActReject    Action = "reject"
	ActDeprecate Action = "deprecate"
	ActWithdraw  Action = "withdraw"
)

// Transition is one row of the transition table.
type Transition struct {
	Action Action
	From   State
	To     State
	// By lists who may take the action: "provider" (its own containers),
	// "staff" (partner managers), "system" (jobs, cascades).
	By []string
	// Note names the text the action requires ("reason") or is empty.
	Note  string
	Label string // button text
	Past  string
}

// transitions is the container life cycle: the only moves a version can make.
var transitions = []Transition{
	{Action: ActSubmit, From: Draft, To: Submitted, By: []string{policies.KindProvider}, Label: "Submit for review", Past: "submitted"},
	{Action: ActApprove, From: Submitted, To: Approved, By: []string{policies.KindStaff}, Label: "Approve", Past: "approved"},
	{Action: ActReject, From: Submitted, To: Rejected, By: []string{policies.KindStaff}, Note: "reason", Label: "Reject", Past: "rejected"},
	{Action: ActDeprecate, From: Approved, To: Deprecated, By: []string{policies.KindProvider, policies.KindStaff, policies.KindSystem},
		Label: "Deprecate (no new consents)", Past: "deprecated"},
	{Action: ActWithdraw, From: Deprecated, To: Withdrawn, By: []string{policies.KindProvider, policies.KindStaff},
		Note: "reason", Label: "Withdraw (ends all consents)", Past: "withdrawn"},
}

// Transitions returns the container life cycle, the only moves a version
// can make (a copy: the table cannot be changed from outside).
func Transitions() []Transition {
	return lifecycle.All(transitions, Transition.clone)
}

func (t Transition) clone() Transition {
	t.By = slices.Clone(t.By)
	return t
}

// TransitionFor returns the row of an action.
func TransitionFor(a Action) (Transition, bool) {
	return lifecycle.Find(transitions, func(t Transition) bool { return t.Action == a }, Transition.clone)
}

// MaxLiveContainers is how many live containers (with a version in draft,
// submitted, approved or deprecated) a provider may have.
const MaxLiveContainers = 10

// MaxKeys bounds a container's keys.
const MaxKeys = 100

// Version is one version of a container.
type Version struct {
	ID                 int64 `gorm:"primaryKey"`
	ContainerID        int64
	ProviderID         int64
	Version            int
	Name               string
	Purpose            string
	PurposeCode        string
	PurposeListVersion string
	State              State
	StateReason        string
	Sensitive          bool
	ApprovalsRequired  int
	BasedOn            *int
	CreatedBy          string
	CreatedAt          time.Time
	SubmittedAt        *time.Time
	DecidedAt          *time.Time
	WithdrawnAt        *time.Time // set by the withdraw transition
	UpdatedAt          time.Time
	// Sandbox: a sandbox container's version (approved without review,
	// usable only in the sandbox).
	Sandbox bool

	ProviderName string `gorm:"->;-:migration"`
	// ContainerPurgedAt is when the container was purged (staff views only:
	// a purged container is not found for its provider).
	ContainerPurgedAt *time.Time `gorm:"->;-:migration"`
	Keys              []Key      `gorm:"-"`
	Approvals         []Approval `gorm:"-"`
	Events            []Event    `gorm:"-"`
}

func (Version) TableName() string { return "container_versions" }

// PurposeLabel is the purpose code in words.
func (v *Version) PurposeLabel() string { return consent.PurposeLabel(v.PurposeCode) }

// KeyNames lists the version's keys.
func (v *Version) KeyNames() []string {
	out := make([]string, len(v.Keys))
	for i, k := range v.Keys {
		out[i] = k.Name
	}
	return out
}

// ApprovedBy reports whether staff member id has approved the version.
func (v *Version) ApprovedBy(id int64) bool {
	return slices.ContainsFunc(v.Approvals, func(a Approval) bool { return a.StaffID == id })
}

// UnusualKeys counts the keys flagged for data minimisation.
func (v *Version) UnusualKeys() int {
	n := 0
	for _, k := range v.Keys {
		if k.Unusual {
			n++
		}
	}
	return n
}

// Key is a version's key with the reviewer's hints.
type Key struct {
	ID          int16
	Name        string
	Category    string
	Sensitivity string
	Unit        string
	Description string // the catalog's English description
	// DescriptionDE is the catalog's German description (pages in German).
	DescriptionDE string
	// Unusual flags a key whose category is not typical for the purpose
	// code: a data-minimisation hint for the reviewer (not a refusal).
	Unusual bool
}

// Sensitive reports whether the key carries location or driving-behaviour data.
func (k Key) Sensitive() bool { return k.Sensitivity != catalog.Normal }

// Approval is one partner manager's approval.
type Approval struct {
	VersionID int64
	StaffID   int64
	StaffName string
	At        time.Time
}

func (Approval) TableName() string { return "container_approvals" }

// Event is one entry of a version's history.
type Event struct {
	ID         int64 `gorm:"primaryKey"`
	VersionID  int64
	At         time.Time
	Action     string
	FromState  State
	ToState    State
	ActorKind  string
	ActorID    *int64
	ActorLabel string
	Note       string
}

func (Event) TableName() string { return "container_events" }

// Container is a container with its versions, newest first.
type Container struct {
	ID           int64
	ProviderID   int64
	ProviderName string
	CreatedAt    time.Time
	// PurgedAt is set once the purge job has removed the withdrawn container
	// from its provider's view (PurgeWithdrawn); only staff see it then.
	PurgedAt *time.Time
	Versions []Version
	// Consents counts consents per version id and state.
	Consents map[int64]map[consent.State]int64
}

// Current is the approved version, else the newest.
func (c *Container) Current() *Version {
	for i := range c.Versions {
		if c.Versions[i].State == Approved {
			return &c.Versions[i]
		}
	}
	if len(c.Versions) == 0 {
		return nil
	}
	return &c.Versions[0]
}

// Open is the version in draft or review, if any.
func (c *Container) Open() *Version {
	for i := range c.Versions {
		if c.Versions[i].State == Draft || c.Versions[i].State == Submitted {
			return &c.Versions[i]
		}
	}
	return nil
}

// Live reports whether any version counts against the limit.
func (c *Container) Live() bool {
	return slices.ContainsFunc(c.Versions, func(v Version) bool { return v.State.Live() })
}

// CanAddVersion reports whether the provider may start a new version.
func (c *Container) CanAddVersion() bool {
	return c.Open() == nil && len(c.Versions) > 0 && c.Versions[0].State != Withdrawn
}

// ConsentCount is the number of consents of a version in a state.
func (c *Container) ConsentCount(versionID int64, s string) int64 {
	return c.Consents[versionID][consent.State(s)]
}

// Service is the container domain.
type Service struct {
	DB        *gorm.DB
	Catalog   *catalog.Catalog
	Consents  *consent.Service // ends and carries over consents in the container's transactions
	PublicURL string
	Now       func() time.Time
	// DropPushes drops queued pushes about a purged container (nil: none
	// to drop); app wires onboarding/webhooks in.
	DropPushes DropPushesFunc
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) cat() *catalog.Catalog {
	if s.Catalog != nil {
		return s.Catalog
	}
	return catalog.Default()
}

// ErrNotFound is returned for unknown containers and those of others.
var ErrNotFound = errs.New(errs.NotFound, "container_not_found", "data container not found")

// Input is what a provider submits (API: {name, purpose, purposeCode, technicalDescriptors}).
type Input struct {
	Name        string
	Purpose     string
	PurposeCode string
	Keys        []string
	// Submit sends the version to review at once (the API does; the portal
	// may save a draft first).
	Submit bool
	// Sandbox makes a sandbox container (a sandbox API client's): approved
	// on creation without review, usable only in the sandbox (sandbox
	// clients and the simulated fleet), and possible before the provider
	// is approved. Its names and its limit are counted apart from the
	// production containers'.
	Sandbox bool
}

// checked is a validated input with its catalog keys.
type checked struct {
	Input
	keys      []*catalog.Key
	sensitive bool
}

// validate checks the input; field names are the API's JSON names.
func (s *Service) validate(in Input) (*checked, error) {
	in.Name = strings.Join(strings.Fields(in.Name), " ")
	in.Purpose = strings.TrimSpace(in.Purpose)
	in.PurposeCode = strings.TrimSpace(in.PurposeCode)
	var v errs.Validation
	switch n := len([]rune(in.Name)); {
	case n == 0:
		v.Add("name", "name_required", "give the container a name")
	case n < 3 || n > 100:
		v.Add("name", "name_length", "the name has 3 to 100 characters")
	}
	purpose, ok := consent.PurposeByCode(in.PurposeCode)
	if in.PurposeCode == "" {
		v.Add("purposeCode", "purpose_code_required", "choose the purpose code")
	} else if !ok {
		codes := make([]string, len(consent.Purposes))
		for i, p := range consent.Purposes {
			codes[i] = p.Code
		}
		v.Add("purposeCode", "purpose_code_unknown", "unknown purpose code %q; use one of: %s (list %s)",
			in.PurposeCode, strings.Join(codes, ", "), consent.PurposeListVersion)
	}
	checkPurpose(&v, in.Purpose, in.Name, purpose.Label)
	out := &checked{Input: in}
	var unknown, dups []string
	seen := map[string]bool{}
	for _, raw := range in.Keys {
		name := strings.TrimSpace(raw)
		if name == "" {
			continue
		}
		if seen[name] {
			if !slices.Contains(dups, name) {
				dups = append(dups, name)
			}
			continue
		}
		seen[name] = true
		k, ok := s.cat().Lookup(name)
		if !ok {
			unknown = append(unknown, fmt.Sprintf("%q", name))
			continue
		}
		out.keys = append(out.keys, k)
		out.sensitive = out.sensitive || k.Sensitive()
	}
	switch {
	case len(unknown) == 1:
		v.Add("technicalDescriptors", "key_unknown", "unknown key %s: it is not in the telematics catalog", unknown[0])
	case len(unknown) > 1:
		v.Add("technicalDescriptors", "key_unknown", "unknown keys %s: they are not in the telematics catalog", strings.Join(unknown, ", "))
	case len(dups) > 0:
		v.Add("technicalDescriptors", "key_duplicate", "each key may appear once; repeated: %s", strings.Join(dups, ", "))
	case len(seen) == 0:
		v.Add("technicalDescriptors", "keys_required", "choose at least one data key")
	case len(seen) > MaxKeys:
		v.Add("technicalDescriptors", "too_many_keys", "a container has at most %d keys", MaxKeys)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	out.Keys = make([]string, len(out.keys))
	for i, k := range out.keys {
		out.Keys[i] = k.Name
	}
	return out, nil
}

// checkPurpose wants a purpose a customer can understand: a few sentences
// of real words, not the name or the code's label repeated, not filler.
func checkPurpose(v *errs.Validation, purpose, name, label string) {
	words := strings.FieldsFunc(strings.ToLower(purpose), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'à' && r <= 'ÿ' || r == 'ß' || r >= '0' && r <= '9')
	})
	distinct := map[string]bool{}
	letters := 0
	for _, w := range words {
		if len([]rune(w)) >= 2 {
			distinct[w] = true
		}
		for _, r := range w {
			if r < '0' || r > '9' {
				letters++
			}
		}
	}
	low := strings.ToLower(purpose)
	switch {
	case purpose == "":
		v.Add("purpose", "purpose_required", "describe the purpose: what the customer gets and why these data are needed")
	case len([]rune(purpose)) > 2000:
		v.Add("purpose", "purpose_too_long", "use at most 2000 characters")
	case len([]rune(purpose)) < 40 || len(words) < 6 || letters < 30:
		v.Add("purpose", "purpose_too_short", "describe the purpose in at least one full sentence (40 characters, 6 words): what the customer gets and why these data are needed")
	case len(distinct) < 5:
		v.Add("purpose", "purpose_not_meaningful", "the purpose repeats itself; say what the customer gets and why these data are needed")
	case low == strings.ToLower(name) || (label != "" && low == strings.ToLower(label)):
		v.Add("purpose", "purpose_not_meaningful", "the purpose must say more than the name or the purpose code")
	}
}

// lockActiveProvider locks the provider row (serialising the live count)
// and refuses inactive providers.
func lockActiveProvider(tx *gorm.DB, providerID int64) error {
	return lockProvider(tx, providerID, false)
}

// lockProvider is lockActiveProvider; for the sandbox a registered
// provider not yet approved is accepted too.
func lockProvider(tx *gorm.DB, providerID int64, sandbox bool) error {
	var status string
	if err := tx.Raw("SELECT status FROM providers WHERE id = ? FOR UPDATE", providerID).Scan(&status).Error; err != nil {
		return errs.Wrap(err, "lock provider")
	}
	if status == "" {
		return errs.New(errs.NotFound, "provider_not_found", "provider not found")
	}
	if sandbox && (status == "submitted" || status == "in_review" || status == "info_requested") {
		return nil
	}
	if status != "active" {
		return errs.New(errs.Conflict, "provider_not_active", "only an active provider can manage data containers (status: %s)", errs.Term(strings.ReplaceAll(status, "_", " ")))
	}
	return nil
}

func liveCount(tx *gorm.DB, providerID int64) (int64, error) {
	return liveCountIn(tx, providerID, false)
}

// liveCountIn counts the live containers of one realm (production or the
// sandbox): each has its own limit.
func liveCountIn(tx *gorm.DB, providerID int64, sandbox bool) (int64, error) {
	var n int64
	err := tx.Raw(`SELECT count(DISTINCT container_id) FROM container_versions WHERE provider_id = ? AND state IN ? AND sandbox = ?`,
		providerID, []State{Draft, Submitted, Approved, Deprecated}, sandbox).Scan(&n).Error
	return n, errs.Wrap(err, "count live containers")
}

// checkName refuses a name another live container of the provider uses.
func checkName(tx *gorm.DB, providerID, containerID int64, name string) error {
	return checkNameIn(tx, providerID, containerID, name, false)
}

// checkNameIn is checkName within one realm.
func checkNameIn(tx *gorm.DB, providerID, containerID int64, name string, sandbox bool) error {
	var n int64
	err := tx.Raw(`SELECT count(*) FROM container_versions WHERE provider_id = ? AND container_id <> ? AND lower(name) = lower(?) AND state IN ? AND sandbox = ?`,
		providerID, containerID, name, []State{Draft, Submitted, Approved, Deprecated}, sandbox).Scan(&n).Error
	if err != nil {
		return errs.Wrap(err, "container name")
	}
	if n > 0 {
		var v errs.Validation
		v.Add("name", "name_taken", "another of your containers is called %q", name)
		return v.Err()
	}
	return nil
}

// ErrLimit refuses an eleventh live container.
var ErrLimit = errs.New(errs.Conflict, "container_limit_reached",
	"you have %d live data containers, the most allowed; withdraw or discard one first", MaxLiveContainers)

func (s *Service) event(ctx context.Context, tx *gorm.DB, versionID int64, action string, from, to State, note string) error {
	act := policies.ActorOf(ctx, nil)
	kind, id, label := act.Kind, act.ID, act.Name
	ev := Event{VersionID: versionID, At: s.now(), Action: action, FromState: from, ToState: to,
		ActorKind: kind, ActorID: id, ActorLabel: label, Note: note}
	return errs.Wrap(tx.Create(&ev).Error, "container event")
}

func (s *Service) insertKeys(tx *gorm.DB, versionID int64, keys []*catalog.Key) error {
	rows := make([]map[string]any, len(keys))
	for i, k := range keys {
		rows[i] = map[string]any{"version_id": versionID, "key_id": k.ID, "position": i + 1}
	}
	return errs.Wrap(tx.Table("container_version_keys").Create(rows).Error, "container keys")
}

func approvalsFor(sensitive bool) int {
	if sensitive {
		return 2
	}
	return 1
}

// Create makes a new container with version 1, as a draft or submitted.
// providerID is the caller's own provider.
func (s *Service) Create(ctx context.Context, providerID int64, in Input) (*Version, error) {
	c, err := s.validate(in)
	if err != nil {
		return nil, err
	}
	var ver Version
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockProvider(tx, providerID, in.Sandbox); err != nil {
			return err
		}
		if err := checkNameIn(tx, providerID, 0, c.Name, in.Sandbox); err != nil {
			return err
		}
		n, err := liveCountIn(tx, providerID, in.Sandbox)
		if err != nil {
			return err
		}
		if n >= MaxLiveContainers {
			return ErrLimit
		}
		now := s.now()
		var containerID int64
		if err := tx.Raw("INSERT INTO containers (provider_id, created_at, sandbox) VALUES (?, ?, ?) RETURNING id", providerID, now, in.Sandbox).
			Scan(&containerID).Error; err != nil {
			return errs.Wrap(err, "create container")
		}
		label := policies.ActorOf(ctx, nil).Name
		ver = Version{ContainerID: containerID, ProviderID: providerID, Version: 1, Name: c.Name, Purpose: c.Purpose,
			PurposeCode: c.PurposeCode, PurposeListVersion: consent.PurposeListVersion, State: Draft, Sensitive: c.sensitive,
			ApprovalsRequired: approvalsFor(c.sensitive), CreatedBy: label, CreatedAt: now, UpdatedAt: now, Sandbox: in.Sandbox}
		if err := tx.Create(&ver).Error; err != nil {
			return errs.Wrap(err, "create container version")
		}
		if err := s.insertKeys(tx, ver.ID, c.keys); err != nil {
			return err
		}
		if err := s.event(ctx, tx, ver.ID, "create", "", Draft, ""); err != nil {
			return err
		}
		item := audit.ItemOf("container.create", "container", fmt.Sprint(containerID),
			"%q v1 (%s, %d keys)", c.Name, c.PurposeCode, len(c.keys))
		if c.sensitive {
			item = audit.ItemOf("container.create", "container", fmt.Sprint(containerID),
				"%q v1 (%s, %d keys, sensitive: two approvals needed)", c.Name, c.PurposeCode, len(c.keys))
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		if in.Sandbox {
			// No review in the sandbox: nothing real flows through it.
			if err := tx.Model(&Version{}).Where("id = ?", ver.ID).Updates(map[string]any{"state": Approved, "submitted_at": now,
				"decided_at": now, "updated_at": now}).Error; err != nil {
				return errs.Wrap(err, "approve sandbox container")
			}
			return s.event(ctx, tx, ver.ID, string(ActApprove), Draft, Approved, "sandbox container: approved without review")
		}
		if c.Submit {
			return s.submit(ctx, tx, &ver)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, providerID, ver.ID)
}

// lockVersion loads a version locked for update; providerID 0 means any
// provider (staff).
func lockVersion(tx *gorm.DB, providerID, versionID int64) (*Version, error) {
	q := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", versionID)
	if providerID != 0 {
		q = q.Where("provider_id = ?", providerID).Where(notPurged)
	}
	var v Version
	err := q.Take(&v).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &v, errs.Wrap(err, "lock container version")
}

// UpdateDraft changes a draft version (name, purpose, keys).
func (s *Service) UpdateDraft(ctx context.Context, providerID, versionID int64, in Input) (*Version, error) {
	c, err := s.validate(in)
	if err != nil {
		return nil, err
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockActiveProvider(tx, providerID); err != nil {
			return err
		}
		v, err := lockVersion(tx, providerID, versionID)
		if err != nil {
			return err
		}
		if v.State != Draft {
			return errs.New(errs.Conflict, "container_not_draft", "only a draft can be changed; an approved container changes by a new version")
		}
		if err := checkName(tx, providerID, v.ContainerID, c.Name); err != nil {
			return err
		}
		if err := tx.Model(&Version{}).Where("id = ?", v.ID).Updates(map[string]any{"name": c.Name, "purpose": c.Purpose,
			"purpose_code": c.PurposeCode, "purpose_list_version": consent.PurposeListVersion, "sensitive": c.sensitive,
			"approvals_required": approvalsFor(c.sensitive), "updated_at": s.now()}).Error; err != nil {
			return errs.Wrap(err, "update draft")
		}
		if err := tx.Exec("DELETE FROM container_version_keys WHERE version_id = ?", v.ID).Error; err != nil {
			return errs.Wrap(err, "replace keys")
		}
		if err := s.insertKeys(tx, v.ID, c.keys); err != nil {
			return err
		}
		if err := s.event(ctx, tx, v.ID, "edit", Draft, Draft, ""); err != nil {
			return err
		}
		if c.Submit {
			v.Sensitive, v.ApprovalsRequired, v.Name = c.sensitive, approvalsFor(c.sensitive), c.Name
			return s.submit(ctx, tx, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, providerID, versionID)
}

// NewVersion starts the next version of a container, as a draft (or
// submitted): the way to change an approved container.
func (s *Service) NewVersion(ctx context.Context, providerID, containerID int64, in Input) (*Version, error) {
	c, err := s.validate(in)
	if err != nil {
		return nil, err
	}
	var ver Version
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockActiveProvider(tx, providerID); err != nil {
			return err
		}
		var versions []Version
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("container_id = ? AND provider_id = ?", containerID, providerID).
			Where(notPurged).Order("version DESC").Find(&versions).Error; err != nil {
			return errs.Wrap(err, "container versions")
		}
		if len(versions) == 0 {
			return ErrNotFound
		}
		live := false
		var base *Version
		for i := range versions {
			v := &versions[i]
			if v.State == Draft || v.State == Submitted {
				return errs.New(errs.Conflict, "version_open", "version %d is still %s; finish it first", v.Version, errs.Term(v.State))
			}
			live = live || v.State.Live()
			if base == nil && v.State == Approved {
				base = v
			}
		}
		if versions[0].State == Withdrawn {
			return errs.New(errs.Conflict, "container_withdrawn", "a withdrawn container ends for good; create a new container instead")
		}
		if !live {
			n, err := liveCount(tx, providerID)
			if err != nil {
				return err
			}
			if n >= MaxLiveContainers {
				return ErrLimit
			}
		}
		if err := checkName(tx, providerID, containerID, c.Name); err != nil {
			return err
		}
		if base == nil {
			base = &versions[0]
		}
		now := s.now()
		basedOn := base.Version
		label := policies.ActorOf(ctx, nil).Name
		ver = Version{ContainerID: containerID, ProviderID: providerID, Version: versions[0].Version + 1, Name: c.Name,
			Purpose: c.Purpose, PurposeCode: c.PurposeCode, PurposeListVersion: consent.PurposeListVersion, State: Draft,
			Sensitive: c.sensitive, ApprovalsRequired: approvalsFor(c.sensitive), BasedOn: &basedOn, CreatedBy: label,
			CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&ver).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return errs.New(errs.Conflict, "version_open", "another version is being prepared")
			}
			return errs.Wrap(err, "create version")
		}
		if err := s.insertKeys(tx, ver.ID, c.keys); err != nil {
			return err
		}
		if err := s.event(ctx, tx, ver.ID, "create", "", Draft, fmt.Sprintf("based on version %d", basedOn)); err != nil {
			return err
		}
		item := audit.ItemOf("container.new_version", "container", fmt.Sprint(containerID),
			"%q v%d (based on v%d, %d keys)", c.Name, ver.Version, basedOn, len(c.keys))
		if c.sensitive {
			item = audit.ItemOf("container.new_version", "container", fmt.Sprint(containerID),
				"%q v%d (based on v%d, %d keys, sensitive: two approvals needed)", c.Name, ver.Version, basedOn, len(c.keys))
		}
		if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
			return err
		}
		if c.Submit {
			return s.submit(ctx, tx, &ver)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, providerID, ver.ID)
}

// Submit sends a draft to the partner managers' review.
func (s *Service) Submit(ctx context.Context, providerID, versionID int64) (*Version, error) {
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockActiveProvider(tx, providerID); err != nil {
			return err
		}
		v, err := lockVersion(tx, providerID, versionID)
		if err != nil {
			return err
		}
		return s.submit(ctx, tx, v)
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, providerID, versionID)
}

func (s *Service) submit(ctx context.Context, tx *gorm.DB, v *Version) error {
	t, _ := TransitionFor(ActSubmit)
	if v.State != t.From {
		return conflict(t, v.State)
	}
	now := s.now()
	if err := tx.Model(&Version{}).Where("id = ?", v.ID).Updates(map[string]any{"state": Submitted, "submitted_at": now, "updated_at": now}).Error; err != nil {
		return errs.Wrap(err, "submit")
	}
	if err := s.event(ctx, tx, v.ID, string(ActSubmit), Draft, Submitted, ""); err != nil {
		return err
	}
	v.State = Submitted
	if v.Sensitive {
		return audit.Recordf(ctx, tx, "container.submit", "container", fmt.Sprint(v.ContainerID),
			"%q v%d submitted for review, sensitive: two approvals needed", v.Name, v.Version)
	}
	return audit.Recordf(ctx, tx, "container.submit", "container", fmt.Sprint(v.ContainerID),
		"%q v%d submitted for review", v.Name, v.Version)
}

// Discard deletes a draft (and the container, when it was its only version).
func (s *Service) Discard(ctx context.Context, providerID, versionID int64) error {
	return s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := lockVersion(tx, providerID, versionID)
		if err != nil {
			return err
		}
		if v.State != Draft {
			return errs.New(errs.Conflict, "container_not_draft", "only a draft can be discarded")
		}
		if err := tx.Exec("DELETE FROM container_versions WHERE id = ?", v.ID).Error; err != nil {
			return errs.Wrap(err, "discard draft")
		}
		if v.Version == 1 {
			if err := tx.Exec("DELETE FROM containers WHERE id = ?", v.ContainerID).Error; err != nil {
				return errs.Wrap(err, "discard container")
			}
		}
		return audit.Recordf(ctx, tx, "container.discard", "container", fmt.Sprint(v.ContainerID), "draft %q v%d discarded", v.Name, v.Version)
	})
}

func conflict(t Transition, from State) error {
	return errs.New(errs.Conflict, "transition_not_allowed", "cannot %s a container version that is %s (only from %s)", errs.Term(t.Action), errs.Term(from), errs.Term(t.From))
}

// requireKind checks the principal may take t.
func requireKind(ctx context.Context, t Transition) (*policies.Principal, error) {
	p := policies.PrincipalFrom(ctx)
	if p == nil || !slices.Contains(t.By, p.Kind) {
		return nil, errs.New(errs.Forbidden, "not_allowed", "you may not %s a data container", errs.Term(t.Action))
	}
	if p.Kind == policies.KindStaff && !p.HasRole(policies.RolePartnerManager) {
		return nil, errs.New(errs.Forbidden, "partner_manager_only", "only partner managers review data containers")
	}
	return p, nil
}

// Approve records a partner manager's approval. A version without
// sensitive keys is approved by one; one with sensitive keys needs a second
// approval by a different partner manager, and stays submitted until then.
// It returns the version and whether it is now approved.
func (s *Service) Approve(ctx context.Context, versionID int64) (*Version, bool, error) {
	t, _ := TransitionFor(ActApprove)
	p, err := requireKind(ctx, t)
	if err != nil {
		return nil, false, err
	}
	if p.ID == 0 {
		return nil, false, errs.New(errs.Forbidden, "staff_only", "an approval must be given by a named partner manager")
	}
	done := false
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := lockVersion(tx, 0, versionID)
		if err != nil {
			return err
		}
		if v.State != t.From {
			return conflict(t, v.State)
		}
		now := s.now()
		res := tx.Exec(`INSERT INTO container_approvals (version_id, staff_id, staff_name, at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			v.ID, p.ID, firstNonEmpty(p.Name, p.Email), now)
		if res.Error != nil {
			return errs.Wrap(res.Error, "record approval")
		}
		if res.RowsAffected == 0 {
			return errs.New(errs.Conflict, "second_approval_same_person",
				"you have already approved this version; a different partner manager must give the second approval")
		}
		var n int64
		if err := tx.Raw("SELECT count(*) FROM container_approvals WHERE version_id = ?", v.ID).Scan(&n).Error; err != nil {
			return errs.Wrap(err, "count approvals")
		}
		if int(n) < v.ApprovalsRequired {
			note := fmt.Sprintf("approval %d of %d (sensitive keys: a second partner manager must approve)", n, v.ApprovalsRequired)
			if err := s.event(ctx, tx, v.ID, "approval", v.State, v.State, note); err != nil {
				return err
			}
			return audit.Recordf(ctx, tx, "container.approval", "container", fmt.Sprint(v.ContainerID),
				"%q v%d: approval %d of %d (sensitive keys: a second partner manager must approve)", v.Name, v.Version, n, v.ApprovalsRequired)
		}
		done = true
		return s.approve(ctx, tx, v, int(n))
	})
	if err != nil {
		return nil, false, err
	}
	v, err := s.FindVersion(ctx, 0, versionID)
	return v, done, err
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// approve makes v the container's approved version: the previous approved
// version is deprecated, and its consents carry over when v only removes keys.
func (s *Service) approve(ctx context.Context, tx *gorm.DB, v *Version, approvals int) error {
	now := s.now()
	var prev Version
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("container_id = ? AND state = ?", v.ContainerID, Approved).Take(&prev).Error
	hasPrev := err == nil
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return errs.Wrap(err, "previous version")
	}
	carry := false
	if hasPrev {
		subset, err := keysSubset(tx, v.ID, prev.ID)
		if err != nil {
			return err
		}
		carry = subset
		note := fmt.Sprintf("replaced by version %d", v.Version)
		if err := s.setState(ctx, tx, &prev, ActDeprecate, Deprecated, note); err != nil {
			return err
		}
		if !carry && s.Consents != nil {
			if _, err := s.Consents.CloseRequestsForVersion(ctx, tx, prev.ID,
				fmt.Sprintf("version %d replaced this version; the provider must ask again", v.Version)); err != nil {
				return err
			}
		}
	}
	if err := tx.Model(&Version{}).Where("id = ?", v.ID).Updates(map[string]any{"state": Approved, "decided_at": now, "updated_at": now, "state_reason": ""}).Error; err != nil {
		return errs.Wrap(err, "approve")
	}
	note := ""
	if approvals > 1 {
		note = fmt.Sprintf("approval %d of %d", approvals, v.ApprovalsRequired)
	}
	if err := s.event(ctx, tx, v.ID, string(ActApprove), Submitted, Approved, note); err != nil {
		return err
	}
	item := audit.ItemOf("container.approve", "container", fmt.Sprint(v.ContainerID), "%q v%d approved", v.Name, v.Version)
	if hasPrev && carry && s.Consents != nil {
		n, err := s.Consents.CarryOver(ctx, tx, prev.ID, v.ID, v.Version)
		if err != nil {
			return err
		}
		item = audit.ItemOf("container.approve", "container", fmt.Sprint(v.ContainerID),
			"%q v%d approved; v%d deprecated, %d consents carried over (keys only removed)", v.Name, v.Version, prev.Version, n)
	} else if hasPrev {
		item = audit.ItemOf("container.approve", "container", fmt.Sprint(v.ContainerID),
			"%q v%d approved; v%d deprecated (keys added: new consent needed)", v.Name, v.Version, prev.Version)
	}
	if err := audit.RecordMany(ctx, tx, []audit.Item{item}); err != nil {
		return err
	}
	v.State = Approved
	change := ""
	if hasPrev && !carry {
		change = "adds"
	} else if hasPrev {
		change = "removes"
	}
	var previous int
	if hasPrev {
		previous = prev.Version
	}
	return s.tellProvider(ctx, tx, v, "container.approved", "ContainerID", v.ContainerID, "Change", change, "Previous", previous)
}

// keysSubset reports whether every key of version a is in version b.
func keysSubset(tx *gorm.DB, a, b int64) (bool, error) {
	var extra int64
	err := tx.Raw(`SELECT count(*) FROM container_version_keys x WHERE x.version_id = ?
		AND NOT EXISTS (SELECT 1 FROM container_version_keys y WHERE y.version_id = ? AND y.key_id = x.key_id)`, a, b).Scan(&extra).Error
	return extra == 0, errs.Wrap(err, "compare keys")
}

// tellProvider e-mails the provider's contact (the texts of kind, in the
// contact's language, with the container's name, version and link besides
// args) and notifies the provider API.
func (s *Service) tellProvider(ctx context.Context, tx *gorm.DB, v *Version, kind string, args ...any) error {
	var p struct{ ContactName, ContactEmail string }
	if err := tx.Raw("SELECT contact_name, contact_email FROM providers WHERE id = ?", v.ProviderID).Scan(&p).Error; err != nil {
		return errs.Wrap(err, "provider contact")
	}
	if p.ContactEmail != "" {
		z, err := jobs.ProviderMailLocale(tx, p.ContactEmail, v.ProviderID)
		if err != nil {
			return err
		}
		subject, body := z.Mail(kind, append([]any{"Name", p.ContactName, "Container", v.Name, "Version", v.Version,
			"Link", strings.TrimRight(s.PublicURL, "/") + fmt.Sprintf("/portal/containers/%d", v.ContainerID)}, args...)...)
		err = jobs.Enqueue(ctx, tx, jobs.Message{Kind: kind, To: p.ContactEmail, Subject: subject, Body: body,
			ObjectType: "container", ObjectID: fmt.Sprint(v.ContainerID), DedupeKey: fmt.Sprintf("%s-%d-%d", kind, v.ID, s.now().UnixNano())})
		if err != nil {
			return err
		}
	}
	if s.Consents != nil && s.Consents.Notify != nil {
		return s.Consents.Notify(ctx, tx, consent.Event{Type: kind, ProviderID: v.ProviderID, ContainerID: v.ContainerID,
			Version: v.Version, State: string(v.State), At: s.now(), Sandbox: v.Sandbox})
	}
	return nil
}

// setState moves v (locked) and records the event.
func (s *Service) setState(ctx context.Context, tx *gorm.DB, v *Version, a Action, to State, note string) error {
	now := s.now()
	upd := map[string]any{"state": to, "updated_at": now}
	if to == Rejected || to == Withdrawn {
		upd["state_reason"] = note
	}
	if to == Withdrawn {
		upd["withdrawn_at"] = now // the purge counts its 29 days from here
	}
	if to == Rejected {
		upd["decided_at"] = now
	}
	if err := tx.Model(&Version{}).Where("id = ?", v.ID).Updates(upd).Error; err != nil {
		return errs.Wrap(err, string(a))
	}
	from := v.State
	v.State = to
	return s.event(ctx, tx, v.ID, string(a), from, to, note)
}

// Reject refuses a submitted version with a reason the provider reads.
func (s *Service) Reject(ctx context.Context, versionID int64, reason string) (*Version, error) {
	t, _ := TransitionFor(ActReject)
	if _, err := requireKind(ctx, t); err != nil {
		return nil, err
	}
	reason, err := noteFor(t, reason)
	if err != nil {
		return nil, err
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := lockVersion(tx, 0, versionID)
		if err != nil {
			return err
		}
		if v.State != t.From {
			return conflict(t, v.State)
		}
		if err := s.setState(ctx, tx, v, ActReject, Rejected, reason); err != nil {
			return err
		}
		if err := audit.Recordf(ctx, tx, "container.reject", "container", fmt.Sprint(v.ContainerID),
			"%q v%d rejected: %s", v.Name, v.Version, reason); err != nil {
			return err
		}
		return s.tellProvider(ctx, tx, v, "container.rejected", "Reason", reason)
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, 0, versionID)
}

func noteFor(t Transition, note string) (string, error) {
	note = strings.TrimSpace(note)
	if t.Note == "" {
		return note, nil
	}
	var v errs.Validation
	if note == "" {
		v.Add(t.Note, t.Note+"_required", "enter the %s", errs.Term(t.Note))
	} else if len(note) > 2000 {
		v.Add(t.Note, t.Note+"_too_long", "use at most 2000 characters")
	}
	return note, v.Err()
}

// Deprecate stops new consents to an approved version; existing grants
// keep flowing. providerID is the caller's own provider, or 0 for staff.
func (s *Service) Deprecate(ctx context.Context, providerID, versionID int64, note string) (*Version, error) {
	return s.lifecycle(ctx, ActDeprecate, providerID, versionID, note)
}

// Withdraw ends a deprecated version for good: every consent to it ends
// (grants revoked, requests expired) in the same transaction, so no data
// flows from the next request on.
func (s *Service) Withdraw(ctx context.Context, providerID, versionID int64, reason string) (*Version, error) {
	return s.lifecycle(ctx, ActWithdraw, providerID, versionID, reason)
}

func (s *Service) lifecycle(ctx context.Context, a Action, providerID, versionID int64, note string) (*Version, error) {
	t, _ := TransitionFor(a)
	p, err := requireKind(ctx, t)
	if err != nil {
		return nil, err
	}
	if p.Kind == policies.KindProvider && (providerID == 0 || providerID != p.ProviderID) {
		return nil, ErrNotFound
	}
	note, err = noteFor(t, note)
	if err != nil {
		return nil, err
	}
	err = s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		v, err := lockVersion(tx, providerID, versionID)
		if err != nil {
			return err
		}
		if v.State != t.From {
			return conflict(t, v.State)
		}
		if err := s.setState(ctx, tx, v, a, t.To, note); err != nil {
			return err
		}
		// The summary's format is one of "%q v%d %s", with "; %d open
		// requests expired" or "; %d consents revoked", and " (%s)" with
		// the note (all in the audit-onboarding catalogs).
		format, args := "%q v%d %s", []any{v.Name, v.Version, errs.Term(t.Past)}
		if s.Consents != nil {
			switch a {
			case ActDeprecate:
				n, err := s.Consents.CloseRequestsForVersion(ctx, tx, v.ID, "the provider's data container takes no new consents")
				if err != nil {
					return err
				}
				format, args = format+"; %d open requests expired", append(args, n)
			case ActWithdraw:
				n, err := s.Consents.EndForVersion(ctx, tx, v.ID, note)
				if err != nil {
					return err
				}
				format, args = format+"; %d consents revoked", append(args, n)
			}
		}
		if note != "" {
			format, args = format+" (%s)", append(args, note)
		}
		if err := audit.Recordf(ctx, tx, "container."+string(a), "container", fmt.Sprint(v.ContainerID), format, args...); err != nil {
			return err
		}
		if p.Kind == policies.KindProvider {
			if s.Consents != nil && s.Consents.Notify != nil {
				return s.Consents.Notify(ctx, tx, consent.Event{Type: "container." + string(t.To), ProviderID: v.ProviderID,
					ContainerID: v.ContainerID, Version: v.Version, State: string(t.To), At: s.now()})
			}
			return nil
		}
		return s.tellProvider(ctx, tx, v, "container."+string(t.To), "Reason", note)
	})
	if err != nil {
		return nil, err
	}
	return s.FindVersion(ctx, providerID, versionID)
}

// eventNotes are the notes the service writes into a version's history, as
// stored (English); NoteIn says them in a reader's language. A reason a
// person typed stays as typed.
var eventNotes = []i18n.Written{
	{Re: regexp.MustCompile(`^approval (?P<N>\d+) of (?P<Of>\d+) \(sensitive keys: a second partner manager must approve\)$`),
		ID: "approval {{.N}} of {{.Of}} (sensitive keys: a second partner manager must approve)"},
	{Re: regexp.MustCompile(`^approval (?P<N>\d+) of (?P<Of>\d+)$`), ID: "approval {{.N}} of {{.Of}}"},
	{Re: regexp.MustCompile(`^replaced by version (?P<N>\d+)$`), ID: "replaced by version {{.N}}"},
	{Re: regexp.MustCompile(`^based on version (?P<N>\d+)$`), ID: "based on version {{.N}}"},
}

// NoteIn is the event's note in lang (see eventNotes; a fixed text through
// the catalogs, anything else as stored).
func (e Event) NoteIn(lang string) string {
	l, _ := i18n.Parse(lang)
	return i18n.WrittenIn(l, e.Note, eventNotes)
}
