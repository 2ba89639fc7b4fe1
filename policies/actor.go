package policies

import "context"

// Anonymous is the kind and label of an actor when no principal acts and
// the caller names no fallback (a sign-up, a public form).
const Anonymous = "anonymous"

// Actor names who did something, for every module's records by one rule:
// audit entries, job runs and "by" columns store Label; histories that
// people read (consent and container changes, provider reviews, tickets)
// store Name.
type Actor struct {
	Kind string // the principal's kind (KindStaff, ..., KindSystem), or Anonymous
	ID   *int64 // the principal's id; nil when it has none (the system, the CLI)
	// Label is unique: the e-mail address, else kind:id; a system
	// principal's name.
	Label string
	// Name is for people: staff, and principals without an e-mail address
	// (API clients by their client id), by name; everyone else as Label.
	Name string
}

// Actor names p (see Actor); a nil p is Anonymous.
func (p *Principal) Actor() Actor {
	if p == nil {
		return Actor{Kind: Anonymous, Label: Anonymous, Name: Anonymous}
	}
	a := Actor{Kind: p.Kind, Label: p.Label()}
	a.Name = a.Label
	if p.ID != 0 {
		id := p.ID
		a.ID = &id
	}
	if p.Name != "" && (p.Kind == KindStaff || p.Email == "") {
		a.Name = p.Name
	}
	return a
}

// ActorOf names the principal acting in ctx; without one, fallback (e.g.
// System("scheduler")), and without that, Anonymous.
func ActorOf(ctx context.Context, fallback *Principal) Actor {
	if p := PrincipalFrom(ctx); p != nil {
		return p.Actor()
	}
	return fallback.Actor()
}
