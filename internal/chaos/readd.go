package chaos

import (
	"time"

	"github.com/asyncraft/asyncraft"
)

// ReaddBehind scripts a member removed and added back on new data (the
// safe way back from wiped data) while another follower is cut off and
// misses both changes. Five nodes, L leading, W and F following:
//
//  1. F is cut off. W is removed on L, wiped, started as a joining node
//     under its id and added back (a learner first, then a voter).
//  2. The leadership is moved to W; then F is healed.
//  3. F still has the configuration from before the removal, and may know
//     W's earlier incarnation (from W itself or from a leader that passed
//     it on): it must not take W, now its leader, for a voter back on
//     wiped data and stop it, and it must catch up.
//
// A node that stops with an error is a violation (the node-error check);
// F's catching up is checked by the convergence check at the end.
func ReaddBehind(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes = 5
	if cfg.Duration == 0 {
		cfg.Duration = 25 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		s.At(3*time.Second, func() {
			l, w, f := r.leaderAndTwo()
			if l == "" {
				return
			}
			s.Isolate(f)
			r.say("readd-behind: %s cut off; removing %s on %s", f, w, l)
			r.c.Node(l).ChangeMembershipAsync(asyncraft.RemoveMember(w), func(_ uint64, err error) {
				r.say("readd-behind: remove %s: %s", w, errString(err))
				if err != nil {
					return
				}
				r.crash(w)
				if err := r.c.WipeAndJoin(w); err != nil {
					r.violate("restart", "%s could not start on its wiped disk: %v", w, err)
					return
				}
				s.At(time.Second, func() {
					l := r.c.Leader()
					if l == "" {
						return
					}
					r.c.Node(l).ChangeMembershipAsync(asyncraft.AddVoter(asyncraft.Peer{ID: w, Addr: w}), func(_ uint64, err error) {
						r.say("readd-behind: add %s back: %s", w, errString(err))
						if err != nil {
							return
						}
						s.At(time.Second, func() {
							l := r.c.Leader()
							if l == "" {
								return
							}
							r.c.Node(l).TransferLeadershipAsync(w, func(err error) {
								r.say("readd-behind: transfer to %s: %s; healing %s", w, errString(err), f)
								s.Heal()
							})
						})
					})
				})
			})
		})
	})
}
