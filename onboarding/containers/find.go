package containers

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/consent"
	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// notPurged is the condition (on container_versions) that keeps purged
// containers out of everything their provider sees: lists, pages and the
// provider API answer 404 container_not_found for them. Staff queries
// (providerID 0) leave it out, so audit and billing stay explainable.
const notPurged = "NOT EXISTS (SELECT 1 FROM containers purged WHERE purged.id = container_versions.container_id AND purged.purged_at IS NOT NULL)"

func (s *Service) versions(tx *gorm.DB) *gorm.DB {
	return tx.Table("container_versions").
		Select("container_versions.*, providers.legal_name AS provider_name, containers.purged_at AS container_purged_at").
		Joins("JOIN providers ON providers.id = container_versions.provider_id").
		Joins("JOIN containers ON containers.id = container_versions.container_id")
}

// forProvider narrows q to the provider's own, unpurged containers;
// providerID 0 means any provider, purged ones included (staff).
func forProvider(q *gorm.DB, providerID int64) *gorm.DB {
	if providerID == 0 {
		return q
	}
	return q.Where("container_versions.provider_id = ? AND containers.purged_at IS NULL", providerID)
}

// FindVersion returns one version with keys, hints, approvals and history.
// providerID 0 means any provider (staff); a provider never finds a version
// of a purged container.
func (s *Service) FindVersion(ctx context.Context, providerID, versionID int64) (*Version, error) {
	q := forProvider(s.versions(s.DB.WithContext(ctx)).Where("container_versions.id = ?", versionID), providerID)
	var v Version
	if err := q.Take(&v).Error; err != nil {
		if err == gorm.ErrRecordNotFound {
			return nil, ErrNotFound
		}
		return nil, errs.Wrap(err, "find version")
	}
	list := []Version{v}
	if err := s.fill(ctx, list, true); err != nil {
		return nil, err
	}
	return &list[0], nil
}

// fill loads keys (with minimisation hints), approvals and, when full,
// the history of the versions.
func (s *Service) fill(ctx context.Context, vs []Version, full bool) error {
	if len(vs) == 0 {
		return nil
	}
	ids := make([]int64, len(vs))
	index := map[int64]int{}
	for i, v := range vs {
		ids[i] = v.ID
		index[v.ID] = i
	}
	var keys []struct {
		VersionID int64
		KeyID     int16
	}
	db := s.DB.WithContext(ctx)
	if err := db.Raw("SELECT version_id, key_id FROM container_version_keys WHERE version_id IN ? ORDER BY version_id, position", ids).Scan(&keys).Error; err != nil {
		return errs.Wrap(err, "version keys")
	}
	for _, k := range keys {
		v := &vs[index[k.VersionID]]
		ck, ok := s.cat().ByID(k.KeyID)
		if !ok {
			v.Keys = append(v.Keys, Key{ID: k.KeyID, Name: "(retired key)", Category: "retired"})
			continue
		}
		purpose, _ := consent.PurposeByCode(v.PurposeCode)
		v.Keys = append(v.Keys, Key{ID: ck.ID, Name: ck.Name, Category: ck.Category, Sensitivity: ck.Sensitivity, Unit: ck.Unit,
			Description: ck.DescriptionEN, DescriptionDE: ck.DescriptionDE, Unusual: !purpose.IsTypical(ck.Category)})
	}
	var approvals []Approval
	if err := db.Where("version_id IN ?", ids).Order("at").Find(&approvals).Error; err != nil {
		return errs.Wrap(err, "approvals")
	}
	for _, a := range approvals {
		v := &vs[index[a.VersionID]]
		v.Approvals = append(v.Approvals, a)
	}
	if full {
		var events []Event
		if err := db.Where("version_id IN ?", ids).Order("id").Find(&events).Error; err != nil {
			return errs.Wrap(err, "container events")
		}
		for _, e := range events {
			v := &vs[index[e.VersionID]]
			v.Events = append(v.Events, e)
		}
	}
	return nil
}

// FindContainer returns a container with every version, newest first, and
// its consent counts. providerID 0 means any provider, purged containers
// included (staff); for a provider a purged container is not found.
func (s *Service) FindContainer(ctx context.Context, providerID, containerID int64) (*Container, error) {
	q := forProvider(s.versions(s.DB.WithContext(ctx)).Where("container_versions.container_id = ?", containerID), providerID)
	var vs []Version
	if err := q.Order("container_versions.version DESC").Find(&vs).Error; err != nil {
		return nil, errs.Wrap(err, "find container")
	}
	if len(vs) == 0 {
		return nil, ErrNotFound
	}
	if err := s.fill(ctx, vs, true); err != nil {
		return nil, err
	}
	c := &Container{ID: containerID, ProviderID: vs[0].ProviderID, ProviderName: vs[0].ProviderName, Versions: vs,
		PurgedAt: vs[0].ContainerPurgedAt, Consents: map[int64]map[consent.State]int64{}}
	var created time.Time
	if err := s.DB.WithContext(ctx).Raw("SELECT created_at FROM containers WHERE id = ?", containerID).Scan(&created).Error; err != nil {
		return nil, errs.Wrap(err, "container")
	}
	c.CreatedAt = created
	var counts []struct {
		ContainerVersionID int64
		State              consent.State
		N                  int64
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT container_version_id, state, count(*) AS n FROM consents WHERE container_id = ?
		GROUP BY container_version_id, state`, containerID).Scan(&counts).Error; err != nil {
		return nil, errs.Wrap(err, "consent counts")
	}
	for _, r := range counts {
		if c.Consents[r.ContainerVersionID] == nil {
			c.Consents[r.ContainerVersionID] = map[consent.State]int64{}
		}
		c.Consents[r.ContainerVersionID][r.State] = r.N
	}
	return c, nil
}

// FindContainerIn is FindContainer for a caller of one realm: a sandbox
// client finds only sandbox containers, a production client only
// production ones; the other realm's read as unknown.
func (s *Service) FindContainerIn(ctx context.Context, providerID, containerID int64, sandbox bool) (*Container, error) {
	var n int64
	if err := s.DB.WithContext(ctx).Raw("SELECT count(*) FROM containers WHERE id = ? AND sandbox = ?", containerID, sandbox).
		Scan(&n).Error; err != nil {
		return nil, errs.Wrap(err, "find container")
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	return s.FindContainer(ctx, providerID, containerID)
}

// group turns versions (sorted by container, newest version first) into containers.
func group(vs []Version) []Container {
	var out []Container
	for _, v := range vs {
		if len(out) == 0 || out[len(out)-1].ID != v.ContainerID {
			out = append(out, Container{ID: v.ContainerID, ProviderID: v.ProviderID, ProviderName: v.ProviderName, PurgedAt: v.ContainerPurgedAt})
		}
		c := &out[len(out)-1]
		c.Versions = append(c.Versions, v)
	}
	return out
}

// FindProviderContainers lists a provider's containers, newest first,
// without the purged ones and without its sandbox containers.
func (s *Service) FindProviderContainers(ctx context.Context, providerID int64) ([]Container, error) {
	return s.FindProviderContainersIn(ctx, providerID, false)
}

// FindProviderContainersIn lists a provider's containers of one realm:
// its sandbox containers when sandbox, else its production ones.
func (s *Service) FindProviderContainersIn(ctx context.Context, providerID int64, sandbox bool) ([]Container, error) {
	if providerID == 0 {
		return nil, nil // not a staff listing: FindContainers is
	}
	var vs []Version
	err := forProvider(s.versions(s.DB.WithContext(ctx)), providerID).Where("container_versions.sandbox = ?", sandbox).
		Order("container_versions.container_id DESC, container_versions.version DESC").Find(&vs).Error
	if err != nil {
		return nil, errs.Wrap(err, "provider containers")
	}
	if err := s.fill(ctx, vs, false); err != nil {
		return nil, err
	}
	return group(vs), nil
}

// LiveCount is how many live containers the provider has.
func (s *Service) LiveCount(ctx context.Context, providerID int64) (int64, error) {
	return liveCount(s.DB.WithContext(ctx), providerID)
}

// FindReviewQueue lists the versions waiting for a partner manager,
// longest waiting first.
func (s *Service) FindReviewQueue(ctx context.Context) ([]Version, error) {
	var vs []Version
	err := s.versions(s.DB.WithContext(ctx)).Where("container_versions.state = ?", Submitted).
		Order("container_versions.submitted_at, container_versions.id").Limit(500).Find(&vs).Error
	if err != nil {
		return nil, errs.Wrap(err, "container review queue")
	}
	return vs, s.fill(ctx, vs, false)
}

// Filter narrows FindContainers.
type Filter struct {
	State State
	Query string // container or provider name contains
	// Order is the list's sort (Sort); the zero value is newest change first.
	Order  listsort.Order
	Offset int
	Limit  int
}

// Sort is the staff container list's sort whitelist.
var Sort = listsort.Spec{
	Columns: map[string]string{
		"changed":   "container_versions.updated_at",
		"provider":  "lower(providers.legal_name)",
		"container": "lower(container_versions.name)",
		"purpose":   "container_versions.purpose_code",
		"state":     "container_versions.state",
	},
	Tiebreak: "container_versions.id",
	Default:  listsort.Order{Key: "changed", Desc: true},
}

// FindContainers lists versions for staff (newest change first) and the total.
func (s *Service) FindContainers(ctx context.Context, f Filter) ([]Version, int64, error) {
	q := s.DB.WithContext(ctx).Table("container_versions").Joins("JOIN providers ON providers.id = container_versions.provider_id").
		Joins("JOIN containers ON containers.id = container_versions.container_id").
		Where("NOT container_versions.sandbox") // sandbox containers are never reviewed
	if f.State != "" {
		q = q.Where("container_versions.state = ?", f.State)
	}
	if t := strings.TrimSpace(f.Query); t != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(t) + "%"
		q = q.Where("container_versions.name ILIKE ? OR providers.legal_name ILIKE ?", like, like)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count containers")
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 25
	}
	var vs []Version
	if err := q.Select("container_versions.*, providers.legal_name AS provider_name, containers.purged_at AS container_purged_at").Order(Sort.SQL(f.Order)).Offset(f.Offset).Limit(f.Limit).Find(&vs).Error; err != nil {
		return nil, 0, errs.Wrap(err, "list containers")
	}
	return vs, total, s.fill(ctx, vs, false)
}

// ReviewCounts are the container versions waiting for partner managers:
// those without any approval yet and the sensitive ones with one approval
// that wait for a second partner manager's.
type ReviewCounts struct {
	First, Second int64
}

// CountReviews counts the review queue by the approval it waits for (one query).
func (s *Service) CountReviews(ctx context.Context) (ReviewCounts, error) {
	var out ReviewCounts
	err := s.DB.WithContext(ctx).Raw(`SELECT count(*) FILTER (WHERE n = 0) AS first,
		count(*) FILTER (WHERE n > 0 AND n < approvals_required) AS second
		FROM (SELECT v.approvals_required, (SELECT count(*) FROM container_approvals a WHERE a.version_id = v.id) AS n
		      FROM container_versions v WHERE v.state = ? AND NOT v.sandbox) q`, Submitted).Scan(&out).Error
	return out, errs.Wrap(err, "count container reviews")
}
