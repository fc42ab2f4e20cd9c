package logmgr

import (
	"fmt"

	"github.com/asyncraft/asyncraft/raftpb"
)

// Messages the log manager accepts from its node. They are applied to the
// storage in the order received.
type (
	// Append persists entries that follow the log's current last entry
	// (as of the operations sent before it). The slice and entries must
	// not be modified afterwards.
	Append struct{ Entries []*raftpb.Entry }
	// TruncateSuffix removes entries at and after From.
	TruncateSuffix struct{ From uint64 }
	// TruncatePrefix lets the storage discard the entries before First,
	// which a snapshot covers (LogStorage.TruncatePrefix: the storage may
	// keep more). It is ordered with the other operations, so entries
	// appended before it are written first. Readers of the log get
	// ErrCompacted for what was discarded.
	TruncatePrefix struct{ First uint64 }
	// Reset empties the log so that it continues at Next, the entry
	// before it having term Term (LogStorage.Reset): after a snapshot up
	// to Next-1 was installed. Ordered with the other operations.
	Reset struct{ Next, Term uint64 }
	// SaveHardState persists a term and vote. The manager answers with
	// HardStateSaved once it is durable.
	SaveHardState struct{ HardState *raftpb.HardState }
	// Close finishes the operations received so far, closes the storage
	// and answers Closed.
	Close struct{}
)

// Messages the log manager sends to its node.
type (
	// Stable reports that the storage's log ends with entry (Index, Term)
	// and all of it is durable. By the log matching property, every entry
	// of the node's log up to Index is durable if the node's log also holds
	// (Index, Term); if it does not, the report is about entries since
	// truncated and must be ignored.
	Stable struct{ Index, Term uint64 }
	// HardStateSaved reports that HardState is durable.
	HardStateSaved struct{ HardState *raftpb.HardState }
	// Failed reports that the storage failed. The manager does nothing
	// more; the node must stop (a failed sync leaves the disk's state
	// unknown, so it is never retried).
	Failed struct{ Err error }
	// Closed answers Close.
	Closed struct{}
)

// Messages between the manager and its disk writer.
type (
	writeBatch struct{ ops []op }
	writeDone  struct {
		index, term uint64
		hs          *raftpb.HardState // the last hard state saved by the batch, if any
		entries     int
		err         error
	}
	closeStorage  struct{}
	storageClosed struct{ err error }
)

type opKind uint8

const (
	opAppend opKind = iota
	opTruncate
	opHardState
	opTruncatePrefix
	opReset
)

type op struct {
	kind    opKind
	entries []*raftpb.Entry
	from    uint64
	term    uint64 // opReset
	hs      *raftpb.HardState
}

// TraceString methods summarise messages for event traces.

func (m Append) TraceString() string {
	if len(m.Entries) == 0 {
		return "append none"
	}
	return fmt.Sprintf("append %d..%d", m.Entries[0].Index, m.Entries[len(m.Entries)-1].Index)
}

func (m TruncatePrefix) TraceString() string { return fmt.Sprintf("compact before %d", m.First) }

func (m SaveHardState) TraceString() string {
	return fmt.Sprintf("save term=%d vote=%q", m.HardState.Term, m.HardState.Vote)
}

func (m HardStateSaved) TraceString() string {
	return fmt.Sprintf("saved term=%d vote=%q", m.HardState.Term, m.HardState.Vote)
}

func (m writeBatch) TraceString() string { return fmt.Sprintf("write %d ops", len(m.ops)) }

func (m writeDone) TraceString() string {
	return fmt.Sprintf("written last=%d/%d entries=%d err=%v", m.index, m.term, m.entries, m.err)
}
