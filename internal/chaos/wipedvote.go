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
// heal the script takes the safe way back (docs/membership.md): V is
// removed, joined on new data and added back. (Not RejoinTerm: W
// committed entries with V alone, so after the wipe only W holds them,
// and a V rejoined with an empty log could help L, which lacks them, win
// the next term: seeds 32 and 51 of 100 lost committed entries.) With the
// planted wiped-data-unchecked, the election-safety check sees two
// leaders of one term.
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
				s.At(8*time.Second, func() { r.healWiped("wiped-vote", v) })
			})
		})
	})
}

// leaderAndTwo returns a stable leader and the first two other nodes in
// id order (l is "" if no leader is stable).
func (r *run) leaderAndTwo() (l, a, b string) {
	if l = r.c.StableLeader(); l == "" {
		return "", "", ""
	}
	for _, id := range r.c.IDs {
		switch {
		case id == l:
		case a == "":
			a = id
		case b == "":
			b = id
		}
	}
	return l, a, b
}

// say writes a scenario's step to the trace, if any.
func (r *run) say(format string, args ...any) {
	if w := r.cfg.Trace; w != nil {
		fmt.Fprintf(w, "%12.6fs scenario %s\n", r.c.Sim.Now().Seconds(), fmt.Sprintf(format, args...))
	}
}

// WipedFollower scripts the case WipedVote does not: the wiped voter is one
// the node that later asks for its vote never heard from itself. Three
// nodes, L leading term t, followed by F and G:
//
//  1. G is cut off (its term stays t: pre-votes fail). L crashes and
//     restarts; a leader is elected in term t+1 among L and F, so F
//     voted in t+1 (for L, or for itself).
//  2. F crashes, its disk is wiped, and it restarts on empty data with
//     the group's peers; L is cut off, and G can talk to F only.
//  3. G campaigns in t+1; F, which no longer remembers its vote, would
//     grant it: two leaders in term t+1.
//
// G heard only L's messages, never F's: it knows F's incarnation only if
// a leader passed it on (node/incarnation.go), and then it refuses F,
// which fails with ErrWipedData. At the heal the script takes the safe
// way back (docs/membership.md, "Wiped data"): F is removed on the
// leader, wiped again, started as a joining node and added back, which
// must not be refused. With the planted incarnation-relay-off, the
// election-safety check sees two leaders of one term.
func WipedFollower(cfg Config) Result {
	cfg.NoNemesis = true
	cfg.Nodes = 3
	if cfg.Duration == 0 {
		cfg.Duration = 25 * time.Second
	}
	return RunWith(cfg, func(r *run) {
		s := r.c.Sim
		s.At(3*time.Second, func() {
			l, f, g := r.leaderAndTwo()
			if l == "" {
				return
			}
			s.Isolate(g)
			r.crash(l)
			r.restart(l)
			s.At(4*time.Second, func() {
				w := r.c.Leader()
				r.crash(f)
				r.c.Wipe(f, 0)
				r.restart(f)
				s.Heal()
				s.Isolate(l)
				r.say("wiped-follower: %s cut off, %s restarted, %q leads term t+1; %s wiped and restarted, %s cut off", g, l, w, f, l)
				s.At(6*time.Second, func() { r.healWiped("wiped-follower", f) })
			})
		})
	})
}

// healWiped heals the network, counts the wiped voter id if it failed
// with ErrWipedData (Result.WipedRefused), and two seconds later takes it
// back the safe way (removeAndAddBack).
func (r *run) healWiped(scenario, id string) {
	r.c.Sim.Heal()
	st := r.c.Node(id).Status()
	failed := st.Role == asyncraft.Errored && errors.Is(st.Err, asyncraft.ErrWipedData)
	if failed {
		r.wipedRefused++
	}
	r.say("%s: healed; %s failed with ErrWipedData: %v (status %v)", scenario, id, failed, st.Err)
	r.c.Sim.At(2*time.Second, func() { r.removeAndAddBack(id) })
}

// removeAndAddBack takes a wiped voter back the safe way: removed on the
// leader, wiped and started as a joining node, then added back (as a
// learner first).
func (r *run) removeAndAddBack(id string) {
	l := r.c.Leader()
	if l == "" || l == id {
		r.say("remove %s: no leader to ask", id)
		return
	}
	r.c.Node(l).ChangeMembershipAsync(asyncraft.RemoveMember(id), func(_ uint64, err error) {
		r.say("remove %s on %s: %s", id, l, errString(err))
		if err != nil {
			return
		}
		r.crash(id)
		if err := r.c.WipeAndJoin(id); err != nil {
			r.violate("restart", "%s could not start on its wiped disk: %v", id, err)
			return
		}
		r.c.Sim.At(time.Second, func() {
			l := r.c.Leader()
			if l == "" {
				r.say("add %s back: no leader to ask", id)
				return
			}
			r.c.Node(l).ChangeMembershipAsync(asyncraft.AddVoter(asyncraft.Peer{ID: id, Addr: id}), func(_ uint64, err error) {
				r.say("add %s back on %s: %s", id, l, errString(err))
			})
		})
	})
}
