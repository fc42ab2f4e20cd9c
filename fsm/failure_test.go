package fsm_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// rollbackAt returns an OnApply that applies entries (result "r<i>") and,
// on reaching index at, calls SetErrorAndRollback(ntail) and returns. With
// afterLoop it instead applies the whole run and rolls back once Next has
// returned false.
func rollbackAt(at, ntail uint64, afterLoop bool, st closure.Status) func(*recSM, fsm.Iterator) {
	return func(sm *recSM, it fsm.Iterator) {
		for sm.next(it) {
			it.SetResult(result(it.Index()))
			if !afterLoop && it.Index() == at {
				it.SetErrorAndRollback(ntail, st)
				if it.Next() {
					panic("Next moved on after SetErrorAndRollback")
				}
				return
			}
		}
		if afterLoop {
			it.SetErrorAndRollback(ntail, st)
		}
	}
}

func TestSetErrorAndRollback(t *testing.T) {
	st := closure.Newf(closure.EIO, "cannot apply")
	cases := []struct {
		name      string
		pre       uint64 // entries applied in an earlier pass
		at, ntail uint64
		afterLoop bool
		applied   uint64 // expected last applied index
	}{
		{name: "current entry only", at: 6, ntail: 1, applied: 5},
		{name: "current and one before", at: 6, ntail: 2, applied: 4},
		{name: "at the first entry", at: 1, ntail: 1, applied: 0},
		{name: "ntail beyond the run", pre: 3, at: 6, ntail: 100, applied: 3},
		{name: "after the last Next", at: 0, ntail: 1, afterLoop: true, applied: 6},
		{name: "after the last Next, ntail 3", at: 0, ntail: 3, afterLoop: true, applied: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sm := &recSM{}
			w := newWorld(t, 10, sm)
			w.normal(1, 8)
			if tc.pre > 0 {
				w.commit(tc.pre, w.tasksFor(1, tc.pre)...)
				w.run()
			}
			sm.apply = rollbackAt(tc.at, tc.ntail, tc.afterLoop, st)
			if tc.afterLoop {
				w.commit(7, w.tasksFor(tc.pre+1, 7)...)
			} else {
				w.commit(8, w.tasksFor(tc.pre+1, 8)...)
			}
			w.run()

			f := w.expectFailedOnce(tc.applied)
			if !strings.Contains(f.Err.Error(), st.Msg) {
				t.Errorf("Failed.Err %q does not carry the status %q", f.Err, st.Msg)
			}
			if !slices.Equal(sm.errs, []error{f.Err}) {
				t.Errorf("OnError got %v, want the error sent to the node", sm.errs)
			}
			for _, task := range w.tasks {
				if task.Index <= tc.applied {
					w.expect(task, closure.OK, result(task.Index))
				} else {
					w.expect(task, closure.EUNKNOWN, nil)
				}
			}
			// Later commits apply nothing; their tasks are indeterminate.
			w.normal(1, 1)
			late := w.task(9, 1)
			w.commit(9, late)
			w.run()
			w.expect(late, closure.EUNKNOWN, nil)
			w.expectFailedOnce(tc.applied)
			for _, idx := range sm.seen {
				if idx > 8 {
					t.Errorf("entry %d was applied after the failure", idx)
				}
			}
			if n := len(sm.calls); n != 1+min(int(tc.pre), 1) {
				t.Errorf("%d OnApply calls", n)
			}
		})
	}
}

// A closure taken with Done and then rolled back stays the state machine's:
// the framework does not fail it.
func TestRollbackOfClaimedEntry(t *testing.T) {
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		for sm.next(it) {
			sm.claim(it)
			if it.Index() == 3 {
				it.SetErrorAndRollback(2, closure.Newf(closure.EIO, "no"))
				return
			}
		}
	}
	w := newWorld(t, 11, sm)
	w.normal(1, 5)
	tasks := w.tasksFor(1, 5)
	w.commit(5, tasks...)
	w.run()
	w.expectFailedOnce(1)
	for _, task := range tasks[:3] {
		if w.out(task).runs != 0 {
			t.Fatalf("the framework ran claimed task %d", task.Index)
		}
		sm.claimed[task.Index].Run(closure.StatusOK)
	}
	w.expect(tasks[3], closure.EUNKNOWN, nil)
	w.expect(tasks[4], closure.EUNKNOWN, nil)
	w.expectAllRanOnce()
}

// A panic in OnApply is the same error as a rollback of the entry it was
// on: the entries before it are applied (their tasks complete OK, with
// their results, unless claimed), it and the later ones are not.
func TestPanicInOnApply(t *testing.T) {
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		for sm.next(it) {
			if it.Index() == 2 || it.Index() == 5 {
				sm.claim(it)
			}
			it.SetResult(result(it.Index()))
			if it.Index() == 5 {
				panic("cannot apply 5")
			}
		}
	}
	w := newWorld(t, 12, sm)
	w.normal(1, 7)
	tasks := w.tasksFor(1, 7)
	w.commit(7, tasks...)
	w.run()

	f := w.expectFailedOnce(4)
	if !strings.Contains(f.Err.Error(), "cannot apply 5") {
		t.Errorf("Failed.Err = %v", f.Err)
	}
	for _, task := range tasks {
		switch {
		case task.Index == 2 || task.Index == 5:
			if w.out(task).runs != 0 {
				t.Fatalf("the framework ran claimed task %d", task.Index)
			}
			sm.claimed[task.Index].Run(closure.StatusOK)
			w.expect(task, closure.OK, nil)
		case task.Index < 5:
			w.expect(task, closure.OK, result(task.Index))
		default:
			w.expect(task, closure.EUNKNOWN, nil)
		}
	}
	w.expectAllRanOnce()
}

// A panic in OnApply before any Next, and a panic in OnError itself: one
// failure, no crash, no loop.
func TestPanicInOnApplyAndOnError(t *testing.T) {
	sm := &recSM{panicIn: map[string]bool{"OnApply": true, "OnError": true}}
	w := newWorld(t, 13, sm)
	w.normal(1, 3)
	tasks := w.tasksFor(1, 3)
	w.commit(3, tasks...)
	w.run()
	w.expectFailedOnce(0)
	for _, task := range tasks {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	if len(sm.calls) != 1 {
		t.Fatalf("%d OnApply calls", len(sm.calls))
	}
}

func TestPanicInOnConfigurationCommitted(t *testing.T) {
	sm := &recSM{panicIn: map[string]bool{"OnConfigurationCommitted": true}}
	w := newWorld(t, 14, sm)
	w.normal(1, 2)            // 1-2
	w.config(1, confFor("a")) // 3
	w.normal(1, 2)            // 4-5
	tasks := w.tasksFor(1, 5)
	w.commit(5, tasks...)
	w.run()
	w.expectFailedOnce(2)
	w.expect(tasks[0], closure.OK, result(1))
	w.expect(tasks[1], closure.OK, result(2))
	for _, task := range tasks[2:] {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	if want := []string{"apply[1-2]", "config", "error"}; !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
}

func TestPanicInOnLeaderStart(t *testing.T) {
	sm := &recSM{panicIn: map[string]bool{"OnLeaderStart": true}}
	w := newWorld(t, 15, sm)
	w.normal(1, 2)
	noop := w.noop(2)
	w.normal(2, 2)
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	w.commit(noop, w.tasksFor(1, noop)...)
	w.run()
	w.expectFailedOnce(noop)
	if !slices.Equal(sm.leaderStarts, []uint64{2}) {
		t.Fatalf("leader starts %v", sm.leaderStarts)
	}
	late := w.tasksFor(noop+1, noop+2)
	w.commit(noop+2, late...)
	w.run()
	for _, task := range late {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	if !slices.Equal(sm.seen, []uint64{1, 2}) {
		t.Fatalf("applied %v after the failure", sm.seen)
	}
	w.expectFailedOnce(noop)
	w.expectAllRanOnce()
}

// Panics in the other callbacks: leader stop, following changes, shutdown.
func TestPanicInOtherCallbacks(t *testing.T) {
	for _, name := range []string{"OnLeaderStop", "OnStartFollowing", "OnStopFollowing", "OnShutdown"} {
		t.Run(name, func(t *testing.T) {
			sm := &recSM{panicIn: map[string]bool{name: true}}
			w := newWorld(t, 16, sm)
			noop := w.noop(1)
			w.normal(1, 2)
			w.send(fsm.LeaderStart{Term: 1, Index: noop})
			w.commit(2, w.tasksFor(1, 2)...)
			w.run()
			pending := w.task(3, 1)
			w.commit(3, pending) // folded with what follows: not yet applied
			switch name {
			case "OnLeaderStop":
				w.send(fsm.LeaderStop{Term: 1, Status: closure.NotLeader("")})
			case "OnStartFollowing":
				w.send(fsm.StartFollowing{Change: fsm.LeaderChange{Leader: "n2", Term: 2}})
			case "OnStopFollowing":
				w.send(fsm.StopFollowing{Change: fsm.LeaderChange{Leader: "n2", Term: 2}})
			case "OnShutdown":
				w.send(fsm.Shutdown{})
			}
			w.run()
			w.expectFailedOnce(2)
			if name == "OnShutdown" {
				// Shutdown settles the task first (EUNKNOWN) and still
				// answers.
				w.expect(pending, closure.EUNKNOWN, nil)
				if w.node.shutdownDones() != 1 {
					t.Fatalf("ShutdownDone sent %d times", w.node.shutdownDones())
				}
			} else {
				w.expect(pending, closure.EUNKNOWN, nil)
			}
			w.expectAllRanOnce()
			if slices.Contains(sm.seen, 3) {
				t.Fatalf("entry 3 applied after the failure")
			}
		})
	}
}

// NodeError: OnError once, pending and later tasks complete with EUNKNOWN,
// nothing more is applied and no leader start is reported.
func TestNodeError(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 17, sm)
	w.normal(1, 6)
	early := w.tasksFor(1, 2)
	w.commit(2, early...)
	w.run()
	pending := w.tasksFor(3, 4)
	w.commit(4, pending...)
	w.send(fsm.NodeError{Err: errStorage}) // before the pass runs
	w.send(fsm.NodeError{Err: errors.New("again")})
	w.run()
	late := w.tasksFor(5, 6)
	w.commit(6, late...)
	w.send(fsm.LeaderStart{Term: 1, Index: 1})
	w.run()

	if len(sm.errs) != 1 || !errors.Is(sm.errs[0], errStorage) {
		t.Fatalf("OnError got %v, want once with %v", sm.errs, errStorage)
	}
	if !slices.Equal(sm.seen, []uint64{1, 2}) || len(sm.leaderStarts) != 0 {
		t.Fatalf("applied %v, leader starts %v after the node error", sm.seen, sm.leaderStarts)
	}
	for _, task := range early {
		w.expect(task, closure.OK, result(task.Index))
	}
	// Every task the error caught is committed and may still be applied
	// (by the rest of the group, by this node after a restart): its
	// outcome is indeterminate, never a definite failure.
	for _, task := range append(pending, late...) {
		w.expect(task, closure.EUNKNOWN, nil)
		if st := w.out(task).st; !st.Indeterminate() {
			t.Fatalf("task %d: %v is not indeterminate", task.Index, st)
		}
	}
	if w.node.lastApplied() != 2 {
		t.Fatalf("node got Applied %v", w.node.applied())
	}
}

// A configuration entry whose data does not decode puts the caller in
// error; nothing panics.
func TestBadConfigEntry(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 18, sm)
	w.normal(1, 1) // 1
	w.badConfig(1) // 2
	w.normal(1, 1) // 3
	tasks := w.tasksFor(1, 3)
	w.commit(3, tasks...)
	w.run()
	f := w.expectFailedOnce(1)
	if !strings.Contains(f.Err.Error(), "configuration entry 2") {
		t.Errorf("Failed.Err = %v", f.Err)
	}
	w.expect(tasks[0], closure.OK, result(1))
	w.expect(tasks[1], closure.EUNKNOWN, nil)
	w.expect(tasks[2], closure.EUNKNOWN, nil)
	if len(sm.configs) != 0 || !slices.Equal(sm.seen, []uint64{1}) {
		t.Fatalf("configs %v, applied %v", sm.configs, sm.seen)
	}
}

// TestStoppedCallerCompletesItsTasks: however the FSM caller is stopped —
// from outside (the runtime going down), or by itself after a NodeError
// with Stop (the node actor died) — every task it was handed runs once,
// indeterminate if its entry was not applied here: the entry is committed.
func TestStoppedCallerCompletesItsTasks(t *testing.T) {
	for _, how := range []string{"from outside", "after NodeError"} {
		t.Run(how, func(t *testing.T) {
			sm := &recSM{}
			w := newWorld(t, 23, sm)
			w.normal(1, 4)
			tasks := w.tasksFor(1, 4)
			w.commit(4, tasks...) // handled, but stopped before the pass runs
			if how == "from outside" {
				w.h.Stop(w.caller)
			} else {
				w.send(fsm.NodeError{Err: errStorage, Stop: true})
			}
			w.commit(4) // after the stop: reaches no one
			w.run()
			if len(sm.seen) != 0 {
				t.Fatalf("applied %v after the stop", sm.seen)
			}
			for _, task := range tasks {
				w.expect(task, closure.EUNKNOWN, nil)
			}
			if got := w.h.Actors(); slices.Contains(got, "fsm") {
				t.Fatalf("the caller still runs: %v", got)
			}
		})
	}
}
