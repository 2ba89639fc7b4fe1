package billing

import (
	"fmt"
	"strings"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
	"cardata/templates/i18n"
	"cardata/templates/pdfdoc"
)

// RenderPDF writes the human-readable document with the same content as
// the e-invoice, labelled in German and English: this decides what is
// printed (every amount formatted from its decimal), templates/pdfdoc where.
// The PDF's dates are the finalization time and the catalog is sorted, so
// rendering the same stored invoice again yields the same bytes.
//
// A credit note prints its quantities and amounts negative (Invoice.Signed:
// the same sign as in the lists and the CSV export) under the heading
// "Rechnungskorrektur zu Rechnung … / Credit note for invoice …"; its
// e-invoice keeps them positive, as EN 16931 wants of a credit note.
func RenderPDF(inv *Invoice, orig *Invoice) ([]byte, error) {
	if inv.Seller() == nil || inv.Number == nil || inv.IssueDate == nil || inv.FinalizedAt == nil {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "only finalized documents have a PDF")
	}
	return renderPDF(inv, orig, false)
}

// Texts of a draft's preview (PreviewPDF).
const (
	previewMark   = "ENTWURF / DRAFT"
	previewNumber = "Entwurf / Draft"
	previewNote   = "Vorschau eines Entwurfs, keine Rechnung: Nummer, Datum und Fälligkeit werden erst beim Finalisieren vergeben, Beträge können sich bis dahin ändern. / " +
		"Preview of a draft, not an invoice: the number, date and due date are assigned when it is finalized; amounts may change until then."
)

// creditHeading is the two lines (German, English) under a credit note's
// title naming the invoice it corrects.
func creditHeading(orig *Invoice) string {
	if orig == nil || orig.Number == nil {
		return ""
	}
	de, en := "Rechnungskorrektur zu Rechnung "+*orig.Number, "Credit note for invoice "+*orig.Number
	if orig.IssueDate != nil {
		de += " vom " + orig.IssueDate.Format("02.01.2006")
		en += " of " + orig.IssueDate.Format("02.01.2006")
	}
	return de + "\n" + en
}

func renderPDF(inv *Invoice, orig *Invoice, preview bool) ([]byte, error) {
	seller := inv.Seller()
	if seller == nil || inv.IssueDate == nil || inv.FinalizedAt == nil || (inv.Number == nil && !preview) {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "only finalized documents have a PDF")
	}
	number := previewNumber
	if inv.Number != nil {
		number = *inv.Number
	}
	title := fmt.Sprintf("%s %s", inv.Title(), number)
	if preview {
		title = fmt.Sprintf("%s: %s", previewMark, inv.Title())
	}
	d := pdfdoc.Invoice{
		Created: *inv.FinalizedAt,
		Title:   title,
		Author:  seller.Name,
		Footer: [2]string{
			fmt.Sprintf("%s · %s · %s %s · %s", seller.Name, seller.Street, seller.PostalCode, seller.City, seller.RegisterID),
			fmt.Sprintf("USt-IdNr./VAT ID %s · Steuernummer/Tax no. %s · %s · IBAN %s%s", seller.VATID, seller.TaxNumber,
				seller.BankName, formatIBAN(seller.IBAN), optional(" · BIC ", seller.BIC)),
		},
		FooterPrefix: fmt.Sprintf("%s %s", inv.Title(), number),
		SenderName:   seller.Name,
		SenderLine: fmt.Sprintf("%s, %s %s, %s · %s%s", seller.Street, seller.PostalCode, seller.City, seller.Country,
			seller.Email, optional(" · ", seller.Phone)),
		BillToLabel: "Rechnungsempfänger / Bill to",
		BuyerLines:  []string{inv.BuyerName, inv.BuyerStreet, inv.BuyerPostalCode + " " + inv.BuyerCity, countryLabel(inv.BuyerCountry)},
		Columns:     [5]string{"Pos.", "Beschreibung / Description", "Menge / Qty", "Preis / Price", "Netto / Net (EUR)"},
		SmallPrint:  "Dieses Dokument ist auch als elektronische Rechnung nach EN 16931 (UBL 2.1) verfügbar. / This document is also available as an EN 16931 e-invoice (UBL 2.1).",
	}
	if preview {
		d.Watermark = previewMark
		d.FooterPrefix = fmt.Sprintf("%s #%d (%s)", previewNumber, inv.ID, "Vorschau / preview")
		d.SmallPrint = previewNote
	}
	if inv.BuyerVATID != "" && inv.TaxCategory != TaxNotSubject {
		d.BuyerLines = append(d.BuyerLines, "USt-IdNr./VAT ID: "+inv.BuyerVATID)
	}
	d.BuyerLines = append(d.BuyerLines, fmt.Sprintf("Kundennummer/Customer no.: CARDATA-%d", inv.ProviderID))

	p := periodOfInvoice(inv)
	numberFact := [2]string{"Nummer / Number", number}
	if preview {
		numberFact = [2]string{"Nummer / Number", "– (" + previewMark + ")"}
	}
	d.Facts = [][2]string{
		numberFact,
		{"Datum / Date", inv.IssueDate.Format("02.01.2006")},
		{"Leistungszeitraum / Service period", p.Start.Format("02.01.2006") + " – " + p.LastDay().Format("02.01.2006")},
	}
	if inv.DueDate != nil {
		d.Facts = append(d.Facts, [2]string{"Fällig am / Due date", inv.DueDate.Format("02.01.2006")})
	}
	if orig != nil && orig.Number != nil {
		d.Facts = append(d.Facts, [2]string{"Zu Rechnung / For invoice", *orig.Number})
	}
	if inv.IsCreditNote() {
		d.Subtitle = creditHeading(orig)
		if inv.Reason != "" {
			d.Reason = "Grund / Reason: " + inv.Reason
		}
	}
	// The invoice speaks German first (its dates are German), so its
	// amounts are written the German way too: 1.234,56 €, 0,015. A credit
	// note's quantities and amounts are negative (Invoice.Signed).
	de := i18n.Locale{Lang: i18n.DE}
	for _, l := range inv.Lines {
		desc := l.Description
		if l.Reason != "" && l.Item == ItemManual {
			desc += " — " + l.Reason
		}
		d.Lines = append(d.Lines, pdfdoc.Line{Position: fmt.Sprint(l.Position), Description: desc, Quantity: de.Number(inv.Signed(l.Quantity)),
			UnitPrice: priceString(l.UnitPrice), Net: de.Decimal(inv.Signed(l.NetAmount), 2)})
	}

	taxLabel := fmt.Sprintf("USt. / VAT %s (%s)", inv.TaxRate.StringFixed(0)+" %", inv.TaxCategory)
	if inv.TaxCategory == TaxNotSubject {
		taxLabel = "USt. / VAT (O: nicht steuerbar / not subject)"
	}
	total := "Gesamtbetrag / Total amount"
	if inv.IsCreditNote() {
		total = "Gutschriftsbetrag / Total credited"
	}
	d.Totals = [][2]string{
		{"Summe netto / Total net", de.Money(inv.SignedNet())},
		{taxLabel, de.Money(inv.SignedTax())},
		{total, de.Money(inv.SignedGross())},
	}
	d.TaxNote = inv.TaxNote
	if inv.TaxCategory == TaxReverseCharge {
		d.TaxDetails = append(d.TaxDetails, fmt.Sprintf("USt-IdNr. Leistender / Supplier VAT ID: %s · USt-IdNr. Leistungsempfänger / Customer VAT ID: %s",
			seller.VATID, inv.BuyerVATID))
	}
	if !inv.IsCreditNote() {
		ref := number
		if preview {
			ref = "(" + previewMark + ")"
		}
		d.Terms = []string{paymentTerms(seller.PaymentTermsDays) + ".",
			fmt.Sprintf("Bitte überweisen Sie den Betrag unter Angabe der Rechnungsnummer / Please transfer the amount quoting the invoice number %s: %s, IBAN %s%s.",
				ref, seller.BankName, formatIBAN(seller.IBAN), optional(", BIC ", seller.BIC))}
	} else {
		d.Terms = []string{"Der Betrag wird Ihnen gutgeschrieben bzw. mit offenen Forderungen verrechnet / The amount is credited to you or set off against open items."}
	}
	b, err := pdfdoc.Render(d)
	if err != nil {
		return nil, errs.Wrap(err, "render pdf")
	}
	return b, nil
}

func optional(prefix, v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	return prefix + v
}

func priceString(p decimal.Decimal) string {
	s := p.StringFixed(4)
	// show at least two decimals, more only when the price has them
	for strings.HasSuffix(s, "0") && len(s)-strings.Index(s, ".") > 3 {
		s = s[:len(s)-1]
	}
	d, _ := decimal.NewFromString(s)
	return i18n.Locale{Lang: i18n.DE}.Decimal(d, -1)
}

func formatIBAN(iban string) string {
	var b strings.Builder
	for i, r := range iban {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var countryNames = map[string]string{
	"AT": "Österreich / Austria", "BE": "Belgien / Belgium", "BG": "Bulgarien / Bulgaria", "HR": "Kroatien / Croatia",
	"CY": "Zypern / Cyprus", "CZ": "Tschechien / Czechia", "DK": "Dänemark / Denmark", "EE": "Estland / Estonia",
	"FI": "Finnland / Finland", "FR": "Frankreich / France", "DE": "Deutschland / Germany", "GR": "Griechenland / Greece",
	"HU": "Ungarn / Hungary", "IE": "Irland / Ireland", "IT": "Italien / Italy", "LV": "Lettland / Latvia",
	"LT": "Litauen / Lithuania", "LU": "Luxemburg / Luxembourg", "MT": "Malta", "NL": "Niederlande / Netherlands",
	"PL": "Polen / Poland", "PT": "Portugal", "RO": "Rumänien / Romania", "SK": "Slowakei / Slovakia",
	"SI": "Slowenien / Slovenia", "ES": "Spanien / Spain", "SE": "Schweden / Sweden", "IS": "Island / Iceland",
	"LI": "Liechtenstein", "NO": "Norwegen / Norway",
}

func countryLabel(code string) string {
	if n, ok := countryNames[code]; ok {
		return n
	}
	return code
}
