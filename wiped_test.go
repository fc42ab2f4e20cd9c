package asyncraft_test

import (
	"errors"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/internal/cluster"
)

// waitWiped waits until node id fails with ErrWipedData.
func waitWiped(t *testing.T, c *cluster.Cluster, id string) {
	t.Helper()
	if !c.Sim.RunUntil(func() bool {
		st := c.Node(id).Status()
		return st.Role == asyncraft.Errored && errors.Is(st.Err, asyncraft.ErrWipedData)
	}, 10*time.Second) {
		t.Fatalf("%s, back on wiped data, did not fail with ErrWipedData: %v: %s", id, c.Node(id).Status().Err, c.Describe())
	}
}

// A voter back on a wiped disk under its id is refused by the leader at
// its first answer and fails with ErrWipedData, while the group goes on.
// The two ways back both work and are not refused: removed and added back
// on new data (it joins, catches up as a learner, becomes a voter), and a
// restart with RejoinTerm. A learner back on wiped data is not refused;
// promoted to a voter, it is.
func TestWipedVoter(t *testing.T) {
	c, l, f1, f2 := threeNodes(t, 10)
	m := c.Node(l).Metrics()

	c.Wipe(f1, 0)
	if err := c.Restart(f1); err != nil {
		t.Fatal(err)
	}
	waitWiped(t, c, f1)
	if m.IncarnationRefusals.Load() == 0 {
		t.Errorf("the leader counted no incarnation refusal")
	}
	commitAll(t, c, l, "b", 10)

	// Removed, wiped, joined under its old id, added back.
	mustChange(t, c, l, asyncraft.RemoveMember(f1), "remove the wiped %s", f1)
	if err := c.WipeAndJoin(f1); err != nil {
		t.Fatal(err)
	}
	mustChange(t, c, l, asyncraft.AddVoter(asyncraft.Peer{ID: f1, Addr: f1}), "add %s back", f1)
	commitAll(t, c, l, "c", 10)
	if st := c.Node(f1).Status(); st.Role == asyncraft.Errored || !c.Node(l).Status().Configuration.Internal().IsVoter(f1) {
		t.Fatalf("%s, added back on new data: %v, %v", f1, st.Role, st.Err)
	}

	// After a restart of the leader, a wiped follower is refused all the same
	// (the hard state keeps the incarnations; the wiped-vote scenario of
	// the simulator depends on it).
	l0 := l
	c.Crash(l)
	if err := c.Restart(l); err != nil {
		t.Fatal(err)
	}
	l = waitLeaderAmong(t, c, c.IDs)
	if f2 == l { // the restarted leader's follower now
		f2 = l0
	}
	commitAll(t, c, l, "c2", 5)
	c.Wipe(f2, 0)
	if err := c.Restart(f2); err != nil {
		t.Fatal(err)
	}
	waitWiped(t, c, f2)

	// Restarted with RejoinTerm, the others' highest term: accepted, it
	// catches up.
	var term uint64
	for _, id := range c.Up() {
		if id != f2 {
			term = max(term, c.Node(id).Status().Term)
		}
	}
	c.Wipe(f2, term)
	if err := c.Restart(f2); err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "d", 10)
	if !c.Sim.RunUntil(func() bool {
		return c.Node(f2).Status().Applied >= c.Node(l).Status().Commit
	}, 10*time.Second) {
		t.Fatalf("%s, rejoined with RejoinTerm, does not catch up: %v: %s", f2, c.Node(f2).Status().Err, c.Describe())
	}

	// A learner has no vote: back on wiped data, it is not refused and
	// catches up again.
	if err := c.Join("n4"); err != nil {
		t.Fatal(err)
	}
	mustChange(t, c, l, asyncraft.AddLearner(asyncraft.Peer{ID: "n4", Addr: "n4"}), "add learner n4")
	commitAll(t, c, l, "e", 10)
	if err := c.WipeAndJoin("n4"); err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "f", 10)
	if !c.Sim.RunUntil(func() bool {
		return c.Node("n4").Status().Applied >= c.Node(l).Status().Commit
	}, 10*time.Second) {
		t.Fatalf("learner n4, back on wiped data, does not catch up: %v: %s", c.Node("n4").Status().Err, c.Describe())
	}

	// Promoted, it is a voter: wiped again, it is refused by the same
	// leader, which heard it only as a learner before (its replicator
	// reports the incarnation again once the configuration changes).
	mustChange(t, c, l, asyncraft.PromoteLearner("n4"), "promote n4")
	commitAll(t, c, l, "g", 10)
	c.Wipe("n4", 0)
	if err := c.Restart("n4"); err != nil {
		t.Fatal(err)
	}
	waitWiped(t, c, "n4")
	mustChange(t, c, l, asyncraft.RemoveMember("n4"), "remove the wiped n4")
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
}
