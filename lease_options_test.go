package asyncraft_test

import (
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
)

// TestLeaseNeedsStickiness: without leader stickiness (pre-vote and
// check-quorum both off) a lease promises nothing, so lease reads are
// refused — as the node's default at StartNode, and per read with EINVAL —
// while safe reads still work.
func TestLeaseNeedsStickiness(t *testing.T) {
	s := sim.New(sim.Config{Seed: testseed.For(t)})
	h, err := asyncraft.NewHostOn(s.AddHost("h", sim.HostConfig{}), asyncraft.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := asyncraft.NodeOptions{Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "h"}}, StateMachine: &cluster.Recorder{},
		DisablePreVote: true, DisableCheckQuorum: true}
	o := base
	o.ReadMode = asyncraft.ReadLease
	if _, err := h.StartNode(o); err == nil || !strings.Contains(err.Error(), "stickiness") {
		t.Fatalf("ReadLease without stickiness: %v", err)
	}
	o = base
	o.LeaseRatio = 0.995 // over the election timeout less a 10 ms tick
	if _, err := h.StartNode(o); err == nil || !strings.Contains(err.Error(), "LeaseRatio") {
		t.Fatalf("a lease longer than the election timeout less a tick: %v", err)
	}

	c := cluster.New(cluster.Options{Seed: testseed.For(t), Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		o.DisablePreVote, o.DisableCheckQuorum = true, true
	}})
	l, err := c.WaitLeader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, c, 1, 5*time.Second) // the leader's no-op: reads may start
	for _, id := range c.IDs {
		lease, safe := read(c, id, asyncraft.ReadLease), read(c, id, asyncraft.ReadSafe)
		waitReads(t, c, lease, safe)
		if lease.st.Code != closure.EINVAL {
			t.Errorf("a lease read on %s (leader %s) without stickiness: %v, want EINVAL", id, l, lease.st)
		}
		if !safe.st.OK() {
			t.Errorf("a safe read on %s: %v", id, safe.st)
		}
	}
	noPanics(t, c)
}
