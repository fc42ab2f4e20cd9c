// Package fsm connects a user's state machine to a Raft node: the
// [StateMachine] interface users implement, the [Iterator] through which
// they apply committed entries, and the FSM caller actor ([Caller]) that
// drives them in log order.
//
// The FSM caller owns the applied index and the user's state machine: every
// callback of a StateMachine runs on the FSM caller, one at a time, in log
// order with the events around it (a leader start is reported after the
// entries before it are applied). Callbacks may block — the FSM caller is a
// dedicated worker — but while one does, the node applies nothing.
//
// A panic in a callback, or a call to Iterator.SetErrorAndRollback, puts the
// node in error: it stops applying and stops taking part in the group, its
// Status reports the error, and OnError is called. It never stalls silently.
// The tasks of committed entries it had not applied complete with EUNKNOWN:
// the rest of the group applies those entries, and so does this node once
// restarted.
package fsm

import (
	"errors"
	"io"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/raftpb"
)

// StateMachine is implemented by users. Embed Base to get no-op defaults
// for everything but OnApply.
//
// All methods are called from the node's FSM caller, never concurrently.
type StateMachine interface {
	// OnApply applies committed entries, in log order:
	//
	//	func (m *kv) OnApply(it fsm.Iterator) {
	//		for it.Next() {
	//			res := m.apply(it.Data())
	//			it.SetResult(res) // handed to the task's closure, if any
	//		}
	//	}
	//
	// The closures of entries proposed on this node run after OnApply
	// returns, on the callback executor, with OK and the result set by
	// SetResult — unless OnApply takes one over with Iterator.Done.
	OnApply(it Iterator)
	// OnSnapshotSave captures the state for a snapshot: it runs between
	// two applies, when the state reflects exactly the entries up to
	// meta.Index, and should return quickly with what the persisting will
	// need (a copy-on-write reference, a read view, immutable files). The
	// persister then writes the snapshot on a goroutine of its own while
	// applies continue; the state machine keeps what it reads unchanged
	// until Release. An error fails this snapshot only: nothing changes.
	// docs/snapshots.md has the whole contract.
	//
	// Called when the node takes a snapshot (NodeOptions.SnapshotEntries,
	// Node.Snapshot). After each snapshot the node compacts its log, and a
	// restart loads the newest snapshot and replays only what follows it.
	OnSnapshotSave(meta SnapshotMeta) (SnapshotPersister, error)
	// OnSnapshotLoad replaces the whole state with the snapshot's, before
	// any later OnApply. At restart it runs inside StartNode, on its
	// caller's goroutine, before the node's actors start; an error fails
	// the start, except a checksum mismatch (an error wrapping
	// snapshot.ErrCorrupt from src), after which the node calls it again
	// with the snapshot before (so it must replace the state whole, even
	// after a partial load). On a follower that installs the leader's
	// snapshot it runs on the FSM caller, in order with applies, once the
	// snapshot has arrived and been checked; an error there puts the node
	// in its error state.
	OnSnapshotLoad(src SnapshotSource) error
	// OnLeaderStart is called when this node has become leader of term
	// and has applied every entry committed before its term began.
	OnLeaderStart(term uint64)
	// OnLeaderStop is called when this node stops leading.
	OnLeaderStop(st closure.Status)
	// OnConfigurationCommitted is called when a configuration entry is
	// applied, in log order with the commands: conf is the configuration
	// from that index on (joint while a change of voters is half done).
	OnConfigurationCommitted(conf *raftpb.Configuration)
	// OnStartFollowing is called when this node learns of a new leader.
	OnStartFollowing(ctx LeaderChange)
	// OnStopFollowing is called when this node stops following a leader
	// (it lost contact, or a new term began).
	OnStopFollowing(ctx LeaderChange)
	// OnError is called once when the node enters the error state.
	OnError(err error)
	// OnShutdown is called once when the node shuts down, after the last
	// OnApply.
	OnShutdown()
}

// LeaderChange describes a change of leader as seen by this node.
type LeaderChange struct {
	Leader string
	Term   uint64
	Status closure.Status
}

// SnapshotMeta identifies what a snapshot holds: the state after the
// entries up to Index (of term Term), and the configuration then.
type SnapshotMeta struct {
	Index         uint64
	Term          uint64
	Configuration *raftpb.Configuration
}

// SnapshotPersister writes a captured state (see
// StateMachine.OnSnapshotSave).
type SnapshotPersister interface {
	// Persist writes the snapshot to sink, on the snapshot executor's
	// goroutine, concurrently with OnApply (never with another Persist of
	// the node). Returning nil completes the snapshot; an error (or a
	// panic) abandons it.
	Persist(sink SnapshotSink) error
	// Release is called once, after Persist (whatever its outcome). A
	// node that shuts down waits for a snapshot being taken, so that
	// Release runs; one whose node actor fails (a panic) may not.
	Release()
}

// SnapshotSink receives a snapshot: its data (of any size, not known in
// advance) and, for state machines that keep their state in files, named
// files.
type SnapshotSink interface {
	io.Writer
	// AddFile adds a file to the snapshot; close it before Persist
	// returns.
	AddFile(name string) (io.WriteCloser, error)
	// Meta is the snapshot being written.
	Meta() SnapshotMeta
}

// SnapshotSource yields a verified snapshot's data and files. Its readers
// report a checksum mismatch as an error, never as the end of the data.
type SnapshotSource interface {
	io.Reader
	Meta() SnapshotMeta
	// Files lists the files added with SnapshotSink.AddFile.
	Files() []string
	OpenFile(name string) (io.ReadCloser, error)
}

// ErrSnapshotUnsupported is returned by Base.OnSnapshotSave and
// Base.OnSnapshotLoad: a node whose state machine does not support
// snapshots keeps its whole log.
var ErrSnapshotUnsupported = errors.New("fsm: this state machine does not support snapshots")

// Base implements every StateMachine method except OnApply as a no-op (the
// snapshot methods fail with ErrSnapshotUnsupported). Embed it.
type Base struct{}

func (Base) OnSnapshotSave(SnapshotMeta) (SnapshotPersister, error) {
	return nil, ErrSnapshotUnsupported
}
func (Base) OnSnapshotLoad(SnapshotSource) error            { return ErrSnapshotUnsupported }
func (Base) OnLeaderStart(uint64)                           {}
func (Base) OnLeaderStop(closure.Status)                    {}
func (Base) OnConfigurationCommitted(*raftpb.Configuration) {}
func (Base) OnStartFollowing(LeaderChange)                  {}
func (Base) OnStopFollowing(LeaderChange)                   {}
func (Base) OnError(error)                                  {}
func (Base) OnShutdown()                                    {}

// Iterator walks a run of committed entries during OnApply.
type Iterator interface {
	// Next moves to the next entry and reports whether there is one. Call
	// it before reading the first entry.
	Next() bool
	// Index and Term identify the current entry.
	Index() uint64
	Term() uint64
	// Data is the current entry's command. It must not be modified, and is
	// valid after OnApply returns (the state machine may keep it).
	Data() []byte
	// Done hands the current entry's closure to the state machine, which
	// must then run it exactly once (at any time, from any goroutine). It
	// returns nil when the entry was not proposed on this node (or its
	// proposer's closure is gone). Without Done, the framework runs the
	// closure after OnApply returns.
	Done() closure.Closure
	// SetResult attaches a value to the current entry that the framework
	// passes to the entry's closure (see closure.ResultClosure).
	SetResult(v any)
	// SetErrorAndRollback stops applying: the current entry and the ntail-1
	// before it are treated as not applied (ntail 0 counts as 1), and the
	// node enters the error state with st. OnApply should return soon
	// after.
	//
	// It reports a failure of this replica, not a verdict on the command:
	// the entries are committed, the other members apply them, and this
	// node applies them again once restarted. So the tasks of the entries
	// rolled back (and of every committed entry after them) complete with
	// EUNKNOWN, never with a definite failure. To reject a command for
	// good, every replica must reject it the same way: apply it as a
	// no-op and report the rejection to its closure with SetResult.
	SetErrorAndRollback(ntail uint64, st closure.Status)
}
