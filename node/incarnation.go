package node

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// Wiped data (docs/membership.md, "Wiped data").
//
// A voter that comes back on an empty data directory under its old id has
// forgotten its votes: it may vote again in a term it voted in, and two
// leaders may be elected in that term. Its data has a new incarnation
// (Bootstrap.incarnation, drawn at the first start on the data), which
// every envelope carries. Each node remembers the incarnation of every
// voter of its configuration it heard from, in its hard state (so a
// restart does not forget it), and:
//
//   - an envelope from a voter with another incarnation than the one it
//     remembers is dropped (counted in Metrics.IncarnationRefusals) and
//     answered with IncarnationRefused; the voter whose own incarnation
//     was refused fails with ErrWipedData, a clear error that says what to
//     do, and so never votes again under that id;
//   - unless the envelope says its sender started over with RejoinTerm
//     (it votes only in later terms): the new incarnation replaces the
//     old one;
//   - a voter's incarnation is forgotten once it is no longer a voter of
//     the configuration in force (removed, or made a learner), and every
//     incarnation is forgotten when a snapshot is installed (whose
//     configuration may have removed and re-added a member meanwhile): so
//     a member removed and added back on new data (the safe procedure) is
//     never refused. Learners are not checked (they have no vote), and a
//     voter added back goes through the learner stage;
//   - an incarnation is remembered with the membership it belongs to (the
//     voter's Peer.since, the index of the entry that made it a member),
//     and every envelope carries its sender's (Envelope.member_since, from
//     the configuration the sender has in force). A node that missed a
//     removal and an addition back still has the voter's earlier
//     incarnation; the voter, back on new data, speaks with a later
//     membership, which that node does not judge but learns. A voter back
//     on wiped data without being removed speaks with the same membership
//     as before, or with an earlier one (0, started as a founder), and is
//     refused.
//
// The leader hears every follower, so it catches a wiped follower at its
// first answer, within a heartbeat; the wiped node itself votes for no one
// during its first election timeout (restart quiet, when stickiness is
// on). Followers hear each other only in elections, so a leader passes on
// what it knows: its replicators put the incarnations of the voters of
// its configuration on their requests (Envelope.voters, until the
// follower answered one carrying the current list), and a follower learns
// from them those it has not heard itself, never replacing one it knows.
// A node that heard from neither a voter's earlier data nor a leader that
// knew it cannot tell its new data from a first start: a voter wiped
// before any leader heard from it goes unnoticed.

// ErrWipedData is the error of a node whose data another member knows
// under another incarnation: its data directory was wiped or replaced
// after it had voted, so it may vote twice in one term.
var ErrWipedData = errors.New("asyncraft: this node's data was wiped or replaced: another member knows it under another incarnation")

// incarnations is what a node remembers of its voters' data.
type incarnations struct {
	of map[string]heard
}

// heard is a voter's incarnation and the membership (Peer.since) it was
// heard in.
type heard struct {
	inc, since uint64
}

// knownIncarnations returns the voters' incarnations of hs that the
// configuration history still allows: each id must be a voter of every
// configuration recorded (one that was not may have been re-added on new
// data).
func (a *Actor) knownIncarnations(hs *raftpb.HardState) incarnations {
	inc := incarnations{of: map[string]heard{}}
	for _, p := range hs.GetPeers() {
		if p.Incarnation != 0 && p.Id != a.cfg.ID {
			inc.of[p.Id] = heard{inc: p.Incarnation, since: p.Since}
		}
	}
	a.confs.All(func(_ uint64, c confchange.Config) bool {
		for id := range inc.of {
			if !c.IsVoter(id) {
				delete(inc.of, id)
			}
		}
		return true
	})
	return inc
}

// proto returns the incarnations as the hard state stores them, by id.
func (inc incarnations) proto() []*raftpb.PeerIncarnation {
	if len(inc.of) == 0 {
		return nil
	}
	out := make([]*raftpb.PeerIncarnation, 0, len(inc.of))
	for _, id := range slices.Sorted(maps.Keys(inc.of)) {
		h := inc.of[id]
		out = append(out, &raftpb.PeerIncarnation{Id: id, Incarnation: h.inc, Since: h.since})
	}
	return out
}

// incarnation is this node's own (0 on data of a version before them).
func (a *Actor) incarnation() uint64 { return a.cfg.Boot.GetIncarnation() }

// memberSince is this node's Peer.since in the configuration in force (0
// if it is not in it), which its envelopes carry.
func (a *Actor) memberSince() uint64 {
	s, _ := a.tr.cfg.SinceOf(a.cfg.ID)
	return s
}

// rejoined reports whether this node's data was started over with
// RejoinTerm.
func (a *Actor) rejoined() bool { return a.cfg.Boot.GetRejoinTerm() > 0 }

// checkIncarnation decides whether the node acts on e as far as its
// sender's incarnation goes (after admit): it learns the incarnation of a
// voter it had not heard from, and refuses one that differs from what it
// heard before.
func (a *Actor) checkIncarnation(env actors.Env, e *raftpb.Envelope) bool {
	return a.peerIncarnation(env, e.From, e.Incarnation, e.MemberSince, e.Rejoined)
}

// peerIncarnation applies the rules above to an envelope of incarnation
// inc from id, whose membership began at since (replicators report what
// their replies carry the same way).
func (a *Actor) peerIncarnation(env actors.Env, id string, inc, since uint64, rejoined bool) bool {
	if inc == 0 || !a.tr.cfg.IsVoter(id) || id == a.cfg.ID || faults.On(faults.WipedDataUnchecked) {
		return true
	}
	known, ok := a.incs.of[id]
	switch {
	case ok && known.inc == inc && known.since >= since:
		return true
	case !ok || rejoined || since > known.since && !faults.On(faults.MembershipUnchecked):
		if ok && known.inc != inc {
			why := "its data was started over with RejoinTerm; it votes only in later terms"
			if !rejoined {
				why = "it was removed and added back since this node heard it (a membership this node's configuration has not reached)"
			}
			a.logger.Info("asyncraft: a voter speaks with a new incarnation: "+why,
				"peer", id, "incarnation", fmt.Sprintf("%016x", inc), "was", fmt.Sprintf("%016x", known.inc),
				"member since", since, "was since", known.since)
		}
		a.incs.of[id] = heard{inc: inc, since: max(since, known.since)}
		a.persistHardState(env)
		a.relayIncarnations(env)
		return true
	case known.inc == inc:
		return true // the same data in a later membership, not recorded (planted membership-unchecked only)
	}
	a.sh.Metrics.IncarnationRefusals.Add(1)
	if ok, held := a.diag.wiped.allow(a.tickCount, a.warnInterval()); ok {
		a.logger.Warn("asyncraft: refused a voter whose data was wiped or replaced: it speaks with another incarnation than the one this node heard from, so it may vote twice in a term; it is told to stop (remove it and add it back, docs/membership.md)",
			"peer", id, "its incarnation", fmt.Sprintf("%016x", inc), "known", fmt.Sprintf("%016x", known.inc), "held back", held)
	}
	e := a.envelope(id, a.term, 0)
	e.Body = &raftpb.Envelope_IncarnationRefused{IncarnationRefused: &raftpb.IncarnationRefused{Known: known.inc, Refused: inc}}
	env.Send(a.peerRef(id), e)
	return false
}

// onIncarnationRefused fails this node if a member refused its own
// incarnation.
func (a *Actor) onIncarnationRefused(env actors.Env, e *raftpb.Envelope, r *raftpb.IncarnationRefused) {
	own := a.incarnation()
	if own == 0 || r.Refused != own || r.Known == own {
		return // about an earlier life of this node's data, or confused
	}
	a.fail(env, fmt.Errorf("%w: %s knows node %s/%s as incarnation %016x, and this data is incarnation %016x. If this node lost its data, it may vote again in a term it voted in. Remove it from the group on the leader and add it back (it catches up as a learner), or restart it with NodeOptions.RejoinTerm set to the group's highest term (docs/membership.md, \"Wiped data\")",
		ErrWipedData, e.From, a.cfg.Group, a.cfg.ID, r.Known, own), closure.EINTERNAL)
}

// forgetIncarnations drops the incarnations of ids that are no longer
// voters of the configuration in force (all of them when all is set: a
// snapshot was installed).
func (a *Actor) forgetIncarnations(env actors.Env, all bool) {
	n := len(a.incs.of)
	for id := range a.incs.of {
		if all || !a.tr.cfg.IsVoter(id) {
			delete(a.incs.of, id)
		}
	}
	if len(a.incs.of) != n {
		a.persistHardState(env)
		a.relayIncarnations(env)
	}
}

// relayed is what a leader passes on to its followers: the incarnations
// it knows of the voters of the configuration in force.
func (a *Actor) relayed() []*raftpb.PeerIncarnation {
	// Each with the membership it was heard in: a follower whose
	// configuration knows an earlier one of that voter takes it all the
	// same (a later membership replaces an earlier one).
	var out []*raftpb.PeerIncarnation
	for _, p := range a.incs.proto() {
		if a.tr.cfg.IsVoter(p.Id) {
			out = append(out, p)
		}
	}
	return out
}

// relayIncarnations gives a leader's replicators the list to pass on, when
// what it knows or its configuration changed.
func (a *Actor) relayIncarnations(env actors.Env) {
	if a.tr.leading() {
		a.toReplicators(env, replicator.Voters{Voters: a.relayed()})
	}
}

// learnRelayed learns, from a request of the leader this node follows
// (past gateTerm), the incarnations of voters it has not heard from itself,
// or heard in an earlier membership; one it knows of the same or a later
// membership is never replaced (only the voter itself does that, with
// RejoinTerm).
func (a *Actor) learnRelayed(env actors.Env, voters []*raftpb.PeerIncarnation) {
	if faults.On(faults.IncarnationRelayOff) {
		return
	}
	learned := false
	for _, p := range voters {
		id := p.GetId()
		if id == a.cfg.ID || p.GetIncarnation() == 0 || !a.tr.cfg.IsVoter(id) {
			continue
		}
		if known, ok := a.incs.of[id]; ok && known.since >= p.GetSince() {
			continue
		}
		a.incs.of[id] = heard{inc: p.GetIncarnation(), since: p.GetSince()}
		learned = true
	}
	if learned {
		a.persistHardState(env)
	}
}

// replicatorIncarnation is what a leader's replicator reports of its
// peer's incarnation.
func (a *Actor) replicatorIncarnation(env actors.Env, m replicator.PeerIncarnation) {
	if m.Term != a.term || !a.tr.leading() {
		return
	}
	a.peerIncarnation(env, m.Peer, m.Incarnation, m.Since, m.Rejoined)
}
