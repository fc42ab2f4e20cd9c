package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft"
)

// TransferLease scripts a leadership transfer whose old leader does not
// hear the new one at once. Three nodes, L leading, T and O following,
// clients reading from L by lease:
//
//  1. The link from T to L is cut (L still reaches T and O).
//  2. L transfers its leadership to T: T campaigns at TimeoutNow, O grants
//     the flagged vote although it still hears L, and T leads; L, which
//     hears neither T's vote request nor its heartbeats, learns of the new
//     term only from O's next answer.
//
// Until then L still believes it leads. A leader that kept its lease
// through the transfer would answer lease reads that miss T's writes; the
// lease-safety check sees it hold a valid lease when T first speaks.
func TransferLease(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes = 3
	if cfg.Duration == 0 {
		cfg.Duration = 8 * time.Second
	}
	if len(cfg.ReadPaths) == 0 {
		cfg.ReadPaths = []asyncraft.ReadMode{asyncraft.ReadLease}
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		s.At(3*time.Second, func() {
			l := r.c.StableLeader()
			if l == "" {
				return
			}
			var t string
			for _, id := range r.c.IDs {
				if id != l {
					t = id
					break
				}
			}
			s.Block(t, l)
			r.steerReads = l
			r.members.transfers++
			r.c.Node(l).TransferLeadershipAsync(t, func(err error) {
				if err == nil {
					r.members.transferred++
				}
			})
			s.At(500*time.Millisecond, func() {
				s.Heal()
				r.steerReads = ""
			})
		})
	})
}
