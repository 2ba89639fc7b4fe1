package policies

import (
	"context"
	"testing"
)

// One rule names every actor: the unique label (e-mail, kind:id, the
// system's name) and the name people read (staff and API clients by name).
func TestActorOf(t *testing.T) {
	staff := &Principal{Kind: KindStaff, ID: 7, Email: "sam@x.test", Name: "sam"}
	customer := &Principal{Kind: KindCustomer, ID: 3, Email: "anna@x.test", Name: "anna"}
	portal := &Principal{Kind: KindProvider, ID: 4, Email: "petra@p.test", Name: "Petra", ProviderID: 9}
	client := &Principal{Kind: KindProvider, ID: 5, Name: "client-1", ProviderID: 9}
	cases := []struct {
		ctx      context.Context
		fallback *Principal
		kind     string
		id       int64
		label    string
		name     string
	}{
		{WithPrincipal(context.Background(), staff), System("x"), KindStaff, 7, "sam@x.test", "sam"},
		{WithPrincipal(context.Background(), customer), nil, KindCustomer, 3, "anna@x.test", "anna@x.test"},
		{WithPrincipal(context.Background(), portal), nil, KindProvider, 4, "petra@p.test", "petra@p.test"},
		{WithPrincipal(context.Background(), client), nil, KindProvider, 5, "provider:5", "client-1"},
		{WithPrincipal(context.Background(), System("cli")), nil, KindSystem, 0, "cli", "cli"},
		{context.Background(), System("scheduler"), KindSystem, 0, "scheduler", "scheduler"},
		{context.Background(), nil, Anonymous, 0, Anonymous, Anonymous},
	}
	for _, tc := range cases {
		a := ActorOf(tc.ctx, tc.fallback)
		var id int64
		if a.ID != nil {
			id = *a.ID
		}
		if a.Kind != tc.kind || id != tc.id || a.Label != tc.label || a.Name != tc.name {
			t.Errorf("actor %+v (id %d), want %s %d %s %s", a, id, tc.kind, tc.id, tc.label, tc.name)
		}
	}
}
