package fsm

import (
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/raftpb"
)

// iter is the Iterator over one run of normal entries. It is reused across
// runs (owner: the FSM caller) and inert outside OnApply.
type iter struct {
	c              *Caller
	run            []*raftpb.Entry
	pos            int    // index in run of the current entry; -1 before the first Next
	results        []any  // per entry, allocated on the first SetResult
	claimed        []bool // per entry, allocated on the first Done
	rollback       int    // -1, or the number of entries of the run to count as applied
	rollbackStatus closure.Status
}

var _ Iterator = (*iter)(nil)

func (it *iter) reset(c *Caller, run []*raftpb.Entry) {
	*it = iter{c: c, run: run, pos: -1, rollback: -1}
}

func (it *iter) Next() bool {
	if it.rollback >= 0 || it.pos >= len(it.run) {
		return false
	}
	it.pos++
	return it.pos < len(it.run)
}

func (it *iter) cur() *raftpb.Entry {
	if it.pos < 0 || it.pos >= len(it.run) {
		return nil
	}
	return it.run[it.pos]
}

func (it *iter) Index() uint64 {
	if e := it.cur(); e != nil {
		return e.Index
	}
	return 0
}

func (it *iter) Term() uint64 {
	if e := it.cur(); e != nil {
		return e.Term
	}
	return 0
}

func (it *iter) Data() []byte {
	if e := it.cur(); e != nil {
		return e.Data
	}
	return nil
}

func (it *iter) Done() closure.Closure {
	e := it.cur()
	if e == nil {
		return nil
	}
	tasks := it.c.tasks
	i, found := SearchTasks(tasks, e.Index)
	// BinarySearchFunc finds the first task at the index; another may follow
	// (a task of an earlier leadership whose entry was overwritten here).
	for found && i < len(tasks) && tasks[i].Index == e.Index && tasks[i].Term != e.Term {
		i++
	}
	if !found || i == len(tasks) || tasks[i].Index != e.Index {
		return nil
	}
	if it.claimed == nil {
		it.claimed = make([]bool, len(it.run))
	}
	it.claimed[it.pos] = true
	return &tasks[i].Guard
}

func (it *iter) SetResult(v any) {
	if it.cur() == nil {
		return
	}
	if it.results == nil {
		it.results = make([]any, len(it.run))
	}
	it.results[it.pos] = v
}

func (it *iter) SetErrorAndRollback(ntail uint64, st closure.Status) {
	if it.rollback >= 0 || it.c == nil {
		return
	}
	applied := it.pos + 1
	if it.pos >= len(it.run) {
		applied = len(it.run)
	}
	ntail = max(ntail, 1) // the current entry is never applied
	if ntail > uint64(applied) {
		ntail = uint64(applied)
	}
	it.rollback = applied - int(ntail)
	it.rollbackStatus = st
}
