package billing

import (
	"context"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"

	"cardata/policies/audit"
	"cardata/policies/errs"
)

// Seller is our own identity as it appears on every invoice.
type Seller struct {
	ID               int16     `gorm:"primaryKey" json:"-"`
	Name             string    `json:"name"`
	Street           string    `json:"street"`
	PostalCode       string    `json:"postalCode"`
	City             string    `json:"city"`
	Country          string    `json:"country"`
	VATID            string    `gorm:"column:vat_id" json:"vatId"`
	TaxNumber        string    `json:"taxNumber"`
	RegisterID       string    `json:"registerId"`
	IBAN             string    `gorm:"column:iban" json:"iban"`
	BIC              string    `gorm:"column:bic" json:"bic"`
	BankName         string    `json:"bankName"`
	Email            string    `json:"email"`
	Phone            string    `json:"phone"`
	PaymentTermsDays int       `json:"paymentTermsDays"`
	UpdatedAt        time.Time `json:"-"`
}

func (Seller) TableName() string { return "billing_seller" }

// Seller returns the seller identity.
func (s *Service) Seller(ctx context.Context) (*Seller, error) {
	return loadSeller(s.DB.WithContext(ctx))
}

func loadSeller(tx *gorm.DB) (*Seller, error) {
	var out Seller
	if err := tx.First(&out, 1).Error; err != nil {
		return nil, errs.Wrap(err, "load seller")
	}
	return &out, nil
}

var (
	deVATRE = regexp.MustCompile(`^DE[0-9]{9}$`)
	ibanRE  = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
	bicRE   = regexp.MustCompile(`^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$`)
)

// ValidIBAN checks an IBAN's format and its ISO 7064 mod 97 check digits.
func ValidIBAN(s string) bool {
	if !ibanRE.MatchString(s) {
		return false
	}
	r := s[4:] + s[:4]
	rem := 0
	for _, c := range r {
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
			rem = (rem*10 + v) % 97
		default:
			v = int(c-'A') + 10
			rem = (rem*100 + v) % 97
		}
	}
	return rem == 1
}

func compact(s string) string {
	return strings.ToUpper(strings.NewReplacer(" ", "", "-", "", ".", "").Replace(strings.TrimSpace(s)))
}

// validate checks the seller data; complete=true is the finalization check.
func (sel *Seller) validate() error {
	v := &errs.Validation{}
	req := func(field, val, label string) {
		if strings.TrimSpace(val) == "" {
			v.Add(field, "required", "%s is required", errs.Term(label))
		}
	}
	req("name", sel.Name, "the company name")
	req("street", sel.Street, "the street")
	req("postal_code", sel.PostalCode, "the postal code")
	req("city", sel.City, "the city")
	req("tax_number", sel.TaxNumber, "the tax number (Steuernummer)")
	req("register_id", sel.RegisterID, "the commercial register entry")
	req("bank_name", sel.BankName, "the bank")
	if sel.Country != "DE" {
		v.Add("country", "country_invalid", "the seller is seated in Germany (DE)")
	}
	if !deVATRE.MatchString(sel.VATID) {
		v.Add("vat_id", "vat_id_invalid", "a German VAT ID looks like DE123456789")
	}
	if !ValidIBAN(sel.IBAN) {
		v.Add("iban", "iban_invalid", "the IBAN is not valid (check digits)")
	}
	if sel.BIC != "" && !bicRE.MatchString(sel.BIC) {
		v.Add("bic", "bic_invalid", "a BIC has 8 or 11 characters")
	}
	if a, err := mail.ParseAddress(sel.Email); err != nil || a.Address != sel.Email {
		v.Add("email", "email_invalid", "give the billing contact's e-mail address")
	}
	if sel.PaymentTermsDays < 0 || sel.PaymentTermsDays > 120 {
		v.Add("payment_terms_days", "terms_invalid", "payment terms are 0 to 120 days")
	}
	return v.Err()
}

// UpdateSeller replaces the seller identity (finance). Finalized invoices
// keep the identity they were issued with (a snapshot).
func (s *Service) UpdateSeller(ctx context.Context, in Seller) (*Seller, error) {
	in.ID = 1
	in.Name, in.Street, in.PostalCode, in.City = strings.TrimSpace(in.Name), strings.TrimSpace(in.Street), strings.TrimSpace(in.PostalCode), strings.TrimSpace(in.City)
	in.Country = strings.ToUpper(strings.TrimSpace(in.Country))
	in.VATID, in.IBAN, in.BIC = compact(in.VATID), compact(in.IBAN), compact(in.BIC)
	in.TaxNumber, in.RegisterID, in.BankName = strings.TrimSpace(in.TaxNumber), strings.TrimSpace(in.RegisterID), strings.TrimSpace(in.BankName)
	in.Email, in.Phone = strings.TrimSpace(in.Email), strings.TrimSpace(in.Phone)
	if err := in.validate(); err != nil {
		return nil, err
	}
	in.UpdatedAt = s.now()
	err := s.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Save(&in).Error; err != nil {
			return errs.Wrap(err, "save seller")
		}
		return audit.Recordf(ctx, tx, "billing.seller_update", "billing_seller", "1",
			"seller identity: %s, %s, VAT ID %s", in.Name, in.City, in.VATID)
	})
	if err != nil {
		return nil, err
	}
	return &in, nil
}
