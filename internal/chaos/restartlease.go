package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft"
)

// RestartLease scripts the case that broke leases when voters could vote
// right after a restart. Three nodes, L leading, A and B following:
//
//  1. The links between L and B are cut both ways; A still hears L and
//     acknowledges its heartbeats, so L's lease keeps being extended by
//     the quorum {L, A}.
//  2. After cut (just under an election timeout), A crashes and restarts
//     at once, and L is isolated.
//  3. B, which has not heard from L since the cut, campaigns. A promised,
//     by acknowledging L's last heartbeat, not to help elect anyone until
//     an election timeout after it; a restarted A must keep that promise
//     although it no longer remembers it.
//
// While cut, clients only read (so B's log stays as up to date as A's), from
// L with leases; from the restart on they write through B. If A
// votes at once after its restart, B commits writes while L still believes
// its lease, and L answers reads that miss them: the linearizability check
// catches it.
func RestartLease(cfg Config, cut time.Duration) Result {
	cfg.NoNemesis = true
	if cfg.Duration == 0 {
		cfg.Duration = 12 * time.Second
	}
	if cfg.Reads == 0 {
		cfg.Reads, cfg.Appends = 0.6, 0.2
	}
	if len(cfg.ReadPaths) == 0 {
		cfg.ReadPaths = []asyncraft.ReadMode{asyncraft.ReadLease}
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		var l, a, b string
		s.At(3*time.Second, func() {
			if l, a, b = r.leaderAndTwo(); l == "" {
				return
			}
			s.Block(l, b)
			s.Block(b, l)
			// No writes while cut, so that B's log stays as up to date
			// as A's; reads go to L.
			r.noWrites, r.steerReads = true, l
			s.At(cut, func() {
				r.crash(a)
				r.restart(a)
				s.Isolate(l)
				r.noWrites, r.steerWrites = false, b
			})
		})
		s.At(8*time.Second, func() {
			s.Heal()
			r.steerReads, r.steerWrites = "", ""
		})
	})
}
