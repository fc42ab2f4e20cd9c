package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Figure8 scripts the scenario of Figure 8 of the Raft paper (§5.4.2) on
// three nodes, reacting to the messages it sees so that it unfolds the
// same way whatever the seed:
//
//  1. The first leader, A, is cut off; clients still reach it, so it
//     appends entries (X) that no one else gets.
//  2. The other two elect B. The moment B first speaks, it is cut off too:
//     its no-op (Y, at X's first index) reaches no one. A and the third
//     node, C, are reconnected, and A's disk is made slow.
//  3. A, whose log is the longest, wins the next term and sends C its old
//     entries X and its new no-op Z. C acknowledges at once; A's own write
//     of Z takes 200 ms. A correct leader waits for Z: entries of earlier
//     terms are committed only through an entry of the leader's own term.
//  4. 50 ms after A first speaks in its new term, A crashes, losing Z, and
//     restarts; C is cut off and B reconnected. B, whose last entry (Y)
//     is of a later term than A's (X), wins A's vote and overwrites X.
//
// With a correct implementation, X was never committed, so overwriting it
// is harmless and every check passes. A leader that commits X by counting
// replicas (the planted fault CommitPriorTerm) acknowledges X to clients
// in step 3, and the checks catch the loss in step 4.
func Figure8(cfg Config) Result {
	cfg.Nodes, cfg.NoNemesis = 3, true
	if cfg.Duration == 0 {
		cfg.Duration = 25 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		var a, b, c string
		var aTerm uint64
		phase := 0
		s.At(3*time.Second, func() {
			if a = r.c.Leader(); a != "" {
				s.Isolate(a)
				aTerm = r.c.Node(a).Status().Term
				phase = 1
			}
		})
		r.watch(func(from, to actors.Ref, msg any) {
			e, ok := msg.(*raftpb.Envelope)
			if !ok || (e.GetAppendRequest() == nil && e.GetHeartbeatRequest() == nil) {
				return
			}
			switch {
			case phase == 1 && e.From != a: // B speaks as leader for the first time
				b = e.From
				for _, id := range r.c.IDs {
					if id != a && id != b {
						c = id
					}
				}
				s.Heal()
				s.Isolate(b) // this very message is lost too
				s.Host(a).SetDisk(sim.DiskConfig{SyncMin: 200 * time.Millisecond, SyncMax: 200 * time.Millisecond})
				phase = 2
			case phase == 2 && e.From == a && e.Term > aTerm: // A leads again
				phase = 3
				s.At(50*time.Millisecond, func() {
					r.crash(a)
					s.Host(a).SetDisk(sim.DiskConfig{})
					r.restart(a)
					s.Heal()
					s.Isolate(c)
					phase = 4
				})
			}
		})
		s.At(cfg.Duration-time.Second, func() { s.Heal() })
	})
}
