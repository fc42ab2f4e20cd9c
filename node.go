package asyncraft

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/node"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Task is a proposal: a command for the state machine and the closure that
// learns its fate.
type Task struct {
	// Data is the command. Apply copies it (once: the log, the peers and
	// the state machine then share the copy), so the caller may reuse its
	// buffer as soon as Apply returns — unless NoCopy is set.
	Data []byte
	// NoCopy hands Data itself to asyncraft instead of a copy, which saves
	// an allocation and a copy per command (for large commands, see
	// docs/benchmarks.md). The caller must then never modify Data again:
	// the log keeps the slice, replicators send it to lagging peers and
	// the state machine reads it, for as long as the entry lives, and a
	// change would make replicas diverge.
	NoCopy bool
	// Done receives the outcome exactly once, on the host's callback
	// executor (or, for a refusal while the host is overloaded, on the
	// caller's goroutine before Apply returns: see Host.refuse):
	//   - OK once the entry is applied on this node (a closure.ResultClosure
	//     also gets the value the state machine set with SetResult);
	//   - a definite failure when the command was not and will not be
	//     applied (EPERM with the leader's id, EBUSY, ESTALE, EINVAL,
	//     ESHUTDOWN, ENEWLEADER; and, for a command the node had not yet
	//     appended when it failed, ESTATEMACHINE, EIO, ENOSPC or EINTERNAL);
	//   - EUNKNOWN (closure.Status.Indeterminate) when the command was
	//     appended and the node stopped or failed before learning its fate
	//     here, committed entries not yet applied included: the group may
	//     apply it, and so may this node once restarted.
	// May be nil.
	Done closure.Closure
	// ExpectedTerm, if not zero, makes the proposal fail with ESTALE
	// unless the leader is still in that term when it appends it.
	ExpectedTerm uint64
}

// Node is the handle of one node: this host's member of one group. Its
// methods are safe for concurrent use; they never block on the node's
// actors except Shutdown and ApplyWait, which wait for an answer.
type Node struct {
	host  *Host
	group string
	id    string
	ref   actors.Ref
	// sh is what the handle shares with the node actor: the proposal and
	// read queues, and the state the actor publishes.
	sh *node.Shared
	// budget bounds the proposals accepted and not yet completed
	// (MaxPendingTasks, MaxPendingBytes).
	budget budget
	// maxCommand is the largest Task.Data a message between hosts can
	// carry.
	maxCommand int
	// sticky: leader stickiness is on, so lease reads are allowed.
	sticky bool
	actor  *node.Actor // for Host.HandlePanic only
	log    *logmgr.Log
	// cluster is the cluster identity (see ClusterIdentity).
	cluster  uint64
	logStats logmgr.Stats
	// copyStats counts the node's snapshot transfers (sent and received).
	copyStats snapshot.Stats
	// snapWaiters are the SnapshotAsync callbacks not answered yet: those
	// the actor never saw when it stopped are answered then.
	snapWaiters waiters
	// changeWaiters and transferWaiters are the same for membership
	// changes and leadership transfers.
	changeWaiters   waiters
	transferWaiters waiters

	shutdownOnce sync.Once
	done         chan struct{}
}

func newNode(h *Host, opts NodeOptions) *Node {
	n := &Node{
		host:       h,
		group:      opts.Group,
		id:         opts.ID,
		ref:        actors.Ref{Host: h.opts.Addr, Name: node.ActorName(opts.Group, opts.ID)},
		sh:         node.NewShared(opts.Group, opts.ID, opts.MaxPendingTasks, opts.MaxPendingReads),
		maxCommand: h.opts.MaxMessageBytes - envelopeOverhead,
		sticky:     opts.sticky(),
		done:       make(chan struct{}),
	}
	n.budget.maxTasks, n.budget.maxBytes = uint64(opts.MaxPendingTasks), opts.MaxPendingBytes
	return n
}

// ID is the node's id in its group.
func (n *Node) ID() string { return n.id }

// Group is the node's group.
func (n *Node) Group() string { return n.group }

func (n *Node) key() string { return n.group + "/" + n.id }

// Apply proposes t. It returns at once; t.Done learns the outcome. On a
// node that is not the leader, Done gets EPERM naming the leader. When the
// node already holds MaxPendingTasks proposals or MaxPendingBytes of
// commands, or the host owes MaxPendingCallbacks closures, Done gets EBUSY
// at once. A command larger than the host's MaxMessageBytes less 64 KiB
// gets EINVAL. Apply copies t.Data unless t.NoCopy is set: the caller may
// then reuse its buffer.
func (n *Node) Apply(t Task) {
	p := newProposalTask(t.Done, len(t.Data))
	task := &p.Task
	if len(t.Data) > n.maxCommand {
		n.host.refuse(&task.Guard, closure.Newf(closure.EINVAL, "command of %d bytes exceeds the largest a message can carry (%d)", len(t.Data), n.maxCommand))
		return
	}
	if st, full := n.admit(p); full {
		n.host.refuse(&task.Guard, st)
		return
	}
	// The one copy of the command: the log, the peers and the state
	// machine share it from here on, so the caller may reuse t.Data.
	data := t.Data
	if !t.NoCopy {
		data = bytes.Clone(data)
	}
	st, wake := n.sh.Proposals.Push(node.Proposal{Task: task, Data: data, ExpectedTerm: t.ExpectedTerm})
	if !st.OK() {
		n.host.refuse(&task.Guard, st)
		return
	}
	if wake {
		n.host.rt.Send(n.ref, node.Nudge{})
	}
}

// ApplyWait proposes data and waits until it is applied on this node,
// returning the value the state machine set with Iterator.SetResult. If ctx
// ends first, the error matches both closure.ErrUnknownOutcome and
// ctx.Err(): the command may still be applied. data is copied (see
// Task.Data): the caller may reuse it once ApplyWait returns.
func (n *Node) ApplyWait(ctx context.Context, data []byte) (any, error) {
	type outcome struct {
		st closure.Status
		v  any
	}
	ch := make(chan outcome, 1)
	n.Apply(Task{Data: data, Done: closure.ResultFunc(func(st closure.Status, v any) { ch <- outcome{st, v} })})
	select {
	case o := <-ch:
		return o.v, o.st.Err()
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", closure.ErrUnknownOutcome, ctx.Err())
	}
}

// Status returns a snapshot of the node's state.
func (n *Node) Status() Status {
	s := n.sh.Status()
	s.Proposals, s.ProposalBytes = n.budget.held()
	s.CachedBytes = n.log.CachedBytes()
	s.FirstIndex = n.log.FirstIndex()
	if p, ok := n.copyStats.Progress(); ok {
		s.Installing = &node.InstallProgress{Index: p.ID.Index, Term: p.ID.Term, Leader: p.Leader, Done: p.Done, Total: p.Total}
	}
	return s
}

// Metrics returns the node's counters.
func (n *Node) Metrics() *Metrics { return &n.sh.Metrics }

// Snapshot takes a snapshot of the state machine as applied now and
// returns its last index once it is committed to the node's data
// directory. It fails if one is being taken already (snapshot.ErrBusy:
// retry when it completes), if the node has no data directory
// (node.ErrNoSnapshots), if the state machine does not support snapshots
// (fsm.ErrSnapshotUnsupported) or refused, or if nothing is applied yet.
// A snapshot that fails leaves nothing behind. If ctx ends first it
// returns ctx.Err(); the snapshot may still complete.
//
// After a snapshot the node compacts its log (NodeOptions.
// SnapshotTrailingEntries), and a restart starts from the newest snapshot:
// docs/snapshots.md.
func (n *Node) Snapshot(ctx context.Context) (uint64, error) {
	type outcome struct {
		index uint64
		err   error
	}
	ch := make(chan outcome, 1)
	n.SnapshotAsync(func(index uint64, err error) { ch <- outcome{index, err} })
	select {
	case o := <-ch:
		return o.index, o.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// SnapshotAsync is Snapshot with a callback: done runs once, on the host's
// callback executor, with the snapshot's index or why none was taken (on
// the caller's goroutine if the node has shut down already).
func (n *Node) SnapshotAsync(done func(index uint64, err error)) {
	id, ok := n.snapWaiters.add(done)
	if !ok {
		done(0, n.snapshotStopped())
		return
	}
	n.host.rt.Send(n.ref, node.TakeSnapshot{Done: func(index uint64, err error) {
		if f := n.snapWaiters.take(id); f != nil {
			f(index, err)
		}
	}})
}

func (n *Node) snapshotStopped() error {
	return fmt.Errorf("asyncraft: no snapshot: node %s: %w", n.key(), closure.ErrShutdown)
}

// stopped answers, on the callback executor, the SnapshotAsync calls the
// node actor never answered (sent as it stopped). The host calls it once
// the node's last actor has stopped.
func (n *Node) stopped() {
	var b closure.Batch
	err := n.snapshotStopped()
	for _, f := range n.snapWaiters.close() {
		b = append(b, closure.Completion{Closure: closure.Func(func(closure.Status) { f(0, err) })})
	}
	cerr := n.changeStopped()
	for _, f := range n.changeWaiters.close() {
		b = append(b, closure.Completion{Closure: closure.Func(func(closure.Status) { f(0, cerr) })})
	}
	terr := n.transferStopped()
	for _, f := range n.transferWaiters.close() {
		b = append(b, closure.Completion{Closure: closure.Func(func(closure.Status) { f(0, terr) })})
	}
	n.host.complete(b)
}

// waiters holds callbacks by id until they are taken, each once; close
// takes the rest and refuses new ones.
type waiters struct {
	mu     sync.Mutex
	closed bool
	next   uint64
	m      map[uint64]func(uint64, error)
}

func (w *waiters) add(f func(uint64, error)) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, false
	}
	if w.m == nil {
		w.m = map[uint64]func(uint64, error){}
	}
	w.next++
	w.m[w.next] = f
	return w.next, true
}

func (w *waiters) take(id uint64) func(uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.m[id]
	delete(w.m, id)
	return f
}

func (w *waiters) close() []func(uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	out := make([]func(uint64, error), 0, len(w.m))
	for _, id := range slices.Sorted(maps.Keys(w.m)) { // in the order asked
		out = append(out, w.m[id])
	}
	clear(w.m)
	return out
}

// LogStats counts the node's log writes (batches, entries), for monitoring
// group commit.
func (n *Node) LogStats() *logmgr.Stats { return &n.logStats }

// SnapshotStats returns the counters of the node's snapshot transfers:
// installs served to followers and fetched from leaders, bytes, chunks
// fetched again, outcomes.
func (n *Node) SnapshotStats() *snapshot.Stats { return &n.copyStats }

// Shutdown stops the node in order: it stops accepting proposals, fails
// the queued ones with ESHUTDOWN and those appended but not applied with
// EUNKNOWN, calls the state machine's OnShutdown, and closes its storage.
// It waits for all that, or for ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	n.startShutdown()
	return n.wait(ctx)
}

func (n *Node) startShutdown() {
	n.shutdownOnce.Do(func() { n.host.rt.Send(n.ref, node.ShutdownNode{}) })
}

func (n *Node) wait(ctx context.Context) error {
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("asyncraft: shutdown of %s: %w", n.key(), ctx.Err())
	}
}

// LogView is a read-only view of a node's log, safe to use from any
// goroutine. Entries it returns must not be modified.
type LogView interface {
	FirstIndex() uint64
	LastIndex() uint64
	Term(index uint64) (uint64, error)
	Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error)
}

// Log returns a read-only view of the node's log, durable or not, for
// diagnostics and tests.
func (n *Node) Log() LogView { return n.log }

// Done is closed when the node has shut down.
func (n *Node) Done() <-chan struct{} { return n.done }
