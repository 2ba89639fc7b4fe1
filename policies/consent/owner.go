package consent

import (
	"regexp"
	"strings"

	"cardata/policies"
	"cardata/templates/i18n"
)

// This file words consents for the vehicle owner (/my): data keys by their
// catalog label without technical notation, transfers by what happened,
// and history entries by who acted as the owner knows them (themselves, the
// provider, or CarData), never by internal staff or system accounts.

// technical matches the catalog labels' parenthesised notes meant for
// developers: "(WGS 84)", "(ISO 3166-1 alpha-2)", "(BCP 47 tag)", "(I-Step)",
// "(0 = north)" and their German forms.
var technical = regexp.MustCompile(`\s*\((WGS 84|ISO [^)]*|BCP[- ]47[^)]*|I-St[a-z]+|0 = [^)]*)\)`)

// PlainLabel is a catalog label without its technical notes.
func PlainLabel(label string) string { return strings.TrimSpace(technical.ReplaceAllString(label, "")) }

// Plain is the key's English label for the vehicle owner.
func (k Key) Plain() string { return PlainLabel(k.DescriptionEN) }

// PlainDE is the key's German label for the vehicle owner.
func (k Key) PlainDE() string { return PlainLabel(k.DescriptionDE) }

// Plain is the sent key's English label for the vehicle owner.
func (k TransferKey) Plain() string { return PlainLabel(k.Label) }

// PlainDE is the sent key's German label for the vehicle owner.
func (k TransferKey) PlainDE() string { return PlainLabel(k.LabelDE) }

// KindLabel says how the data left: the provider asked for it, or the
// vehicle's event was sent to the provider automatically.
func (t Transfer) KindLabel() string {
	if t.Kind == "push" {
		return "sent automatically after a vehicle event"
	}
	return "requested by the provider"
}

// ActorFor names who made the change for the vehicle owner me: "you",
// "another holder of this vehicle", the provider's name, or "CarData" for
// anything done by staff, jobs or the system (their names are internal).
func (ch Change) ActorFor(me int64, provider string) string {
	switch ch.ActorKind {
	case policies.KindCustomer:
		if ch.ActorID != nil && *ch.ActorID == me {
			return "you"
		}
		return "another holder of this vehicle"
	case policies.KindProvider:
		return provider
	}
	return "CarData"
}

// StateFor is what the change did, in the owner's words.
func (ch Change) StateFor() string {
	switch ch.ToState {
	case Requested:
		return "asked for your consent"
	case Granted:
		return "consent granted"
	case Denied:
		return "request denied"
	case Revoked:
		return "consent revoked"
	case Expired:
		return "consent ended (expired)"
	case Superseded:
		return "replaced by a newer request"
	}
	return string(ch.ToState)
}

// systemNotes are the notes CarData writes into a consent's history
// (cascades, jobs), as they are stored (English): each pattern's
// named groups are the parameters of its catalog message, so a page can say
// old and new rows in the reader's language. A note a person typed (a
// provider's suspension reason after "the provider was suspended: ")
// stays as typed.
var systemNotes = []i18n.Written{
	{Re: regexp.MustCompile(`^carried over to version (?P<Version>\d+), which only removes keys: no new consent needed$`),
		ID: "carried over to version {{.Version}}, which only removes keys: no new consent needed"},
	{Re: regexp.MustCompile(`^replaced by consent (?P<Consent>\d+) for version (?P<Version>\d+)$`),
		ID: "replaced by consent {{.Consent}} for version {{.Version}}"},
	{Re: regexp.MustCompile(`^version (?P<Version>\d+) replaced this version; the provider must ask again$`),
		ID: "version {{.Version}} replaced this version; the provider must ask again"},
	{Re: regexp.MustCompile(`^the data container was purged (?P<Days>\d+) days after its withdrawal$`),
		ID: "the data container was purged {{.Days}} days after its withdrawal"},
	{Re: regexp.MustCompile(`^the provider's data container was withdrawn: (?P<Reason>(?s).*)$`),
		ID: "the provider's data container was withdrawn: {{.Reason}}"},
	{Re: regexp.MustCompile(`^the provider was suspended: (?P<Reason>(?s).*)$`), ID: "the provider was suspended: {{.Reason}}"},
	{Re: regexp.MustCompile(`^the provider was terminated: (?P<Reason>(?s).*)$`), ID: "the provider was terminated: {{.Reason}}"},
}

// NoteIn is the change's note in lang: a note CarData wrote, translated
// (systemNotes, or a fixed text in the catalogs); anything else as stored.
func (ch Change) NoteIn(lang string) string {
	l, _ := i18n.Parse(lang)
	return i18n.WrittenIn(l, ch.Note, systemNotes)
}
