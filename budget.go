package asyncraft

import (
	"sync/atomic"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// Admission control. Work is bounded where it is accepted, by what is
// accepted and not yet finished, and "finished" is the one moment every
// accepted operation is certain to reach exactly once: its closure runs.
//
//   - A node's budget bounds its proposals: those Node.Apply accepted and
//     whose closures have not run yet, wherever they are — queued,
//     appended, committed but not applied, or waiting for the callback
//     executor — by count (MaxPendingTasks) and by the bytes of their
//     commands (MaxPendingBytes).
//   - A host's callback slots bound the closures it owes across all its
//     nodes: proposals and reads accepted and not yet completed
//     (HostOptions.MaxPendingCallbacks). So the work that can pile up in
//     front of the callback executor is bounded, however many groups the
//     host runs and however slow the callbacks are.
//
// A share is taken in Apply or Read, before the operation is queued, and
// given back by the closure the operation's closure.Guard wraps, first
// thing when it runs (proposalTask.RunResult, node.ReadTask.Run). The Guard
// runs it exactly once, so every share is given back exactly once,
// whatever the operation's fate and whoever completes it (the node, the
// FSM caller, shutdown, the state machine through Iterator.Done): no
// completion path has to remember to. When a bound is reached, Apply and
// Read answer EBUSY at once; nothing already accepted is dropped.
//
// The counters are shared by the Node handle (any goroutine, taking) and
// whatever goroutine runs closures (giving): atomics, no lock.

// slots is a count bound.
type slots struct {
	max int64
	n   atomic.Int64
}

// take reserves one slot, or reports that none is free. Racing callers
// at the bound may both be refused although one would fit: the bound is
// never exceeded, and a refusal is only ever an EBUSY.
func (s *slots) take() bool {
	if s.n.Add(1) > s.max {
		s.n.Add(-1)
		return false
	}
	return true
}

func (s *slots) give() { s.n.Add(-1) }

// Release gives a slot back (node.Releaser, for a read's slot).
func (s *slots) Release() { s.give() }

// budget is a node's bound on its proposals, by count and by bytes. Both
// are packed in one word — the count above bit budgetShift, the bytes
// below — so that a proposal takes and gives its share with one atomic
// add each. Options keep the bounds far below the fields' capacity
// (maxBudgetTasks, maxBudgetBytes), so the overshoot of racing takers,
// undone at once, cannot carry from one field into the other.
type budget struct {
	maxTasks, maxBytes uint64
	v                  atomic.Uint64
}

const (
	budgetShift    = 42 // bytes below 4 TiB, count below 4 Mi
	maxBudgetTasks = 1 << 20
	maxBudgetBytes = 1 << 40
)

func share(size uint64) uint64 { return 1<<budgetShift | size }

func (b *budget) take(size uint64) bool {
	d := share(size)
	if v := b.v.Add(d); v>>budgetShift > b.maxTasks || v&(1<<budgetShift-1) > b.maxBytes {
		b.v.Add(-d)
		return false
	}
	return true
}

func (b *budget) give(size uint64) { b.v.Add(-share(size)) }

// held returns the proposals counted and their bytes.
func (b *budget) held() (tasks int, bytes int64) {
	v := b.v.Load()
	return int(v >> budgetShift), int64(v & (1<<budgetShift - 1))
}

// proposalTask is a proposal's record: the fsm.Task that the node and the
// FSM caller handle, and what giving back its shares needs. Its Guard
// wraps the proposalTask itself, so that the closure's one run gives the
// shares back before the user's closure runs. One allocation per
// proposal, as before.
type proposalTask struct {
	fsm.Task
	done   closure.Closure
	size   uint64
	budget *budget // nil until a share is taken
	host   *slots  // nil until a slot is taken
}

func newProposalTask(done closure.Closure, size int) *proposalTask {
	p := &proposalTask{done: done, size: uint64(size)}
	p.Task.Init(p)
	return p
}

// Run implements closure.Closure.
func (p *proposalTask) Run(st closure.Status) { p.RunResult(st, nil) }

// RunResult implements closure.ResultClosure; the Guard calls it once.
func (p *proposalTask) RunResult(st closure.Status, result any) {
	if p.budget != nil {
		p.budget.give(p.size)
	}
	if p.host != nil {
		p.host.give()
	}
	switch c := p.done.(type) {
	case nil:
	case closure.ResultClosure:
		c.RunResult(st, result)
	default:
		c.Run(st)
	}
}

// admit takes p's shares of the host's callback slots and of the node's
// budget, or returns the EBUSY status p gets instead.
func (n *Node) admit(p *proposalTask) (closure.Status, bool) {
	h := &n.host.callbacks
	if !h.take() {
		return n.host.callbacksBusy(), true
	}
	if !n.budget.take(p.size) {
		h.give()
		tasks, bytes := n.budget.held()
		return closure.Newf(closure.EBUSY, "the node holds %d proposals of %d bytes in all (MaxPendingTasks %d, MaxPendingBytes %d); retry later",
			tasks, bytes, n.budget.maxTasks, n.budget.maxBytes), true
	}
	p.budget, p.host = &n.budget, h
	return closure.Status{}, false
}

// callbacksBusy is the status of work refused because the host owes
// MaxPendingCallbacks closures.
func (h *Host) callbacksBusy() closure.Status {
	return closure.Newf(closure.EBUSY, "the host owes %d callbacks (MaxPendingCallbacks %d): its callback executor or its nodes are behind; retry later",
		h.callbacks.n.Load(), h.callbacks.max)
}

// PendingCallbacks is the number of closures the host owes: proposals and
// reads its nodes accepted and whose closures have not run yet (see
// HostOptions.MaxPendingCallbacks).
func (h *Host) PendingCallbacks() int { return int(h.callbacks.n.Load()) }

// refuse completes an operation refused on arrival (EBUSY, EINVAL, a
// closed queue) with st. The refusal runs on the callback executor like
// any completion while the host has fewer than MaxPendingCallbacks
// refusals on their way there; beyond that it runs at once on the caller's
// goroutine, before Apply or Read returns. So a producer that does not
// wait for its answers (open loop) slows itself down under overload
// instead of growing the executor's queue without bound.
func (h *Host) refuse(g *closure.Guard, st closure.Status) {
	if !h.refusals.take() {
		h.exec.Execute(closure.Batch{{Closure: g, Status: st}})
		return
	}
	h.complete(closure.Batch{{Closure: refusal{g: g, slot: &h.refusals}, Status: st}})
}

// refusal runs a refused operation's closure and then frees its slot.
type refusal struct {
	g    *closure.Guard
	slot *slots
}

func (r refusal) Run(st closure.Status) {
	defer r.slot.give()
	r.g.Run(st)
}
