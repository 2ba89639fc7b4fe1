package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"cardata/admin/support"
	"cardata/billing"
	"cardata/billing/billingtest"
	"cardata/onboarding"
	"cardata/policies"
	"cardata/policies/consent"
)

// outboxMail is the newest e-mail of kind to to.
func outboxMail(t *testing.T, w *consentWorld, kind, to string) (subject, body string) {
	t.Helper()
	var m struct{ Subject, BodyText string }
	w.tt.DB.Raw("SELECT subject, body_text FROM email_outbox WHERE kind = ? AND lower(to_addr) = lower(?) ORDER BY id DESC LIMIT 1", kind, to).Scan(&m)
	if m.Subject == "" {
		t.Fatalf("no %s e-mail to %s", kind, to)
	}
	return m.Subject, m.BodyText
}

func mailHas(t *testing.T, kind, subject, body, wantSubject string, inBody ...string) {
	t.Helper()
	if subject != wantSubject {
		t.Errorf("%s subject %q, want %q", kind, subject, wantSubject)
	}
	for _, s := range inBody {
		if !strings.Contains(body, s) {
			t.Errorf("%s body lacks %q:\n%s", kind, s, body)
		}
	}
}

// E-mails are written in the recipient's language: the one the person chose
// (provider users, customers, staff), for a provider's contact and billing
// address the language its portal users chose, else English. One world, the
// main kinds: provider decisions, invitations, market decisions, container
// approvals, consent requests, support tickets and invoices.
func TestEmailsSpeakTheRecipientsLanguage(t *testing.T) {
	t.Parallel()
	w := newConsentWorld(t)
	tt, ob := w.tt, onboardingFor(w.tt)
	contact := w.provider.Provider.ContactEmail

	// Nobody chose a language yet: English.
	s, b := outboxMail(t, w, "provider.approve", contact)
	mailHas(t, "approve (en)", s, b, "Your CarData application is approved", "Dear Admin Alpen Versicherung AG,", "is now a registered CarData provider")
	s, b = outboxMail(t, w, "market_access.approved", contact)
	mailHas(t, "market (en)", s, b, "CarData market AT: approved", "the market Austria (AT) was approved")

	// The provider's administrator switches to German: the provider's mail
	// follows.
	if err := ob.SetUserLang(tt.Ctx, w.provider.Admin.ID, "de"); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Review(tt.Ctx, w.pid, onboarding.ActionSuspend, "Offene Rechnung"); err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "provider.suspend", contact)
	mailHas(t, "suspend (de)", s, b, "Ihr CarData-Zugang ist gesperrt", "Guten Tag Admin Alpen Versicherung AG,", "Begründung: Offene Rechnung")
	if _, err := ob.Review(tt.Ctx, w.pid, onboarding.ActionReactivate, ""); err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "provider.reactivate", contact)
	mailHas(t, "reactivate (de)", s, b, "Ihr CarData-Zugang ist wieder aktiv", "ist wieder aktiv")
	if _, err := ob.RequestMarkets(tt.Ctx, w.pid, []string{"FR"}); err != nil {
		t.Fatal(err)
	}
	if err := ob.DecideMarketAccess(tt.Ctx, w.pid, "FR", false, "Noch nicht"); err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "market_access.rejected", contact)
	mailHas(t, "market (de)", s, b, "CarData-Markt FR: abgelehnt", "Markt Frankreich (FR) wurde nicht genehmigt", "Begründung: Noch nicht")

	// An invitation goes out in the inviter's language (the invitee has
	// none yet); once the invitee chose English, theirs.
	admin := obProviderCtx(w.provider.Admin)
	admin = policies.WithPrincipal(context.Background(), func() *policies.Principal {
		p := *policies.PrincipalFrom(admin)
		p.Lang = "de"
		return &p
	}())
	inv, err := ob.InviteProviderUser(admin, w.pid, onboarding.Invite{Email: "dev@alpen.test", Name: "Dora Dev", Role: onboarding.RoleProviderDeveloper})
	if err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "provider_user.invited", "dev@alpen.test")
	mailHas(t, "invitation (de)", s, b, "Ihre Einladung ins CarData-Partnerportal", "Guten Tag Dora Dev,", "Alpen Versicherung AG eingeladen", "gültig 7 Tage")
	if err := ob.SetUserLang(tt.Ctx, inv.User.ID, "en"); err != nil {
		t.Fatal(err)
	}

	// A container approval, to the contact (German).
	v := w.approvedContainer(t, "Kilometerstand", csMileage)
	s, b = outboxMail(t, w, "container.approved", contact)
	mailHas(t, "container (de)", s, b, "Datencontainer „Kilometerstand“ genehmigt", "(Version 1) ist genehmigt", "/portal/containers/")

	// Consent requests in each customer's own language.
	anna, ben := w.customer(t, "anna@kunden.test"), w.customer(t, "ben@kunden.test")
	tt.DB.Exec("UPDATE customer_accounts SET lang = 'de' WHERE id = ?", anna)
	for _, acc := range []int64{anna, ben} {
		vin := w.vehicle(t, "BMW", "DE", true, acc)
		if _, err := tt.App.Consents.Request(w.pctx, w.pid, consent.NewRequest{VIN: vin, ContainerID: v.ContainerID}); err != nil {
			t.Fatal(err)
		}
	}
	s, b = outboxMail(t, w, "consent.requested", "anna@kunden.test")
	mailHas(t, "consent (de)", s, b, "Alpen Versicherung AG bittet um Ihre Einwilligung", "Guten Tag anna,", "„Kilometerstand“", "verfällt sie am ")
	s, b = outboxMail(t, w, "consent.requested", "ben@kunden.test")
	mailHas(t, "consent (en)", s, b, "Alpen Versicherung AG asks for your consent", "Dear ben,", "for its service \"Kilometerstand\"", "lapses unanswered on ")

	// A support ticket: the confirmation to the contact (German), then one
	// for the developer, who chose English.
	tk, err := tt.App.Support.OpenTicket(admin, support.NewTicket{Subject: "Alte Daten", Description: "Seit drei Tagen.",
		Category: support.CategoryAPIData, Priority: support.P2})
	if err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "support.ticket_opened", tk.ContactEmail)
	mailHas(t, "ticket (de)", s, b, "["+tk.Number()+"] Wir haben Ihr Ticket erhalten: Alte Daten", "Ihr CarData-Partnersupport")
	tk, err = tt.App.Support.OpenTicket(obProviderCtx(inv.User), support.NewTicket{Subject: "Stale data", Description: "Three days.",
		Category: support.CategoryAPIData, Priority: support.P3})
	if err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "support.ticket_opened", "dev@alpen.test")
	mailHas(t, "ticket (en)", s, b, "["+tk.Number()+"] We received your ticket: Stale data", "Hello Dora Dev,", "CarData partner support")

	// An invoice: German amounts and dates for the German-speaking provider.
	bs := tt.App.Billing
	if _, err := bs.UpdateSeller(tt.Ctx, billingtest.Seller()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := bs.EnsureInitialPriceList(tt.Ctx, billing.DefaultPrices(billingtest.PriceListStart)); err != nil {
		t.Fatal(err)
	}
	billingtest.MustDeliveries(t, tt.DB, w.pid, billing.KindPull, time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC), time.Minute, 50, "ml")
	if _, err := bs.RunPeriod(tt.Ctx, "2026-10", billing.RunOptions{Trigger: billing.TriggerTest}); err != nil {
		t.Fatal(err)
	}
	list, _, err := bs.ListInvoices(tt.Ctx, billing.InvoiceFilter{ProviderID: w.pid, Period: "2026-10", DocType: billing.DocInvoice})
	if err != nil || len(list) != 1 {
		t.Fatalf("invoice: %v %d", err, len(list))
	}
	if _, err := bs.Finalize(tt.Ctx, list[0].ID); err != nil {
		t.Fatal(err)
	}
	sent, err := bs.Send(tt.Ctx, list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	s, b = outboxMail(t, w, "invoice.sent", sent.BuyerEmail)
	mailHas(t, "invoice (de)", s, b, "CarData-Rechnung "+*sent.Number, "für Oktober 2026", "Brutto: "+strings.ReplaceAll(sent.GrossTotal.StringFixed(2), ".", ","), "€",
		"Fällig: "+sent.DueDate.Format("02.01.2006"))
}
