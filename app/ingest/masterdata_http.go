package ingest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/app/web"
	"cardata/onboarding/vehicles"
	"cardata/policies"
	"cardata/policies/errs"
)

// MasterDataOpenAPI is the OpenAPI 3.1 document of the master-data API,
// served at GET /ingest/v1/openapi.json.
//
//go:embed masterdata_openapi.json
var MasterDataOpenAPI []byte

// Limits of the bulk endpoint.
const (
	MaxMasterDataLines = 10_000
	MaxMasterDataBytes = 8 << 20
)

// MasterDataHandler is the master-data API under /ingest/v1: the
// manufacturer's vehicle systems register and update vehicles, book and end
// connected services and keep the account mapping current, one call at a
// time or in bulk (NDJSON). Every operation is a declarative upsert or
// names the manufacturer's own reference, so repeating a request changes
// nothing.
type MasterDataHandler struct {
	Svc      *Service          // credentials (master_data_clients) and the VIN cache
	Vehicles *vehicles.Service // the registry
	Now      func() time.Time  // nil: time.Now
}

// MasterDataRoutes lists the routes Mount registers (method, pattern), for
// the OpenAPI document's test.
var MasterDataRoutes = [][2]string{
	{fiber.MethodGet, "/ingest/v1/vehicles/:vin"},
	{fiber.MethodPut, "/ingest/v1/vehicles/:vin"},
	{fiber.MethodPost, "/ingest/v1/vehicles/:vin/subscriptions"},
	{fiber.MethodPost, "/ingest/v1/vehicles/:vin/subscriptions/:subscription/end"},
	{fiber.MethodPut, "/ingest/v1/vehicles/:vin/holders"},
	{fiber.MethodPost, "/ingest/v1/master-data"},
}

// Mount registers the API on app. It must run before the telemetry
// gateways' /ingest/v1 group: its own bearer check then answers these paths
// (a handler that answers ends the chain), and the gateways' check never
// sees a master-data token. The OpenAPI document is returned as a route for
// the caller to declare public.
func (h *MasterDataHandler) Mount(app *fiber.App) (openapiPath string) {
	app.Get("/ingest/v1/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		return c.Send(MasterDataOpenAPI)
	})
	v := app.Group("/ingest/v1/vehicles", h.authenticate)
	v.Get("/:vin", h.getVehicle)
	v.Put("/:vin", h.putVehicle)
	v.Post("/:vin/subscriptions", h.postSubscription)
	v.Post("/:vin/subscriptions/:subscription/end", h.endSubscription)
	v.Put("/:vin/holders", h.putHolders)
	app.Use("/ingest/v1/master-data", h.authenticate)
	app.Post("/ingest/v1/master-data", h.bulk)
	return "/ingest/v1/openapi.json"
}

func (h *MasterDataHandler) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

// authenticate resolves "Authorization: Bearer <token>" to a master-data
// client. A telemetry gateway's token is recognised too, so the policy
// refuses it (403) rather than calling it unknown; any other credential
// (a provider's token, a session cookie) is no credential here (401).
func (h *MasterDataHandler) authenticate(c *fiber.Ctx) error {
	scheme, token, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata-master-data"`)
		return errs.New(errs.Unauthorized, "unauthenticated", "send the master-data client's token as Authorization: Bearer <token>")
	}
	ctx := c.UserContext()
	p, err := h.Svc.AuthenticateMasterData(ctx, token)
	if errs.KindOf(err) == errs.Unauthorized {
		if g, gerr := h.Svc.Authenticate(ctx, token); gerr == nil {
			p, err = &policies.Principal{Kind: policies.KindGateway, ID: g.ID, Name: g.Name, Email: "gateway:" + g.Name, Roles: []string{RoleGateway}}, nil
		}
	}
	if err != nil {
		if errs.KindOf(err) == errs.Unauthorized {
			c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="cardata-master-data", error="invalid_token"`)
		}
		return err
	}
	c.SetUserContext(policies.WithPrincipal(ctx, p))
	return c.Next()
}

// VehicleIn is the body of PUT /ingest/v1/vehicles/{vin} (and of a bulk
// line's vehicle fields).
type VehicleIn struct {
	Brand             string `json:"brand"`
	Model             string `json:"model"`
	Drivetrain        string `json:"drivetrain"`
	Market            string `json:"market"`
	TelematicsCapable *bool  `json:"telematicsCapable"`
	SIMActive         *bool  `json:"simActive"`
}

func (in *VehicleIn) toNew(vin string) (vehicles.NewVehicle, error) {
	var v errs.Validation
	if in.TelematicsCapable == nil {
		v.Add("telematicsCapable", "telematics_capable_required", "say whether the vehicle has a telematics unit (true or false)")
	}
	if in.SIMActive == nil {
		v.Add("simActive", "sim_active_required", "say whether the vehicle's SIM is active (true or false)")
	}
	if err := v.Err(); err != nil {
		return vehicles.NewVehicle{}, err
	}
	return vehicles.NewVehicle{VIN: vin, Brand: in.Brand, Model: in.Model, Drivetrain: in.Drivetrain, Market: in.Market,
		TelematicsCapable: *in.TelematicsCapable, SIMActive: *in.SIMActive}, nil
}

// VehicleOut is a vehicle's master data as the API answers it.
type VehicleOut struct {
	VIN               string    `json:"vin"`
	Brand             string    `json:"brand"`
	Model             string    `json:"model"`
	Drivetrain        string    `json:"drivetrain"`
	Market            string    `json:"market"`
	TelematicsCapable bool      `json:"telematicsCapable"`
	SIMActive         bool      `json:"simActive"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

func vehicleOut(v *vehicles.Vehicle) VehicleOut {
	return VehicleOut{VIN: v.VIN, Brand: v.Brand, Model: v.Model, Drivetrain: v.Drivetrain, Market: v.Market,
		TelematicsCapable: v.TelematicsCapable, SIMActive: v.SIMActive, CreatedAt: v.CreatedAt.UTC(), UpdatedAt: v.UpdatedAt.UTC()}
}

// SubscriptionIn books a connected service.
type SubscriptionIn struct {
	Ref      string     `json:"ref"`
	Service  string     `json:"service"`
	StartsAt *time.Time `json:"startsAt"`
	EndsAt   *time.Time `json:"endsAt"`
}

// SubscriptionOut is a booking as the API answers it.
type SubscriptionOut struct {
	ID       int64      `json:"id"`
	Ref      *string    `json:"ref"`
	Service  string     `json:"service"`
	StartsAt time.Time  `json:"startsAt"`
	EndsAt   *time.Time `json:"endsAt"`
}

func subscriptionOut(s *vehicles.Subscription) SubscriptionOut {
	o := SubscriptionOut{ID: s.ID, Ref: s.ExternalRef, Service: s.Service, StartsAt: s.StartsAt.UTC()}
	if s.EndsAt != nil {
		e := s.EndsAt.UTC()
		o.EndsAt = &e
	}
	return o
}

// HoldersIn is the account mapping of a vehicle.
type HoldersIn struct {
	Primary   *vehicles.HolderInput  `json:"primary"`
	Secondary []vehicles.HolderInput `json:"secondary"`
}

// HolderOut is one account holding a vehicle.
type HolderOut struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// decodeStrict decodes one JSON object, refusing unknown members and
// trailing data.
func decodeStrict(body []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		msg := "the body is not a valid JSON object of this operation"
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			msg = fmt.Sprintf("member %q has the wrong type (want %s)", te.Field, te.Type.String())
		case errors.As(err, &se):
			msg = fmt.Sprintf("malformed JSON at byte %d", se.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			msg = "unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field ")
		case strings.HasPrefix(err.Error(), "parsing time "):
			msg = "times are RFC 3339, such as 2026-05-01T08:00:00Z"
		}
		return errs.New(errs.BadRequest, "malformed_body", "%s", msg)
	}
	if dec.More() {
		return errs.New(errs.BadRequest, "malformed_body", "one JSON object is expected, not more")
	}
	return nil
}

func jsonBody(c *fiber.Ctx, into any) error {
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if mt != fiber.MIMEApplicationJSON {
		return &errs.Error{Kind: "unsupported_media_type", Code: "unsupported_media_type", Message: "send application/json"}
	}
	if len(c.Body()) > 1<<20 {
		return errs.New(errs.TooLarge, "payload_too_large", "a request body is at most 1 MiB")
	}
	return decodeStrict(c.Body(), into)
}

func (h *MasterDataHandler) getVehicle(c *fiber.Ctx) error {
	ctx := c.UserContext()
	v, err := h.Vehicles.FindByVIN(ctx, c.Params("vin"))
	if err != nil {
		return err
	}
	holders, err := h.Vehicles.Holders(ctx, v.ID)
	if err != nil {
		return err
	}
	subs, err := h.Vehicles.Subscriptions(ctx, v.ID)
	if err != nil {
		return err
	}
	out := fiber.Map{"vehicle": vehicleOut(v), "holders": holdersOut(holders), "subscriptions": subscriptionsOut(subs)}
	return c.JSON(out)
}

func holdersOut(hs []vehicles.Holder) []HolderOut {
	out := make([]HolderOut, 0, len(hs))
	for _, h := range hs {
		out = append(out, HolderOut{Email: h.Email, Name: h.Name, Role: h.Role})
	}
	return out
}

func subscriptionsOut(subs []vehicles.Subscription) []SubscriptionOut {
	out := make([]SubscriptionOut, 0, len(subs))
	for i := range subs {
		out = append(out, subscriptionOut(&subs[i]))
	}
	return out
}

func (h *MasterDataHandler) putVehicle(c *fiber.Ctx) error {
	return upsertAnswer(c, h.upsertVehicle)
}

// upsertAnswer reads the body into an In, calls do with the path's VIN and
// answers its result: 201 when do created something, else 200.
func upsertAnswer[In any](c *fiber.Ctx, do func(context.Context, string, *In) (fiber.Map, error)) error {
	var in In
	if err := jsonBody(c, &in); err != nil {
		return err
	}
	res, err := do(c.UserContext(), c.Params("vin"), &in)
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if res["result"] == vehicles.Created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(res)
}

func (h *MasterDataHandler) upsertVehicle(ctx context.Context, vin string, in *VehicleIn) (fiber.Map, error) {
	nv, err := in.toNew(vin)
	if err != nil {
		return nil, err
	}
	v, result, err := h.Vehicles.UpsertVehicle(ctx, nv)
	if err != nil {
		return nil, err
	}
	if result == vehicles.Created {
		h.Svc.ForgetUnknownVIN(v.VIN)
	}
	return fiber.Map{"result": result, "vehicle": vehicleOut(v)}, nil
}

func (h *MasterDataHandler) postSubscription(c *fiber.Ctx) error {
	return upsertAnswer(c, h.book)
}

func (h *MasterDataHandler) book(ctx context.Context, vin string, in *SubscriptionIn) (fiber.Map, error) {
	var val errs.Validation
	if strings.TrimSpace(in.Ref) == "" {
		val.Add("ref", "ref_required", "give the booking's reference in your system (it makes the call idempotent and names the booking to end)")
	}
	if in.StartsAt == nil {
		val.Add("startsAt", "starts_at_required", "give when the subscription starts (RFC 3339)")
	}
	if err := val.Err(); err != nil {
		return nil, err
	}
	sub, result, err := h.Vehicles.BookSubscription(ctx, vin, in.Ref, vehicles.NewSubscription{Service: in.Service, StartsAt: *in.StartsAt, EndsAt: in.EndsAt})
	if err != nil {
		return nil, apiFieldNames(err)
	}
	return fiber.Map{"result": result, "subscription": subscriptionOut(sub)}, nil
}

// apiFieldNames names the fields of a validation error as the API's members
// (startsAt, not the form's starts_at).
func apiFieldNames(err error) error {
	var e *errs.Error
	if !errors.As(err, &e) || len(e.Fields) == 0 {
		return err
	}
	out := *e
	out.Fields = make([]errs.FieldError, len(e.Fields))
	for i, f := range e.Fields {
		switch f.Field {
		case "starts_at":
			f.Field = "startsAt"
		case "ends_at":
			f.Field = "endsAt"
		}
		out.Fields[i] = f
	}
	return &out
}

// EndIn ends a subscription early; At defaults to now.
type EndIn struct {
	At *time.Time `json:"at"`
}

func (h *MasterDataHandler) endSubscription(c *fiber.Ctx) error {
	var in EndIn
	if len(bytes.TrimSpace(c.Body())) > 0 {
		if err := jsonBody(c, &in); err != nil {
			return err
		}
	}
	res, err := h.end(c.UserContext(), c.Params("vin"), c.Params("subscription"), in.At)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (h *MasterDataHandler) end(ctx context.Context, vin, sub string, at *time.Time) (fiber.Map, error) {
	when := h.now()
	if at != nil {
		when = *at
	}
	if strings.TrimSpace(sub) == "" {
		var val errs.Validation
		val.Add("subscription", "subscription_required", "name the subscription by its id or reference")
		return nil, val.Err()
	}
	s, result, err := h.Vehicles.EndBooking(ctx, vin, sub, when)
	if err != nil {
		return nil, err
	}
	return fiber.Map{"result": result, "subscription": subscriptionOut(s)}, nil
}

func (h *MasterDataHandler) putHolders(c *fiber.Ctx) error {
	var in HoldersIn
	if err := jsonBody(c, &in); err != nil {
		return err
	}
	ctx := c.UserContext()
	if err := primaryGiven(c.Body()); err != nil {
		return err
	}
	res, changed, err := h.setHolders(ctx, c.Params("vin"), &in)
	if err != nil {
		return err
	}
	res["consentsEnded"] = 0
	if changed {
		n, err := h.Vehicles.EndFormerOwnersConsents(ctx)
		if err != nil {
			return err
		}
		res["consentsEnded"] = n
	}
	return c.JSON(res)
}

// primaryGiven insists that a holders body names the primary holder, or
// null for none: a body that forgot it must not unmap the vehicle and end
// its owner's consents.
func primaryGiven(raw []byte) error {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) == nil {
		if _, ok := members["primary"]; ok {
			return nil
		}
	}
	var val errs.Validation
	val.Add("primary", "primary_required", "give the primary holder, or null for a vehicle that no customer holds")
	return val.Err()
}

func (h *MasterDataHandler) setHolders(ctx context.Context, vin string, in *HoldersIn) (fiber.Map, bool, error) {
	r, err := h.Vehicles.SetHolders(ctx, vin, in.Primary, in.Secondary)
	if err != nil {
		return nil, false, err
	}
	v, err := h.Vehicles.FindByVIN(ctx, vin)
	if err != nil {
		return nil, false, err
	}
	hs, err := h.Vehicles.Holders(ctx, v.ID)
	if err != nil {
		return nil, false, err
	}
	out := fiber.Map{"result": r.Result, "ownerChanged": r.OwnerChanged, "accountsCreated": r.AccountsCreated, "holders": holdersOut(hs)}
	if r.FormerPrimary != "" {
		out["formerPrimary"] = r.FormerPrimary
	}
	return out, r.OwnerChanged, nil
}

// Bulk operations (the "op" of an NDJSON line).
const (
	OpVehicle   = "vehicle.upsert"
	OpBook      = "subscription.book"
	OpEnd       = "subscription.end"
	OpHolders   = "holders.set"
	maxLineSize = 64 << 10
)

// BulkLine is one line of POST /ingest/v1/master-data: an operation on one
// vehicle with that operation's members.
type BulkLine struct {
	ID  string `json:"id,omitempty"` // the client's own id of the line, echoed in its result
	Op  string `json:"op"`
	VIN string `json:"vin"`
	VehicleIn
	SubscriptionIn
	Subscription string     `json:"subscription,omitempty"` // subscription.end: id or ref
	At           *time.Time `json:"at,omitempty"`           // subscription.end
	HoldersIn
}

// LineError is a failed line's problem (RFC 9457 members).
type LineError struct {
	Status int               `json:"status"`
	Code   string            `json:"code"`
	Detail string            `json:"detail"`
	Errors []errs.FieldError `json:"errors,omitempty"`
}

// LineResult is the answer to one line.
type LineResult struct {
	Line   int        `json:"line"`
	ID     string     `json:"id,omitempty"`
	Op     string     `json:"op,omitempty"`
	VIN    string     `json:"vin,omitempty"`
	Result string     `json:"result"` // created, updated, unchanged or error
	Error  *LineError `json:"error,omitempty"`
}

// BulkResult is the answer to a bulk request: one result per non-empty line.
type BulkResult struct {
	Received      int          `json:"received"`
	Applied       int          `json:"applied"`
	Unchanged     int          `json:"unchanged"`
	Failed        int          `json:"failed"`
	ConsentsEnded int          `json:"consentsEnded"`
	Results       []LineResult `json:"results"`
}

// bulk is POST /ingest/v1/master-data: NDJSON, one operation per line, each
// applied on its own (a bad line never blocks the others) and idempotent.
func (h *MasterDataHandler) bulk(c *fiber.Ctx) error {
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if mt != "application/x-ndjson" {
		return &errs.Error{Kind: "unsupported_media_type", Code: "unsupported_media_type",
			Message: "send application/x-ndjson: one operation per line"}
	}
	body := c.Body()
	if len(body) > MaxMasterDataBytes {
		return errs.New(errs.TooLarge, "payload_too_large", "a bulk request is at most 8 MiB; split it")
	}
	ctx := c.UserContext()
	out := BulkResult{Results: []LineResult{}}
	ownerChanged := false
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64<<10), maxLineSize)
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if out.Received == MaxMasterDataLines {
			return errs.New(errs.TooLarge, "too_many_lines", "a bulk request has at most %d lines; split it", MaxMasterDataLines)
		}
		out.Received++
		r, changed := h.bulkLine(ctx, line, raw)
		ownerChanged = ownerChanged || changed
		switch r.Result {
		case "error":
			out.Failed++
		case vehicles.Unchanged:
			out.Unchanged++
		default:
			out.Applied++
		}
		out.Results = append(out.Results, r)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return errs.New(errs.TooLarge, "line_too_long", "line %d is longer than 64 KiB", line+1)
		}
		return errs.New(errs.BadRequest, "malformed_body", "the body cannot be read as lines")
	}
	if out.Received == 0 {
		return errs.New(errs.BadRequest, "empty_body", "send at least one operation")
	}
	if ownerChanged {
		n, err := h.Vehicles.EndFormerOwnersConsents(ctx)
		if err != nil {
			return err
		}
		out.ConsentsEnded = n
	}
	return c.JSON(out)
}

func (h *MasterDataHandler) bulkLine(ctx context.Context, n int, raw []byte) (LineResult, bool) {
	var l BulkLine
	r := LineResult{Line: n}
	fail := func(err error) (LineResult, bool) {
		e := errs.As(err)
		status := web.Status(e)
		if status == 0 {
			status = fiber.StatusBadRequest
		}
		msg := e.Message
		if e.Kind == errs.Internal {
			msg = "internal error"
		}
		r.Result, r.Error = "error", &LineError{Status: status, Code: e.Code, Detail: msg, Errors: e.Fields}
		return r, false
	}
	if err := decodeStrict(raw, &l); err != nil {
		// Echo what can be read of the line to help the sender find it.
		var head struct {
			ID, Op, VIN string
		}
		_ = json.Unmarshal(raw, &head)
		r.ID, r.Op, r.VIN = head.ID, head.Op, head.VIN
		return fail(err)
	}
	r.ID, r.Op, r.VIN = l.ID, l.Op, l.VIN
	var res fiber.Map
	var err error
	changed := false
	switch l.Op {
	case OpVehicle:
		res, err = h.upsertVehicle(ctx, l.VIN, &l.VehicleIn)
	case OpBook:
		res, err = h.book(ctx, l.VIN, &l.SubscriptionIn)
	case OpEnd:
		res, err = h.end(ctx, l.VIN, l.Subscription, l.At)
	case OpHolders:
		if err = primaryGiven(raw); err == nil {
			res, changed, err = h.setHolders(ctx, l.VIN, &l.HoldersIn)
		}
	default:
		var val errs.Validation
		val.Add("op", "op_invalid", "op is one of %s, %s, %s, %s", OpVehicle, OpBook, OpEnd, OpHolders)
		err = val.Err()
	}
	if err != nil {
		return fail(err)
	}
	r.Result, _ = res["result"].(string)
	return r, changed
}
