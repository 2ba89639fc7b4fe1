package consent

import (
	"testing"

	"cardata/policies"
)

func TestOwnerWording(t *testing.T) {
	t.Parallel()
	me, other := int64(7), int64(8)
	for _, c := range []struct {
		ch   Change
		want string
	}{
		{Change{ActorKind: policies.KindCustomer, ActorID: &me, ActorLabel: "anna@x"}, "you"},
		{Change{ActorKind: policies.KindCustomer, ActorID: &other, ActorLabel: "ben@x"}, "another holder of this vehicle"},
		{Change{ActorKind: policies.KindProvider, ActorLabel: "cd_live_123"}, "Alpen"},
		{Change{ActorKind: policies.KindStaff, ActorLabel: "Paula Partner"}, "CarData"},
		{Change{ActorKind: policies.KindSystem, ActorLabel: "scheduler"}, "CarData"},
		{Change{ActorKind: policies.Anonymous, ActorLabel: "anonymous"}, "CarData"},
	} {
		if got := c.ch.ActorFor(me, "Alpen"); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.ch.ActorKind, c.ch.ActorLabel, got, c.want)
		}
	}
	for in, want := range map[string]string{
		"Current position: latitude (WGS 84)":                          "Current position: latitude",
		"Country the vehicle is in (ISO 3166-1 alpha-2)":               "Country the vehicle is in",
		"Current heading (0 = north)":                                  "Current heading",
		"Breakdown call placed from the vehicle (roadside assistance)": "Breakdown call placed from the vehicle (roadside assistance)",
		"Aktuelle Position: Breitengrad (WGS 84)":                      "Aktuelle Position: Breitengrad",
	} {
		if got := PlainLabel(in); got != want {
			t.Errorf("PlainLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
