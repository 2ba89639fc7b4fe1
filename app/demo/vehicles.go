package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"cardata/app"
	"cardata/app/ingest"
	"cardata/onboarding/vehicles"
	"cardata/policies/errs"
)

// Demo ingest gateway and its token (documented in README and the issue).
const (
	GatewayName  = "demo-gateway"
	IngestToken  = "demo-ingest-token"
	FleetSize    = 2000
	AnnaEmail    = "anna@demo.example"
	AnnaVIN      = "WBA11DS0XNJ000001" // BMW X1 xDrive25e registered in Austria
	MININorway   = "WMW21GA0XNT000002"
	MINISwitz    = "WMW11DF0XNT000003"
	NoTelematics = "WBA31AC0XNJ000004"
	Unmapped     = "WBA51FH0XNJ000005"
)

type demoModel struct {
	brand, model, drivetrain, wmi string
	weight                        int
}

var demoModels = []demoModel{
	{"BMW", "118i", "combustion", "WBA", 8}, {"BMW", "320d Touring", "combustion", "WBA", 12}, {"BMW", "330e", "phev", "WBA", 8},
	{"BMW", "X1 xDrive25e", "phev", "WBA", 8}, {"BMW", "X3 xDrive20d", "combustion", "WBA", 10}, {"BMW", "X5 xDrive50e", "phev", "WBA", 5},
	{"BMW", "520d", "combustion", "WBA", 7}, {"BMW", "i4 eDrive40", "bev", "WBY", 7}, {"BMW", "iX3", "bev", "WBY", 6}, {"BMW", "iX xDrive50", "bev", "WBY", 4},
	{"MINI", "Cooper", "combustion", "WMW", 8}, {"MINI", "Cooper S", "combustion", "WMW", 5}, {"MINI", "Cooper SE", "bev", "WMW", 6},
	{"MINI", "Countryman SE ALL4", "phev", "WMW", 4},
}

type demoMarket struct {
	code   string
	weight int
}

// demoMarkets weights the markets of registration roughly like a fleet.
var demoMarkets = []demoMarket{
	{"DE", 25}, {"FR", 8}, {"IT", 8}, {"GB", 8}, {"ES", 6}, {"AT", 5}, {"NL", 5}, {"BE", 4}, {"CH", 4}, {"SE", 3}, {"NO", 3},
	{"PL", 3}, {"DK", 2}, {"FI", 1}, {"PT", 2}, {"IE", 1}, {"CZ", 1}, {"HU", 1}, {"GR", 1}, {"RO", 1}, {"LU", 1}, {"SK", 1},
	{"SI", 1}, {"HR", 1}, {"BG", 1}, {"EE", 1}, {"LV", 1}, {"LT", 1}, {"MT", 1}, {"CY", 1}, {"LI", 1}, {"IS", 1},
}

var demoFirst = []string{"Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Katrin", "Luca",
	"Marta", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tanja", "Ugo", "Vera", "Willem", "Yara", "Zoe"}
var demoLast = []string{"Müller", "Schmidt", "Rossi", "Dubois", "García", "Jansen", "Nowak", "Andersen", "Silva", "Novák",
	"Horvat", "Kowalski", "Eriksson", "Murphy", "Papadopoulos", "Berger", "Meier", "Lindqvist", "Moreau", "Costa"}

// demoVIN builds a VIN whose position 9 carries the check digit (so it is
// valid in every market) from a manufacturer code, a model code and a serial.
func demoVIN(wmi, vds string, serial int) string {
	v := []byte(fmt.Sprintf("%s%s0NJ%06d", wmi, vds, serial)) // 3+5+1+2+6 = 17
	if wmi == "WMW" {
		v[10] = 'T' // plant Oxford
	}
	v[8] = vehicles.CheckDigit(string(v))
	return string(v)
}

func pick[T any](r *rand.Rand, items []T, weight func(T) int) T {
	total := 0
	for _, it := range items {
		total += weight(it)
	}
	n := r.IntN(total)
	for _, it := range items {
		if n -= weight(it); n < 0 {
			return it
		}
	}
	return items[len(items)-1]
}

// Vehicles loads the vehicles module's demo data alone (its test runs it
// without the other modules' steps): see demoVehicles.
func Vehicles(ctx context.Context, s *app.Services, out io.Writer) error {
	return loader{s}.demoVehicles(ctx, out)
}

// demoVehicles registers the demo fleet (about 2,000 vehicles, BMW and MINI
// across the markets, some not eligible), Anna's BMW in Austria with an
// expired and a future subscription, the demo ingest gateway, and recent
// readings sent through the real ingest. Idempotent: vehicles already
// registered are skipped and readings are only sent for a fresh fleet.
func (a loader) demoVehicles(ctx context.Context, out io.Writer) error {
	if _, err := a.Ingest.FindGateway(ctx, GatewayName); errs.KindOf(err) == errs.NotFound {
		if _, _, err := a.Ingest.CreateGateway(ctx, GatewayName, IngestToken); err != nil {
			return err
		}
		fmt.Fprintf(out, "demo: ingest gateway %s, bearer token %s\n", GatewayName, IngestToken)
	} else if err != nil {
		return err
	}

	now := time.Now().UTC().Truncate(time.Minute)
	month := func(n int) time.Time { return now.AddDate(0, n, 0) }
	ptr := func(t time.Time) *time.Time { return &t }
	fleet := []vehicles.FleetVehicle{
		{NewVehicle: vehicles.NewVehicle{VIN: AnnaVIN, Brand: "BMW", Model: "X1 xDrive25e", Drivetrain: "phev", Market: "AT", TelematicsCapable: true, SIMActive: true},
			HolderEmail: AnnaEmail, HolderName: "Anna Berger", Subscriptions: []vehicles.NewSubscription{
				{Service: "cd_basic", StartsAt: month(-30)},
				{Service: "teleservices", StartsAt: month(-30)},
				{Service: "remote_services", StartsAt: month(-12), EndsAt: ptr(month(24))},
				{Service: "driving_analysis", StartsAt: month(-12), EndsAt: ptr(month(-1))}, // expired last month
				{Service: "connected_charging", StartsAt: month(1)},                         // booked, starts next month
			}},
		{NewVehicle: vehicles.NewVehicle{VIN: MININorway, Brand: "MINI", Model: "Cooper SE", Drivetrain: "bev", Market: "NO", TelematicsCapable: true, SIMActive: true},
			HolderEmail: "customer1@demo.local", HolderName: "Nils Andersen", Subscriptions: []vehicles.NewSubscription{{Service: "cd_basic", StartsAt: month(-6)}, {Service: "connected_charging", StartsAt: month(-6)}}},
		{NewVehicle: vehicles.NewVehicle{VIN: MINISwitz, Brand: "MINI", Model: "Cooper", Drivetrain: "combustion", Market: "CH", TelematicsCapable: true, SIMActive: true},
			HolderEmail: "customer2@demo.local", HolderName: "Vera Meier", Subscriptions: []vehicles.NewSubscription{{Service: "cd_basic", StartsAt: month(-6)}}},
		{NewVehicle: vehicles.NewVehicle{VIN: NoTelematics, Brand: "BMW", Model: "118i", Drivetrain: "combustion", Market: "DE"},
			HolderEmail: "customer3@demo.local", HolderName: "Jonas Schmidt"},
		{NewVehicle: vehicles.NewVehicle{VIN: Unmapped, Brand: "BMW", Model: "520d", Drivetrain: "combustion", Market: "FR", TelematicsCapable: true, SIMActive: true},
			Subscriptions: []vehicles.NewSubscription{{Service: "cd_basic", StartsAt: month(-3)}}},
	}
	r := rand.New(rand.NewPCG(2025, 7))
	for i := len(fleet); i < FleetSize; i++ {
		m := pick(r, demoModels, func(m demoModel) int { return m.weight })
		market := pick(r, demoMarkets, func(m demoMarket) int { return m.weight }).code
		vds := fmt.Sprintf("%c%d%c%c%d", "ABCDEFGHJK"[r.IntN(10)], r.IntN(10), "ABCDEFGHJK"[r.IntN(10)], "ABCDEFGHJK"[r.IntN(10)], r.IntN(10))
		fv := vehicles.FleetVehicle{NewVehicle: vehicles.NewVehicle{VIN: demoVIN(m.wmi, vds, i+1), Brand: m.brand, Model: m.model,
			Drivetrain: m.drivetrain, Market: market, TelematicsCapable: r.IntN(100) >= 3}}
		fv.SIMActive = fv.TelematicsCapable && r.IntN(100) >= 3
		if r.IntN(100) >= 4 {
			// about 1,200 customers, some with two or three vehicles
			n := 4 + r.IntN(1200)
			fv.HolderEmail = fmt.Sprintf("customer%d@demo.local", n)
			fv.HolderName = demoFirst[n%len(demoFirst)] + " " + demoLast[(n/len(demoFirst))%len(demoLast)]
		}
		if fv.TelematicsCapable {
			since := now.AddDate(0, -1-r.IntN(48), -r.IntN(28))
			fv.Subscriptions = append(fv.Subscriptions, vehicles.NewSubscription{Service: "cd_basic", StartsAt: since})
			if r.IntN(100) < 60 {
				sub := vehicles.NewSubscription{Service: "remote_services", StartsAt: since}
				if r.IntN(10) == 0 { // lapsed
					sub.EndsAt = ptr(now.AddDate(0, 0, -1-r.IntN(90)))
					if !sub.EndsAt.After(since) {
						sub.EndsAt = ptr(since.AddDate(0, 0, 1))
					}
				}
				fv.Subscriptions = append(fv.Subscriptions, sub)
			}
			if r.IntN(100) < 40 {
				fv.Subscriptions = append(fv.Subscriptions, vehicles.NewSubscription{Service: "teleservices", StartsAt: since})
			}
			if m.drivetrain != "combustion" && r.IntN(100) < 80 {
				fv.Subscriptions = append(fv.Subscriptions, vehicles.NewSubscription{Service: "connected_charging", StartsAt: since})
			}
			if r.IntN(100) < 25 {
				start := since
				if r.IntN(5) == 0 {
					start = now.AddDate(0, 0, 1+r.IntN(30)) // booked, not started yet
				}
				fv.Subscriptions = append(fv.Subscriptions, vehicles.NewSubscription{Service: "driving_analysis", StartsAt: start})
			}
		}
		fleet = append(fleet, fv)
	}
	res, err := a.Vehicles.ImportFleet(ctx, fleet)
	if err != nil {
		return err
	}
	if res.Vehicles == 0 {
		return nil
	}
	fmt.Fprintf(out, "demo: %d vehicles, %d customer accounts, %d subscriptions (Anna's BMW %s in AT; MINI in NO %s and CH %s, "+
		"no telematics %s, unmapped %s are not eligible)\n", res.Vehicles, res.Accounts, res.Subscriptions,
		AnnaVIN, MININorway, MINISwitz, NoTelematics, Unmapped)
	n, err := a.demoReadings(ctx, fleet, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: %d readings sent through the ingest\n", n)
	return nil
}

// demoReadings sends recent readings of every connected demo vehicle, and
// two days of history for Anna's car, through the real ingest service.
func (a loader) demoReadings(ctx context.Context, fleet []vehicles.FleetVehicle, now time.Time) (int, error) {
	var vins, drivetrains []string
	for _, fv := range fleet {
		if fv.TelematicsCapable && fv.SIMActive && fv.VIN != AnnaVIN {
			vins, drivetrains = append(vins, fv.VIN), append(drivetrains, fv.Drivetrain)
		}
	}
	total := 0
	send := func(f *ingest.Fleet, snapshots int, at time.Time) error {
		n, err := a.demoSend(ctx, f, snapshots, at)
		total += n
		return err
	}
	all := ingest.NewFleet(vins, drivetrains, nil, 11)
	for _, ago := range []time.Duration{3 * time.Hour, 90 * time.Minute, 10 * time.Minute} {
		if err := send(all, len(vins), now.Add(-ago)); err != nil {
			return total, err
		}
	}
	anna := ingest.NewFleet([]string{AnnaVIN}, []string{"phev"}, nil, 12)
	anna.LateShare = 0
	for at := now.Add(-48 * time.Hour); !at.After(now); at = at.Add(30 * time.Minute) {
		if err := send(anna, 1, at); err != nil {
			return total, err
		}
	}
	return total, nil
}

// demoSend sends one snapshot of each of the fleet's first vehicles read
// at at through the real ingest service and returns the signals accepted.
func (a loader) demoSend(ctx context.Context, f *ingest.Fleet, snapshots int, at time.Time) (int, error) {
	body, _ := f.AppendSnapshots(nil, snapshots, at)
	signals, err := ingest.DecodeJSON(body, ingest.MaxSignals, nil)
	if err != nil {
		return 0, err
	}
	res, err := a.Ingest.Ingest(ctx, signals)
	if err != nil {
		return 0, err
	}
	if len(res.Rejected) > 0 {
		return res.Accepted, fmt.Errorf("demo readings rejected: %+v", res.Rejected[0])
	}
	return res.Accepted, nil
}
