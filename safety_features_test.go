package asyncraft_test

import (
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Each test here pins one protocol feature by showing its effect, and runs
// the same scenario with the feature off to show that the effect is the
// feature's: the test's assertion would fail without it.

// disturbance is what happened to a group's leadership in a scenario.
type disturbance struct {
	termRise    uint64 // how far the group's highest term rose
	leaderMoved bool   // the leader of the start no longer leads
}

func (d disturbance) any() bool { return d.termRise > 0 || d.leaderMoved }

func highestTerm(c *cluster.Cluster) uint64 {
	var t uint64
	for _, id := range c.Up() {
		t = max(t, c.Node(id).Status().Term)
	}
	return t
}

// scenario starts a group with opts applied to every node, waits for a
// leader, runs act with the leader and a follower, then reports the
// disturbance.
func scenario(t *testing.T, seed uint64, opts func(*asyncraft.NodeOptions), act func(c *cluster.Cluster, leader, follower string)) disturbance {
	t.Helper()
	c := cluster.New(cluster.Options{Seed: seed, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		if opts != nil {
			opts(o)
		}
	}})
	l, err := c.WaitLeader(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Sim.RunFor(2 * time.Second) // past every node's quiet time after its start
	term := highestTerm(c)
	f := c.IDs[0]
	if f == l {
		f = c.IDs[1]
	}
	act(c, l, f)
	noPanics(t, c)
	st := c.Node(l).Status()
	return disturbance{termRise: highestTerm(c) - term, leaderMoved: st.Role != asyncraft.Leader || st.Term != term}
}

// TestPreVoteKeepsAnIsolatedNodeQuiet: a follower cut off alone for ten
// election timeouts does not raise its term (its pre-votes fail), so when
// it comes back the leader carries on. Without pre-vote it campaigns over
// and over, and its higher term deposes the leader on its return.
func TestPreVoteKeepsAnIsolatedNodeQuiet(t *testing.T) {
	seed := testseed.For(t)
	isolate := func(c *cluster.Cluster, _, f string) {
		c.Sim.Isolate(f)
		c.Sim.RunFor(10 * time.Second)
		c.Sim.Heal()
		c.Sim.RunFor(5 * time.Second)
	}
	if d := scenario(t, seed, nil, isolate); d.any() {
		t.Fatalf("with pre-vote, an isolated follower disturbed the group: %+v", d)
	}
	if d := scenario(t, seed, func(o *asyncraft.NodeOptions) { o.DisablePreVote = true }, isolate); !d.any() {
		t.Fatalf("without pre-vote, the isolated follower did not disturb the group (%+v): the test cannot see pre-vote", d)
	}
}

// TestLeaderStickiness: a follower that stops hearing the leader (the
// leader's messages to it are lost, its own get through) campaigns; the
// other follower still hears the leader and refuses it, so the leader
// keeps its term. Without stickiness the other follower helps it win.
func TestLeaderStickiness(t *testing.T) {
	seed := testseed.For(t)
	deafen := func(c *cluster.Cluster, l, f string) {
		c.Sim.Block(l, f)
		c.Sim.RunFor(10 * time.Second)
		c.Sim.Heal()
		c.Sim.RunFor(2 * time.Second)
	}
	if d := scenario(t, seed, nil, deafen); d.any() {
		t.Fatalf("with stickiness, a follower that cannot hear the leader deposed it: %+v", d)
	}
	restore := faults.Set(faults.NoStickiness)
	defer restore()
	if d := scenario(t, seed, nil, deafen); !d.any() {
		t.Fatalf("without stickiness the deaf follower did not take over (%+v): the test cannot see stickiness", d)
	}
}

// TestCheckQuorumStepDown: a leader cut off from every follower steps down
// within two election timeouts. Without check-quorum it leads on alone.
func TestCheckQuorumStepDown(t *testing.T) {
	seed := testseed.For(t)
	var stillLeads bool
	isolateLeader := func(c *cluster.Cluster, l, _ string) {
		c.Sim.Isolate(l)
		c.Sim.RunFor(2*time.Second + 100*time.Millisecond)
		stillLeads = c.Node(l).Status().Role == asyncraft.Leader
	}
	scenario(t, seed, nil, isolateLeader)
	if stillLeads {
		t.Fatal("an isolated leader still leads after two election timeouts")
	}
	scenario(t, seed, func(o *asyncraft.NodeOptions) { o.DisableCheckQuorum = true }, isolateLeader)
	if !stillLeads {
		t.Fatal("without check-quorum the isolated leader stepped down anyway: the test cannot see check-quorum")
	}
}

// TestLeaderWritesInParallelWithReplication: the leader sends entries to
// its followers while its own fsync runs, so with every disk taking 30 ms
// to sync, a proposal commits in about one sync, not two. With the planted
// fault (replicate only once the leader's write is durable) it takes
// longer.
func TestLeaderWritesInParallelWithReplication(t *testing.T) {
	const sync = 30 * time.Millisecond
	seed := testseed.For(t)
	mean := func() time.Duration {
		c, l := newGroupSeed(t, seed)
		for _, id := range c.IDs {
			c.Sim.Host(id).SetDisk(sim.DiskConfig{SyncMin: sync, SyncMax: sync})
		}
		n := c.Node(l)
		const proposals = 20
		var total time.Duration
		for i := 0; i < proposals; i++ {
			start := c.Sim.Now()
			done := false
			n.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) {
				if !st.OK() {
					t.Errorf("proposal %d: %v", i, st)
				}
				done = true
			})})
			if !c.Sim.RunUntil(func() bool { return done }, 5*time.Second) {
				t.Fatalf("proposal %d did not complete", i)
			}
			total += c.Sim.Now() - start
		}
		noPanics(t, c)
		return total / proposals
	}
	parallel := mean()
	t.Logf("mean commit latency %v with %v syncs", parallel, sync)
	if parallel >= sync*5/4 {
		t.Fatalf("a proposal took %v on average with %v syncs: the leader's sync and the followers' are not overlapping", parallel, sync)
	}
	restore := faults.Set(faults.ReplicateAfterSync)
	defer restore()
	if serial := mean(); serial < sync*5/4 {
		t.Fatalf("replicating after the leader's sync took %v on average: the test cannot see the overlap", serial)
	} else {
		t.Logf("with replication after the leader's sync: %v", serial)
	}
}

// followerMoves starts a group and has one follower's peer (not the
// leader) send it the envelopes msgs builds from the follower's status
// (Group, From, To and Cluster are filled in here). It reports whether the
// follower's term or leader changed before the leader's next heartbeat.
func followerMoves(t *testing.T, seed uint64, msgs func(st asyncraft.Status) []*raftpb.Envelope) bool {
	t.Helper()
	c, l := newGroupSeed(t, seed)
	var f, other string
	for _, id := range c.IDs {
		switch {
		case id == l:
		case f == "":
			f = id
		default:
			other = id
		}
	}
	node := c.Node(f)
	st := node.Status()
	to := actors.Ref{Host: f, Name: "g/" + f + "/node"}
	for _, e := range msgs(st) {
		e.Group, e.From, e.To, e.Cluster = "g", other, f, node.ClusterIdentity()
		c.Sim.Host(other).Send(to, e)
	}
	c.Sim.RunFor(5 * time.Millisecond) // delivered; the leader's next heartbeat is later
	noPanics(t, c)
	now := node.Status()
	return now.Term != st.Term || now.Leader != l
}

// TestLateVoteAnswersDoNotEndStickiness: a follower that hears its leader
// gets late answers to an earlier candidacy of its own — a refused
// pre-vote and a refused vote, carrying a higher term. It must drop them:
// acting on them would raise its term, forget its leader, and free it to
// vote for another while the leader's lease still rests on its promise.
// With the planted fault (act on them) the follower does move.
func TestLateVoteAnswersDoNotEndStickiness(t *testing.T) {
	seed := testseed.For(t)
	moved := func() bool {
		return followerMoves(t, seed, func(st asyncraft.Status) []*raftpb.Envelope {
			no := &raftpb.VoteResponse{Granted: false}
			return []*raftpb.Envelope{
				{Term: st.Term + 1, Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: no}},
				{Term: st.Term + 2, Body: &raftpb.Envelope_VoteResponse{VoteResponse: no}},
			}
		})
	}
	if moved() {
		t.Fatal("a follower acted on late answers to an earlier candidacy: its term or leader changed")
	}
	restore := faults.Set(faults.StaleVoteAnswers)
	defer restore()
	if !moved() {
		t.Fatal("with the planted fault the follower did not move: the test cannot see the rule")
	}
}

// TestTransferFlagBypassesStickinessOnlyForVotes: a vote request flagged
// as part of a leadership transfer, from a peer with an up-to-date log and
// a higher term, reaches a follower that still hears its leader. It is
// granted (the leader that asked for the transfer ended its lease first:
// docs/membership.md); the same flag on a pre-vote request, and a real
// vote request without it, are refused like any other.
func TestTransferFlagBypassesStickinessOnlyForVotes(t *testing.T) {
	seed := testseed.For(t)
	moved := func(pre, flag bool) bool {
		return followerMoves(t, seed, func(st asyncraft.Status) []*raftpb.Envelope {
			req := &raftpb.VoteRequest{LastLogIndex: st.LastIndex + 10, LastLogTerm: st.Term + 1, LeadershipTransfer: flag}
			if pre {
				return []*raftpb.Envelope{{Term: st.Term + 1, Body: &raftpb.Envelope_PreVoteRequest{PreVoteRequest: req}}}
			}
			return []*raftpb.Envelope{{Term: st.Term + 1, Body: &raftpb.Envelope_VoteRequest{VoteRequest: req}}}
		})
	}
	if !moved(false, true) {
		t.Fatal("a follower that hears its leader refused a vote flagged as a transfer")
	}
	if moved(true, true) {
		t.Fatal("a follower that hears its leader granted a pre-vote flagged as a transfer")
	}
	if moved(false, false) {
		t.Fatal("a follower that hears its leader granted an unflagged vote")
	}
}
