package asyncraft_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// TestVotesAreDurableBeforeTheyLeave checks, for every vote request and
// every granted vote that crosses the network, that its sender had already
// made the term and vote it states durable (Raft §5.2, Figure 2).
func TestVotesAreDurableBeforeTheyLeave(t *testing.T) {
	seed := testseed.For(t)
	metas := map[string]*cluster.SavedMeta{}
	requests, grants := 0, 0
	var violations []string
	check := func(from, to actors.Ref, msg any) {
		e, ok := msg.(*raftpb.Envelope)
		if !ok {
			return
		}
		d := metas[e.From].Durable
		switch b := e.Body.(type) {
		case *raftpb.Envelope_VoteRequest:
			requests++
			if d == nil || d.Term != e.Term || d.Vote != e.From {
				violations = append(violations, "vote request of "+e.From+" left before its vote for itself was durable")
			}
		case *raftpb.Envelope_VoteResponse:
			if !b.VoteResponse.Granted {
				return
			}
			grants++
			if d == nil || d.Term != e.Term || d.Vote != e.To {
				violations = append(violations, "vote of "+e.From+" for "+e.To+" left before it was durable")
			}
		}
	}
	c := cluster.New(cluster.Options{Seed: seed, Nodes: 5, OnSend: check, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		m := &cluster.SavedMeta{MetaStorage: logmgr.NewMemoryMeta()}
		metas[o.ID] = m
		o.LogStorage, o.MetaStorage = logmgr.NewMemoryStorage(), m
	}})
	// Force many elections: isolate whoever leads, again and again.
	for round := 0; round < 10; round++ {
		l, err := c.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Sim.Isolate(l)
		c.Sim.RunFor(3 * time.Second)
		c.Sim.Heal()
	}
	if len(violations) > 0 {
		t.Fatalf("seed %d: %d violations, first: %s", seed, len(violations), violations[0])
	}
	if requests < 10 || grants < 10 {
		t.Fatalf("only %d vote requests and %d grants checked", requests, grants)
	}
	t.Logf("checked %d vote requests and %d grants", requests, grants)
	noPanics(t, c)
}

// TestFollowersAcknowledgeOnlyDurableEntries checks every successful
// AppendEntries reply against the follower's storage: the entries it
// acknowledges were synced before the reply left.
func TestFollowersAcknowledgeOnlyDurableEntries(t *testing.T) {
	seed := testseed.For(t)
	logs := map[string]*cluster.SyncedLog{}
	acks := 0
	var violation string
	check := func(from, to actors.Ref, msg any) {
		e, ok := msg.(*raftpb.Envelope)
		if !ok {
			return
		}
		if r := e.GetAppendResponse(); r != nil && r.Success {
			acks++
			if s := logs[e.From].Synced; r.MatchIndex > s && violation == "" {
				violation = fmt.Sprintf("%s acknowledged up to %d with only %d synced", e.From, r.MatchIndex, s)
			}
		}
	}
	c := cluster.New(cluster.Options{Seed: seed, OnSend: check, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		l := cluster.NewSyncedLog(logmgr.NewMemoryStorage())
		logs[o.ID] = l
		o.LogStorage, o.MetaStorage = l, logmgr.NewMemoryMeta()
	}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "x", 3000)
	if violation != "" {
		t.Fatalf("seed %d: %s", seed, violation)
	}
	if acks < 20 {
		t.Fatalf("only %d acknowledgements checked", acks)
	}
	noPanics(t, c)
}

func TestExpectedTermMismatchIsStale(t *testing.T) {
	c, l := newGroup(t)
	term := c.Node(l).Status().Term
	o := cluster.NewOutcomes()
	c.Node(l).Apply(asyncraft.Task{Data: []byte("old"), ExpectedTerm: term + 1, Done: o.Closure()})
	c.Node(l).Apply(asyncraft.Task{Data: []byte("ok"), ExpectedTerm: term, Done: o.Closure()})
	c.Sim.RunUntil(func() bool { return o.Completed() == 2 }, 5*time.Second)
	if o.ByCode[closure.ESTALE] != 1 || o.ByCode[closure.OK] != 1 {
		t.Fatalf("outcomes %v", o.ByCode)
	}
	applied := c.SM(l).Applied
	if len(applied) != 1 || applied[0].Data != "ok" {
		t.Fatalf("applied %v", applied)
	}
}
