package chaos

import "time"

// LeaseDrift scripts the case leases must survive: the leader's clock runs
// slow (drift leaderDrift, negative) and the others' fast, and then the
// leader is cut off while clients keep reading from it in lease mode. Its
// lease, measured on its slow clock, outlasts the followers' patience,
// measured on theirs: they elect a new leader and commit writes while the
// old one may still believe its lease. The lease is safe as long as the
// drift over an election timeout stays within the nodes' MaxClockDrift
// (Config.LeaseDriftBound); beyond it, the old leader serves stale reads and
// the linearizability check catches them.
func LeaseDrift(cfg Config, leaderDrift float64) Result {
	cfg.NoNemesis = true
	if cfg.Duration == 0 {
		cfg.Duration = 12 * time.Second
	}
	if cfg.Reads == 0 {
		cfg.Reads, cfg.Appends = 0.7, 0.15
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		var l string
		s.At(3*time.Second, func() {
			if l = r.c.Leader(); l == "" {
				return
			}
			for _, id := range r.c.IDs {
				if id == l {
					s.Host(id).SetClock(0, leaderDrift)
				} else {
					s.Host(id).SetClock(0, -leaderDrift/2)
				}
			}
		})
		// Let heartbeats anchor a lease on the slow clock, then cut.
		s.At(3500*time.Millisecond, func() {
			if l != "" {
				s.Isolate(l)
			}
		})
		s.At(8*time.Second, func() { s.Heal() })
	})
}
