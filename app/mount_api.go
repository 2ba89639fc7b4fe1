package app

// mountAPI mounts the api module's routes, workers and jobs.
func (a *App) mountAPI() error { return nil }
