package chaos

import (
	"errors"
	"fmt"
	"time"

	"github.com/asyncraft/asyncraft"
)

// WipedVote scripts a voter that comes back on a wiped disk under its old
// id, in the term it last voted in. Three nodes, L leading term t:
//
//  1. L crashes; the other two elect W in term t+1, V voting for it.
//  2. W is cut off; V crashes, its disk is wiped, and it restarts on
//     empty data with the group's peers (as an operator who replaced the
//     disk and started the node again would); L restarts.
//  3. L, whose term is t, campaigns in t+1; V, which no longer remembers
//     its vote, would grant it: two leaders in term t+1.
//
// L heard V's earlier data (V followed it in term t) and remembers its
// incarnation, so it refuses V, and V fails with ErrWipedData. At the
// heal the script repairs V as docs/membership.md says: wiped again and
// restarted with RejoinTerm, the highest term of the others, so that it
// votes only in later terms. With the planted wiped-data-unchecked, the
// election-safety check sees two leaders of one term.
func WipedVote(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes = 3
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		var l, w, v string
		s.At(3*time.Second, func() {
			if l = r.c.StableLeader(); l == "" {
				return
			}
			r.crash(l)
			s.At(4*time.Second, func() {
				if w = r.c.StableLeader(); w == "" {
					return
				}
				for _, id := range r.c.IDs {
					if id != l && id != w {
						v = id
					}
				}
				s.Isolate(w)
				r.crash(v)
				r.c.Wipe(v, 0)
				r.restart(v)
				r.restart(l)
				r.say("wiped-vote: %s crashed, %s leads and is cut off, %s wiped and restarted, %s restarted", l, w, v, l)
				s.At(8*time.Second, func() {
					s.Heal()
					var term uint64
					for _, id := range r.c.Up() {
						if id != v {
							term = max(term, r.c.Node(id).Status().Term)
						}
					}
					st := r.c.Node(v).Status()
					failed := st.Role == asyncraft.Errored && errors.Is(st.Err, asyncraft.ErrWipedData)
					if failed {
						r.wipedRefused++
					}
					r.say("wiped-vote: healed; %s failed with ErrWipedData: %v (status %v); rejoining with RejoinTerm %d", v, failed, st.Err, term)
					r.crash(v)
					r.c.Wipe(v, term)
					r.restart(v)
				})
			})
		})
	})
}

// say writes a scenario's step to the trace, if any.
func (r *run) say(format string, args ...any) {
	if w := r.cfg.Trace; w != nil {
		fmt.Fprintf(w, "%12.6fs scenario %s\n", r.c.Sim.Now().Seconds(), fmt.Sprintf(format, args...))
	}
}
