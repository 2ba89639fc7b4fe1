package policies

import (
	"strings"
	"testing"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	stringadapter "github.com/casbin/casbin/v2/persist/string-adapter"
	"github.com/casbin/casbin/v2/util"
)

// The enforcer's matchers compile each pattern once and remember decisions;
// they must answer exactly what casbin's own keyMatch2 and regexMatch answer.

func TestPathMatchAgreesWithCasbinsKeyMatch2(t *testing.T) {
	t.Parallel()
	_, lines, err := load()
	if err != nil {
		t.Fatal(err)
	}
	patterns := []string{"/", "/admin", "/admin/*", "/admin/users/:id", "/api/v1/vehicles/:vin/telematicData", "/my/consents/:id/*"}
	for _, l := range lines {
		if f := strings.Split(l, ","); strings.TrimSpace(f[0]) == "p" && len(f) >= 4 {
			patterns = append(patterns, strings.TrimSpace(f[2]))
		}
	}
	paths := []string{"/", "/admin", "/admin/", "/admin/users", "/admin/users/7", "/admin/users/7/", "/admin/users/7/roles",
		"/admin/users/x/y", "/api/v1/vehicles/WBA123/telematicData", "/api/v1/vehicles//telematicData", "/my/consents/3/revoke",
		"/my/consents/3", "/portal/clients/12/revoke", "/portal/users", "/ADMIN/users/7", "/admin/users/7%2F8", "/admin//users"}
	for _, pat := range patterns {
		for _, p := range paths {
			if got, want := KeyMatch2(p, pat), util.KeyMatch2(p, pat); got != want {
				t.Errorf("KeyMatch2(%q, %q) = %v, casbin says %v", p, pat, got, want)
			}
			// the pattern's own filled-in spelling
			filled := strings.ReplaceAll(strings.ReplaceAll(pat, "*", "a/b"), ":id", "5")
			if got, want := KeyMatch2(filled, pat), util.KeyMatch2(filled, pat); got != want {
				t.Errorf("KeyMatch2(%q, %q) = %v, casbin says %v", filled, pat, got, want)
			}
		}
	}
}

func TestEnforcerAgreesWithCasbinsOwnMatchers(t *testing.T) {
	t.Parallel()
	mdl, lines, err := load()
	if err != nil {
		t.Fatal(err)
	}
	orig := strings.NewReplacer("pathMatch(", "keyMatch2(", "methodMatch(", "regexMatch(").Replace(mdl.ToText())
	if orig == mdl.ToText() {
		t.Fatal("the model no longer names pathMatch and methodMatch")
	}
	ref, err := model.NewModelFromString(orig)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := casbin.NewEnforcer(ref, stringadapter.NewAdapter(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	en, err := NewEnforcer()
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	var paths []string
	for _, l := range lines {
		f := strings.Split(l, ",")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		switch {
		case f[0] == "p" && len(f) >= 4:
			roles[f[1]] = true
			pat := f[2]
			// the concrete spelling a link has (the patterns themselves are
			// compared by TestPathMatchAgreesWithCasbinsKeyMatch2)
			paths = append(paths, strings.ReplaceAll(strings.ReplaceAll(pat, "*", "x/y"), ":id", "42"))
		case f[0] == "g" && len(f) >= 3:
			roles[f[1]], roles[f[2]] = true, true
		}
	}
	roles["nobody"] = true
	checked := 0
	for pass := 0; pass < 2; pass++ { // the second pass answers from the remembered decisions
		for r := range roles {
			for _, p := range paths {
				for _, m := range []string{"GET", "POST", "DELETE"} {
					want, err := plain.Enforce(r, p, m)
					if err != nil {
						t.Fatal(err)
					}
					if got := en.Allowed([]string{r}, p, m); got != want {
						t.Fatalf("pass %d: Allowed(%s, %s %s) = %v, casbin's own matchers say %v", pass, r, m, p, got, want)
					}
					checked++
				}
			}
		}
	}
	if checked < 500 {
		t.Fatalf("only %d decisions compared", checked)
	}
}

func TestDecisionsStayBounded(t *testing.T) {
	t.Parallel()
	var d decisions
	for i := 0; i < maxDecisions+10; i++ {
		d.put(strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i/26), true)
	}
	if n := len(d.m); n > maxDecisions {
		t.Fatalf("%d decisions remembered, at most %d", n, maxDecisions)
	}
}
