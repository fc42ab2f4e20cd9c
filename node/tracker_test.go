package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/internal/quorum"
	"github.com/asyncraft/asyncraft/replicator"
)

// Unit tests of the tracker: no actor, no cluster; the replicators are
// fake refs.

func testPeers(ids ...string) confchange.Config {
	ps := make([]Peer, len(ids))
	for i, id := range ids {
		ps[i] = Peer{ID: id, Addr: "host-" + id}
	}
	return VotersConfig(ps)
}

// testRef is the fake replicator ref of peer id.
func testRef(id string) actors.Ref { return actors.Ref{Host: "leader", Name: "replicator-" + id} }

// leadingTracker is the tracker of self among ids, leading (one record per
// other member, each with the replicator testRef(id)).
func leadingTracker(t *testing.T, self string, ids ...string) *tracker {
	t.Helper()
	tr := newTracker(self, testPeers(ids...))
	if err := tr.startReplicators(func(id string, _ *replicator.View) (actors.Ref, error) { return testRef(id), nil }); err != nil {
		t.Fatalf("startReplicators: %v", err)
	}
	return tr
}

// violated runs f and reports whether it reported an invariant violation:
// under the invariants tag (or -race) invariants.Violate panics, which is
// recovered here; otherwise it counts, and the count must rise.
func violated(t *testing.T, f func()) (v bool) {
	t.Helper()
	before := invariants.Violations()
	defer func() {
		r := recover()
		if r == nil {
			if invariants.Enabled {
				if n := invariants.Violations(); n != before {
					t.Errorf("violations counted (%d -> %d) in a build where they panic", before, n)
				}
				return
			}
			v = invariants.Violations() > before
			return
		}
		if !invariants.Enabled {
			panic(r) // not a violation: violations do not panic in this build
		}
		err, ok := r.(error)
		if !ok || !strings.Contains(err.Error(), "invariant violated") {
			panic(r)
		}
		v = true
	}()
	f()
	return false
}

func TestTrackerMembership(t *testing.T) {
	tr := newTracker("b", testPeers("c", "a", "b"))
	for _, id := range []string{"a", "b", "c"} {
		if !tr.isMember(id) || !tr.isVoter(id) {
			t.Errorf("%s: isMember %v, isVoter %v; want both", id, tr.isMember(id), tr.isVoter(id))
		}
		if got, want := tr.addr(id), "host-"+id; got != want {
			t.Errorf("addr(%s) = %q, want %q", id, got, want)
		}
	}
	if tr.isMember("d") || tr.isVoter("d") || tr.addr("d") != "" {
		t.Errorf("d is not a member, but isMember %v isVoter %v addr %q", tr.isMember("d"), tr.isVoter("d"), tr.addr("d"))
	}
	if tr.alone() {
		t.Errorf("alone with two other members")
	}
	if !newTracker("a", testPeers("a")).alone() {
		t.Errorf("not alone as the only member")
	}
	if tr.leading() || tr.peer("a") != nil {
		t.Errorf("a new tracker has records")
	}
}

func TestTrackerCommitted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		members   []string // the first is self
		selfMatch uint64
		matches   map[string]uint64 // the other members' matches
		want      uint64
	}{
		{"alone", []string{"a"}, 7, nil, 7},
		{"3: self is the median", []string{"a", "b", "c"}, 5, map[string]uint64{"b": 3, "c": 9}, 5},
		{"3: self lowest", []string{"a", "b", "c"}, 2, map[string]uint64{"b": 4, "c": 6}, 4},
		{"3: self highest", []string{"a", "b", "c"}, 10, map[string]uint64{"b": 4, "c": 1}, 4},
		{"3: self alone has it", []string{"a", "b", "c"}, 10, map[string]uint64{}, 0},
		{"3: peers ahead of self", []string{"a", "b", "c"}, 0, map[string]uint64{"b": 8, "c": 8}, 8},
		{"3: one peer with self", []string{"a", "b", "c"}, 6, map[string]uint64{"b": 6}, 6},
		{"4: two are not a majority", []string{"a", "b", "c", "d"}, 4, map[string]uint64{"b": 1, "c": 2, "d": 3}, 2},
		{"4: three are", []string{"a", "b", "c", "d"}, 4, map[string]uint64{"b": 1, "c": 5, "d": 3}, 3},
		{"5: self is the median", []string{"a", "b", "c", "d", "e"}, 8, map[string]uint64{"b": 1, "c": 2, "d": 9, "e": 10}, 8},
		{"5: self lowest", []string{"a", "b", "c", "d", "e"}, 1, map[string]uint64{"b": 5, "c": 6, "d": 7, "e": 8}, 6},
		{"5: two with self are not three", []string{"a", "b", "c", "d", "e"}, 9, map[string]uint64{"b": 9, "e": 3}, 3},
		{"5: three with self", []string{"a", "b", "c", "d", "e"}, 9, map[string]uint64{"b": 9, "c": 9, "e": 3}, 9},
		{"5: self not among the three", []string{"e", "a", "b", "c", "d"}, 2, map[string]uint64{"a": 7, "b": 5, "c": 6, "d": 1}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := leadingTracker(t, tc.members[0], tc.members...)
			for id, m := range tc.matches {
				tr.peer(id).match = m
			}
			if got := tr.committed(tc.selfMatch); got != tc.want {
				t.Errorf("committed(%d) with %v = %d, want %d", tc.selfMatch, tc.matches, got, tc.want)
			}
		})
	}
}

// Without records (not leading) the other members count as having nothing.
func TestTrackerCommittedWithoutRecords(t *testing.T) {
	if got := newTracker("a", testPeers("a")).committed(4); got != 4 {
		t.Errorf("alone, not leading: committed(4) = %d, want 4", got)
	}
	tr := leadingTracker(t, "a", "a", "b", "c")
	tr.peer("b").match, tr.peer("c").match = 9, 9
	if got := tr.committed(9); got != 9 {
		t.Fatalf("leading: committed(9) = %d, want 9", got)
	}
	tr.stopReplicators(func(actors.Ref) {})
	if got := tr.committed(9); got != 0 {
		t.Errorf("after stopReplicators: committed(9) = %d, want 0 (the peers' records are gone)", got)
	}
	if got := newTracker("a", testPeers("a", "b", "c")).committed(5); got != 0 {
		t.Errorf("3 members, not leading: committed(5) = %d, want 0", got)
	}
}

func TestTrackerQuorumActive(t *testing.T) {
	three := []string{"a", "b", "c"}
	five := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		name    string
		members []string // the first is self
		active  []string
		want    bool
	}{
		{"alone", []string{"a"}, nil, true},
		{"3: none", three, nil, false},
		{"3: one peer", three, []string{"b"}, true},
		{"3: both", three, []string{"b", "c"}, true},
		{"5: one peer", five, []string{"c"}, false},
		{"5: two peers", five, []string{"b", "e"}, true},
		{"5: all", five, []string{"b", "c", "d", "e"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := leadingTracker(t, tc.members[0], tc.members...)
			for _, id := range tc.active {
				tr.peer(id).active = true
			}
			if got := tr.quorumActive(); got != tc.want {
				t.Errorf("quorumActive with %v active = %v, want %v", tc.active, got, tc.want)
			}
		})
	}
}

func TestTrackerResetActive(t *testing.T) {
	tr := leadingTracker(t, "a", "a", "b", "c", "d", "e")
	for _, id := range []string{"b", "c", "d", "e"} {
		tr.peer(id).active = true
	}
	if !tr.quorumActive() {
		t.Fatalf("all active, but not quorumActive")
	}
	tr.resetActive()
	if tr.quorumActive() {
		t.Errorf("quorumActive right after resetActive")
	}
	for _, id := range []string{"b", "c", "d", "e"} {
		if tr.peer(id).active {
			t.Errorf("%s still active after resetActive", id)
		}
	}
	tr.contact("b", 0)
	if tr.quorumActive() {
		t.Errorf("5 members, one peer answered since the reset: quorumActive")
	}
	tr.contact("d", 0)
	if !tr.quorumActive() {
		t.Errorf("5 members, two peers answered since the reset: not quorumActive")
	}
}

func TestTrackerQuorumAckedAt(t *testing.T) {
	const now = 100
	three := []string{"a", "b", "c"}
	five := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		name    string
		members []string // the first is self
		ackedAt map[string]uint64
		want    uint64
	}{
		{"alone: now", []string{"a"}, nil, now},
		{"3: no acks", three, nil, 0},
		{"3: one peer", three, map[string]uint64{"b": 40}, 40},
		{"3: both peers", three, map[string]uint64{"b": 40, "c": 70}, 70},
		{"5: two peers", five, map[string]uint64{"b": 30, "c": 50}, 30},
		{"5: three peers", five, map[string]uint64{"b": 30, "c": 50, "d": 90}, 50},
		{"5: all peers", five, map[string]uint64{"b": 30, "c": 50, "d": 90, "e": 95}, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := leadingTracker(t, tc.members[0], tc.members...)
			for id, at := range tc.ackedAt {
				tr.peer(id).ackedAt = at
			}
			if got := tr.quorumAckedAt(now); got != tc.want {
				t.Errorf("quorumAckedAt(%d) with %v = %d, want %d", now, tc.ackedAt, got, tc.want)
			}
		})
	}
}

func TestTrackerContact(t *testing.T) {
	tr := leadingTracker(t, "a", "a", "b", "c")
	if tr.contact("z", 5) {
		t.Errorf("contact from a non-member reported later")
	}
	steps := []struct {
		reset       bool // resetActive before the contact
		sentAt      uint64
		wantLater   bool
		wantAckedAt uint64
	}{
		{false, 0, false, 0}, // answers a request without a send time: active only
		{true, 5, true, 5},
		{true, 5, false, 5}, // the same send time again
		{true, 3, false, 5}, // an older one
		{false, 8, true, 8},
		{true, 0, false, 8},
	}
	for i, s := range steps {
		if s.reset {
			tr.resetActive()
		}
		if got := tr.contact("b", s.sentAt); got != s.wantLater {
			t.Errorf("step %d: contact(b, %d) = %v, want %v", i, s.sentAt, got, s.wantLater)
		}
		p := tr.peer("b")
		if !p.active {
			t.Errorf("step %d: b not active after contact(b, %d)", i, s.sentAt)
		}
		if p.ackedAt != s.wantAckedAt {
			t.Errorf("step %d: b's ackedAt = %d after contact(b, %d), want %d", i, p.ackedAt, s.sentAt, s.wantAckedAt)
		}
	}
	if c := tr.peer("c"); c.active || c.ackedAt != 0 {
		t.Errorf("c changed by b's contacts: active %v ackedAt %d", c.active, c.ackedAt)
	}
	tr.stopReplicators(func(actors.Ref) {})
	if tr.contact("b", 20) {
		t.Errorf("contact while not leading reported later")
	}
}

func TestTrackerProgressed(t *testing.T) {
	tr := leadingTracker(t, "a", "a", "b", "c")
	for i, s := range []struct {
		match     uint64
		wantRose  bool
		wantMatch uint64
	}{
		{0, false, 0},
		{5, true, 5},
		{5, false, 5},
		{3, false, 5},
		{9, true, 9},
	} {
		if got := tr.progressed("b", s.match); got != s.wantRose {
			t.Errorf("step %d: progressed(b, %d) = %v, want %v", i, s.match, got, s.wantRose)
		}
		if got := tr.peer("b").match; got != s.wantMatch {
			t.Errorf("step %d: b's match = %d, want %d", i, got, s.wantMatch)
		}
	}
	if tr.peer("c").match != 0 {
		t.Errorf("c's match changed by b's progress")
	}
	if tr.progressed("a", 7) || tr.progressed("z", 7) {
		t.Errorf("progressed for self or a non-member reported a rise")
	}
	tr.stopReplicators(func(actors.Ref) {})
	if tr.progressed("b", 20) {
		t.Errorf("progressed while not leading reported a rise")
	}
}

func TestTrackerMinMatch(t *testing.T) {
	tr := leadingTracker(t, "a", "a", "b", "c", "d")
	tr.peer("b").match, tr.peer("c").match, tr.peer("d").match = 3, 7, 12
	for _, tc := range []struct {
		upTo, floor, want uint64
	}{
		{10, 0, 3}, // the lowest peer
		{2, 0, 2},  // upTo lower still
		{10, 5, 5}, // b raised to the floor
		{10, 8, 8}, // b and c raised to the floor
		{6, 8, 6},  // the floor above upTo
		{20, 15, 15},
	} {
		if got := tr.minMatch(tc.upTo, tc.floor); got != tc.want {
			t.Errorf("minMatch(%d, %d) with matches 3, 7, 12 = %d, want %d", tc.upTo, tc.floor, got, tc.want)
		}
	}
	tr.stopReplicators(func(actors.Ref) {})
	if got := tr.minMatch(10, 0); got != 10 {
		t.Errorf("not leading: minMatch(10, 0) = %d, want 10", got)
	}
}

func TestTrackerVotes(t *testing.T) {
	type answer struct {
		from    string
		granted bool
		want    quorum.VoteResult // the tally after it
	}
	const (
		won     = quorum.VoteWon
		lost    = quorum.VoteLost
		pending = quorum.VotePending
	)
	three := []string{"a", "b", "c"}
	five := []string{"a", "b", "c", "d", "e"}
	for _, tc := range []struct {
		name    string
		members []string // the first is self
		preVote bool     // startVote(true): self granted from the start
		initial quorum.VoteResult
		answers []answer
	}{
		{"1: pre-vote", []string{"a"}, true, won, nil},
		{"1: campaign", []string{"a"}, false, pending, []answer{{"a", true, won}}},
		{"3: pre-vote won", three, true, pending, []answer{{"b", true, won}}},
		{"3: pre-vote lost", three, true, pending, []answer{{"b", false, pending}, {"c", false, lost}}},
		{"3: pre-vote split", three, true, pending, []answer{{"c", false, pending}, {"b", true, won}}},
		{"3: campaign, self not yet counted", three, false, pending, []answer{{"b", true, pending}, {"a", true, won}}},
		{"3: campaign lost", three, false, pending, []answer{{"b", false, pending}, {"c", false, lost}}},
		{"3: campaign, a later answer replaces", three, false, pending, []answer{{"b", true, pending}, {"b", false, pending}, {"c", false, lost}}},
		{"5: pre-vote won", five, true, pending, []answer{{"b", true, pending}, {"d", false, pending}, {"c", true, won}}},
		{"5: pre-vote lost", five, true, pending, []answer{{"b", false, pending}, {"c", false, pending}, {"e", false, lost}}},
		{"5: campaign won", five, false, pending, []answer{{"b", true, pending}, {"c", true, pending}, {"a", true, won}}},
		{"5: campaign, three peers", five, false, pending, []answer{{"b", true, pending}, {"c", true, pending}, {"d", true, won}}},
		{"5: campaign lost", five, false, pending, []answer{{"a", true, pending}, {"b", false, pending}, {"c", false, pending}, {"d", false, lost}}},
		{"5: a non-voter's answer", five, true, pending, []answer{{"z", true, pending}, {"b", true, pending}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(tc.members[0], testPeers(tc.members...))
			tr.startVote(tc.preVote)
			if got := tr.tallyVotes(); got != tc.initial {
				t.Errorf("startVote(%v): tally %v, want %v", tc.preVote, got, tc.initial)
			}
			for i, a := range tc.answers {
				tr.recordVote(a.from, a.granted)
				if got := tr.tallyVotes(); got != a.want {
					t.Errorf("answer %d (%s granted %v): tally %v, want %v", i, a.from, a.granted, got, a.want)
				}
			}
		})
	}
}

// Answers that arrive after the election ended are not counted, neither
// then nor in the next election.
func TestTrackerVotesAfterEnd(t *testing.T) {
	tr := newTracker("a", testPeers("a", "b", "c"))
	tr.startVote(true)
	tr.endVote()
	tr.recordVote("b", true)
	tr.recordVote("c", true)
	if got := tr.tallyVotes(); got != quorum.VotePending {
		t.Errorf("answers recorded after endVote: tally %v, want pending", got)
	}
	if tr.votes != nil {
		t.Errorf("votes recorded after endVote: %v", tr.votes)
	}
	tr.startVote(false)
	if got := tr.tallyVotes(); got != quorum.VotePending {
		t.Errorf("a new election after late answers: tally %v, want pending", got)
	}
	tr.recordVote("b", true)
	if got := tr.tallyVotes(); got != quorum.VotePending {
		t.Errorf("campaign with one peer's vote (self not recorded): tally %v, want pending", got)
	}
}

// Answers of an earlier election do not carry into the next one.
func TestTrackerVotesRestart(t *testing.T) {
	tr := newTracker("a", testPeers("a", "b", "c"))
	tr.startVote(false)
	tr.recordVote("b", true)
	tr.recordVote("c", true)
	if got := tr.tallyVotes(); got != quorum.VoteWon {
		t.Fatalf("two of three granted: tally %v, want won", got)
	}
	tr.startVote(false)
	if got := tr.tallyVotes(); got != quorum.VotePending {
		t.Errorf("a new campaign: tally %v, want pending", got)
	}
}

func TestTrackerReplicators(t *testing.T) {
	// Seven other members: an order taken from a map would show within a
	// few rounds.
	members := testPeers("b", "h", "a", "g", "c", "f", "d", "e")
	others := []string{"a", "c", "d", "e", "f", "g", "h"}
	var want []actors.Ref
	for _, id := range others {
		want = append(want, testRef(id))
	}
	tr := newTracker("b", members)
	for round := range 10 {
		var spawned []string
		err := tr.startReplicators(func(id string, _ *replicator.View) (actors.Ref, error) {
			spawned = append(spawned, id)
			return testRef(id), nil
		})
		if err != nil {
			t.Fatalf("round %d: startReplicators: %v", round, err)
		}
		if !slices.Equal(spawned, others) {
			t.Fatalf("round %d: spawned %v, want %v (the other members, sorted)", round, spawned, others)
		}
		if !tr.leading() {
			t.Fatalf("round %d: not leading after startReplicators", round)
		}
		for _, id := range others {
			p := tr.peer(id)
			if p == nil {
				t.Fatalf("round %d: no record for %s", round, id)
			}
			if p.ref != testRef(id) || p.match != 0 || p.active || p.ackedAt != 0 || p.lost != 0 {
				t.Errorf("round %d: %s's record = %+v, want a fresh one with ref %v", round, id, *p, testRef(id))
			}
			// Dirty the record: the next leadership must start afresh.
			p.match, p.active, p.ackedAt, p.lost = 3, true, 4, 5
		}
		if tr.peer("b") != nil {
			t.Errorf("round %d: a record for self", round)
		}
		var got []actors.Ref
		tr.replicators(func(r actors.Ref) { got = append(got, r) })
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: replicators called with %v, want %v", round, got, want)
		}
		var stopped []actors.Ref
		tr.stopReplicators(func(r actors.Ref) { stopped = append(stopped, r) })
		if !slices.Equal(stopped, want) {
			t.Fatalf("round %d: stopReplicators stopped %v, want %v", round, stopped, want)
		}
		if tr.leading() || tr.peer("a") != nil {
			t.Fatalf("round %d: records remain after stopReplicators", round)
		}
		called := false
		tr.replicators(func(actors.Ref) { called = true })
		tr.stopReplicators(func(actors.Ref) { called = true })
		if called {
			t.Fatalf("round %d: replicators or stopReplicators called fn while not leading", round)
		}
	}
}

// A spawn error stops startReplicators; the replicators started before it
// stay recorded, and stopReplicators stops exactly those.
func TestTrackerStartReplicatorsError(t *testing.T) {
	for _, tc := range []struct {
		failAt  string
		started []string
	}{
		{"b", nil},
		{"c", []string{"b"}},
		{"e", []string{"b", "c", "d"}},
	} {
		t.Run("fail at "+tc.failAt, func(t *testing.T) {
			tr := newTracker("a", testPeers("a", "e", "d", "c", "b"))
			errSpawn := fmt.Errorf("spawn %s failed", tc.failAt)
			var spawned []string
			err := tr.startReplicators(func(id string, _ *replicator.View) (actors.Ref, error) {
				spawned = append(spawned, id)
				if id == tc.failAt {
					return actors.Ref{}, errSpawn
				}
				return testRef(id), nil
			})
			if !errors.Is(err, errSpawn) {
				t.Fatalf("startReplicators = %v, want %v", err, errSpawn)
			}
			if want := append(slices.Clone(tc.started), tc.failAt); !slices.Equal(spawned, want) {
				t.Errorf("spawned %v, want %v (none after the failure)", spawned, want)
			}
			for _, id := range []string{"b", "c", "d", "e"} {
				if has, want := tr.peer(id) != nil, slices.Contains(tc.started, id); has != want {
					t.Errorf("record for %s: %v, want %v", id, has, want)
				}
			}
			var stopped, want []actors.Ref
			for _, id := range tc.started {
				want = append(want, testRef(id))
			}
			tr.stopReplicators(func(r actors.Ref) { stopped = append(stopped, r) })
			if !slices.Equal(stopped, want) {
				t.Errorf("stopReplicators stopped %v, want %v", stopped, want)
			}
			if tr.leading() {
				t.Errorf("still leading after stopReplicators")
			}
		})
	}
}

func TestTrackerCheckInvariants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lead   bool // start the replicators
		setup  func(tr *tracker)
		leader bool
		last   uint64
		want   bool // a violation
	}{
		{"follower without records", false, nil, false, 5, false},
		{"leader with records", true, func(tr *tracker) { tr.peer("b").match = 5 }, true, 5, false},
		{"leader without records", false, nil, true, 5, true},
		{"follower with records", true, nil, false, 5, true},
		{"match beyond the last index", true, func(tr *tracker) { tr.peer("c").match = 6 }, true, 5, true},
		// These two replace b's record, so that only what they test is wrong.
		{"a record for self", true, func(tr *tracker) { delete(tr.peers, "b"); tr.peers["a"] = &progress{} }, true, 5, true},
		{"a record for a non-member", true, func(tr *tracker) { delete(tr.peers, "b"); tr.peers["z"] = &progress{} }, true, 5, true},
		{"a record missing", true, func(tr *tracker) { delete(tr.peers, "b") }, true, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker("a", testPeers("a", "b", "c"))
			if tc.lead {
				tr = leadingTracker(t, "a", "a", "b", "c")
			}
			if tc.setup != nil {
				tc.setup(tr)
			}
			if got := violated(t, func() { tr.checkInvariants(tc.leader, tc.last) }); got != tc.want {
				t.Errorf("checkInvariants(%v, %d): violated %v, want %v", tc.leader, tc.last, got, tc.want)
			}
		})
	}
}

// TestTrackerLostEntries: a peer that lost entries has its match forgotten
// (so it counts toward no commit for what it no longer holds) until it
// holds again the most it had acknowledged, across repeated losses.
func TestTrackerLostEntries(t *testing.T) {
	tr := leadingTracker(t, "a", "a", "b", "c")
	tr.progressed("b", 40)
	tr.progressed("c", 10)
	if tr.lostEntries("z", 5) {
		t.Fatal("a loss recorded for a peer without a record")
	}
	if !tr.lostEntries("b", 40) {
		t.Fatal("b's loss not recorded")
	}
	if got := tr.peer("b").match; got != 0 {
		t.Fatalf("b's match after its loss: %d, want 0", got)
	}
	if got := tr.committed(50); got != 10 {
		t.Fatalf("committed with b's match forgotten: %d, want 10 (c's)", got)
	}
	tr.lostEntries("b", 30) // a second report, of less: the most is kept
	for _, step := range []struct {
		match uint64
		want  bool
	}{{20, false}, {39, false}, {40, true}, {41, false}} {
		tr.progressed("b", step.match)
		if got := tr.caughtUp("b", step.match); got != step.want {
			t.Fatalf("caughtUp(b, %d) = %v, want %v", step.match, got, step.want)
		}
	}
	if tr.caughtUp("c", 100) {
		t.Fatal("c caught up without having lost anything")
	}
}

// joint is the joint configuration from voters old to voters new (each
// "host-<id>").
func joint(old, new []string) confchange.Config {
	c := testPeers(new...)
	c.OldVoters = testPeers(old...).Voters
	return c
}

// In a joint configuration every decision needs a majority of each half:
// commit, votes and check-quorum; the leader counts in the half it is in
// only. Against a plain majority of the union, which is what removing
// either half would give.
func TestTrackerJoint(t *testing.T) {
	// a leads; {a b c} -> {c d e}: a and b are in the old half only.
	tr := leadingTracker(t, "a", "a", "b", "c")
	tr.setConfig(joint([]string{"a", "b", "c"}, []string{"c", "d", "e"}))
	started := map[string]bool{}
	gone, err := tr.syncReplicators(func(id string, _ *replicator.View) (actors.Ref, error) {
		started[id] = true
		return testRef(id), nil
	}, func(actors.Ref) { t.Fatal("no member left in the joint configuration") })
	if err != nil || len(gone) != 0 || !started["d"] || !started["e"] || len(started) != 2 {
		t.Fatalf("syncReplicators: started %v, gone %v, %v; want d and e started", started, gone, err)
	}
	// b holds 7, c 5, d and e 9: the new half (c d e) commits 9 through d
	// and e; the old half (a b c), a at 9 and b at 7, commits 7.
	for id, m := range map[string]uint64{"b": 7, "c": 5, "d": 9, "e": 9} {
		tr.progressed(id, m)
	}
	if got := tr.committed(9); got != 7 {
		t.Fatalf("joint commit %d, want 7 (the old half's majority a, b)", got)
	}
	restore := faults.Set(faults.JointNewMajorityOnly)
	if got := tr.committed(9); got != 9 {
		t.Errorf("with the planted bug the new half alone commits %d, want 9", got)
	}
	restore()
	// Votes: the new half's majority alone does not win.
	tr.startVote(true)
	tr.recordVote("d", true)
	tr.recordVote("e", true)
	if got := tr.tallyVotes(); got != quorum.VotePending {
		t.Fatalf("votes of a, d, e: %v, want pending (b or c needed for the old half)", got)
	}
	tr.recordVote("b", true)
	if got := tr.tallyVotes(); got != quorum.VoteWon {
		t.Fatalf("votes of a, b, d, e: %v, want won", got)
	}
	tr.endVote()
	// Check-quorum: d and e active are not enough.
	tr.resetActive()
	tr.contact("d", 1)
	tr.contact("e", 1)
	if tr.quorumActive() {
		t.Fatal("quorum active with only the new half answering")
	}
	tr.contact("b", 1)
	if !tr.quorumActive() {
		t.Fatal("quorum not active with a, b, d, e answering")
	}
	// Leaving: C_new stops a's and b's records; a (the leader) is no
	// longer a voter, and its own match no longer counts.
	tr.setConfig(testPeers("c", "d", "e"))
	var stopped []actors.Ref
	gone, err = tr.syncReplicators(func(id string, _ *replicator.View) (actors.Ref, error) {
		t.Fatalf("nothing to start, asked for %s", id)
		return actors.Ref{}, nil
	}, func(r actors.Ref) { stopped = append(stopped, r) })
	if err != nil || !slices.Equal(gone, []string{"b"}) || len(stopped) != 1 || stopped[0] != testRef("b") {
		t.Fatalf("leaving: gone %v, stopped %v, %v; want b", gone, stopped, err)
	}
	if tr.isVoter("a") || tr.isMember("b") || !tr.isKnown("b") || tr.addr("b") != "host-b" {
		t.Fatalf("after leaving: a voter %v, b member %v, b known %v at %q", tr.isVoter("a"), tr.isMember("b"), tr.isKnown("b"), tr.addr("b"))
	}
	if got := tr.committed(100); got != 9 {
		t.Fatalf("C_new commit %d, want 9 (d and e; the leader's own 100 does not count)", got)
	}
	tr.checkInvariants(true, 100)
}
