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
func RenderPDF(inv *Invoice, orig *Invoice) ([]byte, error) {
	seller := inv.Seller()
	if seller == nil || inv.Number == nil || inv.IssueDate == nil || inv.FinalizedAt == nil {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "only finalized documents have a PDF")
	}
	d := pdfdoc.Invoice{
		Created: *inv.FinalizedAt,
		Title:   fmt.Sprintf("%s %s", inv.Title(), *inv.Number),
		Author:  seller.Name,
		Footer: [2]string{
			fmt.Sprintf("%s · %s · %s %s · %s", seller.Name, seller.Street, seller.PostalCode, seller.City, seller.RegisterID),
			fmt.Sprintf("USt-IdNr./VAT ID %s · Steuernummer/Tax no. %s · %s · IBAN %s%s", seller.VATID, seller.TaxNumber,
				seller.BankName, formatIBAN(seller.IBAN), optional(" · BIC ", seller.BIC)),
		},
		FooterPrefix: fmt.Sprintf("%s %s", inv.Title(), *inv.Number),
		SenderName:   seller.Name,
		SenderLine: fmt.Sprintf("%s, %s %s, %s · %s%s", seller.Street, seller.PostalCode, seller.City, seller.Country,
			seller.Email, optional(" · ", seller.Phone)),
		BillToLabel: "Rechnungsempfänger / Bill to",
		BuyerLines:  []string{inv.BuyerName, inv.BuyerStreet, inv.BuyerPostalCode + " " + inv.BuyerCity, countryLabel(inv.BuyerCountry)},
		Columns:     [5]string{"Pos.", "Beschreibung / Description", "Menge / Qty", "Preis / Price", "Netto / Net (EUR)"},
		SmallPrint:  "Dieses Dokument ist auch als elektronische Rechnung nach EN 16931 (UBL 2.1) verfügbar. / This document is also available as an EN 16931 e-invoice (UBL 2.1).",
	}
	if inv.BuyerVATID != "" && inv.TaxCategory != TaxNotSubject {
		d.BuyerLines = append(d.BuyerLines, "USt-IdNr./VAT ID: "+inv.BuyerVATID)
	}
	d.BuyerLines = append(d.BuyerLines, fmt.Sprintf("Kundennummer/Customer no.: CARDATA-%d", inv.ProviderID))

	p := periodOfInvoice(inv)
	d.Facts = [][2]string{
		{"Nummer / Number", *inv.Number},
		{"Datum / Date", inv.IssueDate.Format("02.01.2006")},
		{"Leistungszeitraum / Service period", p.Start.Format("02.01.2006") + " – " + p.LastDay().Format("02.01.2006")},
	}
	if inv.DueDate != nil {
		d.Facts = append(d.Facts, [2]string{"Fällig am / Due date", inv.DueDate.Format("02.01.2006")})
	}
	if orig != nil && orig.Number != nil {
		ref := *orig.Number
		if orig.IssueDate != nil {
			ref += " (" + orig.IssueDate.Format("02.01.2006") + ")"
		}
		d.Facts = append(d.Facts, [2]string{"Korrigiert Rechnung / Corrects invoice", ref})
	}
	if inv.IsCreditNote() && inv.Reason != "" {
		d.Reason = "Grund / Reason: " + inv.Reason
	}
	// The invoice speaks German first (its dates are German), so its
	// amounts are written the German way too: 1.234,56 €, 0,015.
	de := i18n.Locale{Lang: i18n.DE}
	for _, l := range inv.Lines {
		desc := l.Description
		if l.Reason != "" && l.Item == ItemManual {
			desc += " — " + l.Reason
		}
		d.Lines = append(d.Lines, pdfdoc.Line{Position: fmt.Sprint(l.Position), Description: desc, Quantity: de.Number(l.Quantity),
			UnitPrice: priceString(l.UnitPrice), Net: de.Decimal(l.NetAmount, 2)})
	}

	taxLabel := fmt.Sprintf("USt. / VAT %s (%s)", inv.TaxRate.StringFixed(0)+" %", inv.TaxCategory)
	if inv.TaxCategory == TaxNotSubject {
		taxLabel = "USt. / VAT (O: nicht steuerbar / not subject)"
	}
	d.Totals = [][2]string{
		{"Summe netto / Total net", de.Money(inv.NetTotal)},
		{taxLabel, de.Money(inv.TaxTotal)},
		{"Gesamtbetrag / Total amount", de.Money(inv.GrossTotal)},
	}
	d.TaxNote = inv.TaxNote
	if inv.TaxCategory == TaxReverseCharge {
		d.TaxDetails = append(d.TaxDetails, fmt.Sprintf("USt-IdNr. Leistender / Supplier VAT ID: %s · USt-IdNr. Leistungsempfänger / Customer VAT ID: %s",
			seller.VATID, inv.BuyerVATID))
	}
	if !inv.IsCreditNote() {
		d.Terms = []string{paymentTerms(seller.PaymentTermsDays) + ".",
			fmt.Sprintf("Bitte überweisen Sie den Betrag unter Angabe der Rechnungsnummer / Please transfer the amount quoting the invoice number %s: %s, IBAN %s%s.",
				*inv.Number, seller.BankName, formatIBAN(seller.IBAN), optional(", BIC ", seller.BIC))}
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
