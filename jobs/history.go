package jobs

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"

	"cardata/policies/errs"
	"cardata/policies/listsort"
)

// GetRun returns one run.
func (s *Scheduler) GetRun(ctx context.Context, id int64) (*RunRecord, error) {
	var r RunRecord
	err := s.DB.WithContext(ctx).Take(&r, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errs.New(errs.NotFound, "run_not_found", "no such run")
	}
	return &r, errs.Wrap(err, "get run")
}

// History returns a job's runs, newest first, and their total.
func (s *Scheduler) History(ctx context.Context, name string, offset, limit int) ([]RunRecord, int64, error) {
	return s.HistorySorted(ctx, name, listsort.Order{}, offset, limit)
}

// RunSort is the run history's sort whitelist (newest first by default).
var RunSort = listsort.Spec{
	Columns: map[string]string{
		"run":      "id",
		"outcome":  "outcome",
		"trigger":  "trigger",
		"started":  "started_at",
		"duration": "(finished_at - started_at)",
	},
	Tiebreak: "id",
	Default:  listsort.Order{Key: "run", Desc: true},
}

// HistorySorted is History in the order o (RunSort).
func (s *Scheduler) HistorySorted(ctx context.Context, name string, o listsort.Order, offset, limit int) ([]RunRecord, int64, error) {
	if limit <= 0 || limit > 500 {
		limit = 25
	}
	q := s.DB.WithContext(ctx).Model(&RunRecord{}).Where("job = ?", name)
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, errs.Wrap(err, "count runs")
	}
	var out []RunRecord
	err := q.Order(RunSort.SQL(o)).Offset(offset).Limit(limit).Find(&out).Error
	return out, total, errs.Wrap(err, "list runs")
}

// Running returns the job's runs that are still going, oldest first.
func (s *Scheduler) Running(ctx context.Context, name string) ([]RunRecord, error) {
	var out []RunRecord
	err := s.DB.WithContext(ctx).Where("job = ? AND outcome = 'running'", name).Order("id").Find(&out).Error
	return out, errs.Wrap(err, "running runs")
}

// LastFinished returns the job's latest finished run (nil if none).
func (s *Scheduler) LastFinished(ctx context.Context, name string) (*RunRecord, error) {
	var out []RunRecord
	err := s.DB.WithContext(ctx).Where("job = ? AND outcome <> 'running'", name).Order("id DESC").Limit(1).Find(&out).Error
	if err != nil || len(out) == 0 {
		return nil, errs.Wrap(err, "last run")
	}
	return &out[0], nil
}

// Status is a job with its schedule and latest run, for listings.
type Status struct {
	Job
	Schedule string    // the spec in words
	Next     time.Time // zero: manual only
	Last     *RunRecord
}

// Overview lists every registered job with its next tick and latest run.
func (s *Scheduler) Overview(ctx context.Context) ([]Status, error) {
	list := s.Jobs()
	names := make([]string, len(list))
	for i, j := range list {
		names[i] = j.Name
	}
	var latest []RunRecord
	if len(names) > 0 {
		err := s.DB.WithContext(ctx).Raw(`SELECT DISTINCT ON (job) * FROM job_runs WHERE job IN ? ORDER BY job, id DESC`, names).
			Scan(&latest).Error
		if err != nil {
			return nil, errs.Wrap(err, "latest runs")
		}
	}
	byJob := map[string]*RunRecord{}
	for i := range latest {
		byJob[latest[i].Job] = &latest[i]
	}
	now := time.Now()
	out := make([]Status, len(list))
	for i, j := range list {
		out[i] = Status{Job: j, Schedule: Describe(j.Spec), Next: s.Next(j.Name, now), Last: byJob[j.Name]}
	}
	return out, nil
}
