package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft"
)

// JointLoss scripts the case a joint configuration exists for. Three
// founders, L leading, A and B following, and two spares D and E, which
// first become learners and catch up:
//
//  1. A and B are cut off from L, D and E (clients reach everyone).
//  2. L is asked to move the group to {L, D, E}. Its C_old,new needs a
//     majority of {L, A, B} as well as one of {L, D, E}: with A and B cut
//     off it cannot commit, the change does not complete, and L steps down
//     once check-quorum finds no quorum of the old half.
//  3. After a while the cut moves: L, D and E are cut off from A and B,
//     and clients write through A. A and B, still in {L, A, B}, elect a
//     leader between them and commit.
//
// A leader that committed C_old,new with the new majority alone would
// complete the change in step 2 and acknowledge writes committed by {L,
// D, E} only; A and B would then elect a leader without them and commit
// other entries at the same indexes: acknowledged writes lost, which the
// end-to-end checks catch.
func JointLoss(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes, cfg.Spares = 3, 2
	if cfg.Duration == 0 {
		cfg.Duration = 14 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		var l string
		var ab, spares []string
		peers := func(ids ...string) []asyncraft.Peer {
			var out []asyncraft.Peer
			for _, id := range ids {
				out = append(out, asyncraft.Peer{ID: id, Addr: id})
			}
			return out
		}
		// First the spares become learners (one entry; they catch up),
		// so that the change below starts its joint configuration at
		// once instead of waiting for them.
		s.At(2*time.Second, func() {
			if l = r.c.StableLeader(); l == "" {
				return
			}
			for _, id := range r.c.IDs[:3] {
				if id != l {
					ab = append(ab, id)
				}
			}
			spares = r.c.IDs[3:]
			r.members.started++
			r.c.Node(l).ChangeMembershipAsync(asyncraft.SetConfiguration(asyncraft.Configuration{
				Voters: peers(append([]string{l}, ab...)...), Learners: peers(spares...)}), func(_ uint64, err error) {
				if err == nil {
					r.members.done++
				}
			})
		})
		s.At(3500*time.Millisecond, func() {
			if l == "" || r.c.Node(l) == nil {
				return
			}
			s.Partition(ab, append([]string{l}, spares...))
			r.members.started++
			r.c.Node(l).ChangeMembershipAsync(asyncraft.SetConfiguration(asyncraft.Configuration{Voters: peers(append([]string{l}, spares...)...)}), func(_ uint64, err error) {
				if err == nil {
					r.members.done++
				}
			})
			r.steerWrites = l
			s.At(time.Second, func() {
				s.Heal()
				s.Partition(ab, append([]string{l}, spares...))
				r.steerWrites = ab[0]
			})
		})
		s.At(10*time.Second, func() {
			s.Heal()
			r.steerWrites = ""
		})
	})
}
