package ingest

import (
	"context"
	"strings"
	"sync"
	"time"

	"cardata/policies/errs"
)

// sandboxSim is the simulator of the providers' sandboxes: one Fleet over
// every simulated vehicle that can send (telematics-capable, SIM active),
// kept between runs so odometers grow and positions move on, rebuilt when
// a fleet is added.
type sandboxSim struct {
	mu    sync.Mutex
	fleet *Fleet
	vins  string // the fleet's VINs, joined: a new fleet rebuilds it
}

// SimulateSandbox keeps the simulated fleets' readings fresh: one snapshot
// of every simulated vehicle that can send, read now, through the ingest
// itself (the same validation, latest values and vehicle events as a real
// gateway's batch, so position updates and service calls reach the
// providers' sandbox webhooks as real ones reach theirs). It returns the
// readings accepted. The sandbox job calls it every minute.
func (s *Service) SimulateSandbox(ctx context.Context) (int, error) {
	var rows []struct {
		VIN        string
		Drivetrain string
	}
	if err := s.DB.WithContext(ctx).Raw(`SELECT vin, drivetrain FROM vehicles
		WHERE sandbox_provider_id IS NOT NULL AND telematics_capable AND sim_active ORDER BY vin`).Scan(&rows).Error; err != nil {
		return 0, errs.Wrap(err, "sandbox fleet")
	}
	if len(rows) == 0 {
		return 0, nil
	}
	vins, dts := make([]string, len(rows)), make([]string, len(rows))
	for i, r := range rows {
		vins[i], dts[i] = r.VIN, r.Drivetrain
	}
	key := strings.Join(vins, ",")
	s.sim.mu.Lock()
	if s.sim.fleet == nil || s.sim.vins != key {
		s.sim.fleet = NewFleet(vins, dts, nil, uint64(time.Now().UnixNano()))
		s.sim.fleet.LateShare = 0 // the sandbox's readings arrive in order
		s.sim.vins = key
	}
	body, n := s.sim.fleet.AppendSnapshots(nil, len(vins), s.now())
	s.sim.mu.Unlock()
	sigs, err := DecodeJSON(body, n+1, nil)
	if err != nil {
		return 0, err
	}
	res, err := s.Ingest(ctx, sigs)
	if err != nil {
		return 0, err
	}
	return res.Accepted, nil
}
