package fsm_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// OnLeaderStart runs only once the leader's first entry is applied, after
// the entries before it; LeaderStop then calls OnLeaderStop once.
func TestLeaderStartWaitsForItsIndex(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 20, sm)
	w.normal(1, 4)    // 1-4
	noop := w.noop(2) // 5
	w.normal(2, 2)    // 6-7
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	w.commit(4)
	w.run()
	if len(sm.leaderStarts) != 0 {
		t.Fatalf("OnLeaderStart before index %d applied (applied %v)", noop, sm.seen)
	}
	w.commit(noop)
	w.run()
	if want := []string{"apply[1-4]", "leaderStart:2"}; !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	w.commit(7)
	w.run()
	w.send(fsm.LeaderStop{Term: 2, Status: closure.NotLeader("n2")})
	w.send(fsm.LeaderStop{Term: 2, Status: closure.NotLeader("n2")}) // again: ignored
	w.run()
	want := []string{"apply[1-4]", "leaderStart:2", "apply[6-7]", "leaderStop:EPERM"}
	if !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	if sm.leaderStops[0].Leader != "n2" {
		t.Errorf("OnLeaderStop got %v", sm.leaderStops[0])
	}

	// A new term whose first index is already applied starts at once.
	w.send(fsm.LeaderStart{Term: 3, Index: 7})
	w.run()
	if !slices.Equal(sm.leaderStarts, []uint64{2, 3}) {
		t.Fatalf("leader starts %v", sm.leaderStarts)
	}
}

// A leader start and the commit of its index folded into one pass: the
// start is reported after the entries before its index.
func TestLeaderStartInSamePass(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 21, sm)
	w.normal(1, 3)
	noop := w.noop(2)
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	w.commit(noop)
	w.run()
	if want := []string{"apply[1-3]", "leaderStart:2"}; !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
}

// The leader's first entry (its NOOP) and entries of its term committed in
// one pass: the start is reported in log order, before the entries after
// its index.
func TestLeaderStartBeforeEntriesOfItsTerm(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 29, sm)
	w.normal(1, 2)
	noop := w.noop(2)
	w.normal(2, 3)
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	w.commit(noop + 3)
	w.run()
	want := []string{"apply[1-2]", "leaderStart:2", "apply[4-6]"}
	if !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
}

// LeaderStop before the leader's first entry is applied cancels the start:
// neither OnLeaderStart nor OnLeaderStop is called.
func TestLeaderStopCancelsPendingStart(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 22, sm)
	w.normal(1, 2)
	noop := w.noop(2)
	w.normal(2, 1)
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	w.commit(2)
	w.run()
	w.send(fsm.LeaderStop{Term: 2, Status: closure.NotLeader("")})
	w.commit(4)
	w.run()
	if len(sm.leaderStarts) != 0 || len(sm.leaderStops) != 0 {
		t.Fatalf("starts %v stops %v after a canceled start", sm.leaderStarts, sm.leaderStops)
	}
	if w.node.lastApplied() != 4 {
		t.Fatalf("applied %v", w.node.applied())
	}
	// Shutdown does not report a stop for a term that never started.
	w.send(fsm.Shutdown{})
	w.run()
	if len(sm.leaderStops) != 0 {
		t.Fatalf("OnLeaderStop at shutdown for a term that never started")
	}
}

// LeaderStop, LeaderStart and Committed all queued before the pass runs:
// the stop still cancels the start.
func TestLeaderStartStopFoldedBeforePass(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 23, sm)
	noop := w.noop(1)
	w.normal(1, 2)
	w.commit(3)
	w.send(fsm.LeaderStart{Term: 1, Index: noop})
	w.send(fsm.LeaderStop{Term: 1})
	w.run()
	if len(sm.leaderStarts) != 0 || len(sm.leaderStops) != 0 {
		t.Fatalf("starts %v stops %v", sm.leaderStarts, sm.leaderStops)
	}
	if !slices.Equal(sm.seen, []uint64{2, 3}) {
		t.Fatalf("applied %v", sm.seen)
	}
}

// A LeaderStop of another term neither cancels a pending start nor stops a
// started one.
func TestLeaderStopOfOtherTerm(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 24, sm)
	w.normal(1, 2)
	noop := w.noop(3)
	w.send(fsm.LeaderStart{Term: 3, Index: noop})
	w.send(fsm.LeaderStop{Term: 2})
	w.commit(noop)
	w.run()
	w.send(fsm.LeaderStop{Term: 2})
	w.run()
	if !slices.Equal(sm.leaderStarts, []uint64{3}) || len(sm.leaderStops) != 0 {
		t.Fatalf("starts %v stops %v", sm.leaderStarts, sm.leaderStops)
	}
}

func TestFollowingCallbacks(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 25, sm)
	a := fsm.LeaderChange{Leader: "n1", Term: 1}
	b := fsm.LeaderChange{Leader: "n1", Term: 2, Status: closure.Newf(closure.ETIMEDOUT, "lost contact")}
	w.send(fsm.StartFollowing{Change: a})
	w.send(fsm.StopFollowing{Change: b})
	w.run()
	if !slices.Equal(sm.started, []fsm.LeaderChange{a}) || !slices.Equal(sm.stopped, []fsm.LeaderChange{b}) {
		t.Fatalf("started %v stopped %v", sm.started, sm.stopped)
	}
}

// Shutdown: tasks not yet applied complete EUNKNOWN, a started leader is
// stopped, OnShutdown runs once, ShutdownDone is sent once, and everything
// after is ignored.
func TestShutdown(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 26, sm)
	noop := w.noop(1)
	w.normal(1, 5)
	w.send(fsm.LeaderStart{Term: 1, Index: noop})
	applied := w.tasksFor(1, 3)
	w.commit(3, applied...)
	w.run()
	pending := w.tasksFor(4, 6)
	w.commit(6, pending...) // the pass would run after Shutdown: too late
	w.send(fsm.Shutdown{})
	w.run()

	for _, task := range applied {
		var res any
		if task.Index != noop {
			res = result(task.Index)
		}
		w.expect(task, closure.OK, res)
	}
	for _, task := range pending {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	want := []string{"leaderStart:1", "apply[2-3]", "leaderStop:ESHUTDOWN", "shutdown"}
	if !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	if w.node.shutdownDones() != 1 || !slices.Equal(w.node.applied(), []uint64{3}) {
		t.Fatalf("node got %v", w.node.msgs)
	}
	if len(w.node.failed()) != 0 {
		t.Fatalf("node got Failed: %v", w.node.failed())
	}

	// After shutdown: no callback, no message to the node. Tasks handed
	// over anyway still complete exactly once.
	nodeMsgs := len(w.node.msgs)
	w.normal(1, 1)
	late := w.task(7, 1)
	w.commit(7, late)
	w.send(fsm.LeaderStart{Term: 2, Index: 1})
	w.send(fsm.LeaderStop{Term: 1})
	w.send(fsm.StartFollowing{Change: fsm.LeaderChange{Leader: "n2"}})
	w.send(fsm.StopFollowing{Change: fsm.LeaderChange{Leader: "n2"}})
	w.send(fsm.NodeError{Err: errors.New("late")})
	w.send(fsm.Shutdown{})
	w.run()
	if !slices.Equal(sm.events, want) {
		t.Fatalf("callbacks after shutdown: %v", sm.events[len(want):])
	}
	if len(w.node.msgs) != nodeMsgs {
		t.Fatalf("node got %v after shutdown", w.node.msgs[nodeMsgs:])
	}
	w.expect(late, closure.EUNKNOWN, nil)
	w.expectAllRanOnce()
}

// Shutdown of a follower that is not leading: no OnLeaderStop.
func TestShutdownNotLeading(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 27, sm)
	w.normal(1, 2)
	w.commit(2)
	w.send(fsm.Shutdown{})
	w.run()
	if want := []string{"shutdown"}; !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	if w.node.shutdownDones() != 1 {
		t.Fatalf("node got %v", w.node.msgs)
	}
}

// Shutdown after a failure still calls OnShutdown and answers.
func TestShutdownAfterFailure(t *testing.T) {
	sm := &recSM{panicIn: map[string]bool{"OnApply": true}}
	w := newWorld(t, 28, sm)
	w.normal(1, 2)
	tasks := w.tasksFor(1, 2)
	w.commit(2, tasks...)
	w.run()
	w.send(fsm.Shutdown{})
	w.run()
	w.expectFailedOnce(0)
	for _, task := range tasks {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	if sm.shutdowns != 1 || w.node.shutdownDones() != 1 {
		t.Fatalf("shutdowns %d, ShutdownDone %d", sm.shutdowns, w.node.shutdownDones())
	}
}
