package app

// mountJobs mounts the jobs module's routes, workers and jobs.
func (a *App) mountJobs() error { return nil }
