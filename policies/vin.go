package policies

import "strings"

// NormalizeVIN trims surrounding space and upper-cases a vehicle
// identification number: people type VINs in lower case, vehicles never
// send them that way. It is the one normalization every module uses (the
// vehicle registry, consents, the provider API), so a VIN typed anywhere
// finds the same vehicle.
func NormalizeVIN(vin string) string { return strings.ToUpper(strings.TrimSpace(vin)) }
