package billing

import (
	"context"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"cardata/policies/errs"
)

// Party is the buyer of an invoice: a provider as onboarding knows it.
type Party struct {
	ProviderID int64
	LegalName  string
	Street     string
	PostalCode string
	City       string
	Country    string // ISO 3166-1 alpha-2
	VATID      string // with country prefix, e.g. ATU12345675
	Email      string // billing e-mail address
}

// ProviderDirectory tells billing who a provider is. app wires it to
// onboarding's providers; billing never reads that table itself.
type ProviderDirectory interface {
	// BillingParty returns the provider's invoicing data (errs.NotFound when unknown).
	BillingParty(ctx context.Context, providerID int64) (Party, error)
	// ActiveProviderIDs lists the providers that may currently use the API.
	ActiveProviderIDs(ctx context.Context) ([]int64, error)
}

// PartyLister is a ProviderDirectory that also returns many parties in one
// lookup (the invoice run's batches use it when available).
type PartyLister interface {
	BillingParties(ctx context.Context, providerIDs []int64) (map[int64]Party, error)
}

// VAT categories (EN 16931 code list UNCL5305) used by cardata.
const (
	TaxStandard      = "S"  // buyer in Germany: 19 %
	TaxReverseCharge = "AE" // buyer in another EU state with a VAT ID: 0 %, the buyer owes the VAT
	TaxNotSubject    = "O"  // buyer in NO, IS, LI: services not subject to German VAT
)

// GermanVATRate is the standard rate.
var GermanVATRate = decimal.NewFromInt(19)

// TaxCase is how an invoice to a buyer is taxed.
type TaxCase struct {
	Category string
	Rate     decimal.Decimal // percent
	// Note is printed on the invoice (and is the exemption reason in the e-invoice).
	Note string
	// ReasonCode is the VATEX exemption reason code for AE and O.
	ReasonCode string
	// BuyerVATOnDocument: the buyer's VAT ID appears on the invoice.
	BuyerVATOnDocument bool
	// SellerVATOnDocument: EN 16931 forbids the seller's VAT ID for category O
	// (BR-O-02); the tax number identifies the seller instead.
	SellerVATOnDocument bool
}

var eu27 = []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
	"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}

var eeaNonEU = []string{"IS", "LI", "NO"}

// ReverseChargeNote is the legal note of intra-EU B2B services (§ 13b UStG, Art. 196 VAT Directive).
const ReverseChargeNote = "Reverse charge / Steuerschuldnerschaft des Leistungsempfängers"

// NotSubjectNote explains category O.
const NotSubjectNote = "Not subject to German VAT: place of supply outside the EU (§ 3a Abs. 2 UStG) / Nicht im Inland steuerbare Leistung"

// TaxFor decides the VAT treatment of a buyer. Sellers are German.
func TaxFor(p Party) (TaxCase, error) {
	country := strings.ToUpper(strings.TrimSpace(p.Country))
	switch {
	case country == "DE":
		return TaxCase{Category: TaxStandard, Rate: GermanVATRate, BuyerVATOnDocument: p.VATID != "", SellerVATOnDocument: true}, nil
	case slices.Contains(eu27, country):
		if strings.TrimSpace(p.VATID) == "" {
			return TaxCase{}, errs.New(errs.Conflict, "buyer_vat_id_missing",
				"the provider is seated in %s but has no VAT ID: reverse charge needs it; complete the provider's data first", country)
		}
		return TaxCase{Category: TaxReverseCharge, Rate: decimal.Zero, Note: ReverseChargeNote, ReasonCode: "VATEX-EU-AE",
			BuyerVATOnDocument: true, SellerVATOnDocument: true}, nil
	case slices.Contains(eeaNonEU, country):
		return TaxCase{Category: TaxNotSubject, Rate: decimal.Zero, Note: NotSubjectNote, ReasonCode: "VATEX-EU-O"}, nil
	case country == "":
		return TaxCase{}, errs.New(errs.Conflict, "buyer_country_missing", "the provider has no country of seat")
	}
	return TaxCase{}, errs.New(errs.Conflict, "buyer_country_unsupported",
		"providers must be seated in the EEA; %s is not supported for invoicing", country)
}

// TaxAmount is the VAT of a category's net sum, rounded half-up once (BR-CO-17).
func TaxAmount(net, rate decimal.Decimal) decimal.Decimal {
	return RoundCents(net.Mul(rate).Div(hundred))
}

// checkParty lists what finalization needs from the buyer.
func checkParty(p Party) error {
	v := &errs.Validation{}
	if strings.TrimSpace(p.LegalName) == "" {
		v.Add("buyer_name", "buyer_incomplete", "the provider has no legal name")
	}
	if strings.TrimSpace(p.Street) == "" || strings.TrimSpace(p.City) == "" || strings.TrimSpace(p.PostalCode) == "" {
		v.Add("buyer_address", "buyer_incomplete", "the provider's address is incomplete")
	}
	if strings.TrimSpace(p.Email) == "" {
		v.Add("buyer_email", "buyer_incomplete", "the provider has no billing e-mail address")
	}
	if _, err := TaxFor(p); err != nil {
		e := errs.As(err)
		v.Add("buyer_tax", e.Code, e.Format, e.Args...)
	}
	if len(v.Fields) > 0 {
		e := errs.New(errs.Conflict, "buyer_incomplete", "the provider's invoicing data is incomplete: %s", said(v.Fields))
		e.Fields = v.Fields
		return e
	}
	return nil
}
