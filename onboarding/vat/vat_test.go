package vat

import (
	"errors"
	"testing"
)

// Valid numbers are published company numbers (as collected by
// python-stdnum's test suite); altered ones change one digit or letter.
var cases = []struct {
	country string
	valid   []string
	altered []string
}{
	{"AT", []string{"ATU13585627", "ATU 142 43 102", "U46080404"}, []string{"ATU13585626", "ATU 143 43 102", "ATU46080904"}},
	{"BE", []string{"BE0428759497", "BE 0202.239.951", "BE413562567", "1000000021"}, []string{"BE0428759498", "BE 0406.139.583", "BE697449982"}},
	{"BG", []string{"BG175074752", "BG 124 551 319", "BG7523169263", "BG7111042925"}, []string{"BG175074751", "BG 131 172 009", "BG 147147471"}},
	{"CY", []string{"CY10259033P", "CY-10189098G", "CY 10246672X"}, []string{"CY10259033Z", "CY 10246672F", "CY00632893 F"}},
	{"CZ", []string{"CZ25123891", "CZ 61467839", "CZ 640903926", "CZ7103192745"}, []string{"CZ25123890", "CZ 48207726", "CZ 640913926", "CZ 8058018314"}},
	{"DE", []string{"DE136695976", "DE 811 363 057", "DE - 113866163"}, []string{"DE136695978", "DE 125014855", "DE 246 495 415"}},
	{"DK", []string{"DK13585628", "DK 10 50 32 80", "DK-27630308"}, []string{"DK13585627", "DK 11 96 56 58", "DK-27996592"}},
	{"EE", []string{"EE100594102", "EE 100 931 558", "EE101256753"}, []string{"EE100594103", "EE 100 941 558", "EE101256754"}},
	{"ES", []string{"ESB64717838", "ES A-28184661", "ES Q-2818015-F", "ES 54362315K", "ES X-5253868-R"}, []string{"ESB64717839", "ES 54362415K", "ES-x-2322300w", "Es-a48951310"}},
	{"FI", []string{"FI20774740", "FI 0982651-1", "FI-22291240"}, []string{"FI20774741", "FI 0982652-1", "FI-22291241"}},
	{"FR", []string{"FR40303265045", "FR 23 334 175 221", "FR K 7399859412", "FR 4Z123456782"}, []string{"FR84323140391", "FR 04409414264", "FR K 7399859312", "FR L 7399859412"}},
	{"GR", []string{"EL094259216", "EL 094501040", "GR 999038150", "EL 94051189"}, []string{"EL094259217", "EL 094013834", "EL: 094269805"}},
	{"HR", []string{"HR33392005961", "HR 94577403194"}, []string{"HR33392005962", "HR 94577403195"}},
	{"HU", []string{"HU12892312", "HU 10672101", "HU-14528114"}, []string{"HU12892313", "HU 10672102", "HU-14528115"}},
	{"IE", []string{"IE6433435F", "IE 8D79739I", "IE6433435OA", "IE 0005306C", "IE9Y71814N"}, []string{"IE6433435E", "IE 4731823H", "IE8D79729I", "IE 5339273F"}},
	{"IT", []string{"IT00743110157", "IT 01404480202", "IT 00118439991"}, []string{"IT00743110158", "IT 01404480203", "IT 00118439992"}},
	{"LT", []string{"LT119511515", "LT 100001919017", "LT100004801610"}, []string{"LT119511516", "LT 100001919018", "LT100004801611"}},
	{"LU", []string{"LU15027442", "LU 10059929", "LU 22 22 12 68"}, []string{"LU15027443", "LU 10059928", "LU 22 22 13 68"}},
	{"LV", []string{"LV40003521600", "LV 90000528023", "LV16117519997"}, []string{"LV40003521601", "LV 90000528022", "LV-42103048181"}},
	{"MT", []string{"MT11679112", "MT 1039-6417", "MT 20630321"}, []string{"MT11679113", "MT 1039-6418", "MT 20630322"}},
	{"NL", []string{"NL004495445B01", "NL 806753742B01", "NL4495445B01", "NL000099998B57"}, []string{"NL004495446B01", "NL 806753743B01", "NL000099998B58"}},
	{"PL", []string{"PL8567346215", "PL 584-030-44-72", "PL5261025421"}, []string{"PL8567346216", "PL 584-030-44-73", "PL5261025422"}},
	{"PT", []string{"PT501964843", "PT 500 019 720", "PT503038083"}, []string{"PT501964842", "PT 500 019 721", "PT503038084"}},
	{"RO", []string{"RO18547290", "RO 24736200", "RO 573768", "RO1630615123457"}, []string{"RO18547291", "RO 24736201", "RO 573769", "RO1630615123458"}},
	{"SE", []string{"SE123456789701", "SE 556058115801", "SE-556 644 662 001"}, []string{"SE123456789801", "SE 556058115901", "SE-556 644 663 001"}},
	{"SI", []string{"SI50223054", "SI 3609 7152", "SI-83815201"}, []string{"SI50223055", "SI 3609 7153", "SI-83815202"}},
	{"SK", []string{"SK2022749619", "SK 2020 237 945", "SK 1078449064"}, []string{"SK2022749618", "SK 2030 237 945", "SK 1078449164"}},
	{"NO", []string{"988077917", "NO 988 077 917 MVA", "974760673"}, []string{"988077918", "NO 988 077 927 MVA", "974760674"}},
	{"IS", []string{"450401-3150", "IS 4504013150", "5902697199"}, []string{"450401-3160", "IS 4504013140", "5902697189"}},
	{"LI", []string{"FL-0002.658.754-1", "FL-0001.122.356-7", "0002.649.940-7"}, []string{"FL-0003.658.754-1", "FL-0002.658.754", "FL-0002.658.754-1X"}},
}

func TestEveryEUStateAndEEANumberScheme(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.country] = true
		t.Run(c.country, func(t *testing.T) {
			t.Parallel()
			for _, n := range c.valid {
				if _, err := Check(c.country, n); err != nil {
					t.Errorf("%s %q: want valid, got %v", c.country, n, err)
				}
			}
			for _, n := range c.altered {
				if _, err := Check(c.country, n); err == nil {
					t.Errorf("%s %q: altered number accepted", c.country, n)
				}
			}
		})
	}
	for _, code := range []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
		"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"} {
		if !seen[code] || !Supported(code) {
			t.Errorf("no test or no scheme for %s", code)
		}
	}
}

func TestCheckNormalisesAndNamesTheFault(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		country, in, want string
		err               error
	}{
		{"DE", " de 136-695-976 ", "DE136695976", nil},
		{"GR", "094259216", "EL094259216", nil},
		{"GR", "GR094259216", "EL094259216", nil},
		{"BE", "BE 428759497", "BE0428759497", nil},
		{"NO", "NO988077917MVA", "NO988077917", nil},
		{"LI", "FL-0002.658.754-1", "LI00026587541", nil},
		{"DE", "ATU13585627", "", ErrCountryMismatch},
		{"AT", "DE136695976", "", ErrCountryMismatch},
		{"DE", "13669597", "", ErrFormat},
		{"DE", "DE13669597X", "", ErrFormat},
		{"DE", "DE136695977", "", ErrChecksum},
		{"CH", "CHE-123.456.788", "", ErrUnsupported},
		{"GB", "GB980780684", "", ErrUnsupported},
		{"DE", "", "", ErrFormat},
		{"DE", "DE1366959７6", "", ErrFormat},
	} {
		got, err := Check(tc.country, tc.in)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("Check(%q, %q) = %q, %v; want %q, %v", tc.country, tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzCheckNeverPanics(f *testing.F) {
	for _, c := range cases {
		f.Add(c.country, c.valid[0])
	}
	f.Fuzz(func(t *testing.T, country, id string) {
		n, err := Check(country, id)
		if err == nil {
			if again, err := Check(country, n); err != nil || again != n {
				t.Fatalf("normalised %q does not re-check: %q %v", n, again, err)
			}
		}
	})
}
