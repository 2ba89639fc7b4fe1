package app

// billingCommands are the CLI commands of the billing module.
func billingCommands() []Command { return nil }
