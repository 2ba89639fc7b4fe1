package i18n

import (
	"maps"
	"regexp"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"
)

var param = regexp.MustCompile(`\{\{\s*\.(\w+)`)

func params(s string) []string {
	set := map[string]bool{}
	for _, m := range param.FindAllStringSubmatch(s, -1) {
		set[m[1]] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// A translation of an id with parameters ("Updated {{.Polled}}.") uses the
// same parameters: a German text with others is the translation of another
// id (lines shifted in the file), which would show a wrong sentence.
func TestTranslationsTakeTheirIdsParameters(t *testing.T) {
	t.Parallel()
	names, err := catalogFiles.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range names {
		b, err := catalogFiles.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := toml.Unmarshal(b, &m); err != nil {
			continue // not a catalog
		}
		for id, v := range m {
			s, ok := v.(string)
			want := params(id)
			if !ok || len(want) == 0 {
				continue
			}
			if got := params(s); !slices.Equal(got, want) {
				t.Errorf("%s: %q is translated with %v, not its %v: %q", f.Name(), id, got, want, s)
			}
		}
	}
}
