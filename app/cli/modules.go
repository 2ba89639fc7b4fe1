package cli

// moduleCommands collects the commands that modules add (jobs, invoices, ...).
// Each module contributes through its own function in its own file.
func moduleCommands() []Command {
	var out []Command
	for _, f := range []func() []Command{jobsCommands, onboardingCommands, billingCommands, ingestCommands, masterDataCommands} {
		out = append(out, f()...)
	}
	return out
}
