package asyncraft_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// recordlessMeta is a MetaStorage that drops the bootstrap record, as one
// written for an earlier version would: every start of its node adopts the
// configuration it is given.
type recordlessMeta struct{ logmgr.MetaStorage }

func (m recordlessMeta) Save(hs *raftpb.HardState) error {
	return m.MetaStorage.Save(&raftpb.HardState{Term: hs.Term, Vote: hs.Vote, Commit: hs.Commit})
}

// TestCommittedEntryMismatchIsANodeError replays the split brain of a
// wrong peer list, with the bootstrap check out of the way (the victim's
// MetaStorage drops the record, so each of its starts also draws a new
// incarnation, and the peers' incarnation check is switched off with the
// planted wiped-data-unchecked): follower f2 restarts with Peers naming
// only itself, elects itself and commits writes alone, in a later term;
// restarted with the right list while the old leader is down, it wins the
// next election (its last term is higher) and sends its log to f1, whose
// commit index covers different entries at the same indexes. f1 must not
// skip them as committed (acknowledging a log it does not hold): it stops
// with ErrLogDiverged naming the index, both terms, the leader and itself.
func TestCommittedEntryMismatchIsANodeError(t *testing.T) {
	type stores struct {
		log  *logmgr.MemoryStorage
		meta logmgr.MetaStorage
	}
	defer faults.Set(faults.WipedDataUnchecked)()
	disks := map[string]*stores{}
	var f2 string
	alone := false
	c, _ := overridable(t, cluster.Options{Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		s := disks[o.ID]
		if s == nil {
			s = &stores{log: logmgr.NewMemoryStorage(), meta: logmgr.NewMemoryMeta()}
			disks[o.ID] = s
		}
		o.LogStorage, o.MetaStorage = s.log, s.meta
		if o.ID == f2 {
			o.MetaStorage = recordlessMeta{s.meta}
			if alone {
				o.Peers = []asyncraft.Peer{{ID: f2, Addr: f2}}
			}
		}
	}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f1 := followerOf(c, l)
	for _, id := range c.IDs {
		if id != l && id != f1 {
			f2 = id
		}
	}
	runLoad(t, c, l, "common-", 10)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)

	// f2 alone: a group of one that commits its own writes.
	c.Crash(f2)
	hs, err := disks[f2].meta.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := (recordlessMeta{disks[f2].meta}).Save(hs); err != nil {
		t.Fatal(err)
	}
	alone = true
	if err := c.Restart(f2); err != nil {
		t.Fatal(err)
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(f2).Status().Role == asyncraft.Leader }, 10*time.Second) {
		t.Fatalf("%s alone did not elect itself:%s", f2, c.Describe())
	}
	runLoad(t, c, f2, "split-", 10)
	// Meanwhile the real group commits more, so f1's commit index covers
	// indexes where f2 holds other entries.
	runLoad(t, c, l, "group-", 30)
	if want := c.Node(l).Status().Commit; !c.Sim.RunUntil(func() bool { return c.Node(f1).Status().Applied >= want }, 10*time.Second) {
		t.Fatalf("%s did not apply %d:%s", f1, want, c.Describe())
	}
	committed := c.Node(f1).Status().Commit
	splitLast := c.Node(f2).Status().LastIndex
	if committed <= splitLast {
		t.Fatalf("f1 committed %d, not beyond %s's last index %d", committed, f2, splitLast)
	}

	// f2 with the right list again, and the old leader gone: f2 wins.
	c.Crash(f2)
	alone = false
	if err := c.Restart(f2); err != nil {
		t.Fatal(err)
	}
	c.Crash(l)
	if !c.Sim.RunUntil(func() bool {
		return c.Node(f1).Status().Role == asyncraft.Errored
	}, 30*time.Second) {
		t.Fatalf("%s did not stop:%s", f1, c.Describe())
	}
	err = c.Node(f1).Status().Err
	t.Logf("%s stopped: %v", f1, err)
	if !errors.Is(err, asyncraft.ErrLogDiverged) {
		t.Fatalf("%s's error %v does not match ErrLogDiverged", f1, err)
	}
	for _, want := range []string{"committed on " + f1, "leader " + f2, "with term "} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
	}
	// It acknowledged nothing of f2's log beyond what it held, so f2,
	// with the old leader down, committed nothing of its new term: an
	// acknowledgement from f1 after skipping the committed entries would
	// have given it a quorum (the heartbeat's check alone stops f1 too,
	// but only after that).
	if s := c.Node(f1).Status(); s.LastIndex != c.Node(f1).Log().LastIndex() || s.Commit != committed {
		t.Fatalf("%s moved: %v (commit was %d)", f1, s, committed)
	}
	if s := c.Node(f2).Status(); s.Commit > splitLast {
		t.Fatalf("%s committed %d, beyond its last index %d before its new term: %s acknowledged entries it skipped", f2, s.Commit, splitLast, f1)
	}
	noPanics(t, c)
}
