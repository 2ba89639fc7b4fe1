package app

import (
	"cardata/admin"
)

// mountJobs mounts the jobs and outbox pages on the job registry (a.Jobs,
// where NewServices registered every job, jobs.go).
func (a *App) mountJobs() error {
	h := &admin.JobsHandlers{DB: a.DB, View: a.View, Jobs: a.Jobs}
	h.Routes(a.surface("/admin"))
	for _, item := range admin.JobsNav() {
		a.View.AddNav("System", item)
	}
	a.addWidgets(admin.SystemWidgets(a.Jobs, a.Staff)...)
	return nil
}
