package app

// jobsCommands are the CLI commands of the jobs module.
func jobsCommands() []Command { return nil }
