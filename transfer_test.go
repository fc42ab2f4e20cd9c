package asyncraft_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
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

// withPriority is a cluster option giving node id the election priority p
// in the bootstrap configuration (every node's Peers).
func withPriority(id string, p uint32) func(*asyncraft.NodeOptions, *sim.Host) {
	return func(o *asyncraft.NodeOptions, _ *sim.Host) {
		o.Peers = slices.Clone(o.Peers)
		for i := range o.Peers {
			if o.Peers[i].ID == id {
				o.Peers[i].Priority = p
			}
		}
	}
}

// leads reports whether id runs and leads.
func leads(c *cluster.Cluster, id string) bool {
	n := c.Node(id)
	return n != nil && n.Status().Role == asyncraft.Leader
}

// A voter of a higher priority leads: the first leader hands over to it,
// a leader elected while it was down hands back to it once it is back and
// caught up, and a priority raised at run time (SetPriority, one
// configuration entry) moves the leadership there. Writes go on
// throughout.
func TestPriorityElection(t *testing.T) {
	hi := "n3"
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Node: withPriority(hi, 5)})
	if !c.Sim.RunUntil(func() bool { return leads(c, hi) }, 20*time.Second) {
		t.Fatalf("%s, of the highest priority, does not lead: %s", hi, c.Describe())
	}
	commitAll(t, c, hi, "a", 10)

	c.Crash(hi)
	others := slices.DeleteFunc(slices.Clone(c.IDs), func(id string) bool { return id == hi })
	lo := waitLeaderAmong(t, c, others)
	commitAll(t, c, lo, "b", 10)
	m := c.Node(lo).Metrics()
	before := m.PriorityTransfers.Load()
	if err := c.Restart(hi); err != nil {
		t.Fatal(err)
	}
	start := c.Sim.Now()
	if !c.Sim.RunUntil(func() bool { return leads(c, hi) }, 20*time.Second) {
		t.Fatalf("%s, back, does not lead again: %s", hi, c.Describe())
	}
	if d := c.Sim.Now() - start; d > 5*time.Second {
		t.Errorf("%s led again %v after its restart, want within a few election timeouts", hi, d)
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(lo).Status().Leader == hi }, 5*time.Second) {
		t.Fatalf("%s does not learn that %s leads: %s", lo, hi, c.Describe())
	}
	if got := m.PriorityTransfers.Load() - before; got != 1 || m.TransfersDone.Load() < 1 {
		t.Errorf("%s handed over %d times by priority (done %d), want once", lo, got, m.TransfersDone.Load())
	}
	commitAll(t, c, hi, "c", 10)

	// Raised at run time: lo now outranks hi.
	mustChange(t, c, hi, asyncraft.SetPriority(lo, 9), "raise %s's priority", lo)
	if !c.Sim.RunUntil(func() bool { return leads(c, lo) }, 20*time.Second) {
		t.Fatalf("%s, raised to priority 9, does not lead: %s", lo, c.Describe())
	}
	for _, p := range c.Node(lo).Status().Configuration.Voters {
		if want := map[string]uint32{hi: 5, lo: 9}[p.ID]; p.Priority != want {
			t.Errorf("the configuration gives %s priority %d, want %d", p.ID, p.Priority, want)
		}
	}
	commitAll(t, c, lo, "d", 10)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
}

// A voter of a higher priority that never receives TimeoutNow cannot
// take over: each hand-over fails after an election timeout, and the
// leader waits longer after each failure (4, 8, 16, ... election
// timeouts), so that the group refuses writes for a small and shrinking
// share of the time. Once the target hears TimeoutNow, it leads.
func TestPriorityBackoff(t *testing.T) {
	var drop atomic.Bool
	c := cluster.New(cluster.Options{Seed: testseed.For(t),
		Tamper: func(from, to actors.Ref, msg proto.Message) proto.Message {
			if e, ok := msg.(*raftpb.Envelope); ok && e.GetTimeoutNow() != nil && drop.Load() {
				e = proto.Clone(e).(*raftpb.Envelope)
				e.To = "nobody" // dropped by the receiver: not meant for it
				return e
			}
			return msg
		}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "a", 5)
	f := c.IDs[0]
	if f == l {
		f = c.IDs[1]
	}
	drop.Store(true)
	mustChange(t, c, l, asyncraft.SetPriority(f, 5), "raise %s's priority", f)
	m := c.Node(l).Metrics()
	c.Sim.RunFor(60 * time.Second) // 60 election timeouts
	if !leads(c, l) {
		t.Fatalf("%s no longer leads: %s", l, c.Describe())
	}
	tries, failed := m.PriorityTransfers.Load(), m.TransfersFailed.Load()
	// At 1, then after waits of 4, 8, 16 and 32 election timeouts (each
	// try lasting one): 4 or 5 tries in 60, against 30 without the waits.
	if tries < 3 || tries > 5 || failed != tries {
		t.Errorf("in 60 election timeouts, %d hand-overs to %s (%d failed), want 3 to 5, all failed", tries, f, failed)
	}
	drop.Store(false)
	if !c.Sim.RunUntil(func() bool { return leads(c, f) }, 70*time.Second) {
		t.Fatalf("%s does not lead once TimeoutNow reaches it: %s", f, c.Describe())
	}
}
