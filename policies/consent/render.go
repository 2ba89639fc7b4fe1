package consent

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"cardata/policies/csvsafe"
	"cardata/policies/errs"
	"cardata/templates/i18n"
)

// The report files. Machine-readable files carry UTC times (RFC 3339);
// the readable HTML and PDF show local time with its zone.

func rfc3339(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func writeCSV(rows [][]string) ([]byte, error) {
	var buf bytes.Buffer
	w := csvsafe.NewWriter(&buf)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// header translates a CSV header row into lang (the column ids in
// English, German words in German).
func header(lang i18n.Lang, cols ...string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = i18n.T(lang, c)
	}
	return out
}

// ValuesCSV has one row per vehicle and key, the key's description in lang.
func ValuesCSV(r *DataReport, lang i18n.Lang) ([]byte, error) {
	rows := [][]string{header(lang, "vin", "key", "description", "category", "unit", "sensitive", "received", "value", "read_at", "received_at")}
	for _, v := range r.Vehicles {
		for _, x := range v.Values {
			val := ""
			if x.Value != nil {
				val = *x.Value
			}
			rows = append(rows, []string{v.VIN, x.Key, x.DescriptionIn(lang), x.Category, x.Unit, yesNo(lang, x.Sensitive),
				yesNo(lang, x.Received), val, rfc3339(x.ReadAt), rfc3339(x.ReceivedAt)})
		}
	}
	return writeCSV(rows)
}

// yesNo is a boolean cell in lang.
func yesNo(lang i18n.Lang, b bool) string {
	if b {
		return i18n.T(lang, "yes")
	}
	return i18n.T(lang, "no")
}

// ConsentsCSV has one row per consent.
func ConsentsCSV(r *DataReport, lang i18n.Lang) ([]byte, error) {
	rows := [][]string{header(lang, "consent_id", "vin", "provider", "container_id", "container", "version", "purpose_code", "purpose",
		"state", "requested_at", "decided_at", "ends_at", "ended_at", "keys")}
	for _, c := range r.Consents {
		rows = append(rows, []string{strconv.FormatInt(c.ID, 10), c.VIN, c.Provider, strconv.FormatInt(c.ContainerID, 10), c.Container,
			strconv.Itoa(c.Version), c.PurposeCode, c.Purpose, i18n.T(lang, string(c.State)), rfc3339(&c.RequestedAt), rfc3339(c.DecidedAt),
			rfc3339(c.EndsAt), rfc3339(c.EndedAt), strings.Join(c.Keys, " ")})
	}
	return writeCSV(rows)
}

// SentKeysCSV has one row per consent and key the ledger says was sent
// (its label in lang), and one row (without a key) per consent for
// deliveries whose keys were not recorded.
func SentKeysCSV(r *DataReport, lang i18n.Lang) ([]byte, error) {
	rows := [][]string{header(lang, "consent_id", "provider", "vin", "key", "label", "deliveries", "first_sent_at", "last_sent_at")}
	for _, c := range r.Consents {
		for _, k := range c.Sent {
			label := k.Label
			if lang == i18n.DE && k.LabelDE != "" {
				label = k.LabelDE
			}
			rows = append(rows, []string{strconv.FormatInt(c.ID, 10), c.Provider, c.VIN, k.Key, label, strconv.FormatInt(k.Deliveries, 10),
				rfc3339(&k.FirstAt), rfc3339(&k.LastAt)})
		}
		if u := c.KeysNotRecorded; u != nil {
			rows = append(rows, []string{strconv.FormatInt(c.ID, 10), c.Provider, c.VIN, "", keyList(false, nil, lang == i18n.DE), strconv.FormatInt(u.Deliveries, 10),
				rfc3339(&u.FirstAt), rfc3339(&u.LastAt)})
		}
	}
	return writeCSV(rows)
}

// KeysNotRecorded is said for deliveries made before the ledger named the
// keys they carried.
const KeysNotRecorded = "keys not recorded"

// KeyList renders delivered keys for a line of text: "Label (raw.key), ...",
// or "keys not recorded" when they are unknown.
func KeyList(known bool, keys []TransferKey) string { return keyList(known, keys, false) }

// keyList renders the English or German labels.
func keyList(known bool, keys []TransferKey, de bool) string {
	if !known {
		if de {
			return "Schlüssel nicht erfasst"
		}
		return KeysNotRecorded
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		l := k.Label
		if de {
			l = k.LabelDE
		}
		parts[i] = l + " (" + k.Key + ")"
	}
	return strings.Join(parts, "; ")
}

// HistoryCSV has one row per changelog entry.
func HistoryCSV(r *DataReport, lang i18n.Lang) ([]byte, error) {
	rows := [][]string{header(lang, "consent_id", "at", "from_state", "to_state", "version", "actor_kind", "actor", "note")}
	for _, c := range r.Consents {
		for _, h := range c.History {
			from := ""
			if h.From != "" {
				from = i18n.T(lang, string(h.From))
			}
			rows = append(rows, []string{strconv.FormatInt(c.ID, 10), rfc3339(&h.At), from, i18n.T(lang, string(h.To)),
				strconv.Itoa(h.Version), h.ActorKind, h.Actor, h.Note})
		}
	}
	return writeCSV(rows)
}

var reportHTML = template.Must(template.New("report").Funcs(template.FuncMap{
	"t": func(string, ...any) string { return "" }, "local": func(any) string { return "" },
	"join": strings.Join, "deref": func(s *string) string { return *s }, "desc": func(ReportValue) string { return "" },
	"label": func(ReportSentKey) string { return "" }, "inLang": func(string, string) string { return "" },
}).Parse(`<!doctype html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{t "CarData data report"}} · {{.R.Customer.Email}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;color:#1c2430;margin:24px auto;max-width:1100px;padding:0 16px}
table{border-collapse:collapse;width:100%;margin:8px 0 20px}th,td{border:1px solid #d9dee5;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}.never{color:#8a94a3;font-style:italic}.muted{color:#5b6675}code{font-size:12px}
</style></head><body>
<h1>{{t "Your CarData data report"}}</h1>
<p>{{t "For {{.Name}} ({{.Email}}), generated {{.At}}." "Name" .R.Customer.Name "Email" .R.Customer.Email "At" (local .R.GeneratedAt)}}</p>
<p class="muted">{{t "This archive lists, for each of your vehicles, the latest value stored for every data key and when the vehicle read it; \"never received\" means nothing has been stored for that key. It also lists every consent you were asked for, its history and which data keys were actually sent to the provider under it (from the delivery ledger). The same content is in report.json and the CSV files (times there in UTC)."}}</p>
<h2>{{t "Vehicles"}}</h2>
{{range .R.Vehicles}}
<h3>{{.Brand}} {{.Model}} · {{t "VIN {{.VIN}}" "VIN" .VIN}}</h3>
<p class="muted">{{t "Registered in {{.Market}} · {{.Drivetrain}} · you are the {{.Role}} holder · {{.Received}} of {{.Total}} keys received" "Market" .Market "Drivetrain" (t .Drivetrain) "Role" (t .Role) "Received" .Received "Total" (len .Values)}}</p>
<table><thead><tr><th>{{t "What it is"}}</th><th>{{t "Data key"}}</th><th>{{t "Latest value"}}</th><th>{{t "Read by the vehicle"}}</th></tr></thead><tbody>
{{range .Values}}<tr><td>{{desc .}}{{if .Sensitive}} <strong>({{t "sensitive"}})</strong>{{end}}</td><td><code>{{.Key}}</code></td>
{{if .Received}}<td>{{deref .Value}}{{if .Unit}} {{.Unit}}{{end}}</td><td>{{local .ReadAt}}</td>{{else}}<td class="never" colspan="2">{{t "never received"}}</td>{{end}}</tr>
{{end}}</tbody></table>
{{else}}<p>{{t "No vehicles are assigned to your account."}}</p>{{end}}
<h2>{{t "Consents"}}</h2>
{{range .R.Consents}}
<h3>{{.Provider}}: {{.Container}} ({{t "version {{.Version}}" "Version" .Version}}) · {{t "VIN {{.VIN}}" "VIN" .VIN}}</h3>
<p>{{t "Purpose:"}} <strong>{{t .PurposeLabel}}</strong>. {{.Purpose}}</p>
<p>{{t "State:"}} <strong>{{t (print .State)}}</strong>{{if .EndsAt}} · {{t "ends {{.At}}" "At" (local .EndsAt)}}{{end}} · {{t "data keys:"}} <code>{{join .Keys ", "}}</code></p>
<h4>{{t "Data sent to {{.Provider}} under this consent" "Provider" .Provider}}</h4>
{{if not $.R.SentFromLedger}}<p class="muted">{{t "Not part of this archive: the delivery ledger could not be read."}}</p>
{{else if or .Sent .KeysNotRecorded}}<table class="sent"><thead><tr><th>{{t "What it is"}}</th><th>{{t "Data key"}}</th><th>{{t "Deliveries"}}</th><th>{{t "First sent"}}</th><th>{{t "Last sent"}}</th></tr></thead><tbody>
{{range .Sent}}<tr><td>{{label .}}</td><td><code>{{.Key}}</code></td><td>{{.Deliveries}}</td><td>{{local .FirstAt}}</td><td>{{local .LastAt}}</td></tr>
{{end}}{{with .KeysNotRecorded}}<tr><td class="never" colspan="2">{{t "keys not recorded (deliveries made before the ledger named the keys)"}}</td><td>{{.Deliveries}}</td><td>{{local .FirstAt}}</td><td>{{local .LastAt}}</td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">{{t "No data was sent under this consent."}}</p>{{end}}
<table><thead><tr><th>{{t "When"}}</th><th>{{t "State change"}}</th><th>{{t "By"}}</th><th>{{t "Note"}}</th></tr></thead><tbody>
{{range .History}}<tr><td>{{local .At}}</td><td>{{if .From}}{{t (print .From)}} → {{end}}{{t (print .To)}} ({{t "version {{.Version}}" "Version" .Version}})</td><td>{{.Actor}} ({{.ActorKind}})</td><td>{{.Note}}</td></tr>{{end}}
</tbody></table>
{{else}}<p>{{t "No provider has asked you for consent."}}</p>{{end}}
</body></html>
`))

// ReportHTML renders the readable page of the archive in lang: its words,
// the catalog's key descriptions and labels in that language, times in loc
// (Europe/Berlin for people) in the language's format.
func ReportHTML(r *DataReport, loc *time.Location, lang i18n.Lang) ([]byte, error) {
	if loc == nil {
		loc = time.UTC
	}
	z := i18n.Locale{Lang: lang, Loc: loc}
	tpl, err := reportHTML.Clone()
	if err != nil {
		return nil, err
	}
	tpl.Funcs(template.FuncMap{
		"t": func(id string, args ...any) string { return i18n.T(lang, id, args...) },
		"local": func(t any) string {
			if p, ok := t.(*time.Time); ok && p == nil {
				return ""
			}
			s := z.DateTime(t)
			if tt, ok := t.(time.Time); ok {
				s += " " + tt.In(loc).Format("MST")
			} else if p, ok := t.(*time.Time); ok {
				s += " " + p.In(loc).Format("MST")
			}
			return s
		},
		"desc":  func(v ReportValue) string { return v.DescriptionIn(lang) },
		"label": func(k ReportSentKey) string { return pick(lang, k.Label, k.LabelDE) },
	})
	var buf bytes.Buffer
	err = tpl.Execute(&buf, struct {
		R    *DataReport
		Lang i18n.Lang
	}{r, lang})
	return buf.Bytes(), err
}

// pick is the German text in German when there is one, else the English.
func pick(lang i18n.Lang, en, de string) string {
	if lang == i18n.DE && de != "" {
		return de
	}
	return en
}

// RenderArchive builds the ZIP: report.json, values.csv, consents.csv,
// consent_history.csv, sent_keys.csv and report.html.
func RenderArchive(r *DataReport, loc *time.Location, lang i18n.Lang) ([]byte, error) {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, errs.Wrap(err, "report json")
	}
	values, err := ValuesCSV(r, lang)
	if err != nil {
		return nil, errs.Wrap(err, "report csv")
	}
	consents, err := ConsentsCSV(r, lang)
	if err != nil {
		return nil, errs.Wrap(err, "report csv")
	}
	history, err := HistoryCSV(r, lang)
	if err != nil {
		return nil, errs.Wrap(err, "report csv")
	}
	sent, err := SentKeysCSV(r, lang)
	if err != nil {
		return nil, errs.Wrap(err, "report csv")
	}
	page, err := ReportHTML(r, loc, lang)
	if err != nil {
		return nil, errs.Wrap(err, "report html")
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"report.json", js}, {"values.csv", values}, {"consents.csv", consents}, {"consent_history.csv", history}, {"sent_keys.csv", sent}, {"report.html", page}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: r.GeneratedAt})
		if err != nil {
			return nil, errs.Wrap(err, "report zip")
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, errs.Wrap(err, "report zip")
		}
	}
	if err := zw.Close(); err != nil {
		return nil, errs.Wrap(err, "report zip")
	}
	return buf.Bytes(), nil
}

// TransactionsCSV renders the transaction report as CSV, its header row in
// lang (the column ids in English, German words in German); the values
// are the same in both.
func TransactionsCSV(r *TransactionReport, lang i18n.Lang) ([]byte, error) {
	// keys: the raw keys the transfer carried (empty when not recorded,
	// keys_recorded then says no); key_labels: the same in plain language.
	header := []string{"delivered_at", "vin", "provider", "container_id", "container", "version", "purpose_code", "purpose",
		"kind", "values_delivered", "keys", "consent_id", "keys_recorded", "key_labels", "key_labels_de", "event_id", "event_type"}
	for i, h := range header {
		header[i] = i18n.T(lang, h)
	}
	rows := [][]string{header}
	for _, t := range r.Transfers {
		recorded := "yes"
		if !t.KeysKnown {
			recorded = "no"
		}
		rows = append(rows, []string{t.At.UTC().Format(time.RFC3339Nano), t.VIN, t.Provider, strconv.FormatInt(t.ContainerID, 10),
			t.Container, strconv.Itoa(t.Version), t.PurposeCode, t.PurposeLabel, t.Kind, strconv.Itoa(t.Values),
			strings.Join(t.Keys, " "), strconv.FormatInt(t.ConsentID, 10), recorded, KeyList(t.KeysKnown, t.KeyNames),
			keyList(t.KeysKnown, t.KeyNames, true), t.EventID, t.EventType})
	}
	b, err := writeCSV(rows)
	return b, errs.Wrap(err, "transactions csv")
}

// MaxPDFTransfers caps the PDF's table; the CSV always lists every transfer.
const MaxPDFTransfers = 10000

// TransactionsPDF renders the transaction report as a readable PDF in
// lang: its words, dates and numbers (the keys in the catalog's labels of
// that language).
func TransactionsPDF(r *TransactionReport, loc *time.Location, lang i18n.Lang) ([]byte, error) {
	if loc == nil {
		loc = time.UTC
	}
	z := i18n.Locale{Lang: lang, Loc: loc}
	T := z.T
	pdf := fpdf.New("L", "mm", "A4", "")
	pdf.SetCreationDate(r.GeneratedAt)
	pdf.SetModificationDate(r.GeneratedAt)
	pdf.SetCompression(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetTitle(T("CarData transaction report"), true)
	pdf.SetCreator("cardata", false)
	pdf.SetMargins(14, 14, 14)
	pdf.SetAutoPageBreak(true, 16)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-11)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(90, 90, 90)
		pdf.CellFormat(0, 4, tr(T("CarData transaction report · {{.Email}} · page {{.Page}}/{nb}", "Email", r.Customer.Email, "Page", pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pdf.SetFont("Helvetica", "B", 15)
	pdf.CellFormat(0, 8, tr(T("Transfers of your vehicle data to third parties")), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	period := T("all time")
	switch {
	case !r.From.IsZero() && !r.To.IsZero():
		period = T("{{.From}} to {{.To}}", "From", z.Date(r.From), "To", z.Date(r.To.Add(-time.Nanosecond)))
	case !r.From.IsZero():
		period = T("from {{.Date}}", "Date", z.Date(r.From))
	case !r.To.IsZero():
		period = T("until {{.Date}}", "Date", z.Date(r.To.Add(-time.Nanosecond)))
	}
	for _, l := range []string{
		T("For {{.Name}} ({{.Email}}) · period: {{.Period}} · generated {{.At}}", "Name", r.Customer.Name, "Email", r.Customer.Email,
			"Period", period, "At", z.DateTime(r.GeneratedAt)+" "+r.GeneratedAt.In(loc).Format("MST")),
		T("{{.Count}} transfers, each made on the basis of your consent and recorded in the delivery ledger.", "Count", len(r.Transfers)),
	} {
		pdf.CellFormat(0, 5, tr(l), "", 1, "L", false, 0, "")
	}
	pdf.Ln(3)
	cols := []struct {
		title string
		w     float64
	}{{T("When"), 36}, {T("Vehicle (VIN)"), 40}, {T("Provider"), 58}, {T("Container (version) and purpose"), 100}, {T("Kind"), 16}, {T("Values"), 19}}
	header := func() {
		pdf.SetFont("Helvetica", "B", 8)
		pdf.SetFillColor(238, 241, 245)
		for _, c := range cols {
			pdf.CellFormat(c.w, 6, tr(c.title), "1", 0, "L", true, 0, "")
		}
		pdf.Ln(-1)
		pdf.SetFont("Helvetica", "", 8)
	}
	header()
	for i, t := range r.Transfers {
		if i == MaxPDFTransfers {
			pdf.SetFont("Helvetica", "I", 8)
			pdf.CellFormat(0, 6, tr(T("… and {{.N}} more transfers: download the CSV for the complete list.", "N", z.Number(len(r.Transfers)-MaxPDFTransfers))), "", 1, "L", false, 0, "")
			break
		}
		if pdf.GetY() > 185 {
			pdf.AddPage()
			header()
		}
		vals := []string{z.DateTime(t.At) + t.At.In(loc).Format(":05"), t.VIN, t.Provider,
			fmt.Sprintf("%s (%s) · %s", t.Container, T("version {{.Version}}", "Version", t.Version), T(t.PurposeLabel)), T(t.Kind), z.Number(t.Values)}
		for j, c := range cols {
			s := tr(vals[j])
			for pdf.GetStringWidth(s) > c.w-2 && len(s) > 1 {
				s = s[:len(s)-1]
			}
			align := "L"
			if j == len(cols)-1 {
				align = "R"
			}
			pdf.CellFormat(c.w, 5, s, "1", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
		// The keys this transfer carried, in plain language with the raw key.
		pdf.SetFont("Helvetica", "", 7)
		pdf.MultiCell(0, 3.6, tr(T("Keys sent: ")+keyList(t.KeysKnown, t.KeyNames, lang == i18n.DE)), "LRB", "L", false)
		pdf.SetFont("Helvetica", "", 8)
	}
	if len(r.Transfers) == 0 {
		pdf.CellFormat(0, 6, tr(T("No data of your vehicles was transferred to a third party in this period.")), "", 1, "L", false, 0, "")
	}
	if len(r.Containers) > 0 {
		pdf.Ln(4)
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(0, 7, tr(T("The data containers named above and the data keys their consent covers")), "", 1, "L", false, 0, "")
		for _, c := range r.Containers {
			pdf.SetFont("Helvetica", "B", 8)
			pdf.MultiCell(0, 4.5, tr(T("{{.Provider}}: {{.Container}} (version {{.Version}}), purpose: {{.Purpose}}", "Provider", c.Provider, "Container", c.Name, "Version", c.Version, "Purpose", T(c.PurposeLabel))), "", "L", false)
			pdf.SetFont("Helvetica", "", 8)
			pdf.MultiCell(0, 4, tr(c.Purpose), "", "L", false)
			pdf.MultiCell(0, 4, tr(T("Keys: ")+strings.Join(c.Keys, ", ")), "", "L", false)
			pdf.Ln(1.5)
		}
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, errs.Wrap(err, "transactions pdf")
	}
	return buf.Bytes(), nil
}
