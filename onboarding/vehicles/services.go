package vehicles

import (
	"slices"
	"strings"
	"sync"

	"cardata/onboarding/catalog"
)

// Frequency is how often a key is transmitted: on each occurrence ("event")
// or periodically (an ISO 8601 duration).
type Frequency struct {
	Code    string // "event", "PT1M", "PT5M", "PT15M", "PT1H", "P1D"
	Seconds int    // 0 for event-driven keys
	Label   string // for people
}

// Transmission frequencies.
var (
	OnEvent     = Frequency{"event", 0, "on each occurrence"}
	EveryMinute = Frequency{"PT1M", 60, "every minute"}
	Every5Min   = Frequency{"PT5M", 300, "every 5 minutes"}
	Every15Min  = Frequency{"PT15M", 900, "every 15 minutes"}
	Hourly      = Frequency{"PT1H", 3600, "hourly"}
	Daily       = Frequency{"P1D", 86400, "daily"}
)

// Frequencies lists the transmission frequencies, most frequent first.
var Frequencies = []Frequency{OnEvent, EveryMinute, Every5Min, Every15Min, Hourly, Daily}

// FrequencyLabel describes a frequency code for people.
func FrequencyLabel(code string) string {
	for _, f := range Frequencies {
		if f.Code == code {
			return f.Label
		}
	}
	return code
}

// moreFrequent reports whether a transmits at least as often as b.
func moreFrequent(a, b Frequency) bool { return a.Seconds < b.Seconds }

// Grant enables keys, by category or by name, at a frequency.
type Grant struct {
	Category  string
	Keys      []string
	Prefix    string // every key whose name starts with it
	Frequency Frequency
}

// ConnectedService is a bookable service; an active subscription to it
// enables its keys on the vehicle.
type ConnectedService struct {
	Code        string
	Name        string
	Description string
	Drivetrains []string // empty: every drive train
	Grants      []Grant
}

// AppliesTo reports whether the service can be booked for a drive train.
func (s *ConnectedService) AppliesTo(drivetrain string) bool {
	return len(s.Drivetrains) == 0 || slices.Contains(s.Drivetrains, drivetrain)
}

// Services are the connected services on offer, in display order.
var Services = []ConnectedService{
	{Code: "cd_basic", Name: "ConnectedDrive Basic",
		Description: "Standard on every connected vehicle: vehicle data, status, mileage averages, breakdown and emergency calls.",
		Grants: []Grant{
			{Category: "basic", Frequency: Daily},
			{Category: "status", Frequency: Hourly},
			{Keys: []string{"vehicle.vehicle.averageWeeklyDistanceLongTerm", "vehicle.vehicle.averageWeeklyDistanceShortTerm",
				"vehicle.vehicle.tripCount", "vehicle.drivetrain.engine.operatingHours"}, Frequency: Daily},
			{Keys: []string{"vehicle.status.breakdownCall", "vehicle.safety.automaticEmergencyCall"}, Frequency: OnEvent},
		}},
	{Code: "teleservices", Name: "TeleServices",
		Description: "Service needs reach the workshop: condition-based service data, automatic service calls and warnings.",
		Grants: []Grant{
			{Category: "service", Frequency: Daily},
			{Keys: []string{"vehicle.status.automaticServiceCall", "vehicle.status.teleServiceCall", "vehicle.status.checkControlMessages",
				"vehicle.drivetrain.engine.oil.levelWarning", "vehicle.chassis.tirePressureMonitoring.warning",
				"vehicle.electricalSystem.battery.lowVoltageWarning"}, Frequency: OnEvent},
			{Keys: []string{"vehicle.electricalSystem.battery.voltage", "vehicle.electricalSystem.battery.stateOfCharge"}, Frequency: Every15Min},
		}},
	{Code: "remote_services", Name: "Remote Services",
		Description: "Vehicle finder, lock and open state, climate pre-conditioning and the theft alarm.",
		Grants: []Grant{
			{Category: "position", Frequency: Every5Min},
			{Prefix: "vehicle.cabin.door.", Frequency: Every15Min},
			{Prefix: "vehicle.cabin.window.", Frequency: Every15Min},
			{Keys: []string{"vehicle.cabin.sunroof.overallStatus", "vehicle.body.trunk.isOpen", "vehicle.body.trunk.isLocked",
				"vehicle.body.hood.isOpen", "vehicle.body.lights.isRunningOn", "vehicle.vehicle.preConditioning.activity",
				"vehicle.vehicle.preConditioning.remainingTime", "vehicle.vehicle.antiTheftAlarmSystem.alarm.armStatus",
				"vehicle.cabin.climate.interiorTemperature"}, Frequency: Every15Min},
			{Keys: []string{"vehicle.vehicle.antiTheftAlarmSystem.alarm.isOn", "vehicle.vehicle.antiTheftAlarmSystem.tiltDetected"}, Frequency: OnEvent},
		}},
	{Code: "connected_charging", Name: "Connected Charging",
		Description: "Charging state, battery and range of plug-in hybrids and electric vehicles.",
		Drivetrains: []string{"phev", "bev"},
		Grants: []Grant{
			{Category: "electric", Frequency: Every5Min},
			{Keys: []string{"vehicle.drivetrain.electricEngine.charging.status", "vehicle.drivetrain.electricEngine.charging.lastSession"}, Frequency: OnEvent},
			{Keys: []string{"vehicle.drivetrain.avgElectricRangeConsumption"}, Frequency: Daily},
		}},
	{Code: "driving_analysis", Name: "Driving Analysis",
		Description: "Trip results and driving style (driving-behaviour data), for eco coaching and usage-based insurance.",
		Grants: []Grant{
			{Prefix: "vehicle.trip.", Frequency: OnEvent},
			{Category: "usage", Frequency: Daily},
			{Keys: []string{"vehicle.vehicle.speed"}, Frequency: EveryMinute},
		}},
}

// ServiceByCode finds a connected service.
func ServiceByCode(code string) (*ConnectedService, bool) {
	for i := range Services {
		if Services[i].Code == code {
			return &Services[i], true
		}
	}
	return nil, false
}

var (
	grantsOnce sync.Once
	grants     map[string]map[string]Frequency // service code -> key name -> frequency
)

// ServiceKeys returns the keys a service enables with their frequency.
// Event keys always transmit on occurrence, whatever the grant says.
func ServiceKeys(code string) map[string]Frequency {
	grantsOnce.Do(func() {
		grants = map[string]map[string]Frequency{}
		cat := catalog.Default()
		for _, s := range Services {
			m := map[string]Frequency{}
			for _, g := range s.Grants {
				for _, k := range cat.Keys() {
					if !(k.Category == g.Category || slices.Contains(g.Keys, k.Name) || (g.Prefix != "" && strings.HasPrefix(k.Name, g.Prefix))) {
						continue
					}
					f := g.Frequency
					if k.IsEvent() {
						f = OnEvent
					}
					if cur, ok := m[k.Name]; !ok || moreFrequent(f, cur) {
						m[k.Name] = f
					}
				}
			}
			grants[s.Code] = m
		}
	})
	return grants[code]
}
