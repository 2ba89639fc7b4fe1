package providerapi

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"cardata/billing"
	"cardata/onboarding/webhooks"
	"cardata/policies"
	"cardata/policies/errs"
)

// TelematicData is the answer of GET /vehicles/{vin}/telematicData. Every
// key of the container is present; a key the vehicle has never sent is
// null, so "never received" cannot be mistaken for a value.
type TelematicData struct {
	VIN           string                     `json:"vin"`
	ContainerID   int64                      `json:"containerId"`
	TelematicData map[string]*webhooks.Value `json:"telematicData"`
}

// DeliveryHeader names the ledger record of a response that carried data.
const DeliveryHeader = "CarData-Delivery-Id"

// SQLLatestValues reads the latest values of a vehicle's keys (the one
// read per request the benchmark's ceiling repeats).
const SQLLatestValues = `SELECT k.id, k.key, k.unit, k.data_type, l.value, l.read_at
	FROM catalog_keys k JOIN vehicle_latest_values l ON l.key_id = k.id AND l.vehicle_id = $1
	WHERE k.key = ANY($2)`

type latestRow struct {
	ID       int16 // the catalog key id, for the ledger
	Key      string
	Unit     string
	DataType string
	Value    string
	ReadAt   time.Time
}

func newDeliveryID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "dlv_" + hex.EncodeToString(b)
}

// telematicData is GET /vehicles/{vin}/telematicData?containerId=ID.
func (h *Handler) telematicData(c *fiber.Ctx) error {
	p, err := caller(c)
	if err != nil {
		return err
	}
	vin := policies.NormalizeVIN(c.Params("vin"))
	raw := c.Query("containerId")
	containerID, perr := strconv.ParseInt(raw, 10, 64)
	if raw == "" || perr != nil || containerID <= 0 {
		var v errs.Validation
		v.Add("containerId", "container_id_required", "containerId must be the id of one of your data containers")
		return v.Err()
	}
	if h.Facts == nil {
		return errs.New(errs.Unavailable, "telematics_unavailable", "telematic data cannot be read yet: consent checks are not in place")
	}
	ctx := c.UserContext()
	now := h.now()
	pf := takePrefetched(c, vin, containerID)
	var rf *ReadFacts
	if pf != nil {
		rf = &pf.facts
	} else if rf, err = h.Facts(ctx, p.ProviderID, p.ID, vin, containerID, now); err != nil {
		return err
	}
	if d := policies.Decide(rf.Facts); !d.Allowed {
		return denial(d.Reason)
	}
	var rows []latestRow
	if pf != nil {
		rows = pf.values
	} else if err := h.DB.WithContext(ctx).Raw(SQLLatestValues, rf.VehicleID, "{"+strings.Join(rf.Facts.ContainerKeys, ",")+"}").
		Scan(&rows).Error; err != nil {
		return errs.Wrap(err, "latest values")
	}
	body := appendTelematicData(make([]byte, 0, 512), vin, containerID, rf.Facts.ContainerKeys, rows)
	if len(rows) > 0 {
		keyIDs := make([]int16, len(rows))
		for i := range rows {
			keyIDs[i] = rows[i].ID
		}
		id := newDeliveryID()
		err := h.Ledger.Write(ctx, billing.Delivery{ProviderID: p.ProviderID, ClientID: p.ID, VIN: vin, ContainerID: containerID,
			ContainerVersion: rf.ContainerVersion, ConsentID: rf.ConsentID, Kind: billing.KindPull, KeyIDs: keyIDs,
			Bytes: int64(len(body)), RequestID: id, At: now, Sandbox: p.Sandbox})
		if err != nil { // not recorded: nothing may leave
			return &errs.Error{Kind: errs.Unavailable, Code: "ledger_unavailable", Message: billing.ErrLedgerUnavailable.Message, Err: err}
		}
		c.Set(DeliveryHeader, id)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(fiber.StatusOK).Send(body)
}

// denial maps a decision's reason to a problem: the reason is the code.
// Every denial is 403; an unknown VIN and another provider's vehicle both
// read no_consent, so nothing is learnt about vehicles of others.
func denial(reason string) error {
	msg := map[string]string{
		policies.ReasonProviderNotActive:    "your provider access is not active",
		policies.ReasonClientRevoked:        "this API client is revoked",
		policies.ReasonContainerNotApproved: "the container is not approved (or not yours)",
		policies.ReasonContainerWithdrawn:   "the container was withdrawn",
		policies.ReasonNoConsent:            "there is no consent for this vehicle and container",
		policies.ReasonConsentRevoked:       "the customer revoked the consent",
		policies.ReasonConsentExpired:       "the consent has expired",
		policies.ReasonNotTelematicsCapable: "the vehicle is not telematics-capable",
		policies.ReasonVehicleNotMapped:     "the vehicle is not assigned to a customer account",
		policies.ReasonMiniOutsideEU:        "CarData serves MINI vehicles only when registered in the EU",
		policies.ReasonMarketNotSupported:   "the vehicle's market is not supported",
		policies.ReasonMarketNotCovered:     "your provider has no access to the vehicle's market",
		policies.ReasonKeyNotInContainer:    "a requested key is not in the container",
		policies.ReasonSIMInactive:          "the vehicle's SIM is inactive, so it sends no data",
	}[reason]
	if msg == "" {
		msg = "access denied"
	}
	return errs.New(errs.Forbidden, reason, "%s", msg)
}
