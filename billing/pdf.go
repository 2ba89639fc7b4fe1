package billing

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/go-pdf/fpdf"
	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// RenderPDF writes the human-readable document with the same content as
// the e-invoice, labelled in German and English. The PDF's dates are the
// finalization time and the catalog is sorted, so rendering the same
// stored invoice again yields the same bytes.
func RenderPDF(inv *Invoice, orig *Invoice) ([]byte, error) {
	seller := inv.Seller()
	if seller == nil || inv.Number == nil || inv.IssueDate == nil || inv.FinalizedAt == nil {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "only finalized documents have a PDF")
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(inv.FinalizedAt.UTC())
	pdf.SetModificationDate(inv.FinalizedAt.UTC())
	pdf.SetCatalogSort(true)
	pdf.SetCompression(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: umlauts, ß, €, en dash
	pdf.SetTitle(fmt.Sprintf("%s %s", inv.Title(), *inv.Number), true)
	pdf.SetAuthor(seller.Name, true)
	pdf.SetCreator("cardata", false)
	pdf.SetProducer("cardata billing", false)
	pdf.SetMargins(20, 18, 20)
	pdf.SetAutoPageBreak(true, 28)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-24)
		pdf.SetFont("Helvetica", "", 7)
		pdf.SetTextColor(90, 90, 90)
		line1 := fmt.Sprintf("%s · %s · %s %s · %s", seller.Name, seller.Street, seller.PostalCode, seller.City, seller.RegisterID)
		line2 := fmt.Sprintf("USt-IdNr./VAT ID %s · Steuernummer/Tax no. %s · %s · IBAN %s%s", seller.VATID, seller.TaxNumber,
			seller.BankName, formatIBAN(seller.IBAN), optional(" · BIC ", seller.BIC))
		pdf.CellFormat(0, 3.5, tr(line1), "T", 1, "C", false, 0, "")
		pdf.CellFormat(0, 3.5, tr(line2), "", 1, "C", false, 0, "")
		pdf.CellFormat(0, 3.5, tr(fmt.Sprintf("%s %s · Seite/Page %d/{nb}", inv.Title(), *inv.Number, pdf.PageNo())), "", 0, "C", false, 0, "")
	})
	pdf.AddPage()
	pdf.SetTextColor(0, 0, 0)

	// Sender line and addresses.
	pdf.SetFont("Helvetica", "B", 14)
	pdf.CellFormat(0, 7, tr(seller.Name), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 8)
	pdf.CellFormat(0, 4, tr(fmt.Sprintf("%s, %s %s, %s · %s%s", seller.Street, seller.PostalCode, seller.City, seller.Country,
		seller.Email, optional(" · ", seller.Phone))), "", 1, "L", false, 0, "")
	pdf.Ln(6)
	top := pdf.GetY()
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(78, 5, tr("Rechnungsempfänger / Bill to"), "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, l := range []string{inv.BuyerName, inv.BuyerStreet, inv.BuyerPostalCode + " " + inv.BuyerCity, countryLabel(inv.BuyerCountry)} {
		pdf.CellFormat(78, 5, tr(l), "", 1, "L", false, 0, "")
	}
	if inv.BuyerVATID != "" && inv.TaxCategory != TaxNotSubject {
		pdf.CellFormat(78, 5, tr("USt-IdNr./VAT ID: "+inv.BuyerVATID), "", 1, "L", false, 0, "")
	}
	pdf.CellFormat(78, 5, tr(fmt.Sprintf("Kundennummer/Customer no.: CARDATA-%d", inv.ProviderID)), "", 1, "L", false, 0, "")
	bottom := pdf.GetY()

	// Facts box on the right.
	p := periodOfInvoice(inv)
	facts := [][2]string{
		{"Nummer / Number", *inv.Number},
		{"Datum / Date", inv.IssueDate.Format("02.01.2006")},
		{"Leistungszeitraum / Service period", p.Start.Format("02.01.2006") + " – " + p.LastDay().Format("02.01.2006")},
	}
	if inv.DueDate != nil {
		facts = append(facts, [2]string{"Fällig am / Due date", inv.DueDate.Format("02.01.2006")})
	}
	if orig != nil && orig.Number != nil {
		ref := *orig.Number
		if orig.IssueDate != nil {
			ref += " (" + orig.IssueDate.Format("02.01.2006") + ")"
		}
		facts = append(facts, [2]string{"Korrigiert Rechnung / Corrects invoice", ref})
	}
	pdf.SetY(top)
	for _, f := range facts {
		pdf.SetX(100)
		pdf.SetFont("Helvetica", "", 8)
		pdf.CellFormat(52, 5, tr(f[0]), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(38, 5, tr(f[1]), "", 1, "R", false, 0, "")
	}
	pdf.SetY(max(bottom, pdf.GetY()) + 8)
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 8, tr(inv.Title()+" "+*inv.Number), "", 1, "L", false, 0, "")
	if inv.IsCreditNote() && inv.Reason != "" {
		pdf.SetFont("Helvetica", "", 9)
		pdf.MultiCell(0, 4.5, tr("Grund / Reason: "+inv.Reason), "", "L", false)
	}
	pdf.Ln(3)

	// Lines. Widths and heights are page layout in millimetres (fpdf takes float
	// coordinates); no amount is ever a float: they are printed from decimal.Decimal.
	cols := []float64{9, 87, 20, 22, 32}
	head := []string{"Pos.", "Beschreibung / Description", "Menge / Qty", "Preis / Price", "Netto / Net (EUR)"}
	pdf.SetFont("Helvetica", "B", 8)
	pdf.SetFillColor(235, 238, 242)
	for i, h := range head {
		align := "L"
		if i >= 2 {
			align = "R"
		}
		pdf.CellFormat(cols[i], 7, tr(h), "B", 0, align, true, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 8)
	for _, l := range inv.Lines {
		desc := l.Description
		if l.Reason != "" && l.Item == ItemManual {
			desc += " — " + l.Reason
		}
		lines := pdf.SplitLines([]byte(tr(desc)), cols[1]-2)
		h := 4.2 * float64(max(1, len(lines)))
		if pdf.GetY()+h > 297-30 {
			pdf.AddPage()
		}
		y := pdf.GetY()
		x := pdf.GetX()
		pdf.CellFormat(cols[0], 4.2, fmt.Sprint(l.Position), "", 0, "L", false, 0, "")
		pdf.MultiCell(cols[1], 4.2, tr(desc), "", "L", false)
		pdf.SetXY(x+cols[0]+cols[1], y)
		pdf.CellFormat(cols[2], 4.2, quantityString(l.Quantity), "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[3], 4.2, tr(priceString(l.UnitPrice)), "", 0, "R", false, 0, "")
		pdf.CellFormat(cols[4], 4.2, groupThousands(l.NetAmount.StringFixed(2)), "", 0, "R", false, 0, "")
		pdf.SetXY(x, y+h+1)
	}
	pdf.CellFormat(0, 1, "", "T", 1, "L", false, 0, "")
	pdf.Ln(2)

	// Totals.
	rate := inv.TaxRate.StringFixed(0) + " %"
	taxLabel := fmt.Sprintf("USt. / VAT %s (%s)", rate, inv.TaxCategory)
	if inv.TaxCategory == TaxNotSubject {
		taxLabel = "USt. / VAT (O: nicht steuerbar / not subject)"
	}
	totals := [][2]string{
		{"Summe netto / Total net", groupThousands(inv.NetTotal.StringFixed(2)) + " EUR"},
		{taxLabel, groupThousands(inv.TaxTotal.StringFixed(2)) + " EUR"},
		{"Gesamtbetrag / Total amount", groupThousands(inv.GrossTotal.StringFixed(2)) + " EUR"},
	}
	for i, t := range totals {
		pdf.SetX(90)
		style := ""
		if i == len(totals)-1 {
			style = "B"
		}
		pdf.SetFont("Helvetica", style, 9)
		pdf.CellFormat(65, 5.5, tr(t[0]), "", 0, "L", false, 0, "")
		pdf.CellFormat(35, 5.5, tr(t[1]), "", 1, "R", false, 0, "")
	}
	pdf.Ln(4)
	pdf.SetFont("Helvetica", "", 9)
	if inv.TaxNote != "" {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.MultiCell(0, 4.5, tr(inv.TaxNote), "", "L", false)
		pdf.SetFont("Helvetica", "", 9)
	}
	if inv.TaxCategory == TaxReverseCharge {
		pdf.MultiCell(0, 4.5, tr(fmt.Sprintf("USt-IdNr. Leistender / Supplier VAT ID: %s · USt-IdNr. Leistungsempfänger / Customer VAT ID: %s",
			seller.VATID, inv.BuyerVATID)), "", "L", false)
	}
	pdf.Ln(2)
	if !inv.IsCreditNote() {
		pdf.MultiCell(0, 4.5, tr(paymentTerms(seller.PaymentTermsDays)+"."), "", "L", false)
		pdf.MultiCell(0, 4.5, tr(fmt.Sprintf("Bitte überweisen Sie den Betrag unter Angabe der Rechnungsnummer / Please transfer the amount quoting the invoice number %s: %s, IBAN %s%s.",
			*inv.Number, seller.BankName, formatIBAN(seller.IBAN), optional(", BIC ", seller.BIC))), "", "L", false)
	} else {
		pdf.MultiCell(0, 4.5, tr("Der Betrag wird Ihnen gutgeschrieben bzw. mit offenen Forderungen verrechnet / The amount is credited to you or set off against open items."), "", "L", false)
	}
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "", 7)
	pdf.MultiCell(0, 3.5, tr("Dieses Dokument ist auch als elektronische Rechnung nach EN 16931 (UBL 2.1) verfügbar. / This document is also available as an EN 16931 e-invoice (UBL 2.1)."), "", "L", false)

	if err := pdf.Error(); err != nil {
		return nil, errs.Wrap(err, "render pdf")
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, errs.Wrap(err, "render pdf")
	}
	return buf.Bytes(), nil
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
	return s
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
