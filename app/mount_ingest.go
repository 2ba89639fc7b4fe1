package app

// mountIngest mounts the ingest module's routes, workers and jobs.
func (a *App) mountIngest() error { return nil }
