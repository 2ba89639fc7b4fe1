package app

// mountOnboarding mounts the onboarding module's routes, workers and jobs.
func (a *App) mountOnboarding() error { return nil }
