package billing

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// RenderUBL writes a finalized invoice or credit note as an EN 16931
// e-invoice in UBL 2.1 syntax. Elements follow the UBL schema order; the
// content follows the EN 16931 business rules for the three tax cases
// cardata issues (S 19 %, AE reverse charge, O not subject to VAT).
// Output depends only on the stored invoice, so it is reproducible.
func RenderUBL(inv *Invoice, orig *Invoice) ([]byte, error) {
	seller := inv.Seller()
	if seller == nil || inv.Number == nil || inv.IssueDate == nil {
		return nil, errs.New(errs.Conflict, "invoice_not_final", "only finalized documents have an e-invoice")
	}
	if inv.IsCreditNote() && (orig == nil || orig.Number == nil) {
		return nil, errs.Wrap(fmt.Errorf("credit note %d without its invoice", inv.ID), "render credit note")
	}
	w := &xw{}
	root, lineEl, qtyEl := "Invoice", "InvoiceLine", "InvoicedQuantity"
	if inv.IsCreditNote() {
		root, lineEl, qtyEl = "CreditNote", "CreditNoteLine", "CreditedQuantity"
	}
	w.raw(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	w.raw(fmt.Sprintf(`<%s xmlns="urn:oasis:names:specification:ubl:schema:xsd:%s-2"`+
		` xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"`+
		` xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">`+"\n", root, root))
	w.el(1, "cbc:CustomizationID", "urn:cen.eu:en16931:2017")
	w.el(1, "cbc:ID", *inv.Number)
	w.el(1, "cbc:IssueDate", inv.IssueDate.Format("2006-01-02"))
	if !inv.IsCreditNote() {
		if inv.DueDate != nil {
			w.el(1, "cbc:DueDate", inv.DueDate.Format("2006-01-02"))
		}
		w.el(1, "cbc:InvoiceTypeCode", "380")
	} else {
		w.el(1, "cbc:CreditNoteTypeCode", "381")
	}
	if inv.TaxNote != "" {
		w.el(1, "cbc:Note", inv.TaxNote)
	}
	if inv.IsCreditNote() && inv.Reason != "" {
		w.el(1, "cbc:Note", "Reason / Grund: "+inv.Reason)
	}
	w.el(1, "cbc:DocumentCurrencyCode", inv.Currency)
	w.el(1, "cbc:BuyerReference", "CarData provider "+strconv.FormatInt(inv.ProviderID, 10))
	p := periodOfInvoice(inv)
	w.open(1, "cac:InvoicePeriod")
	w.el(2, "cbc:StartDate", p.Start.Format("2006-01-02"))
	w.el(2, "cbc:EndDate", p.LastDay().Format("2006-01-02"))
	w.close(1, "cac:InvoicePeriod")
	if inv.IsCreditNote() {
		w.open(1, "cac:BillingReference")
		w.open(2, "cac:InvoiceDocumentReference")
		w.el(3, "cbc:ID", *orig.Number)
		if orig.IssueDate != nil {
			w.el(3, "cbc:IssueDate", orig.IssueDate.Format("2006-01-02"))
		}
		w.close(2, "cac:InvoiceDocumentReference")
		w.close(1, "cac:BillingReference")
	}

	// Seller (BG-4). EN 16931 forbids the seller's VAT ID with category O
	// (BR-O-02): the German tax number (BT-32) and the register entry
	// (BT-30) identify the seller instead.
	w.open(1, "cac:AccountingSupplierParty")
	w.open(2, "cac:Party")
	w.attrEl(3, "cbc:EndpointID", "schemeID", "EM", seller.Email)
	w.postal(3, seller.Street, seller.City, seller.PostalCode, seller.Country)
	if inv.TaxCategory != TaxNotSubject {
		w.taxScheme(3, seller.VATID, "VAT")
	}
	if seller.TaxNumber != "" {
		w.taxScheme(3, seller.TaxNumber, "FC")
	}
	w.open(3, "cac:PartyLegalEntity")
	w.el(4, "cbc:RegistrationName", seller.Name)
	if seller.RegisterID != "" {
		w.el(4, "cbc:CompanyID", seller.RegisterID)
	}
	w.close(3, "cac:PartyLegalEntity")
	w.open(3, "cac:Contact")
	w.el(4, "cbc:Name", "CarData Billing")
	if seller.Phone != "" {
		w.el(4, "cbc:Telephone", seller.Phone)
	}
	w.el(4, "cbc:ElectronicMail", seller.Email)
	w.close(3, "cac:Contact")
	w.close(2, "cac:Party")
	w.close(1, "cac:AccountingSupplierParty")

	// Buyer (BG-7).
	w.open(1, "cac:AccountingCustomerParty")
	w.open(2, "cac:Party")
	if inv.BuyerEmail != "" {
		w.attrEl(3, "cbc:EndpointID", "schemeID", "EM", inv.BuyerEmail)
	}
	w.open(3, "cac:PartyIdentification")
	w.el(4, "cbc:ID", "CARDATA-"+strconv.FormatInt(inv.ProviderID, 10))
	w.close(3, "cac:PartyIdentification")
	w.postal(3, inv.BuyerStreet, inv.BuyerCity, inv.BuyerPostalCode, inv.BuyerCountry)
	if inv.BuyerVATID != "" && inv.TaxCategory != TaxNotSubject {
		w.taxScheme(3, inv.BuyerVATID, "VAT")
	}
	w.open(3, "cac:PartyLegalEntity")
	w.el(4, "cbc:RegistrationName", inv.BuyerName)
	w.close(3, "cac:PartyLegalEntity")
	if inv.BuyerEmail != "" {
		w.open(3, "cac:Contact")
		w.el(4, "cbc:ElectronicMail", inv.BuyerEmail)
		w.close(3, "cac:Contact")
	}
	w.close(2, "cac:Party")
	w.close(1, "cac:AccountingCustomerParty")

	if !inv.IsCreditNote() {
		w.open(1, "cac:PaymentMeans")
		w.el(2, "cbc:PaymentMeansCode", "58") // SEPA credit transfer
		w.el(2, "cbc:PaymentID", *inv.Number)
		w.open(2, "cac:PayeeFinancialAccount")
		w.el(3, "cbc:ID", seller.IBAN)
		w.el(3, "cbc:Name", seller.Name)
		if seller.BIC != "" {
			w.open(3, "cac:FinancialInstitutionBranch")
			w.el(4, "cbc:ID", seller.BIC)
			w.close(3, "cac:FinancialInstitutionBranch")
		}
		w.close(2, "cac:PayeeFinancialAccount")
		w.close(1, "cac:PaymentMeans")
		w.open(1, "cac:PaymentTerms")
		w.el(2, "cbc:Note", paymentTerms(seller.PaymentTermsDays))
		w.close(1, "cac:PaymentTerms")
	}

	cur := inv.Currency
	w.open(1, "cac:TaxTotal")
	w.money(2, "cbc:TaxAmount", cur, inv.TaxTotal)
	w.open(2, "cac:TaxSubtotal")
	w.money(3, "cbc:TaxableAmount", cur, inv.NetTotal)
	w.money(3, "cbc:TaxAmount", cur, inv.TaxTotal)
	w.taxCategory(3, "cac:TaxCategory", inv, true)
	w.close(2, "cac:TaxSubtotal")
	w.close(1, "cac:TaxTotal")

	lineSum := decimal.Zero
	for _, l := range inv.Lines {
		lineSum = lineSum.Add(l.NetAmount)
	}
	w.open(1, "cac:LegalMonetaryTotal")
	w.money(2, "cbc:LineExtensionAmount", cur, lineSum)
	w.money(2, "cbc:TaxExclusiveAmount", cur, inv.NetTotal)
	w.money(2, "cbc:TaxInclusiveAmount", cur, inv.GrossTotal)
	w.money(2, "cbc:PayableAmount", cur, inv.GrossTotal)
	w.close(1, "cac:LegalMonetaryTotal")

	for _, l := range inv.Lines {
		w.open(1, "cac:"+lineEl)
		w.el(2, "cbc:ID", strconv.Itoa(l.Position))
		if l.Reason != "" {
			w.el(2, "cbc:Note", l.Reason)
		}
		w.attrEl(2, "cbc:"+qtyEl, "unitCode", l.UnitCode, quantityString(l.Quantity))
		w.money(2, "cbc:LineExtensionAmount", cur, l.NetAmount)
		if sp, err := ParsePeriod(l.ServicePeriod, p.Start.Location()); err == nil {
			w.open(2, "cac:InvoicePeriod")
			w.el(3, "cbc:StartDate", sp.Start.Format("2006-01-02"))
			w.el(3, "cbc:EndDate", sp.LastDay().Format("2006-01-02"))
			w.close(2, "cac:InvoicePeriod")
		}
		w.open(2, "cac:Item")
		w.el(3, "cbc:Description", l.Description)
		w.el(3, "cbc:Name", itemName(l))
		w.open(3, "cac:SellersItemIdentification")
		w.el(4, "cbc:ID", string(l.Item))
		w.close(3, "cac:SellersItemIdentification")
		w.taxCategory(3, "cac:ClassifiedTaxCategory", inv, false)
		w.close(2, "cac:Item")
		w.open(2, "cac:Price")
		w.attrEl(3, "cbc:PriceAmount", "currencyID", cur, l.UnitPrice.StringFixed(4))
		w.close(2, "cac:Price")
		w.close(1, "cac:"+lineEl)
	}
	w.raw("</" + root + ">\n")
	return w.b.Bytes(), nil
}

// periodOfInvoice is the invoice's billing month as calendar dates (the
// zone does not matter for dates, so documents never depend on it).
func periodOfInvoice(inv *Invoice) Period {
	if p, err := ParsePeriod(inv.Period, time.UTC); err == nil {
		return p
	}
	return PeriodOf(inv.PeriodStart, time.UTC)
}

func itemName(l Line) string {
	switch l.Item {
	case ItemTelematics, ItemPush:
		return l.Item.ShortLabel() + " " + l.ServicePeriod
	case ItemSupportCase:
		return "Support case " + l.Priority
	case ItemSupportTime:
		return "Support time " + l.Priority
	}
	return l.Item.ShortLabel()
}

func paymentTerms(days int) string {
	if days == 0 {
		return "Payable immediately without deduction / Sofort zahlbar ohne Abzug"
	}
	return fmt.Sprintf("Payable within %d days of the invoice date without deduction / Zahlbar innerhalb von %d Tagen ab Rechnungsdatum ohne Abzug", days, days)
}

func quantityString(q decimal.Decimal) string {
	if q.Equal(q.Truncate(0)) {
		return q.StringFixed(0)
	}
	return q.String()
}

// xw is a tiny indenting XML writer (deterministic output, escaped text).
type xw struct{ b bytes.Buffer }

func (w *xw) raw(s string) { w.b.WriteString(s) }

func (w *xw) indent(n int) { w.b.WriteString(strings.Repeat("  ", n)) }

func (w *xw) open(n int, name string) { w.indent(n); w.b.WriteString("<" + name + ">\n") }

func (w *xw) close(n int, name string) { w.indent(n); w.b.WriteString("</" + name + ">\n") }

func (w *xw) el(n int, name, text string) {
	w.indent(n)
	w.b.WriteString("<" + name + ">")
	_ = xml.EscapeText(&w.b, []byte(text))
	w.b.WriteString("</" + name + ">\n")
}

func (w *xw) attrEl(n int, name, attr, val, text string) {
	w.indent(n)
	w.b.WriteString("<" + name + " " + attr + `="`)
	_ = xml.EscapeText(&w.b, []byte(val))
	w.b.WriteString(`">`)
	_ = xml.EscapeText(&w.b, []byte(text))
	w.b.WriteString("</" + name + ">\n")
}

func (w *xw) money(n int, name, cur string, d decimal.Decimal) {
	w.attrEl(n, name, "currencyID", cur, d.StringFixed(2))
}

func (w *xw) postal(n int, street, city, zip, country string) {
	w.open(n, "cac:PostalAddress")
	w.el(n+1, "cbc:StreetName", street)
	w.el(n+1, "cbc:CityName", city)
	w.el(n+1, "cbc:PostalZone", zip)
	w.open(n+1, "cac:Country")
	w.el(n+2, "cbc:IdentificationCode", country)
	w.close(n+1, "cac:Country")
	w.close(n, "cac:PostalAddress")
}

func (w *xw) taxScheme(n int, id, scheme string) {
	w.open(n, "cac:PartyTaxScheme")
	w.el(n+1, "cbc:CompanyID", id)
	w.open(n+1, "cac:TaxScheme")
	w.el(n+2, "cbc:ID", scheme)
	w.close(n+1, "cac:TaxScheme")
	w.close(n, "cac:PartyTaxScheme")
}

// taxCategory writes a TaxCategory (breakdown) or ClassifiedTaxCategory
// (line). Category O carries no rate (BR-O-05, BR-O-10 family); AE and O
// carry their exemption reason in the breakdown (BR-AE-10, BR-O-10).
func (w *xw) taxCategory(n int, name string, inv *Invoice, breakdown bool) {
	w.open(n, name)
	w.el(n+1, "cbc:ID", inv.TaxCategory)
	if inv.TaxCategory != TaxNotSubject {
		w.el(n+1, "cbc:Percent", inv.TaxRate.StringFixed(0))
	}
	if breakdown {
		switch inv.TaxCategory {
		case TaxReverseCharge:
			w.el(n+1, "cbc:TaxExemptionReasonCode", "VATEX-EU-AE")
			w.el(n+1, "cbc:TaxExemptionReason", ReverseChargeNote)
		case TaxNotSubject:
			w.el(n+1, "cbc:TaxExemptionReasonCode", "VATEX-EU-O")
			w.el(n+1, "cbc:TaxExemptionReason", "Not subject to VAT / Nicht im Inland steuerbar")
		}
	}
	w.open(n+1, "cac:TaxScheme")
	w.el(n+2, "cbc:ID", "VAT")
	w.close(n+1, "cac:TaxScheme")
	w.close(n, name)
}
