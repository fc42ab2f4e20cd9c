package asyncraft

import (
	"context"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/node"
)

// Reads: node/reads.go explains how a read is made linearizable (ReadSafe
// and ReadLease, on a leader and on a follower).

// ReadRequest is one read for Node.Read.
type ReadRequest struct {
	// Context is handed back to Done unchanged.
	Context []byte
	// Mode overrides NodeOptions.ReadMode for this read.
	Mode ReadMode
	// Done receives the outcome exactly once, on the host's callback
	// executor (or, for a refusal while the host is overloaded, on the
	// caller's goroutine before Read returns: see Host.refuse): OK with
	// the read index (read the local state machine then: it has applied
	// the index), or EPERM (not the leader and none known,
	// or leadership lost; Status.Leader names a leader if known), EAGAIN
	// (a new leader that has not committed an entry of its term yet, or a
	// follower lagging more than MaxReadIndexLag), EBUSY (too many reads
	// queued, or the host owes MaxPendingCallbacks closures), EINVAL
	// (ReadLease with leader stickiness off: both DisablePreVote and
	// DisableCheckQuorum set), ETIMEDOUT, ESHUTDOWN, or the node's error
	// when it fails (ESTATEMACHINE, EIO, ENOSPC, EINTERNAL).
	Done closure.ReadIndexClosure
}

// ReadIndex reads with the node's default mode (see ReadRequest).
func (n *Node) ReadIndex(reqCtx []byte, done closure.ReadIndexClosure) {
	n.Read(ReadRequest{Context: reqCtx, Done: done})
}

// Read starts a linearizable read; r.Done learns its index.
func (n *Node) Read(r ReadRequest) {
	t := &node.ReadTask{Fn: r.Done, Context: r.Context, Mode: r.Mode}
	t.Init(t)
	if r.Mode == ReadLease && !n.sticky {
		n.host.refuse(&t.Guard, closure.Newf(closure.EINVAL,
			"a lease read needs leader stickiness, which this node has off (DisablePreVote and DisableCheckQuorum are both set)"))
		return
	}
	if !n.host.callbacks.take() {
		n.host.refuse(&t.Guard, n.host.callbacksBusy())
		return
	}
	t.Slot = &n.host.callbacks
	st, wake := n.sh.Reads.Push(t)
	if !st.OK() {
		n.host.refuse(&t.Guard, st)
		return
	}
	if wake {
		n.host.rt.Send(n.ref, node.Nudge{})
	}
}

// ReadBarrier returns once the local state machine reflects every write
// acknowledged before the call: reads of it are then linearizable. mode
// (optional) overrides the node's default. If ctx ends first it returns
// ctx.Err().
func (n *Node) ReadBarrier(ctx context.Context, mode ...ReadMode) error {
	m := ReadDefault
	if len(mode) > 0 {
		m = mode[0]
	}
	ch := make(chan closure.Status, 1)
	n.Read(ReadRequest{Mode: m, Done: func(st closure.Status, _ uint64, _ []byte) { ch <- st }})
	select {
	case st := <-ch:
		return st.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
