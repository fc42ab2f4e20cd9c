package node

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/confchange"
)

// The node actor's messages. Besides these it accepts:
//   - *raftpb.Envelope from its peers (votes, appends, heartbeats, reads);
//   - replicator.Progress, HigherTerm, ReadFailed, ReadResumed and
//     LostEntries from its replicators (children, while it leads);
//   - logmgr.Stable, HardStateSaved, Failed and Closed from its log
//     manager;
//   - fsm.Applied, Failed and ShutdownDone from its FSM caller;
//   - snapshot.Saved and SaveFailed from its snapshot executor;
//   - actors.Started and actors.Stopped from the runtime.
type (
	// Tick is the host's clock, sent by its ticker; it overtakes a
	// backlog.
	Tick struct{}
	// Nudge says a queue (proposals or reads) has work.
	Nudge struct{}
	// ShutdownNode starts an orderly shutdown.
	ShutdownNode struct{}
	// ActorFailed reports that another actor of the node panicked.
	ActorFailed struct{ Err error }
	// TakeSnapshot asks for a snapshot now (Node.Snapshot); Done learns
	// its index or why none was taken, on the host's callback executor.
	TakeSnapshot struct{ Done func(index uint64, err error) }
	// ChangeConfig asks the leader to change the configuration
	// (Node.ChangePeers and its helpers): Change computes the target from
	// the configuration in force; if Expect is set, the change is made
	// only if the configuration in force still has its members. Done
	// learns, on the host's callback executor, the index of the entry
	// that completed the change (C_new), or why there is none.
	// TransferLeadership asks the leader to hand its leadership to To
	// ("": the most up-to-date voter); Done learns, on the host's
	// callback executor, nil once To leads, or why it does not.
	TransferLeadership struct {
		To   string
		Done func(err error)
	}
	ChangeConfig struct {
		Change func(cur confchange.Config) (confchange.Config, error)
		Expect *confchange.Config
		Done   func(index uint64, err error)
	}
)

// GetPriority implements actors.Prioritized.
func (Tick) GetPriority() int8 { return actors.HighPriority }

// Proposal is a task waiting in the proposal queue: the record the FSM
// caller will complete, the command, and the term it must be appended in
// (0: any).
type Proposal struct {
	Task         *fsm.Task
	Data         []byte
	ExpectedTerm uint64
}
