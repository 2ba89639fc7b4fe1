package admin

import (
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"gorm.io/gorm"

	"cardata/jobs"
	"cardata/policies"
	"cardata/policies/errs"
	"cardata/templates"
	"cardata/templates/i18n"
)

// JobsHandlers are the system pages of the jobs module: the job list with
// "Run now", a job's run history with live progress, and the e-mail outbox.
// Admins run every job, finance the jobs listing its role (decided by
// jobs.Scheduler.RunNow); auditors read.
type JobsHandlers struct {
	DB   *gorm.DB
	View *templates.View
	Jobs *jobs.Scheduler
}

// Routes mounts the pages on r (the /admin group).
func (h *JobsHandlers) Routes(r fiber.Router) {
	r.Get("/jobs", h.listJobs)
	r.Get("/jobs/:name", h.showJob)
	r.Get("/jobs/:name/live", h.liveJob)
	r.Post("/jobs/:name/run", h.View.Confirm(h.confirmRun), h.runJob)
	r.Get("/outbox", h.listOutbox)
	r.Get("/outbox/:id", h.showEmail)
	r.Post("/outbox/:id/retry", h.retryEmail)
}

// JobsNav is the navigation of these pages.
func JobsNav() []templates.NavItem {
	return []templates.NavItem{{Label: "Jobs", Path: "/admin/jobs"}, {Label: "E-mail outbox", Path: "/admin/outbox"}}
}

// mayPost reports whether the principal's roles pass the route policy and,
// for jobs, the job's own roles: buttons show only when they would work.
func (h *JobsHandlers) mayPost(p *policies.Principal, path string) bool {
	return h.View.Can(p, fiber.MethodPost, path)
}

func (h *JobsHandlers) mayRun(p *policies.Principal, j *jobs.Job) bool {
	return jobs.CanRun(p, j) && h.mayPost(p, "/admin/jobs/"+url.PathEscape(j.Name)+"/run")
}

type jobRow struct {
	jobs.Status
	CanRun bool
}

func (h *JobsHandlers) listJobs(c *fiber.Ctx) error {
	p := policies.PrincipalFrom(c.UserContext())
	list, err := h.Jobs.Overview(c.UserContext())
	if err != nil {
		return err
	}
	lang := templates.LangOf(c)
	rows := make([]jobRow, len(list))
	for i := range list {
		rows[i] = jobRow{Status: list[i], CanRun: h.mayRun(p, &list[i].Job)}
		rows[i].Schedule = jobs.DescribeIn(lang, list[i].Spec)
	}
	return h.View.Render(c, fiber.StatusOK, "admin/jobs/index", &templates.Page{Title: "Jobs",
		Data: struct {
			Jobs []jobRow
			Zone string
		}{rows, h.Jobs.Location.String()}})
}

// jobName reads and copies the :name parameter (fiber reuses its buffer).
func (h *JobsHandlers) job(c *fiber.Ctx) (*jobs.Job, error) {
	name, err := url.PathUnescape(c.Params("name"))
	if err != nil {
		return nil, errs.New(errs.NotFound, "job_not_found", "no such job")
	}
	return h.Jobs.Job(strings.Clone(name))
}

type liveData struct {
	Job     *jobs.Job
	Running []jobs.RunRecord
	Last    *jobs.RunRecord
	Polled  time.Time
}

func (h *JobsHandlers) live(c *fiber.Ctx, j *jobs.Job) (*liveData, error) {
	running, err := h.Jobs.Running(c.UserContext(), j.Name)
	if err != nil {
		return nil, err
	}
	last, err := h.Jobs.LastFinished(c.UserContext(), j.Name)
	if err != nil {
		return nil, err
	}
	return &liveData{Job: j, Running: running, Last: last, Polled: time.Now()}, nil
}

func (h *JobsHandlers) showJob(c *fiber.Ctx) error {
	j, err := h.job(c)
	if err != nil {
		return err
	}
	p := policies.PrincipalFrom(c.UserContext())
	pager := templates.NewPager(c, 25)
	order := jobs.RunSort.Parse(c.Query("sort"), c.Query("dir"))
	runs, total, err := h.Jobs.HistorySorted(c.UserContext(), j.Name, order, pager.Offset(), pager.PerPage)
	if err != nil {
		return err
	}
	pager.Total = total
	ld, err := h.live(c, j)
	if err != nil {
		return err
	}
	// The live panel is the same fragment the page polls (admin/jobs/live).
	liveHTML, err := h.View.RenderString("admin/jobs/live", &templates.Page{Lang: templates.LangOf(c), Principal: p, Data: ld})
	if err != nil {
		return err
	}
	return h.View.Render(c, fiber.StatusOK, "admin/jobs/show", &templates.Page{Title: j.Title, Pager: pager,
		Sort: templates.NewSort(c, order.Key, order.Desc),
		Data: struct {
			Job       *jobs.Job
			Schedule  string
			TimeLimit string
			Next      time.Time
			Zone      string
			CanRun    bool
			Runs      []jobs.RunRecord
			Live      template.HTML
			LiveURL   string
			RunURL    string
		}{j, jobs.DescribeIn(templates.LangOf(c), j.Spec), shortDuration(j.Timeout), h.Jobs.Next(j.Name, time.Now()), h.Jobs.Location.String(), h.mayRun(p, j), runs,
			template.HTML(liveHTML), "/admin/jobs/" + url.PathEscape(j.Name) + "/live", "/admin/jobs/" + url.PathEscape(j.Name) + "/run"}})
}

// liveJob is the fragment the job page polls (data-poll) for live progress.
func (h *JobsHandlers) liveJob(c *fiber.Ctx) error {
	j, err := h.job(c)
	if err != nil {
		return err
	}
	ld, err := h.live(c, j)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	// A non-nil Flash keeps a pending flash message for the next full page.
	return h.View.Render(c, fiber.StatusOK, "admin/jobs/live", &templates.Page{Flash: &templates.Flash{}, Data: ld})
}

func (h *JobsHandlers) runJob(c *fiber.Ctx) error {
	j, err := h.job(c)
	if err != nil {
		return err
	}
	back := "/admin/jobs/" + url.PathEscape(j.Name)
	handle, err := h.Jobs.RunNow(c.UserContext(), j.Name)
	if errs.KindOf(err) == errs.Conflict {
		templates.SetFlash(c, "error", templates.ErrorText(c, err))
		return c.Redirect(back, fiber.StatusSeeOther)
	}
	if err != nil {
		return err
	}
	templates.SetFlash(c, "success", i18n.T(templates.LangOf(c), "Run #{{.ID}} of {{.Job}} started. Its progress shows below.", "ID", handle.RunID, "Job", i18n.T(templates.LangOf(c), j.Title)))
	return c.Redirect(back, fiber.StatusSeeOther)
}

// shortDuration writes a time limit without its zero parts: "6h", "30m",
// "50s", "1h30m" (Go's own form is "6h0m0s"); zero is "".
func shortDuration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
