package app

// mountPortals mounts the portals module's routes, workers and jobs.
func (a *App) mountPortals() error { return nil }
