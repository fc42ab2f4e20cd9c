package chaos

import (
	"fmt"
	"slices"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
)

// The membership nemesis changes the configuration on the leader, one
// change at a time, among the founding members and the spares (nodes that
// started to join): the group grows and shrinks between two and five
// voters, learners come and go or are promoted (by a change, or by the
// leader once a learner marked for it has caught up), voters are replaced
// one or several at once, and the leader removes itself. New voters
// catch up as learners first. A removed node keeps running with its data
// and may be added again under its id; or, once its removal committed, it
// comes back on a wiped disk as a joining node under its id. Each change runs on whatever the
// other nemeses do meanwhile (crashes inside a joint configuration,
// partitions, installs to a new member).

// membershipStats counts the changes and their outcomes.
type membershipStats struct {
	started, done, failed, unknown int
	// inFlight: a change was started and its callback has not run (the
	// node may have crashed: then it never runs).
	inFlight bool
	// Leadership transfers: started, ended with the target leading, and
	// those not answered yet by node life.
	transfers, transferred int
	pending                map[string]time.Duration // life key -> start
}

func ids(ps []asyncraft.Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func (n *nemesis) membership() {
	r := n.r
	l := r.c.Leader()
	if l == "" || r.members.inFlight && n.rnd.IntN(4) != 0 {
		return // a change is probably under way (its node may have crashed)
	}
	if n.rnd.IntN(4) == 0 {
		n.transfer(l)
		return
	}
	node := r.c.Node(l)
	cfg := node.Status().Configuration
	if cfg.Joint() {
		return
	}
	voters, learners := ids(cfg.Voters), ids(cfg.Learners)
	var outside []string
	for _, id := range r.c.IDs {
		if !slices.Contains(voters, id) && !slices.Contains(learners, id) {
			outside = append(outside, id)
		}
	}
	any := func(ids []string) string { return ids[n.rnd.IntN(len(ids))] }
	peer := func(id string) asyncraft.Peer { return asyncraft.Peer{ID: id, Addr: id} }
	var m asyncraft.MembershipChange
	switch k := n.rnd.IntN(12); {
	case k == 0 && len(outside) > 0 && len(voters) < 5:
		m = asyncraft.AddVoter(peer(any(outside)))
	case k == 1 && len(outside) > 0:
		m = asyncraft.AddLearner(peer(any(outside)))
	case k == 2 && len(learners) > 0 && len(voters) < 5:
		m = asyncraft.PromoteLearner(any(learners))
	case k == 3 && len(voters) > 2:
		m = asyncraft.RemoveMember(any(voters))
	case k == 4 && len(learners) > 0:
		m = asyncraft.RemoveLearner(any(learners))
	case k == 5 && len(outside) > 0:
		m = asyncraft.ReplaceVoter(any(voters), peer(any(outside)))
	case k == 6 && len(voters) > 2:
		m = asyncraft.RemoveMember(l)
	case k == 9 && len(outside) > 0:
		m = asyncraft.AddLearnerToPromote(peer(any(outside)))
	case k == 11 && len(outside) > 0:
		// A node outside the configuration, once its removal committed,
		// comes back on a wiped disk under its id, as a joining node: the
		// safe way back (docs/membership.md, "Wiped data"). Added again
		// later, it must not be taken for a wiped voter.
		st := node.Status()
		x := any(outside)
		if st.ConfigurationIndex > st.Commit || r.c.Node(x) == nil {
			return
		}
		n.say("wipe %s (outside %v) and start it as a joining node", x, cfg)
		r.crash(x)
		if err := r.c.WipeAndJoin(x); err != nil {
			r.violate("restart", "%s could not start on its wiped disk: %v", x, err)
		}
		return
	case k == 10:
		// A priority (0 to 2) for any member: the leaders that follow
		// hand their leadership to the voters of the highest.
		m = asyncraft.SetPriority(any(append(voters, learners...)), uint32(n.rnd.IntN(3)))
	case k == 7 || k == 8:
		// Any three to five of all the nodes as voters, the learners
		// kept where they are not made voters: several voters change at
		// once, and both halves of the joint configuration matter.
		all := slices.Clone(r.c.IDs)
		n.rnd.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		size := min(len(all), 3+n.rnd.IntN(3))
		target := asyncraft.Configuration{}
		for _, id := range all[:size] {
			target.Voters = append(target.Voters, peer(id))
		}
		for _, id := range learners {
			if !slices.Contains(all[:size], id) {
				target.Learners = append(target.Learners, peer(id))
			}
		}
		m = asyncraft.SetConfiguration(target)
	default:
		return
	}
	r.members.started++
	r.members.inFlight = true
	n.say("on %s: %v (configuration %v)", l, m, cfg)
	node.ChangeMembershipAsync(m, func(index uint64, err error) {
		r.members.inFlight = false
		switch {
		case err == nil:
			r.members.done++
		case closure.StatusOf(err).Indeterminate():
			r.members.unknown++
		default:
			r.members.failed++
		}
		n.say("%v on %s: index %d, %v", m, l, index, errString(err))
	})
}

// transfer asks leader l to hand its leadership to a voter (named, or
// the most up-to-date one). Every transfer must end within an election
// timeout and a margin for ticks, unless its node crashes first.
func (n *nemesis) transfer(l string) {
	r := n.r
	cfg := r.c.Node(l).Status().Configuration
	to := ""
	if vs := ids(cfg.Voters); n.rnd.IntN(3) != 0 && len(vs) > 0 {
		to = vs[n.rnd.IntN(len(vs))]
	}
	if r.members.pending == nil {
		r.members.pending = map[string]time.Duration{}
	}
	key := lifeKey(l, r.c.Life(l))
	if _, busy := r.members.pending[key]; busy {
		return
	}
	start := r.c.Sim.Now()
	r.members.pending[key] = start
	r.members.transfers++
	n.say("on %s: transfer leadership to %q", l, to)
	// The node counts an election timeout in its own ticks: allow for its
	// clock's drift, a tick, and the pauses it is given meanwhile.
	bound := time.Duration(float64(r.cfg.ElectionTimeout)*(1+r.cfg.MaxDrift)) + 100*time.Millisecond
	paused := r.paused[l]
	if until := r.pausedUntil[l]; until > start {
		bound += until - start // paused now: the request waits
	}
	r.c.Node(l).TransferLeadershipAsync(to, func(err error) {
		delete(r.members.pending, key)
		took := r.c.Sim.Now() - start - (r.paused[l] - paused)
		if err == nil {
			r.members.transferred++
		}
		if took > bound {
			r.violate("transfer bound", "the transfer from %s to %q ended after %v (bound %v): %v", l, to, took, bound, err)
		}
		n.say("transfer from %s to %q after %v: %v", l, to, took, errString(err))
	})
}

// checkTransfers: every transfer whose node did not crash was answered.
func (r *run) checkTransfers() {
	for key, start := range r.members.pending {
		if !r.crashed[key] {
			r.violate("transfer bound", "the transfer started at %v by %s was never answered", start, key)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "done"
	}
	return fmt.Sprint(err)
}
