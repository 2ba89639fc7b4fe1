package providerapi

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"cardata/onboarding/webhooks"
	"cardata/policies/consent"
)

// ConsentEvents turns the consent module's events into pushes (the
// consent service's Notify): consent.granted and consent.revoked,
// container.approved and container.rejected. A consent that ends drops the
// queued data pushes flowing under it at once.
func ConsentEvents(hooks *webhooks.Service) consent.Notifier {
	return func(ctx context.Context, tx *gorm.DB, e consent.Event) error {
		if e.ConsentID != 0 && (e.Type == "consent.revoked" || e.Type == "consent.expired") {
			if _, err := hooks.DropForConsent(ctx, tx, e.ConsentID, strings.ReplaceAll(e.Type, ".", "_")); err != nil {
				return err
			}
		}
		var data any
		switch e.Type {
		case webhooks.TypeConsentGranted, webhooks.TypeConsentRevoked:
			data = map[string]any{"consentId": e.ConsentID, "vin": e.VIN, "containerId": e.ContainerID,
				"containerVersion": e.Version, "state": e.State, "at": e.At.UTC()}
		case webhooks.TypeContainerApproved, webhooks.TypeContainerRejected:
			data = map[string]any{"containerId": e.ContainerID, "version": e.Version, "state": e.State, "at": e.At.UTC()}
		default:
			return nil
		}
		id, err := hooks.Emit(ctx, tx, webhooks.NewEvent{ProviderID: e.ProviderID, Type: e.Type, VIN: e.VIN, ContainerID: e.ContainerID,
			ContainerVersion: e.Version, Data: data})
		if err == nil && id != "" {
			hooks.Kick()
		}
		return err
	}
}
