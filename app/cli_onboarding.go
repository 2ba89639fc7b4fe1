package app

// onboardingCommands are the CLI commands of the onboarding module.
func onboardingCommands() []Command { return nil }
