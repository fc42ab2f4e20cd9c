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

// TestLeaderWithoutStickinessRefusesForwardedLeaseReads: members may be
// configured differently. A follower with stickiness accepts a lease read
// and forwards it; a leader without stickiness holds no lease to answer it
// from and refuses it with EINVAL rather than answering from a lease that
// promises nothing. n1, the member without stickiness, is given the
// shortest election timeout so that it usually leads; seeds are tried until
// it does.
func TestLeaderWithoutStickinessRefusesForwardedLeaseReads(t *testing.T) {
	seed := testseed.For(t)
	for attempt := range uint64(50) {
		c := cluster.New(cluster.Options{Seed: seed + attempt, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			if o.ID == "n1" {
				o.DisablePreVote, o.DisableCheckQuorum = true, true
				o.ElectionTimeout = 300 * time.Millisecond
			}
		}})
		l, err := c.WaitLeader(20 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if l != "n1" {
			continue
		}
		waitApplied(t, c, 1, 5*time.Second) // the leader's no-op: reads may start
		lease, safe := read(c, "n2", asyncraft.ReadLease), read(c, "n2", asyncraft.ReadSafe)
		waitReads(t, c, lease, safe)
		if lease.st.Code != closure.EINVAL {
			t.Errorf("a lease read forwarded by n2 to n1, a leader without stickiness: %v, want EINVAL", lease.st)
		}
		if !safe.st.OK() {
			t.Errorf("a safe read forwarded by n2: %v", safe.st)
		}
		noPanics(t, c)
		return
	}
	t.Fatalf("n1 led in none of 50 seeds from %d", seed)
}
