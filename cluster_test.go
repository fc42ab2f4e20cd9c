package asyncraft_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

func noPanics(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	if len(c.Panics) > 0 {
		t.Fatalf("actor panics:\n%s", c.Panics[0])
	}
}

func TestElection(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			seed := testseed.For(t)
			c := cluster.New(cluster.Options{Seed: seed, Nodes: n})
			l, err := c.WaitLeader(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			leaders := 0
			for _, id := range c.IDs {
				if c.Node(id).Status().Role == asyncraft.Leader {
					leaders++
				}
			}
			if leaders != 1 {
				t.Fatalf("%d leaders: %s", leaders, c.Describe())
			}
			// The leader keeps its place while nothing fails.
			term := c.Node(l).Status().Term
			c.Sim.RunFor(20 * time.Second)
			if got := c.StableLeader(); got != l || c.Node(l).Status().Term != term {
				t.Fatalf("leadership changed without faults: %s term %d → %s%s", l, term, got, c.Describe())
			}
			noPanics(t, c)
		})
	}
}

func TestReplicateTenThousand(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			seed := testseed.For(t)
			c := cluster.New(cluster.Options{Seed: seed, Nodes: n})
			l, err := c.WaitLeader(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			const total = 10000
			o := cluster.NewOutcomes()
			c.Load(l, "cmd-", total, 256, o)
			if !c.Sim.RunUntil(func() bool { return o.Completed() == total }, time.Minute) {
				t.Fatalf("%d of %d completed: %v%s", o.Completed(), total, o.ByCode, c.Describe())
			}
			if o.ByCode[closure.OK] != total || o.Double != 0 {
				t.Fatalf("outcomes %v, %d double", o.ByCode, o.Double)
			}
			// Every node applies everything.
			want := c.Node(l).Status().Commit
			if !c.Sim.RunUntil(func() bool {
				for _, id := range c.IDs {
					if c.Node(id).Status().Applied < want {
						return false
					}
				}
				return true
			}, 10*time.Second) {
				t.Fatalf("followers did not apply up to %d:%s", want, c.Describe())
			}
			if err := c.CheckApplied(); err != nil {
				t.Fatal(err)
			}
			for _, id := range c.IDs {
				if got := len(c.SM(id).Applied); got != total {
					t.Fatalf("%s applied %d commands, want %d", id, got, total)
				}
			}
			st := c.Node(l).LogStats()
			t.Logf("virtual %v, %d events; leader wrote %d entries in %d batches (max %d)",
				c.Sim.Now(), c.Sim.Events(), st.Entries.Load(), st.Writes.Load(), st.MaxBatch.Load())
			if st.Writes.Load() >= st.Entries.Load()/4 {
				t.Fatalf("group commit is not batching: %d writes for %d entries", st.Writes.Load(), st.Entries.Load())
			}
			noPanics(t, c)
		})
	}
}

// waitApplied runs until every running node has applied index.
func waitApplied(t *testing.T, c *cluster.Cluster, index uint64, limit time.Duration) {
	t.Helper()
	ok := c.Sim.RunUntil(func() bool {
		for _, id := range c.Up() {
			if c.Node(id).Status().Applied < index {
				return false
			}
		}
		return true
	}, limit)
	if !ok {
		t.Fatalf("not every node applied %d within %v:%s", index, limit, c.Describe())
	}
}

func runLoad(t *testing.T, c *cluster.Cluster, id, prefix string, total int) *cluster.Outcomes {
	t.Helper()
	o := cluster.NewOutcomes()
	c.Load(id, prefix, total, 64, o)
	if !c.Sim.RunUntil(func() bool { return o.Completed() == total }, time.Minute) {
		t.Fatalf("%d of %d completed: %v%s", o.Completed(), total, o.ByCode, c.Describe())
	}
	if o.ByCode[closure.OK] != total || o.Double != 0 {
		t.Fatalf("outcomes %v, %d double", o.ByCode, o.Double)
	}
	return o
}

// newGroup starts the default simulated group with a fresh seed (printed
// for replay) and waits for its leader.
func newGroup(t *testing.T) (*cluster.Cluster, string) {
	t.Helper()
	return newGroupSeed(t, testseed.For(t))
}

// newGroupSeed is newGroup with a seed the caller chose (and printed).
func newGroupSeed(t *testing.T, seed uint64) (*cluster.Cluster, string) {
	t.Helper()
	c := cluster.New(cluster.Options{Seed: seed})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

func TestCrashedLeaderReplacedAndCatchesUp(t *testing.T) {
	c, l1 := newGroup(t)
	runLoad(t, c, l1, "a", 1000)
	term1 := c.Node(l1).Status().Term
	c.Crash(l1)
	l2, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l2 == l1 || c.Node(l2).Status().Term <= term1 {
		t.Fatalf("leader %s term %d after crashing %s term %d", l2, c.Node(l2).Status().Term, l1, term1)
	}
	runLoad(t, c, l2, "b", 1000)
	if err := c.Restart(l1); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, c, c.Node(l2).Status().Commit, 10*time.Second)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	// The restarted node replayed its log from disk and caught up.
	if got := len(c.SM(l1).Applied); got != 2000 {
		t.Fatalf("restarted %s applied %d commands, want 2000", l1, got)
	}
	if s := c.Node(l1).Status(); s.Term < c.Node(l2).Status().Term || s.Leader != l2 {
		t.Fatalf("restarted node does not follow the new leader: %v", s)
	}
	noPanics(t, c)
}

// TestRestartedLeaderGetsOnlyWhatItLacks: a leader with a long log crashes
// and a new one is elected while it is down, so the new leader's first
// probe to it, and its resends, go unanswered for many resend timeouts.
// Once restarted, the ex-leader must be sent the entries it lacks, not the
// log it holds again: the probe stays where it was during the silence
// (the new leader's last index + 1), it does not fall back to index 1.
func TestRestartedLeaderGetsOnlyWhatItLacks(t *testing.T) {
	var (
		counting        bool
		old             string
		held            []uint64 // held[i-1]: the term of entry i in the restarted node's log
		sent, redundant int
	)
	c := cluster.New(cluster.Options{Seed: testseed.For(t), OnSend: func(_, to actors.Ref, msg any) {
		req := msg.(*raftpb.Envelope).GetAppendRequest()
		if !counting || to.Host != old || req == nil {
			return
		}
		for _, e := range req.Entries {
			sent++
			if e.Index <= uint64(len(held)) && held[e.Index-1] == e.Term {
				redundant++
			}
		}
	}})
	old, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, old, "a", 5000)
	c.Crash(old)
	l2, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l2, "b", 500)
	if err := c.Restart(old); err != nil {
		t.Fatal(err)
	}
	lg := c.Node(old).Log()
	for i := uint64(1); i <= lg.LastIndex(); i++ {
		term, err := lg.Term(i)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, term)
	}
	counting = true
	waitApplied(t, c, c.Node(l2).Status().Commit, 10*time.Second)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	if got := len(c.SM(old).Applied); got != 5500 {
		t.Fatalf("restarted %s applied %d commands, want 5500", old, got)
	}
	missing := c.Node(l2).Status().LastIndex - uint64(len(held))
	t.Logf("%s restarted holding %d entries, %d behind: sent %d entries, %d of them already held",
		old, len(held), missing, sent, redundant)
	if sent == 0 || redundant*10 >= sent {
		t.Fatalf("%d of the %d entries sent to the restarted leader were already in its log", redundant, sent)
	}
	noPanics(t, c)
}

// TestDivergentLogsConvergeWithConflictHints: an old leader and a follower,
// cut off from the majority, append 2000 entries that never commit, while
// the majority writes 3000 others. A later leader of the majority, elected
// after the logs diverged, probes the minority at its own last index + 1
// (the optimistic start); each minority node rejects once, and the
// conflict hint takes the leader straight back to where the logs diverged
// (index 201) instead of one entry per round trip. So the minority sees a
// rejection or two each, and gets little more than the entries it lacks.
func TestDivergentLogsConvergeWithConflictHints(t *testing.T) {
	seed := testseed.For(t)
	var (
		counting bool
		sentTo   = map[string]int{} // entries sent to each node once healed
	)
	c := cluster.New(cluster.Options{Seed: seed, Nodes: 5, OnSend: func(_, to actors.Ref, msg any) {
		if req := msg.(*raftpb.Envelope).GetAppendRequest(); counting && req != nil {
			sentTo[to.Host] += len(req.Entries)
		}
	}})
	old, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, old, "base", 200)
	common := c.Node(old).Status().LastIndex
	// Cut the leader and one follower off from the other three.
	var minority, majority []string
	minority = append(minority, old)
	for _, id := range c.IDs {
		if id == old {
			continue
		}
		if len(minority) < 2 {
			minority = append(minority, id)
		} else {
			majority = append(majority, id)
		}
	}
	c.Sim.Partition(minority, majority)
	// The old leader appends entries that can never commit.
	lost := cluster.NewOutcomes()
	c.Load(old, "lost", 2000, 2000, lost)
	c.Sim.RunFor(200 * time.Millisecond)
	if lost.Completed() != 0 {
		t.Fatalf("proposals on the minority side completed: %v", lost.ByCode)
	}
	// The majority elects a leader and writes more than the minority has.
	majorityLeader := func(after uint64) string {
		var l string
		if !c.Sim.RunUntil(func() bool {
			for _, id := range majority {
				if n := c.Node(id); n != nil {
					if s := n.Status(); s.Role == asyncraft.Leader && s.Term > after {
						l = id
						return true
					}
				}
			}
			return false
		}, 10*time.Second) {
			t.Fatalf("majority elected no leader after term %d:%s", after, c.Describe())
		}
		return l
	}
	l2 := majorityLeader(0)
	runLoad(t, c, l2, "new", 3000)
	// That leader was elected before the logs diverged: its probes to the
	// minority wait at index 201, which matches. Replace it with one
	// elected now, which starts probing past the minority's logs.
	term2 := c.Node(l2).Status().Term
	c.Crash(l2)
	if err := c.Restart(l2); err != nil {
		t.Fatal(err)
	}
	l3 := majorityLeader(term2)
	noop := c.Node(l3).Status().LastIndex
	if !c.Sim.RunUntil(func() bool { return c.Node(l3).Status().Commit >= noop }, 10*time.Second) {
		t.Fatalf("%s does not commit its no-op:%s", l3, c.Describe())
	}
	lagging := minority[1]
	behind := c.Node(lagging).Status().LastIndex
	rejectsBefore := c.Node(old).Metrics().AppendRejects.Load() + c.Node(lagging).Metrics().AppendRejects.Load()
	c.Sim.Heal()
	counting = true
	healed := c.Sim.Now()
	waitApplied(t, c, c.Node(l3).Status().Commit, 10*time.Second)
	took := c.Sim.Now() - healed
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	// The old leader's uncommitted proposals failed definitely: other
	// entries were committed at their indexes.
	c.Sim.RunUntil(func() bool { return lost.Completed() == 2000 }, time.Second)
	if lost.Completed() != 2000 || lost.ByCode[closure.ENEWLEADER] != 2000 || lost.Double != 0 {
		t.Fatalf("old leader's proposals: %v (double %d)%s", lost.ByCode, lost.Double, c.Describe())
	}
	rejects := c.Node(old).Metrics().AppendRejects.Load() + c.Node(lagging).Metrics().AppendRejects.Load() - rejectsBefore
	missing := c.Node(l3).Status().LastIndex - common
	t.Logf("converged %v after heal; %s was at %d, the logs agree up to %d, leader %s at %d; %d rejections on the minority; entries sent: %s %d, %s %d",
		took, lagging, behind, common, l3, c.Node(l3).Status().LastIndex, rejects, old, sentTo[old], lagging, sentTo[lagging])
	// Both minority logs go past the leader's probe point's term: each
	// must reject. None would if the leader probed from index 1.
	if rejects == 0 {
		t.Fatalf("no rejection on the minority: the leader did not probe from its last index + 1")
	}
	// Without hints, skipping 2000 divergent entries takes ~2000 rejections.
	if rejects > 4 {
		t.Fatalf("%d rejections to converge: the conflict hints do not work", rejects)
	}
	// Each minority node gets the entries after the common prefix, plus
	// the few the rejected probe carried (those after the leader's probe
	// point: its no-op): no part of the prefix, and no entry twice.
	for _, id := range minority {
		if limit := int(missing) + 10; sentTo[id] > limit {
			t.Fatalf("%d entries sent to %s, which lacked %d: want at most %d", sentTo[id], id, missing, limit)
		}
	}
	noPanics(t, c)
}

func TestOverloadFailsFastWithEBUSY(t *testing.T) {
	seed := testseed.For(t)
	c := cluster.New(cluster.Options{Seed: seed, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		o.MaxPendingTasks = 16
		o.ApplyBatch = 8
	}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	o := cluster.NewOutcomes()
	for i := 0; i < 1000; i++ {
		c.Node(l).Apply(asyncraft.Task{Data: []byte("x"), Done: o.Closure()})
	}
	// Nothing has run yet: the queue took 16, the rest are refused at once.
	c.Sim.RunUntil(func() bool { return o.Completed() == 1000 }, 10*time.Second)
	if o.ByCode[closure.EBUSY] != 984 || o.ByCode[closure.OK] != 16 || o.Double != 0 {
		t.Fatalf("outcomes %v", o.ByCode)
	}
	noPanics(t, c)
}

func TestFollowerRefusesWithLeaderID(t *testing.T) {
	c, l := newGroup(t)
	for _, id := range c.IDs {
		if id == l {
			continue
		}
		var got closure.Status
		ran := 0
		c.Node(id).Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) { got = st; ran++ })})
		c.Sim.RunUntil(func() bool { return ran > 0 }, time.Second)
		if ran != 1 || got.Code != closure.EPERM || got.Leader != l {
			t.Fatalf("apply on follower %s: ran %d, status %+v, leader %s", id, ran, got, l)
		}
		if err := got.Err(); !errorsIs(err, closure.ErrNotLeader) {
			t.Fatalf("error %v does not match ErrNotLeader", err)
		}
	}
}

func TestSameSeedSameTraceHash(t *testing.T) {
	seed := testseed.For(t)
	run := func(seed uint64) string {
		c := cluster.New(cluster.Options{Seed: seed, Nodes: 5})
		l, err := c.WaitLeader(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		o := cluster.NewOutcomes()
		c.Load(l, "x", 2000, 32, o)
		c.Sim.RunFor(500 * time.Millisecond)
		c.Crash(l)
		c.Sim.RunFor(3 * time.Second)
		c.Restart(l)
		c.Sim.RunFor(3 * time.Second)
		return fmt.Sprintf("%s/%d", c.Sim.TraceHash(), c.Sim.Events())
	}
	a, b := run(seed), run(seed)
	if a != b {
		t.Fatalf("seed %d: %s then %s", seed, a, b)
	}
	if d := run(seed + 1); d == a {
		t.Fatalf("seeds %d and %d: same trace %s", seed, seed+1, a)
	}
}

func TestShutdownCompletesEveryClosure(t *testing.T) {
	c, l := newGroup(t)
	o := cluster.NewOutcomes()
	for i := 0; i < 500; i++ {
		c.Node(l).Apply(asyncraft.Task{Data: []byte("x"), Done: o.Closure()})
	}
	c.Sim.RunFor(300 * time.Microsecond) // some appended, none committed yet
	n := c.Node(l)
	if err := c.Shutdown(l, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Sim.RunFor(10 * time.Millisecond)
	if o.Completed() != 500 || o.Double != 0 {
		t.Fatalf("completed %d of 500 (%v), double %d", o.Completed(), o.ByCode, o.Double)
	}
	for code := range o.ByCode {
		switch code {
		case closure.OK, closure.ESHUTDOWN, closure.EUNKNOWN:
		default:
			t.Fatalf("unexpected outcome %v: %v", code, o.ByCode)
		}
	}
	if s := n.Status(); s.Role != asyncraft.Shutdown {
		t.Fatalf("status after shutdown: %v", s)
	}
	if c.SM(l).Shutdowns != 1 {
		t.Fatalf("OnShutdown called %d times", c.SM(l).Shutdowns)
	}
	var late closure.Status
	n.Apply(asyncraft.Task{Done: closure.Func(func(st closure.Status) { late = st })})
	c.Sim.RunFor(time.Millisecond)
	if late.Code != closure.ESHUTDOWN {
		t.Fatalf("apply after shutdown: %v", late)
	}
	// The rest of the group carries on.
	if _, err := c.WaitLeader(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	noPanics(t, c)
}

func TestStateMachineFailureIsANodeError(t *testing.T) {
	c, l := newGroup(t)
	victim := ""
	for _, id := range c.IDs {
		if id != l {
			victim = id
			break
		}
	}
	c.SM(victim).Fail = func(e cluster.Entry) *closure.Status {
		if e.Data == "poison" {
			panic("state machine bug")
		}
		return nil
	}
	runLoad(t, c, l, "ok", 10)
	o := cluster.NewOutcomes()
	c.Node(l).Apply(asyncraft.Task{Data: []byte("poison"), Done: o.Closure()})
	if !c.Sim.RunUntil(func() bool { return c.Node(victim).Status().Role == asyncraft.Errored }, 10*time.Second) {
		t.Fatalf("victim did not enter the error state:%s", c.Describe())
	}
	s := c.Node(victim).Status()
	if s.Err == nil || len(c.SM(victim).Errors) != 1 {
		t.Fatalf("status %v, OnError calls %d", s, len(c.SM(victim).Errors))
	}
	// The group goes on without it: the poison applied on the others.
	c.Sim.RunUntil(func() bool { return o.Completed() == 1 }, 10*time.Second)
	if o.ByCode[closure.OK] != 1 {
		t.Fatalf("poison outcome on the leader: %v", o.ByCode)
	}
	runLoad(t, c, l, "more", 10)
	noPanics(t, c)
}

// TestBadEnvelopesAreDroppedAndCounted sends a node envelopes it must not
// act on: from a node that is not a member, from itself, for another group,
// addressed to another node, and with no body. Each is dropped and counted
// in Metrics().Dropped, nothing panics, and the group goes on committing.
func TestBadEnvelopesAreDroppedAndCounted(t *testing.T) {
	c, l := newGroup(t)
	var victim string
	for _, id := range c.IDs {
		if id != l {
			victim = id
			break
		}
	}
	node := c.Node(victim)
	term := c.Node(l).Status().Term
	before := node.Metrics().Dropped.Load()
	// Each would, if accepted, make the victim vote or follow someone.
	ident := node.ClusterIdentity() // so that each is dropped for its own reason
	vote := func(group, from, to string) *raftpb.Envelope {
		return &raftpb.Envelope{Group: group, From: from, To: to, Term: term + 5, Cluster: ident,
			Body: &raftpb.Envelope_VoteRequest{VoteRequest: &raftpb.VoteRequest{LastLogIndex: 1 << 40, LastLogTerm: term + 5}}}
	}
	bad := []*raftpb.Envelope{
		vote("g", "intruder", victim), // not a member
		vote("g", victim, victim),     // from itself
		vote("other", l, victim),      // another group
		vote("g", l, "n9"),            // another node
		{Group: "g", From: l, To: victim, Term: term, Cluster: ident}, // no body
	}
	to := actors.Ref{Host: victim, Name: "g/" + victim + "/node"}
	for _, e := range bad {
		c.Sim.Host(l).Send(to, e)
	}
	c.Sim.RunFor(time.Second)
	noPanics(t, c)
	if got := node.Metrics().Dropped.Load() - before; got != uint64(len(bad)) {
		t.Fatalf("dropped %d envelopes, want %d", got, len(bad))
	}
	if st := node.Status(); st.Term != term {
		t.Fatalf("the victim moved to term %d (was %d): a bad envelope was acted on", st.Term, term)
	}
	o := cluster.NewOutcomes()
	c.Load(l, "after-", 100, 10, o)
	if !c.Sim.RunUntil(func() bool { return o.Completed() == 100 }, 10*time.Second) {
		t.Fatalf("%d of 100 completed after the bad envelopes: %v%s", o.Completed(), o.ByCode, c.Describe())
	}
	if o.ByCode[closure.OK] != 100 {
		t.Fatalf("outcomes %v, want 100 OK", o.ByCode)
	}
}

// TestLeaderReadFailureReportedAndRetried: a leader restarted from disk
// reads a lagging follower's entries from its WAL, and those reads fail
// (EIO injected in the leader's disk). The node learns of it — a metric,
// Status.ReplicationErr — while the rest of the group goes on, and once
// reads work again the replicator, which kept retrying, catches the
// follower up and the error clears.
func TestLeaderReadFailureReportedAndRetried(t *testing.T) {
	var logs bytes.Buffer
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var lagging string
	for _, id := range c.IDs {
		if id != l {
			lagging = id
			break
		}
	}
	c.Crash(lagging)
	runLoad(t, c, l, "a", 300)
	// Restart the other two: the new leader's log cache is empty, so what
	// the lagging node lacks is read from the WAL.
	up := c.Up()
	for _, id := range up {
		c.Crash(id)
	}
	for _, id := range up {
		if err := c.Restart(id); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Its no-op commits, and both nodes replay their logs from disk.
	if !c.Sim.RunUntil(func() bool { s := c.Node(leader).Status(); return s.Commit == s.LastIndex }, 10*time.Second) {
		t.Fatalf("the leader does not commit its no-op:%s", c.Describe())
	}
	waitApplied(t, c, c.Node(leader).Status().Commit, 10*time.Second)
	failing := true
	c.Sim.Host(leader).Disk().SetInjector(func(op vfs.Op, name string) error {
		if failing && op == vfs.OpRead {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	if err := c.Restart(lagging); err != nil {
		t.Fatal(err)
	}
	n := c.Node(leader)
	if !c.Sim.RunUntil(func() bool {
		return n.Metrics().ReplicationReadFailures.Load() >= 3 && n.Status().ReplicationErr != nil
	}, 10*time.Second) {
		t.Fatalf("read failures not reported: %d counted, status %v", n.Metrics().ReplicationReadFailures.Load(), n.Status())
	}
	st := n.Status()
	if !errors.Is(st.ReplicationErr, syscall.EIO) || !strings.Contains(st.ReplicationErr.Error(), lagging) || st.Role != asyncraft.Leader {
		t.Fatalf("status %v: want a leader whose ReplicationErr names %s and wraps EIO", st, lagging)
	}
	if got := c.Node(lagging).Status().LastIndex; got >= n.Status().Commit {
		t.Fatalf("%s got the entries (last %d) although the leader cannot read them", lagging, got)
	}
	runLoad(t, c, leader, "b", 50) // the others still commit
	failing = false
	waitApplied(t, c, n.Status().Commit, 10*time.Second)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	if st := n.Status(); st.ReplicationErr != nil || st.Role != asyncraft.Leader {
		t.Fatalf("status once reads work: %v", st)
	}
	t.Logf("%d failed reads reported before reads worked again", n.Metrics().ReplicationReadFailures.Load())
	for _, line := range []string{"a replicator cannot read the log", "a replicator reads the log again"} {
		if got := strings.Count(logs.String(), line); got != 1 {
			t.Fatalf("%d log lines %q, want 1 (once per run of failures):\n%s", got, line, logs.String())
		}
	}
	noPanics(t, c)
}
