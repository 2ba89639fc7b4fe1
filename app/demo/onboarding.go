package demo

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"cardata/onboarding"
	"cardata/onboarding/vat"
	"cardata/policies"
	"cardata/policies/errs"
)

// Demo provider logins and credentials (MISSION's insurer story).
const (
	InsurerAdmin        = "admin@demo-insurer.example"
	InsurerDeveloper    = "dev@demo-insurer.example"
	InsurerClientID     = "demo-insurer"
	InsurerClientSecret = "demo-insurer-secret"
)

// demoProvider describes one demo company and where the demo leaves it.
type demoProvider struct {
	name, form, country, city, street, postal, vatID, register string
	services                                                   string
	// steps are review actions with their notes, applied in order.
	steps []demoReviewStep
	// markets are requested; approved ones are decided by a partner manager.
	approve, reject, pending []string
	waitHours                int // how long the application has been waiting (queue order)
	admin, password, contact string
}

type demoReviewStep struct {
	action onboarding.Action
	note   string
}

func obClaim() demoReviewStep   { return demoReviewStep{action: onboarding.ActionClaim} }
func obApprove() demoReviewStep { return demoReviewStep{action: onboarding.ActionApprove} }
func obAsk(q string) demoReviewStep {
	return demoReviewStep{action: onboarding.ActionRequestInfo, note: q}
}
func obAnswer(a string) demoReviewStep {
	return demoReviewStep{action: onboarding.ActionAnswer, note: a}
}
func obReject(r string) demoReviewStep {
	return demoReviewStep{action: onboarding.ActionReject, note: r}
}
func obSuspend(r string) demoReviewStep {
	return demoReviewStep{action: onboarding.ActionSuspend, note: r}
}
func obTerminate(r string) demoReviewStep {
	return demoReviewStep{action: onboarding.ActionTerminate, note: r}
}
func obActive(extra ...demoReviewStep) []demoReviewStep {
	return append([]demoReviewStep{obClaim(), obApprove()}, extra...)
}

const demoServicesInsurance = "Usage-based motor insurance (pay as you drive) from mileage and average distance driven, with the customer's consent."
const demoServicesWorkshop = "Service reminders and appointment booking for our workshop customers based on mileage and service-due events."
const demoServicesFleet = "Fleet management for company cars: mileage for tax records, service planning and position for vehicle recovery."
const demoServicesAssistance = "Roadside assistance: position and vehicle status on an automatic service call, with the customer's consent."

var demoProviders = []demoProvider{
	{name: "Demo Insurance AG", form: "AG", country: "DE", city: "München", street: "Leopoldstraße 1", postal: "80802",
		vatID: "DE291473006", register: "HRB 250001 (AG München)", services: demoServicesInsurance, steps: obActive(),
		approve: []string{"DE", "AT", "FR", "IT", "NO", "CH"}, admin: InsurerAdmin, password: Password, contact: "Dora Demo", waitHours: 400},
	{name: "Alpen Versicherung AG", form: "AG", country: "AT", city: "Innsbruck", street: "Maria-Theresien-Straße 10", postal: "6020",
		vatID: "ATU57318405", register: "FN 412345 d (LG Innsbruck)", services: demoServicesInsurance, waitHours: 30,
		admin: "admin@alpen-versicherung.example", password: Password, contact: "Alois Alpen"},
	{name: "Nordlys Forsikring AS", form: "AS", country: "NO", city: "Oslo", street: "Karl Johans gate 5", postal: "0154",
		vatID: "NO917345821", register: "917 345 821 (Brønnøysund)", services: demoServicesInsurance, steps: obActive(),
		approve: []string{"NO", "SE", "DK"}, waitHours: 900},
	{name: "Helsinki Fleet Oy", form: "Oy", country: "FI", city: "Helsinki", street: "Mannerheimintie 12", postal: "00100",
		vatID: "FI28745311", register: "2874531-1", services: demoServicesFleet, steps: obActive(), pending: []string{"FI", "EE"}, waitHours: 700},
	{name: "Garage Dupont SAS", form: "SAS", country: "FR", city: "Lyon", street: "12 rue de la République", postal: "69002",
		vatID: "FR05812736452", register: "RCS Lyon 812 736 452", services: demoServicesWorkshop, steps: obActive(),
		approve: []string{"FR", "BE", "LU"}, waitHours: 650},
	{name: "Autoservizi Rossi S.p.A.", form: "S.p.A.", country: "IT", city: "Milano", street: "Via Torino 21", postal: "20123",
		vatID: "IT04821760156", register: "REA MI-1987654", services: demoServicesWorkshop, steps: []demoReviewStep{obClaim()}, waitHours: 50},
	{name: "Taller Martínez S.L.", form: "S.L.", country: "ES", city: "Madrid", street: "Calle de Alcalá 44", postal: "28014",
		vatID: "ESB86421732", register: "Registro Mercantil de Madrid, tomo 31234", services: demoServicesWorkshop,
		steps: []demoReviewStep{obClaim(), obAsk("Your register extract is older than three months. Please upload a current one.")}, waitHours: 120},
	{name: "Oficina Lisboa Lda", form: "Lda", country: "PT", city: "Lisboa", street: "Avenida da Liberdade 100", postal: "1250-146",
		vatID: "PT516273841", register: "CRC Lisboa 516273841", services: demoServicesWorkshop, waitHours: 8},
	{name: "Polska Flota Sp. z o.o.", form: "Sp. z o.o.", country: "PL", city: "Warszawa", street: "ul. Marszałkowska 84", postal: "00-514",
		vatID: "PL5273168416", register: "KRS 0000712345", services: demoServicesFleet, steps: obActive(),
		approve: []string{"PL", "CZ", "SK"}, reject: []string{"GB"}, waitHours: 820},
	{name: "Praha Telematika s.r.o.", form: "s.r.o.", country: "CZ", city: "Praha", street: "Václavské náměstí 1", postal: "110 00",
		vatID: "CZ27845192", register: "C 123456 (Městský soud v Praze)", services: demoServicesFleet, waitHours: 70},
	{name: "Budapest Assistance Kft.", form: "Kft.", country: "HU", city: "Budapest", street: "Andrássy út 20", postal: "1061",
		vatID: "HU26173481", register: "Cg. 01-09-123456", services: "Resale of raw vehicle positions to advertisers.",
		steps: []demoReviewStep{obClaim(), obReject("The intended service (resale of raw positions to advertisers) is not a purpose customers can consent to under the partner terms.")}, waitHours: 300},
	{name: "Zürcher Mobility Anstalt", form: "Anstalt", country: "LI", city: "Vaduz", street: "Städtle 7", postal: "9490",
		vatID: "FL-0002.654.310-0", register: "FL-0002.654.310-0", services: demoServicesFleet,
		steps: []demoReviewStep{obClaim(), obReject("The register extract shows the effective seat and management in Zürich (CH); only companies seated in the EEA may register.")}, waitHours: 260},
	{name: "Dublin Motor Insurance DAC", form: "DAC", country: "IE", city: "Dublin", street: "10 Harcourt Street", postal: "D02 X123",
		vatID: "IE3847261F", register: "CRO 612345", services: demoServicesInsurance, steps: obActive(), approve: []string{"IE", "GB"}, waitHours: 760},
	{name: "Amsterdam Lease B.V.", form: "B.V.", country: "NL", city: "Amsterdam", street: "Herengracht 100", postal: "1015 BS",
		vatID: "NL852736411B01", register: "KvK 85273641", services: demoServicesFleet,
		steps: obActive(obSuspend("Three invoices unpaid for more than 60 days.")), approve: []string{"NL", "BE"}, waitHours: 880},
	{name: "Brussels Roadside SA", form: "SA/NV", country: "BE", city: "Bruxelles", street: "Rue de la Loi 16", postal: "1000",
		vatID: "BE0741638541", register: "BCE 0741.638.541", services: demoServicesAssistance, steps: obActive(), approve: []string{"BE", "NL", "LU"}, waitHours: 600},
	{name: "Luxembourg Fleet S.à r.l.", form: "S.à r.l.", country: "LU", city: "Luxembourg", street: "2 Boulevard Royal", postal: "2449",
		vatID: "LU27481572", register: "RCS B123456", services: demoServicesFleet,
		steps: obActive(obTerminate("The provider ended the contract.")), approve: []string{"LU"}, waitHours: 990},
	{name: "Stockholm Bilservice AB", form: "AB", country: "SE", city: "Stockholm", street: "Drottninggatan 50", postal: "111 21",
		vatID: "SE556718300801", register: "556718-3008", services: demoServicesWorkshop, steps: obActive(),
		approve: []string{"SE", "NO", "DK", "FI"}, waitHours: 720},
	{name: "København Auto ApS", form: "ApS", country: "DK", city: "København", street: "Strøget 1", postal: "1160",
		vatID: "DK38172646", register: "CVR 38172646", services: demoServicesWorkshop, steps: []demoReviewStep{obClaim()}, waitHours: 26},
	{name: "Tallinn Connect OÜ", form: "OÜ", country: "EE", city: "Tallinn", street: "Narva mnt 5", postal: "10117",
		vatID: "EE102837469", register: "16283746", services: demoServicesFleet, waitHours: 4},
	{name: "Riga Logistics SIA", form: "SIA", country: "LV", city: "Rīga", street: "Brīvības iela 30", postal: "LV-1011",
		vatID: "LV40103728151", register: "40103728151", services: demoServicesFleet,
		steps: []demoReviewStep{obClaim(), obAsk("Which of your services needs vehicle positions, and how long do you keep them?")}, waitHours: 90},
	{name: "Vilnius Parts UAB", form: "UAB", country: "LT", city: "Vilnius", street: "Gedimino pr. 9", postal: "01103",
		vatID: "LT304817117", register: "304817117", services: demoServicesWorkshop, waitHours: 15},
	{name: "Bucharest Service SRL", form: "SRL", country: "RO", city: "București", street: "Calea Victoriei 25", postal: "010063",
		vatID: "RO31746281", register: "J40/1234/2013", services: demoServicesWorkshop, steps: obActive(), approve: []string{"RO", "BG"}, waitHours: 500},
	{name: "Sofia Motors EOOD", form: "EOOD", country: "BG", city: "Sofia", street: "bul. Vitosha 15", postal: "1000",
		vatID: "BG204738166", register: "UIC 204738166", services: demoServicesWorkshop, waitHours: 40},
	{name: "Athens Road Assist IKE", form: "IKE", country: "GR", city: "Athina", street: "Ermou 30", postal: "105 63",
		vatID: "EL801726345", register: "GEMI 123456701000", services: demoServicesAssistance, steps: []demoReviewStep{obClaim()}, waitHours: 60},
	{name: "Zagreb Auto d.o.o.", form: "d.o.o.", country: "HR", city: "Zagreb", street: "Ilica 10", postal: "10000",
		vatID: "HR73528194633", register: "MBS 080123456", services: demoServicesWorkshop,
		steps: []demoReviewStep{obClaim(), obAsk("Please send the register extract; the upload is unreadable."), obAnswer("We have no newer extract."),
			obReject("No readable commercial register extract was provided.")}, waitHours: 240},
	{name: "Ljubljana Mobil d.o.o.", form: "d.o.o.", country: "SI", city: "Ljubljana", street: "Slovenska cesta 20", postal: "1000",
		vatID: "SI71845364", register: "8123456000", services: demoServicesAssistance, steps: obActive(), approve: []string{"SI", "HR", "AT"}, waitHours: 450},
	{name: "Bratislava Fleet s.r.o.", form: "s.r.o.", country: "SK", city: "Bratislava", street: "Obchodná 5", postal: "811 06",
		vatID: "SK2027318469", register: "Sro 123456/B", services: demoServicesFleet, waitHours: 100},
	{name: "Malta Car Care Ltd", form: "Ltd", country: "MT", city: "Valletta", street: "Republic Street 50", postal: "VLT 1117",
		vatID: "MT27184603", register: "C 81234", services: demoServicesWorkshop, steps: obActive(), approve: []string{"MT"}, waitHours: 550},
	{name: "Limassol Telematics Ltd", form: "Ltd", country: "CY", city: "Limassol", street: "Makariou III 100", postal: "3021",
		vatID: "CY10748162G", register: "HE 412345", services: demoServicesFleet, waitHours: 12},
	{name: "Reykjavík Bílar ehf", form: "ehf", country: "IS", city: "Reykjavík", street: "Laugavegur 20", postal: "101",
		vatID: "5205122090", register: "520512-2090", services: demoServicesWorkshop, steps: obActive(), pending: []string{"NO"}, waitHours: 350},
	{name: "Vaduzer Versicherung AG", form: "AG", country: "LI", city: "Vaduz", street: "Äulestrasse 30", postal: "9490",
		vatID: "FL-0002.655.120-3", register: "FL-0002.655.120-3", services: demoServicesInsurance, steps: obActive(),
		approve: []string{"LI", "CH", "AT"}, waitHours: 680},
	{name: "Demo Insurance Services SE", form: "SE", country: "DE", city: "Berlin", street: "Friedrichstraße 100", postal: "10117",
		vatID: "DE291473102", register: "HRB 250777 (AG Charlottenburg)", services: demoServicesInsurance, waitHours: 2},
}

// demoRefusedRegistrations are registrations the checks must refuse; the demo shows why.
var demoRefusedRegistrations = []struct{ name, country, vatID string }{
	{"Zürich Connected Car AG", "CH", "CHE-123.456.788"},
	{"London Telematics Ltd", "GB", "GB980780684"},
	{"Typo Versicherung GmbH", "DE", "DE291473007"},
	{"Demo Insurance AG (again)", "DE", "DE291473006"},
}

// demoRegisterExtract is a minimal PDF standing in for a register extract.
var demoRegisterExtract = []byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")

func demoProviderRegistration(p demoProvider, terms string) onboarding.Registration {
	slug := strings.ToLower(strings.Fields(p.name)[0])
	slug = strings.NewReplacer("ø", "o", "ü", "u", "å", "a", "í", "i").Replace(slug)
	admin := p.admin
	if admin == "" {
		admin = "admin@" + slug + ".example"
	}
	contact := p.contact
	if contact == "" {
		contact = "Partner desk " + p.name
	}
	password := p.password
	if password == "" {
		password = Password
	}
	return onboarding.Registration{LegalName: p.name, LegalForm: p.form, Street: p.street, PostalCode: p.postal, City: p.city,
		Country: p.country, VATID: p.vatID, RegisterNumber: p.register, ContactName: contact,
		ContactEmail: admin, BillingEmail: "invoices@" + slug + ".example", IntendedServices: p.services,
		TermsVersion: terms, AcceptTerms: true, AdminPassword: password, ClientAddr: "demo",
		Documents: []onboarding.Upload{{Filename: "register-extract-" + slug + ".pdf", Data: demoRegisterExtract}}}
}

// demoOnboarding registers the demo providers and walks each through the
// real review workflow to its demo status. Existing providers (by VAT ID)
// are left alone, so running it again changes nothing.
func (a loader) demoOnboarding(ctx context.Context, out io.Writer) error {
	svc := a.Onboarding
	terms, err := svc.FindCurrentTerms(ctx)
	if err != nil {
		return err
	}
	manager, err := a.Staff.FindByEmail(ctx, "manager@demo.local")
	if err != nil {
		return fmt.Errorf("the demo partner manager is missing: %w", err)
	}
	staffCtx := policies.WithPrincipal(ctx, manager.Principal(0))
	created := 0
	for _, dp := range demoProviders {
		reg := demoProviderRegistration(dp, terms.Version)
		vatID, err := vat.Check(dp.country, dp.vatID)
		if err != nil {
			return fmt.Errorf("demo %s: VAT ID %s: %w", dp.name, dp.vatID, err)
		}
		var existing int64
		if err := a.DB.WithContext(ctx).Table("providers").Where("vat_id = ?", vatID).Count(&existing).Error; err != nil {
			return err
		}
		if existing > 0 {
			continue
		}
		r, err := svc.Register(ctx, reg)
		if err != nil {
			return fmt.Errorf("%s: %w", dp.name, err)
		}
		id := r.Provider.ID
		providerCtx := policies.WithPrincipal(ctx, r.Admin.Principal(0))
		for _, st := range dp.steps {
			if st.action == onboarding.ActionAnswer {
				_, err = svc.AnswerQuestion(providerCtx, id, st.note)
			} else {
				_, err = svc.Review(staffCtx, id, st.action, st.note)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", dp.name, st.action, err)
			}
			if st.action != onboarding.ActionApprove {
				continue
			}
			// Right after approval: markets and API clients, before any later suspension.
			if err := demoProviderMarkets(providerCtx, staffCtx, svc, id, dp); err != nil {
				return fmt.Errorf("%s markets: %w", dp.name, err)
			}
			if dp.name == "Demo Insurance AG" {
				if _, err := svc.CreateAPIClientWithSecret(providerCtx, id, "Demo insurer backend", InsurerClientID, InsurerClientSecret); err != nil {
					return fmt.Errorf("demo insurer client: %w", err)
				}
				// The story's developer: invited by the admin, password set through the link.
				inv, err := svc.InviteProviderUser(providerCtx, id, onboarding.Invite{Email: InsurerDeveloper, Name: "Dev Demo", Role: onboarding.RoleProviderDeveloper})
				if err != nil {
					return fmt.Errorf("demo insurer developer: %w", err)
				}
				if _, err := svc.AcceptInvitation(ctx, inv.Link[strings.LastIndex(inv.Link, "/")+1:], Password); err != nil {
					return fmt.Errorf("demo insurer developer: %w", err)
				}
			}
		}
		// Spread the submission times so the review queue has an order to show.
		at := time.Now().UTC().Add(-time.Duration(dp.waitHours) * time.Hour)
		if err := a.DB.WithContext(ctx).Exec(`UPDATE providers SET submitted_at = ?, waiting_since = CASE WHEN status IN ('submitted','in_review') THEN ? ELSE waiting_since END WHERE id = ?`,
			at, at, id).Error; err != nil {
			return err
		}
		created++
		fmt.Fprintf(out, "demo: provider %s (%s, %s) %s\n", dp.name, dp.country, r.Provider.VATID, demoProviderStatus(dp))
	}
	if created > 0 {
		fmt.Fprintf(out, "demo: provider portal logins %s and %s (developer) / %s, API client %s / %s\n", InsurerAdmin, InsurerDeveloper, Password, InsurerClientID, InsurerClientSecret)
		for _, bad := range demoRefusedRegistrations {
			reg := demoProviderRegistration(demoProvider{name: bad.name, form: "AG", country: bad.country, city: "-", street: "-", postal: "-",
				vatID: bad.vatID, register: "-", services: demoServicesInsurance, admin: "refused-" + strings.ToLower(bad.country) + "@demo.example"}, terms.Version)
			_, err := svc.Register(ctx, reg)
			if err == nil {
				return fmt.Errorf("demo: %s should have been refused", bad.name)
			}
			fmt.Fprintf(out, "demo: refused %s: %s\n", bad.name, strings.Join(demoFieldMessages(err), "; "))
		}
	}
	return nil
}

func demoProviderStatus(dp demoProvider) string {
	if len(dp.steps) == 0 {
		return "submitted"
	}
	t, _ := onboarding.TransitionFor(dp.steps[len(dp.steps)-1].action)
	return string(t.To)
}

func demoProviderMarkets(providerCtx, staffCtx context.Context, svc *onboarding.Service, id int64, dp demoProvider) error {
	all := append(append(append([]string{}, dp.approve...), dp.reject...), dp.pending...)
	if len(all) == 0 {
		return nil
	}
	if _, err := svc.RequestMarkets(providerCtx, id, all); err != nil {
		return err
	}
	for _, m := range dp.approve {
		if err := svc.DecideMarketAccess(staffCtx, id, m, true, ""); err != nil {
			return err
		}
	}
	for _, m := range dp.reject {
		if err := svc.DecideMarketAccess(staffCtx, id, m, false, "No service presence in this market yet."); err != nil {
			return err
		}
	}
	return nil
}

func demoFieldMessages(err error) []string {
	var out []string
	for _, f := range errs.As(err).Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	if len(out) == 0 {
		out = append(out, err.Error())
	}
	return out
}
