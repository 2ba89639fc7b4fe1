package cli

import (
	"context"
	"flag"
	"fmt"
)

// masterDataCommands manage the credentials of the master-data API (the
// manufacturer's vehicle systems).
func masterDataCommands() []Command {
	return []Command{
		{Name: "ingest masterdata add", Summary: "register a master-data client (vehicle systems) and print its bearer token (shown once)",
			Flags: func(fs *flag.FlagSet) { fs.String("name", "", "client name (required)") }, Run: runMasterDataAdd},
		{Name: "ingest masterdata disable", Summary: "disable a master-data client: its next request is refused",
			Flags: func(fs *flag.FlagSet) { fs.String("name", "", "client name (required)") }, Run: runMasterDataDisable},
	}
}

func runMasterDataAdd(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	m, token, err := a.Ingest.CreateMasterDataClient(ctx, fs.Lookup("name").Value.String())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "master-data client %d %s created; its bearer token for /ingest/v1 (stored only hashed, shown this once):\n%s\n", m.ID, m.Name, token)
	return nil
}

func runMasterDataDisable(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	a, err := env.App(ctx)
	if err != nil {
		return err
	}
	name := fs.Lookup("name").Value.String()
	if err := a.Ingest.SetMasterDataClientActive(ctx, name, false); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "master-data client %s disabled\n", name)
	return nil
}
