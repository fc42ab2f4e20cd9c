package node

import (
	"maps"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/internal/quorum"
	"github.com/asyncraft/asyncraft/replicator"
)

// tracker is what the node knows of its group: the configuration, the
// votes of its current (pre-)election and, while it leads, one record per
// peer. It answers the quorum questions — what is committed, whether a
// quorum is active, up to when a quorum answered, who won a vote — and is
// the one place replicators are started and stopped.
//
// Invariants (checkInvariants): records exist only while the node leads,
// one per member other than itself; votes exist only during a
// (pre-)election.
type tracker struct {
	self string
	// cfg is the configuration in force (the newest in the log); conf its
	// voters as the quorum package decides with them (both halves when
	// joint); addrs every member's host address, and addresses learned
	// of senders outside it (learn); others the members other than self
	// (voters and learners), sorted.
	cfg    confchange.Config
	conf   quorum.Joint
	addrs  map[string]string
	others []string
	// known holds addresses of nodes outside the configuration that this
	// node heard from as leaders (learn): a node whose configuration is
	// older than its leader's still answers it.
	known map[string]string

	// Leader, this term: one record per other member.
	peers map[string]*progress
	// Candidate or pre-candidate: the answers so far (true: granted).
	votes map[string]bool
}

// progress is the leader's record of one peer in its term.
type progress struct {
	ref actors.Ref // the peer's replicator
	// match is the highest index known durable on the peer.
	match uint64
	// active: the peer answered since the last check-quorum.
	active bool
	// ackedAt is the latest send time (read clock) of a request the peer
	// answered in this term.
	ackedAt uint64
	// lost is the match the peer had before it reported losing entries
	// (0: none lost); cleared once it holds them again.
	lost uint64
	// view is where its replicator publishes its state (Status.Peers).
	view *replicator.View
}

func newTracker(self string, cfg confchange.Config) *tracker {
	t := &tracker{self: self}
	t.setConfig(cfg)
	return t
}

// setConfig puts cfg in force. While leading, the records (and
// replicators) of members that left must then be stopped and those of new
// members started: syncReplicators.
func (t *tracker) setConfig(cfg confchange.Config) {
	for _, id := range slices.Sorted(maps.Keys(t.addrs)) {
		if !cfg.Contains(id) && id != t.self {
			t.learn(id, t.addrs[id]) // a former member may still lead for a while
		}
	}
	t.cfg = cfg
	t.conf = cfg.Quorum()
	t.addrs = make(map[string]string, len(t.addrs))
	t.others = t.others[:0]
	for _, p := range cfg.Members() {
		t.addrs[p.ID] = p.Addr
		if p.ID != t.self {
			t.others = append(t.others, p.ID)
		}
	}
	slices.Sort(t.others)
}

// learn records the host address of a node outside the configuration: a
// former member, or a peer of the address book (bounded: when full, it
// starts again from the newest).
func (t *tracker) learn(id, addr string) {
	if t.known == nil || len(t.known) >= 256 {
		t.known = map[string]string{}
	}
	t.known[id] = addr
}

// isMember reports whether id is in the configuration.
func (t *tracker) isMember(id string) bool {
	_, ok := t.addrs[id]
	return ok
}

// isKnown reports whether this node has an address for id: a member, or a
// leader it learned of.
func (t *tracker) isKnown(id string) bool {
	if t.isMember(id) {
		return true
	}
	_, ok := t.known[id]
	return ok
}

// isVoter reports whether id may vote (and so campaign).
func (t *tracker) isVoter(id string) bool { return t.conf.Contains(id) }

// voters returns the voters' ids, sorted.
func (t *tracker) voters() []string { return t.conf.IDs() }

// addr is the host address of member id (or of a leader learned of).
func (t *tracker) addr(id string) string {
	if a, ok := t.addrs[id]; ok {
		return a
	}
	return t.known[id]
}

// alone reports whether the group has no member but this node.
func (t *tracker) alone() bool { return len(t.others) == 0 }

// committed is the largest index durable on a quorum of voters, this node
// counting with its own durable index selfMatch (a leader only).
func (t *tracker) committed(selfMatch uint64) uint64 {
	conf := t.conf
	if faults.On(faults.JointNewMajorityOnly) {
		conf = quorum.Joint{conf[0]}
	}
	return conf.Committed(func(id string) (uint64, bool) {
		if id == t.self {
			return selfMatch, true
		}
		if p := t.peers[id]; p != nil {
			return p.match, true
		}
		return 0, false
	})
}

// quorumActive reports whether a quorum of voters answered since the last
// resetActive (this node counts as answering).
func (t *tracker) quorumActive() bool {
	return t.conf.Vote(func(id string) (bool, bool) {
		if id == t.self {
			return true, true
		}
		p := t.peers[id]
		return p != nil && p.active, true
	}) == quorum.VoteWon
}

// resetActive starts a new check-quorum period.
func (t *tracker) resetActive() {
	for _, p := range t.peers {
		p.active = false
	}
}

// quorumAckedAt is the latest send time answered by a quorum, this node
// counting as answering at now.
func (t *tracker) quorumAckedAt(now uint64) uint64 {
	return t.conf.Committed(func(id string) (uint64, bool) {
		if id == t.self {
			return now, true
		}
		if p := t.peers[id]; p != nil && p.ackedAt > 0 {
			return p.ackedAt, true
		}
		return 0, false
	})
}

// contact records that peer answered, in this term, a request sent at
// sentAt (read clock); it reports whether that is later than any it
// answered before.
func (t *tracker) contact(peer string, sentAt uint64) bool {
	p := t.peers[peer]
	if p == nil {
		return false
	}
	p.active = true
	if sentAt <= p.ackedAt {
		return false
	}
	p.ackedAt = sentAt
	return true
}

// progressed raises peer's match; it reports whether it rose.
func (t *tracker) progressed(peer string, match uint64) bool {
	p := t.peers[peer]
	if p == nil || match <= p.match {
		return false
	}
	p.match = match
	return true
}

// lostEntries records that peer holds less than it had acknowledged
// (match): its match is forgotten until it holds that again. It reports
// false for a peer without a record.
func (t *tracker) lostEntries(peer string, match uint64) bool {
	p := t.peers[peer]
	if p == nil {
		return false
	}
	p.match = 0
	p.lost = max(p.lost, match)
	return true
}

// caughtUp reports whether peer, having lost entries, now holds what it
// had acknowledged (match reached it); the loss is then forgotten.
func (t *tracker) caughtUp(peer string, match uint64) bool {
	p := t.peers[peer]
	if p == nil || p.lost == 0 || match < p.lost {
		return false
	}
	p.lost = 0
	return true
}

// minMatch is the lowest match of the peers, each raised to at least
// floor: what the leader's cache keeps for them.
func (t *tracker) minMatch(upTo, floor uint64) uint64 {
	for _, p := range t.peers {
		upTo = min(upTo, max(p.match, floor))
	}
	return upTo
}

// startVote begins a (pre-)election; self's vote counts only if given.
func (t *tracker) startVote(self bool) {
	t.votes = map[string]bool{}
	if self {
		t.votes[t.self] = true
	}
}

// recordVote counts an answer of the current election (a later answer of
// the same voter replaces the first).
func (t *tracker) recordVote(id string, granted bool) {
	if t.votes != nil {
		t.votes[id] = granted
	}
}

// endVote forgets the votes.
func (t *tracker) endVote() { t.votes = nil }

// tallyVotes is the outcome of the current election so far.
func (t *tracker) tallyVotes() quorum.VoteResult {
	return t.conf.Vote(func(id string) (bool, bool) {
		g, ok := t.votes[id]
		return g, ok
	})
}

// startReplicators creates the records of a new leadership and a
// replicator for every other member (spawn makes one, publishing to the
// view given, which is the replicator's own). On an error the replicators
// already started stay recorded, for stopReplicators.
func (t *tracker) startReplicators(spawn func(peer string, view *replicator.View) (actors.Ref, error)) error {
	t.peers = make(map[string]*progress, len(t.others))
	_, err := t.syncReplicators(spawn, nil)
	return err
}

// syncReplicators makes the leader's records match the configuration
// after setConfig: the records of members that left are dropped and their
// replicators stopped, and new members get a record and a replicator. It
// returns the ids that left. Not leading, it does nothing.
func (t *tracker) syncReplicators(spawn func(peer string, view *replicator.View) (actors.Ref, error), stop func(actors.Ref)) (gone []string, err error) {
	if t.peers == nil {
		return nil, nil
	}
	for id, p := range t.peers {
		if !t.isMember(id) {
			stop(p.ref)
			delete(t.peers, id)
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range t.others {
		if t.peers[id] != nil {
			continue
		}
		view := new(replicator.View)
		ref, err := spawn(id, view)
		if err != nil {
			return gone, err
		}
		t.peers[id] = &progress{ref: ref, view: view}
	}
	return gone, nil
}

// views returns the replicators' views, in peer order.
func (t *tracker) views() []*replicator.View {
	out := make([]*replicator.View, 0, len(t.peers))
	for _, id := range t.others {
		if p := t.peers[id]; p != nil {
			out = append(out, p.view)
		}
	}
	return out
}

// stopReplicators ends a leadership: every replicator is stopped and the
// records are dropped.
func (t *tracker) stopReplicators(stop func(actors.Ref)) {
	ids := make([]string, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		stop(t.peers[id].ref)
	}
	t.peers = nil
}

// leading reports whether the records of a leadership exist.
func (t *tracker) leading() bool { return t.peers != nil }

// replicators calls fn with each replicator, in peer order.
func (t *tracker) replicators(fn func(actors.Ref)) {
	for _, id := range t.others {
		if p := t.peers[id]; p != nil {
			fn(p.ref)
		}
	}
}

// peer is the record of id while leading (nil otherwise).
func (t *tracker) peer(id string) *progress { return t.peers[id] }

// checkInvariants panics (under the invariants tag) if the tracker's own
// rules are broken; last is the log's last index.
func (t *tracker) checkInvariants(leader bool, last uint64) {
	if leader != t.leading() {
		invariants.Violate("tracker: records exist %v while leading is %v", t.leading(), leader)
	}
	if leader && len(t.peers) != len(t.others) {
		invariants.Violate("tracker: %d records for %d other members", len(t.peers), len(t.others))
	}
	for id, p := range t.peers {
		if !t.isMember(id) || id == t.self {
			invariants.Violate("tracker: a record for %q, not another member", id)
		}
		if p.match > last {
			invariants.Violate("tracker: %s's match %d is beyond the leader's last index %d", id, p.match, last)
		}
	}
}
