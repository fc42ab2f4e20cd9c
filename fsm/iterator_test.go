package fsm_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
)

// The iterator shows each entry's index, term and data; outside an entry
// (before the first Next, after the last) it shows zero values and Done,
// SetResult are harmless.
func TestIteratorAccessors(t *testing.T) {
	type view struct {
		index, term uint64
		data        string
	}
	var got []view
	var kept fsm.Iterator
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		if it.Index() != 0 || it.Term() != 0 || it.Data() != nil || it.Done() != nil {
			panic("iterator not inert before the first Next")
		}
		it.SetResult("before") // no entry: ignored
		for sm.next(it) {
			got = append(got, view{it.Index(), it.Term(), string(it.Data())})
			it.SetResult(result(it.Index()))
		}
		if it.Next() || it.Index() != 0 || it.Data() != nil || it.Done() != nil {
			panic("iterator not inert after the last Next")
		}
		it.SetResult("after") // no entry: ignored
		kept = it
	}
	w := newWorld(t, 30, sm)
	w.normal(1, 2)
	w.noop(2)
	w.normal(2, 1)
	tasks := w.tasksFor(1, 4)
	w.commit(4, tasks...)
	w.run()
	want := []view{{1, 1, "d1"}, {2, 1, "d2"}, {4, 2, "d4"}}
	if !slices.Equal(got, want) {
		t.Fatalf("iterator showed %v, want %v", got, want)
	}
	w.expect(tasks[0], closure.OK, result(1))
	w.expect(tasks[2], closure.OK, nil)
	w.expect(tasks[3], closure.OK, result(4))

	// An iterator kept past OnApply does nothing.
	if kept.Next() || kept.Done() != nil {
		t.Fatalf("a kept iterator still moves")
	}
	kept.SetResult("late")
	kept.SetErrorAndRollback(1, closure.Newf(closure.EIO, "late"))
	w.normal(2, 1)
	late := w.task(5, 2)
	w.commit(5, late)
	w.run()
	w.expect(late, closure.OK, result(5))
	if len(w.node.failed()) != 0 || w.node.lastApplied() != 5 {
		t.Fatalf("node got %v", w.node.msgs)
	}
}

// A second SetErrorAndRollback is ignored: the first decides.
func TestSecondRollbackIgnored(t *testing.T) {
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		for sm.next(it) {
			it.SetResult(result(it.Index()))
			if it.Index() == 4 {
				it.SetErrorAndRollback(1, closure.Newf(closure.EIO, "first"))
				it.SetErrorAndRollback(3, closure.Newf(closure.EIO, "second"))
			}
		}
	}
	w := newWorld(t, 31, sm)
	w.normal(1, 6)
	w.commit(6, w.tasksFor(1, 6)...)
	w.run()
	f := w.expectFailedOnce(3)
	if !strings.Contains(f.Err.Error(), "first") || !strings.Contains(f.Err.Error(), "entry 4") {
		t.Errorf("Failed.Err = %v", f.Err)
	}
	if !slices.Equal(sm.seen, seq(1, 4)) {
		t.Errorf("shown %v: Next moved on after the rollback", sm.seen)
	}
	for _, task := range w.tasks {
		if task.Index <= 3 {
			w.expect(task, closure.OK, result(task.Index))
		} else {
			w.expect(task, closure.EUNKNOWN, nil)
		}
	}
}

// A read cap below one entry still makes progress: one entry per read, so
// one OnApply per normal entry.
func TestTinyReadCap(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 32, sm, func(c *fsm.Config) { c.MaxReadBytes = 1 })
	w.normal(1, 3)
	w.noop(1)
	w.normal(1, 1)
	w.commit(5)
	w.run()
	want := [][]uint64{{1}, {2}, {3}, {5}}
	if !slices.EqualFunc(sm.calls, want, slices.Equal) || w.node.lastApplied() != 5 {
		t.Fatalf("calls %v, node got %v", sm.calls, w.node.msgs)
	}
	if w.log.reads != 5 {
		t.Errorf("%d log reads, want 5", w.log.reads)
	}
}

// A log that returns no entries for a committed range is an error, not a
// silent stall or a busy loop.
type emptyLog struct{ reads int }

func (l *emptyLog) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	l.reads++
	return nil, nil
}

func TestLogReturningNothingFails(t *testing.T) {
	sm := &recSM{}
	lg := &emptyLog{}
	w := newWorld(t, 33, sm, func(c *fsm.Config) { c.Log = lg })
	task := w.task(1, 1)
	w.commit(1, task)
	w.run()
	w.expectFailedOnce(0)
	w.expect(task, closure.EUNKNOWN, nil)
	if lg.reads != 1 {
		t.Fatalf("%d reads", lg.reads)
	}
}

// A state machine that embeds Base and implements only OnApply goes through
// every event.
type baseSM struct {
	fsm.Base
	applied []uint64
}

func (b *baseSM) OnApply(it fsm.Iterator) {
	for it.Next() {
		b.applied = append(b.applied, it.Index())
	}
}

func TestBaseStateMachine(t *testing.T) {
	b := &baseSM{}
	w := newWorld(t, 34, nil, func(c *fsm.Config) { c.StateMachine = b })
	w.normal(1, 1)
	noop := w.noop(2)
	w.config(2, confFor("a"))
	w.send(fsm.StartFollowing{Change: fsm.LeaderChange{Leader: "x", Term: 1}})
	w.send(fsm.StopFollowing{Change: fsm.LeaderChange{Leader: "x", Term: 1}})
	w.send(fsm.LeaderStart{Term: 2, Index: noop})
	tasks := w.tasksFor(1, 3)
	w.commit(3, tasks...)
	w.run()
	w.send(fsm.LeaderStop{Term: 2})
	w.send(fsm.NodeError{Err: errStorage})
	w.send(fsm.Shutdown{})
	w.run()
	if !slices.Equal(b.applied, []uint64{1}) || w.node.shutdownDones() != 1 {
		t.Fatalf("applied %v, node got %v", b.applied, w.node.msgs)
	}
	for _, task := range tasks {
		w.expect(task, closure.OK, nil)
	}
	if p, err := b.OnSnapshotSave(fsm.SnapshotMeta{Index: 1}); p != nil || err != fsm.ErrSnapshotUnsupported || b.OnSnapshotLoad(nil) != fsm.ErrSnapshotUnsupported {
		t.Fatalf("Base snapshot methods: %v, %v", p, err)
	}
}

// Every task completes once, whatever mix of outcomes, across many worlds.
func TestEveryTaskCompletesOnce(t *testing.T) {
	for seed := uint64(100); seed < 120; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			sm := &recSM{}
			failAt := 1 + seed%40
			sm.apply = func(sm *recSM, it fsm.Iterator) {
				for sm.next(it) {
					switch {
					case it.Index()%7 == 0:
						sm.claim(it)
					case it.Index() == failAt && seed%3 == 0:
						it.SetErrorAndRollback(1+seed%4, closure.Newf(closure.EIO, "x"))
						return
					case it.Index() == failAt && seed%3 == 1:
						panic("x")
					}
					it.SetResult(result(it.Index()))
				}
			}
			w := newWorld(t, seed, sm)
			for i := 0; i < 8; i++ {
				w.normal(uint64(1+i/3), 4)
				w.noop(uint64(1 + i/3))
			}
			for i := uint64(1); i <= 40; i += 5 {
				w.commit(i+4, w.tasksFor(i, i+4)...)
				if i%10 == 1 {
					w.run()
				}
			}
			if seed%5 == 0 {
				w.send(fsm.Shutdown{})
			}
			w.run()
			for _, c := range sm.claimed {
				c.Run(closure.StatusOK)
			}
			w.expectAllRanOnce()
		})
	}
}
