package asyncraft_test

import (
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// TestStatusShowsWhyAFollowerLags: a leader's Status.Peers gives its view of
// every follower — match, next, state, requests in flight, last contact —
// so that a follower that stopped answering stands out: its match stays
// behind and its last contact gets old while the other's keep up.
func TestStatusShowsWhyAFollowerLags(t *testing.T) {
	c, l := newGroup(t)
	runLoad(t, c, l, "a", 200)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	// Let heartbeats settle the followers' state.
	c.Sim.RunFor(time.Second)
	st := c.Node(l).Status()
	var others []string
	for _, id := range c.Up() {
		if id != l {
			others = append(others, id)
			if p := c.Node(id).Status().Peers; p != nil {
				t.Fatalf("follower %s shows peers %+v; only a leader has a view of them", id, p)
			}
		}
	}
	slices.Sort(others)
	if len(st.Peers) != len(others) {
		t.Fatalf("leader shows %d peers, want %v: %+v", len(st.Peers), others, st.Peers)
	}
	for i, p := range st.Peers {
		if p.Peer != others[i] || p.Term != st.Term || p.Match != st.LastIndex || p.Next != st.LastIndex+1 ||
			p.State != "replicate" || p.Inflight != 0 || p.LastContact.IsZero() {
			t.Fatalf("leader's view of a caught-up follower: %+v (leader: term %d, last %d)", p, st.Term, st.LastIndex)
		}
	}
	lagging, live := others[0], others[1]
	c.Crash(lagging)
	// Replies the follower sent before it crashed may still arrive: let
	// them, then take the leader's view of it.
	c.Sim.RunFor(100 * time.Millisecond)
	var before asyncraft.PeerStatus
	for _, p := range c.Node(l).Status().Peers {
		if p.Peer == lagging {
			before = p
		}
	}
	runLoad(t, c, l, "b", 200)
	c.Sim.RunFor(2 * time.Second)
	st = c.Node(l).Status()
	byID := map[string]asyncraft.PeerStatus{}
	for _, p := range st.Peers {
		byID[p.Peer] = p
	}
	lag, ok := byID[lagging], true
	if lv := byID[live]; lv.Match != st.LastIndex || !lv.LastContact.After(before.LastContact.Add(time.Second)) {
		t.Fatalf("live follower %s: %+v (leader last %d)", live, lv, st.LastIndex)
	}
	if _, ok = byID[lagging]; !ok || lag.Match != before.Match || lag.Match >= st.LastIndex || !lag.LastContact.Equal(before.LastContact) {
		t.Fatalf("crashed follower %s: %+v, before the crash %+v (leader last %d)", lagging, lag, before, st.LastIndex)
	}
	t.Logf("lagging: %+v", lag)
	noPanics(t, c)
}
