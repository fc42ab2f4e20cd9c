package fsm

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Task is the framework's record of one proposal: the entry it became and
// the user's closure. The node creates it when the entry is appended and
// hands it to the FSM caller with the Committed message that covers its
// index; from then on the FSM caller owns it.
type Task struct {
	Index, Term uint64
	closure.Guard
}

// SearchTasks returns the position of the first task at or after index in
// tasks (sorted by index), and whether one is at index.
func SearchTasks(tasks []*Task, index uint64) (int, bool) {
	return slices.BinarySearchFunc(tasks, index, func(t *Task, idx uint64) int { return cmp.Compare(t.Index, idx) })
}

// EntryReader is how the FSM caller reads committed entries: the node's
// log (logmgr.Log) in production. It must be safe to call from the FSM
// caller's goroutine while the node appends.
type EntryReader interface {
	Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error)
}

// Messages the FSM caller accepts from its node.
type (
	// Committed says that entries up to Index are committed. Tasks are the
	// closures of entries up to Index proposed on this node, in index
	// order; the FSM caller completes each: OK if the entry applied at its
	// index has its term, ENEWLEADER if another entry was.
	Committed struct {
		Index uint64
		Tasks []*Task
	}
	// LeaderStart says the node leads term since its first entry Index;
	// OnLeaderStart is called once Index is applied (unless LeaderStop
	// comes first).
	LeaderStart struct{ Term, Index uint64 }
	// LeaderStop says the node stopped leading term.
	LeaderStop struct {
		Term   uint64
		Status closure.Status
	}
	// StartFollowing and StopFollowing report leader changes seen by a
	// follower.
	StartFollowing struct{ Change LeaderChange }
	StopFollowing  struct{ Change LeaderChange }
	// NodeError says the node entered the error state for a reason outside
	// the state machine (storage failure, internal error); OnError is
	// called, nothing more is applied, and the tasks of committed entries
	// not yet applied complete with EUNKNOWN (the group may apply them).
	// With Stop (the node actor itself is gone), the FSM caller then stops:
	// it stops itself, after the messages sent before this one, so the
	// tasks they carry complete too (a Stop from outside could overtake
	// them).
	NodeError struct {
		Err  error
		Stop bool
	}
	// Shutdown stops the FSM caller: remaining tasks complete with
	// EUNKNOWN, OnShutdown is called, and ShutdownDone is sent back.
	Shutdown struct{}
	// Capture asks for a snapshot of the state as applied so far
	// (StateMachine.OnSnapshotSave, between two applies); the answer,
	// Captured, goes to Reply. The snapshot records the configuration at
	// the applied index.
	Capture struct {
		Reply actors.Ref
	}
	// Load replaces the state with a snapshot installed from the leader
	// (StateMachine.OnSnapshotLoad), after every message sent before it:
	// the applied index becomes Meta.Index. Open opens the snapshot; the
	// close func it returns also reports a checksum mismatch in what the
	// state machine left unread. Tasks are the node's tasks at or below
	// Meta.Index: their entries are covered by the snapshot, so whether
	// each was committed as proposed is unknown; they complete with
	// EUNKNOWN, as do the FSM caller's own tasks up to Meta.Index. A
	// failure to load puts the node in error (Failed).
	Load struct {
		Meta  SnapshotMeta
		Open  func() (SnapshotSource, func() error, error)
		Tasks []*Task
	}
)

// Captured answers Capture: the snapshot's meta and the state machine's
// persister, or why there is none (nothing applied yet, the state
// machine refused, or the node failed or is shutting down). A panic in
// OnSnapshotSave puts the node in error, as in any callback.
type Captured struct {
	Meta      SnapshotMeta
	Persister SnapshotPersister
	Err       error
}

// Messages the FSM caller sends to its node.
type (
	// Applied reports the new applied index.
	Applied struct{ Index uint64 }
	// Failed reports that the state machine failed (a panic or
	// SetErrorAndRollback; or the committed entries could not be read);
	// the node enters the error state. Applied is the last index applied
	// before the failure; the tasks after it have completed with EUNKNOWN.
	Failed struct {
		Err     error
		Applied uint64
	}
	// ShutdownDone answers Shutdown.
	ShutdownDone struct{}
)

type applyNow struct{}

// TraceString summarises the message for event traces.
func (m Committed) TraceString() string {
	return fmt.Sprintf("committed %d (%d tasks)", m.Index, len(m.Tasks))
}
