package asyncraft_test

import (
	"testing"
	"time"
)

// A follower cut off while the leader compacts its log past what the
// follower holds catches up by a snapshot install: it loads the leader's
// snapshot, its log restarts after it, and it agrees with the others.
func TestInstallSnapshotToALaggingFollower(t *testing.T) {
	c, l, sms := compactingGroup(t, 50)
	runLoad(t, c, l, "a", 300)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	f := c.Up()[0]
	if f == l {
		f = c.Up()[1]
	}
	lagged := c.Node(f).Status().LastIndex
	c.Sim.Isolate(f)
	for i, p := range []string{"b", "c"} {
		runLoad(t, c, l, p, 2000)
		r := snapshotNow(t, c, l)
		waitSnapshot(t, c, r)
		if r.err != nil {
			t.Fatalf("snapshot %d on the leader: %v", i, r.err)
		}
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Status().FirstIndex > lagged+1 }, 5*time.Second) {
		t.Fatalf("the leader's log starts at %d: not compacted past the follower's last index %d", c.Node(l).Status().FirstIndex, lagged)
	}
	c.Sim.Heal()
	// Status shows the install while it runs: the leader's view of the
	// follower, and the follower's progress.
	var sawPeer, sawProgress bool
	c.Sim.RunUntil(func() bool {
		for _, p := range c.Node(l).Status().Peers {
			if p.Peer == f && p.State == "snapshot" {
				sawPeer = true
			}
		}
		if p := c.Node(f).Status().Installing; p != nil && p.Leader == l && p.Total > 0 {
			sawProgress = true
		}
		return c.Node(f).Metrics().InstallsDone.Load() > 0
	}, 20*time.Second)
	if !sawPeer || !sawProgress {
		t.Fatalf("during the install: the leader showed the peer in snapshot state: %v; the follower showed its progress: %v", sawPeer, sawProgress)
	}
	commit := c.Node(l).Status().Commit
	waitApplied(t, c, commit, 20*time.Second)
	// The leader counts the install once the follower has answered.
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Metrics().SnapshotsSent.Load() > 0 }, 5*time.Second) {
		t.Fatalf("the leader reports no install")
	}
	if n := c.Node(f).Metrics().InstallsDone.Load(); n != 1 {
		t.Fatalf("%s installed %d snapshots, want 1", f, n)
	}
	if n := c.Node(l).Metrics().SnapshotsSent.Load(); n != 1 {
		t.Fatalf("leader %s reports %d installs, want 1", l, n)
	}
	if sms[f].loads != 1 {
		t.Fatalf("%s loaded %d snapshots, want 1", f, sms[f].loads)
	}
	if st := c.Node(f).Status(); st.FirstIndex <= lagged+1 || st.SnapshotIndex == 0 {
		t.Fatalf("%s after the install: first index %d, snapshot %d", f, st.FirstIndex, st.SnapshotIndex)
	}
	runLoad(t, c, l, "d", 200)
	last := c.Node(l).Status().Commit
	waitApplied(t, c, last, 10*time.Second)
	for _, id := range c.Up() {
		if sms[id].sumAt[last] != sms[l].sumAt[last] {
			t.Fatalf("at %d %s sums %d, the leader %d", last, id, sms[id].sumAt[last], sms[l].sumAt[last])
		}
	}
}
