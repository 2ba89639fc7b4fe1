package portal

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding/containers"
	"cardata/policies"
	"cardata/policies/consent"
	"cardata/policies/errs"
)

// APIRoutes mounts the provider API endpoints of containers and consent on
// r (the app; paths are absolute). The provider API's bearer resolver has
// put the API client's principal in place and the guard has checked the
// role provider_api (policies/rules/30_containers_consent.csv).
func (h *ContainerHandlers) APIRoutes(r fiber.Router) {
	r.Post("/api/v1/containers", h.apiCreate)
	r.Get("/api/v1/containers", h.apiList)
	r.Get("/api/v1/containers/:id", h.apiGet)
	r.Post("/api/v1/consent-requests", h.apiRequestConsent)
	r.Get("/api/v1/consents", h.apiConsents)
}

// containerCaller is the calling provider; the provider id never comes
// from the body or the URL.
func containerCaller(c *fiber.Ctx) (*policies.Principal, error) {
	p := policies.PrincipalFrom(c.UserContext())
	if p == nil || p.Kind != policies.KindProvider || p.ProviderID == 0 {
		return nil, errs.New(errs.Unauthorized, "unauthenticated", "authenticate with an access token from /oauth/token")
	}
	return p, nil
}

// ContainerJSON is a container as the API shows it: the fields of its
// current version (the approved one, else the newest) and every version.
type ContainerJSON struct {
	ID                   int64                  `json:"id"`
	Name                 string                 `json:"name"`
	Purpose              string                 `json:"purpose"`
	PurposeCode          string                 `json:"purposeCode"`
	PurposeListVersion   string                 `json:"purposeListVersion"`
	Version              int                    `json:"version"`
	State                string                 `json:"state"`
	StateReason          string                 `json:"stateReason,omitempty"`
	TechnicalDescriptors []string               `json:"technicalDescriptors"`
	Sensitive            bool                   `json:"sensitive"`
	ApprovalsRequired    int                    `json:"approvalsRequired"`
	Approvals            int                    `json:"approvals"`
	CreatedAt            time.Time              `json:"createdAt"`
	Versions             []ContainerVersionJSON `json:"versions"`
}

// ContainerVersionJSON is one version.
type ContainerVersionJSON struct {
	Version              int        `json:"version"`
	State                string     `json:"state"`
	StateReason          string     `json:"stateReason,omitempty"`
	Name                 string     `json:"name"`
	PurposeCode          string     `json:"purposeCode"`
	TechnicalDescriptors []string   `json:"technicalDescriptors"`
	Sensitive            bool       `json:"sensitive"`
	ApprovalsRequired    int        `json:"approvalsRequired"`
	Approvals            int        `json:"approvals"`
	CreatedAt            time.Time  `json:"createdAt"`
	SubmittedAt          *time.Time `json:"submittedAt,omitempty"`
	DecidedAt            *time.Time `json:"decidedAt,omitempty"`
}

func containerJSON(ct *containers.Container) ContainerJSON {
	cur := ct.Current()
	out := ContainerJSON{ID: ct.ID, Name: cur.Name, Purpose: cur.Purpose, PurposeCode: cur.PurposeCode,
		PurposeListVersion: cur.PurposeListVersion, Version: cur.Version, State: string(cur.State), StateReason: cur.StateReason,
		TechnicalDescriptors: cur.KeyNames(), Sensitive: cur.Sensitive, ApprovalsRequired: cur.ApprovalsRequired,
		Approvals: len(cur.Approvals), CreatedAt: ct.Versions[len(ct.Versions)-1].CreatedAt, Versions: []ContainerVersionJSON{}}
	for _, v := range ct.Versions {
		out.Versions = append(out.Versions, ContainerVersionJSON{Version: v.Version, State: string(v.State), StateReason: v.StateReason,
			Name: v.Name, PurposeCode: v.PurposeCode, TechnicalDescriptors: v.KeyNames(), Sensitive: v.Sensitive,
			ApprovalsRequired: v.ApprovalsRequired, Approvals: len(v.Approvals), CreatedAt: v.CreatedAt,
			SubmittedAt: v.SubmittedAt, DecidedAt: v.DecidedAt})
	}
	return out
}

type newContainerJSON struct {
	Name                 string   `json:"name"`
	Purpose              string   `json:"purpose"`
	PurposeCode          string   `json:"purposeCode"`
	TechnicalDescriptors []string `json:"technicalDescriptors"`
	// Draft keeps the container out of review (default: submitted at once).
	Draft bool `json:"draft"`
}

// apiCreate is POST /api/v1/containers. A sandbox client creates a
// sandbox container, approved at once without review. Every endpoint here
// keeps the realms apart: a sandbox client sees and uses only sandbox
// containers, simulated vehicles and their consents, a production client
// only production ones.
func (h *ContainerHandlers) apiCreate(c *fiber.Ctx) error {
	p, err := containerCaller(c)
	if err != nil {
		return err
	}
	var in newContainerJSON
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	v, err := h.Containers.Create(c.UserContext(), p.ProviderID, containers.Input{Name: in.Name, Purpose: in.Purpose,
		PurposeCode: in.PurposeCode, Keys: in.TechnicalDescriptors, Submit: !in.Draft, Sandbox: p.Sandbox})
	if err != nil {
		return err
	}
	ct, err := h.Containers.FindContainerIn(c.UserContext(), p.ProviderID, v.ContainerID, p.Sandbox)
	if err != nil {
		return err
	}
	c.Location("/api/v1/containers/" + strconv.FormatInt(ct.ID, 10))
	return c.Status(fiber.StatusCreated).JSON(containerJSON(ct))
}

// ContainerPage is the answer of GET /api/v1/containers.
type ContainerPage struct {
	Containers []ContainerJSON `json:"containers"`
	NextCursor *string         `json:"nextCursor"`
}

// apiList is GET /api/v1/containers?limit=&cursor=: the caller's
// containers, newest first. A provider has few containers, so the service
// reads them all and the page is cut here.
func (h *ContainerHandlers) apiList(c *fiber.Ctx) error {
	p, err := containerCaller(c)
	if err != nil {
		return err
	}
	pg, err := web.ParsePageOnly(c)
	if err != nil {
		return err
	}
	list, err := h.Containers.FindProviderContainersIn(c.UserContext(), p.ProviderID, p.Sandbox)
	if err != nil {
		return err
	}
	// The service lists newest (highest id) first, the page's order.
	page, next := web.CutPage(pg, list, func(ct containers.Container) int64 { return ct.ID })
	out := ContainerPage{Containers: make([]ContainerJSON, 0, len(page)), NextCursor: next}
	for i := range page {
		out.Containers = append(out.Containers, containerJSON(&page[i]))
	}
	return c.JSON(out)
}

// apiGet is GET /api/v1/containers/:id; another provider's container is
// not found.
func (h *ContainerHandlers) apiGet(c *fiber.Ctx) error {
	p, err := containerCaller(c)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return containers.ErrNotFound
	}
	ct, err := h.Containers.FindContainerIn(c.UserContext(), p.ProviderID, id, p.Sandbox)
	if err != nil {
		return err
	}
	return c.JSON(containerJSON(ct))
}

// ConsentJSON is a consent as the provider sees it.
type ConsentJSON struct {
	ID               int64      `json:"id"`
	VIN              string     `json:"vin"`
	ContainerID      int64      `json:"containerId"`
	ContainerVersion int        `json:"containerVersion"`
	State            string     `json:"state"`
	RequestedAt      time.Time  `json:"requestedAt"`
	ExpiresAt        *time.Time `json:"expiresAt,omitempty"` // an open request lapses then
	DecidedAt        *time.Time `json:"decidedAt,omitempty"`
	ValidUntil       *time.Time `json:"validUntil,omitempty"`
	EndedAt          *time.Time `json:"endedAt,omitempty"`
}

func consentJSON(k *consent.Consent) ConsentJSON {
	out := ConsentJSON{ID: k.ID, VIN: k.VIN, ContainerID: k.ContainerID, ContainerVersion: k.Version, State: string(k.State),
		RequestedAt: k.RequestedAt.UTC(), DecidedAt: k.DecidedAt, ValidUntil: k.EndsAt, EndedAt: k.EndedAt}
	if k.State == consent.Requested {
		e := k.ExpiresAt().UTC()
		out.ExpiresAt = &e
	}
	return out
}

type consentRequestJSON struct {
	VIN         string     `json:"vin"`
	ContainerID int64      `json:"containerId"`
	ValidUntil  *time.Time `json:"validUntil"`
}

// apiRequestConsent is POST /api/v1/consent-requests.
func (h *ContainerHandlers) apiRequestConsent(c *fiber.Ctx) error {
	p, err := containerCaller(c)
	if err != nil {
		return err
	}
	var in consentRequestJSON
	if err := web.DecodeJSON(c, &in); err != nil {
		return err
	}
	k, err := h.Consents.Request(c.UserContext(), p.ProviderID, consent.NewRequest{VIN: in.VIN, ContainerID: in.ContainerID,
		EndsAt: in.ValidUntil, Sandbox: p.Sandbox})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(consentJSON(k))
}

// ConsentPage is the answer of GET /api/v1/consents.
type ConsentPage struct {
	Consents   []ConsentJSON `json:"consents"`
	NextCursor *string       `json:"nextCursor"`
}

// apiConsents is GET /api/v1/consents?vin=&state=&containerId=&limit=&cursor=:
// the caller's consents, newest first, in the API's cursor pages.
func (h *ContainerHandlers) apiConsents(c *fiber.Ctx) error {
	p, err := containerCaller(c)
	if err != nil {
		return err
	}
	f := consent.ConsentFilter{VIN: c.Query("vin"), State: consent.State(c.Query("state")), Sandbox: p.Sandbox}
	var v errs.Validation
	if f.State != "" && !f.State.Valid() {
		v.Add("state", "state_unknown", "state is one of requested, granted, denied, revoked, expired, superseded")
	}
	if s := c.Query("containerId"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			v.Add("containerId", "container_id_invalid", "containerId must be a positive number")
		}
		f.ContainerID = n
	}
	pg, err := web.ParsePage(c, &v)
	if err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	f.Limit, f.Before = pg.Limit, pg.After.ID
	list, more, err := h.Consents.FindProviderConsents(c.UserContext(), p.ProviderID, f)
	if err != nil {
		return err
	}
	out := ConsentPage{Consents: make([]ConsentJSON, 0, len(list))}
	for i := range list {
		out.Consents = append(out.Consents, consentJSON(&list[i]))
	}
	if len(list) > 0 {
		out.NextCursor = web.NextCursor(web.Cursor{ID: list[len(list)-1].ID}, more)
	}
	return c.JSON(out)
}
