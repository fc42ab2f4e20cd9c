package asyncraft_test

import (
	"errors"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
)

type transferResult struct {
	done bool
	err  error
	at   time.Duration // virtual time it ended
}

func transferNow(c *cluster.Cluster, id, to string) *transferResult {
	r := &transferResult{}
	c.Node(id).TransferLeadershipAsync(to, func(err error) { r.done, r.err, r.at = true, err, c.Sim.Now() })
	return r
}

func waitTransfer(t *testing.T, c *cluster.Cluster, r *transferResult) {
	t.Helper()
	if !c.Sim.RunUntil(func() bool { return r.done }, 20*time.Second) {
		t.Fatalf("the transfer was not answered: %s", c.Describe())
	}
}

// applyNow proposes one command on id and returns where its outcome lands.
func applyNow(c *cluster.Cluster, id, cmd string) *closure.Status {
	st := &closure.Status{Code: -1}
	c.Node(id).Apply(asyncraft.Task{Data: []byte(cmd), Done: closure.Func(func(s closure.Status) { *st = s })})
	return st
}

// A transfer to a named follower, and one to the most up-to-date: the
// target leads in the next term, the old leader follows it, proposals made
// during the transfer are refused at once with EBUSY (never appended), and
// writes go on through the new leader. The group refuses writes for less
// than an election timeout (1 s here).
func TestTransferLeadership(t *testing.T) {
	c, l, to, _ := threeNodes(t, 20)
	term := c.Node(l).Status().Term
	start := c.Sim.Now()
	r := transferNow(c, l, to)
	during := applyNow(c, l, "during")
	waitTransfer(t, c, r)
	if r.err != nil {
		t.Fatalf("transfer %s -> %s: %v", l, to, r.err)
	}
	if d := r.at - start; d >= time.Second {
		t.Errorf("the transfer took %v, more than an election timeout", d)
	}
	if during.Code != closure.EBUSY {
		t.Errorf("a proposal during the transfer: %v, want EBUSY", *during)
	}
	if nl := waitLeaderAmong(t, c, c.IDs); nl != to {
		t.Fatalf("leader after the transfer %s, want %s", nl, to)
	}
	if st := c.Node(to).Status(); st.Term != term+1 {
		t.Errorf("the target leads term %d, want %d (one election, no pre-vote round lost)", st.Term, term+1)
	}
	m := c.Node(l).Metrics()
	if m.TransfersStarted.Load() != 1 || m.TransfersDone.Load() != 1 || m.TransfersFailed.Load() != 0 {
		t.Errorf("metrics started %d done %d failed %d, want 1 1 0", m.TransfersStarted.Load(), m.TransfersDone.Load(), m.TransfersFailed.Load())
	}
	commitAll(t, c, to, "b", 10)

	// To the most up-to-date voter: any of the two others.
	r = transferNow(c, to, "")
	waitTransfer(t, c, r)
	if r.err != nil {
		t.Fatalf("transfer from %s to the most up-to-date: %v", to, r.err)
	}
	if nl := waitLeaderAmong(t, c, c.IDs); nl == to {
		t.Fatalf("%s still leads after transferring", to)
	}
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
}

// A transfer that cannot complete — its target cut off — ends with
// ETIMEDOUT within an election timeout; the leader still leads, holds
// leases and accepts proposals again. Transfers to a non-member, to a
// learner, from a follower and a second one at once are refused.
func TestTransferAborts(t *testing.T) {
	c, l, to, other := threeNodes(t, 5)
	for _, tc := range []struct {
		name     string
		on, to   string
		want     error
		wantCode closure.Code
	}{
		{name: "to a non-member", on: l, to: "n9", want: asyncraft.ErrInvalidConfiguration},
		{name: "from a follower", on: to, to: other, want: closure.ErrNotLeader},
	} {
		r := transferNow(c, tc.on, tc.to)
		waitTransfer(t, c, r)
		if !errors.Is(r.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, r.err, tc.want)
		}
	}
	c.Sim.Isolate(to)
	start := c.Sim.Now()
	r := transferNow(c, l, to)
	second := transferNow(c, l, other)
	waitTransfer(t, c, r)
	waitTransfer(t, c, second)
	if closure.StatusOf(second.err).Code != closure.EBUSY {
		t.Errorf("a second transfer while one is under way: %v, want EBUSY", second.err)
	}
	if closure.StatusOf(r.err).Code != closure.ETIMEDOUT {
		t.Fatalf("transfer to the cut-off %s: %v, want ETIMEDOUT", to, r.err)
	}
	if d := r.at - start; d > 1100*time.Millisecond {
		t.Errorf("the transfer ended after %v, more than an election timeout and a tick", d)
	}
	if st := c.Node(l).Status(); st.Role != asyncraft.Leader {
		t.Fatalf("the leader lost its leadership to an aborted transfer: %v", st)
	}
	commitAll(t, c, l, "b", 5)
	if !c.Sim.RunUntil(func() bool { return !c.Node(l).Status().LeaseUntil.IsZero() }, 5*time.Second) {
		t.Fatal("the leader holds no lease again after the aborted transfer")
	}
	c.Sim.Heal()
	if m := c.Node(l).Metrics(); m.TransfersFailed.Load() != 1 {
		t.Errorf("TransfersFailed %d, want 1", m.TransfersFailed.Load())
	}
}
