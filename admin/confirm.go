package admin

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"cardata/admin/support"
	"cardata/onboarding"
	"cardata/templates"
	"cardata/templates/i18n"
)

// The staff pages' destructive and irreversible actions and what their
// confirmation page says (templates.View.Confirm asks before the handler
// runs). An action whose required reason is missing is not asked about:
// the handler re-renders the form with the field error first.

type confirmation = templates.Confirmation

var proceed = confirmation{Safe: true}

// pathProvider is the provider named in the path, with its id.
func (h *ProviderHandlers) pathProvider(c *fiber.Ctx) (int64, *onboarding.Provider, error) {
	id, err := templates.PathID(c)
	if err != nil {
		return 0, nil, err
	}
	p, err := h.Onboarding.FindProviderByID(c.UserContext(), id)
	return id, p, err
}

func (h *ProviderHandlers) confirmTransition(c *fiber.Ctx) (confirmation, error) {
	action := onboarding.Action(c.Params("action"))
	t, ok := onboarding.TransitionFor(action)
	if !ok || (t.Note != "" && strings.TrimSpace(c.FormValue("note")) == "") {
		return proceed, nil
	}
	id, p, err := h.pathProvider(c)
	if err != nil {
		return confirmation{}, err
	}
	back := fmt.Sprintf("/admin/providers/%d", id)
	args := []any{"Name", p.LegalName}
	switch action {
	case onboarding.ActionApprove:
		return confirmation{Title: "Approve {{.Name}}?", Args: args,
			Effect: "It becomes an active partner: its users may sign in to the portal, create API clients and data containers, and request markets. It is told by e-mail.",
			Yes:    "Approve the provider", Back: back}, nil
	case onboarding.ActionReject:
		return confirmation{Title: "Reject {{.Name}}?", Args: args,
			Effect: "The application is closed for good and the provider is told your reason by e-mail. To be reconsidered it must register again.",
			Yes:    "Reject the application", Back: back}, nil
	case onboarding.ActionSuspend:
		return confirmation{Title: "Suspend {{.Name}}?", Args: args,
			Effect: "Its API clients are refused and no data flows to it until a partner manager reactivates it; its users are told your reason.",
			Yes:    "Suspend the provider", Back: back}, nil
	case onboarding.ActionTerminate:
		return confirmation{Title: "Terminate {{.Name}}?", Args: args,
			Effect: "The partnership ends for good: no data flows, its users and API clients stop working, and it cannot be reactivated.",
			Yes:    "Terminate the partnership", Back: back}, nil
	}
	return proceed, nil
}

func (h *ProviderHandlers) confirmMarketDecision(c *fiber.Ctx) (confirmation, error) {
	decision := c.FormValue("decision")
	if decision != "approve" && decision != "reject" {
		return proceed, nil
	}
	id, p, err := h.pathProvider(c)
	if err != nil {
		return confirmation{}, err
	}
	code := strings.ToUpper(c.Params("code"))
	back := safeBack(c.FormValue("back"), fmt.Sprintf("/admin/providers/%d", id))
	args := []any{"Name", p.LegalName, "Code", code}
	if decision == "approve" {
		return confirmation{Title: "Give {{.Name}} access to market {{.Code}}?",
			Effect: "It may then ask customers with vehicles registered in {{.Code}} for consent and receive their data.",
			Yes:    "Approve {{.Code}}", Back: back, Args: args}, nil
	}
	access, err := h.Onboarding.FindMarketAccess(c.UserContext(), id)
	if err != nil {
		return confirmation{}, err
	}
	for _, a := range access {
		if a.Market == code && a.Status == "approved" {
			return confirmation{Title: "Withdraw the access of {{.Name}} to market {{.Code}}?",
				Effect: "From its next request on it receives no data of vehicles registered in {{.Code}}; it is told, and would have to request the market again.",
				Yes:    "Withdraw {{.Code}}", Back: back, Args: args}, nil
		}
	}
	return confirmation{Title: "Refuse {{.Name}} access to market {{.Code}}?",
		Effect: "The request is closed and the provider is told; it would have to request the market again.",
		Yes:    "Reject {{.Code}}", Back: back, Args: args}, nil
}

func (h *ProviderHandlers) confirmMarketActive(c *fiber.Ctx) (confirmation, error) {
	if c.FormValue("active") == "true" {
		return proceed, nil
	}
	code := strings.ToUpper(c.Params("code"))
	m, err := h.Onboarding.FindMarket(c.UserContext(), code)
	if err != nil {
		return confirmation{}, err
	}
	return confirmation{Title: "Pause the market {{.Name}}?",
		Effect: "No provider receives data of vehicles registered in {{.Name}} and no new market requests are taken, until a partner manager activates it again.",
		Yes:    "Pause {{.Name}}", Back: "/admin/markets", Args: []any{"Name", m.Name}}, nil
}

func (h *ContainerHandlers) confirmAct(c *fiber.Ctx) (confirmation, error) {
	action := c.Params("action")
	if (action == "reject" || action == "withdraw") && strings.TrimSpace(c.FormValue("reason")) == "" {
		return proceed, nil // the handler asks for the reason first
	}
	id, err := templates.PathID(c)
	if err != nil {
		return confirmation{}, err
	}
	ct, err := h.Containers.FindContainer(c.UserContext(), 0, id)
	if err != nil {
		return confirmation{}, err
	}
	n, _ := strconv.Atoi(c.Params("version"))
	back := fmt.Sprintf("/admin/containers/%d", id)
	for _, v := range ct.Versions {
		if v.Version != n {
			continue
		}
		args := []any{"Name", v.Name, "Version", strconv.Itoa(v.Version), "Provider", ct.ProviderName, "Keys", strings.Join(v.KeyNames(), ", ")}
		switch action {
		case "approve":
			eff := "The provider may then ask customers to consent to these keys for this purpose: {{.Keys}}."
			if v.Sensitive && len(v.Approvals)+1 < v.ApprovalsRequired {
				eff = "It has sensitive keys: your approval is the first of two; a second partner manager must approve it before it can be used."
			} else if v.Sensitive {
				eff = "Yours is the second approval of these sensitive keys: the container becomes usable at once. The provider may then ask customers to consent to these keys for this purpose: {{.Keys}}."
			}
			return confirmation{Title: "Approve “{{.Name}}” version {{.Version}} of {{.Provider}}?", Effect: eff, Yes: "Approve", Back: back, Args: args}, nil
		case "reject":
			return confirmation{Title: "Reject “{{.Name}}” version {{.Version}} of {{.Provider}}?", Args: args,
				Effect: "The version is closed and the provider is told your reason; it would have to submit a new version.",
				Yes:    "Reject", Back: back}, nil
		case "deprecate":
			return confirmation{Title: "Deprecate “{{.Name}}” version {{.Version}} of {{.Provider}}?", Args: args,
				Effect: "Customers can no longer be asked to consent to it; existing consents keep delivering data.",
				Yes:    "Deprecate", Back: back}, nil
		case "withdraw":
			return confirmation{Title: "Withdraw “{{.Name}}” version {{.Version}} of {{.Provider}}?", Args: args,
				Effect: "Every consent to this version ends at once and no more data flows under it. This cannot be undone.",
				Yes:    "Withdraw", Back: back}, nil
		}
	}
	return proceed, nil
}

func (h *BillingHandlers) confirmInvoice(verb string) func(c *fiber.Ctx) (confirmation, error) {
	return func(c *fiber.Ctx) (confirmation, error) {
		if (verb == "discard" && strings.TrimSpace(c.FormValue("discard_reason")) == "") ||
			(verb == "credit" && (strings.TrimSpace(c.FormValue("credit_reason")) == "" || strings.TrimSpace(c.FormValue("credit_amount")) == "")) {
			return proceed, nil
		}
		id, err := templates.PathID(c)
		if err != nil {
			return confirmation{}, err
		}
		inv, err := h.Billing.FindInvoice(c.UserContext(), id)
		if err != nil {
			return confirmation{}, err
		}
		what := "invoice {{.Number}} to {{.Buyer}} ({{.Amount}} EUR)"
		if inv.IsCreditNote() {
			what = "credit note {{.Number}} to {{.Buyer}} ({{.Amount}} EUR)"
		}
		args := []any{"Number", inv.NumberOrDraft(), "Buyer", inv.BuyerName, "Amount", inv.GrossTotal.StringFixed(2), "Email", inv.BuyerEmail, "Credit", c.FormValue("credit_amount")}
		back := fmt.Sprintf("/admin/billing/invoices/%d", id)
		switch verb {
		case "finalize":
			return confirmation{Title: "Finalize " + what + "?", Args: args,
				Effect: "It gets the next number of the series, its PDF and e-invoice are stored, and it can no longer be changed: only a credit note corrects it.",
				Yes:    "Finalize", Back: back}, nil
		case "send":
			return confirmation{Title: "Send " + what + "?", Args: args,
				Effect: "It is e-mailed to {{.Email}} with the PDF and the XML attached. An e-mail cannot be called back.",
				Yes:    "Send the e-mail", Back: back}, nil
		case "discard":
			return confirmation{Title: "Discard the draft " + what + "?", Args: args,
				Effect: "The draft is deleted and its deliveries become billable again in the next run.",
				Yes:    "Discard the draft", Back: back}, nil
		case "credit":
			return confirmation{Title: "Draft a credit note of {{.Credit}} EUR against {{.Number}}?", Args: args,
				Effect: "A credit note draft for {{.Buyer}} is created; a second finance user reviews and issues it.",
				Yes:    "Draft the credit note", Back: back}, nil
		}
		return proceed, nil
	}
}

// confirmRemoveLine names the manual line a draft loses and its amount.
func (h *BillingHandlers) confirmRemoveLine(c *fiber.Ctx) (confirmation, error) {
	id, err := templates.PathID(c)
	if err != nil {
		return confirmation{}, err
	}
	lineID, err := strconv.ParseInt(c.Params("line"), 10, 64)
	if err != nil || lineID <= 0 {
		return proceed, nil // the handler answers 404
	}
	inv, err := h.Billing.FindInvoice(c.UserContext(), id)
	if err != nil {
		return confirmation{}, err
	}
	for _, l := range inv.Lines {
		if l.ID == lineID {
			return confirmation{Title: "Remove line {{.Position}} “{{.Description}}” from {{.Number}}?",
				Effect: "The line of {{.Amount}} net is taken off the draft and its totals are computed again. The removal is recorded in the invoice's history.",
				Yes:    "Remove the line", Back: fmt.Sprintf("/admin/billing/invoices/%d", id),
				Args: []any{"Position", l.Position, "Description", l.Description, "Number", inv.NumberOrDraft(), "Amount", i18n.Locale{Lang: templates.LangOf(c)}.Money(l.NetAmount)}}, nil
		}
	}
	return proceed, nil // the handler answers 404
}

func (h *BillingHandlers) confirmWithdrawPrices(c *fiber.Ctx) (confirmation, error) {
	id, err := templates.PathID(c)
	if err != nil {
		return confirmation{}, err
	}
	return confirmation{Title: "Withdraw the announced price list version?",
		Effect: "It will not take effect; the current prices stay valid. Providers see the announcement disappear from the published price list.",
		Yes:    "Withdraw the version", Back: "/admin/billing/prices/" + strconv.FormatInt(id, 10)}, nil
}

func (h *JobsHandlers) confirmRun(c *fiber.Ctx) (confirmation, error) {
	j, err := h.job(c)
	if err != nil {
		return confirmation{}, err
	}
	return confirmation{Title: "Run {{.Title}} now?",
		Effect: "It runs at once, outside its schedule ({{.Name}}), and does everything a scheduled run does.",
		Yes:    "Run now", Back: "/admin/jobs/" + j.Name, Args: []any{"Title", j.Title, "Name", j.Name}}, nil
}

func (h *TicketHandlers) confirmMerge(c *fiber.Ctx) (confirmation, error) {
	id, err := h.ticketID(c)
	if err != nil {
		return confirmation{}, err
	}
	survivor, ok := support.ParseNumber(c.FormValue("survivor"))
	if !ok {
		return proceed, nil // the handler reports the number
	}
	return confirmation{Title: "Close {{.Ticket}} as a duplicate of {{.Survivor}}?",
		Effect: "{{.Ticket}} is closed and its conversation continues in {{.Survivor}}; the provider is told.",
		Yes:    "Merge", Back: fmt.Sprintf("/admin/tickets/%d", id),
		Args: []any{"Ticket", support.TicketNumber(id), "Survivor", support.TicketNumber(survivor)}}, nil
}

func (h *VehicleHandlers) confirmEndSubscription(c *fiber.Ctx) (confirmation, error) {
	v, err := h.findVehicle(c)
	if err != nil {
		return confirmation{}, err
	}
	return confirmation{Title: "End this connected-service subscription of {{.VIN}} now?", Args: []any{"VIN", v.VIN},
		Effect: "The keys it provides stop being available for this vehicle at once; providers reading them get no new values.",
		Yes:    "End the subscription", Back: "/admin/vehicles/" + v.VIN + "#subscriptions"}, nil
}
