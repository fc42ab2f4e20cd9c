// Package replicator is the leader's actor per follower: it ships log
// entries to one peer and reports how far the peer's log matches.
//
// A replicator lives while its node leads a term; the node spawns one per
// peer (every other voter; learners do not exist yet) as its children and
// stops them when it steps down. It reads entries straight from the node's log and sends
// AppendEntries to the peer's node actor, whose replies come straight back
// to it (they are addressed to the replicator by name), so the node actor
// is not a hop on the replication path.
//
// States (Raft thesis §3.5, with the pipelining of etcd's progress
// tracker):
//
//   - probe: one AppendEntries outstanding, to find where the logs agree.
//     On a rejection, the follower's hint (the last index at or before the
//     probe whose term is no later than the probe's) lets the leader skip
//     a whole divergent term at once instead of one entry per round trip.
//   - replicate: entries stream in a pipeline of at most MaxInflightMsgs
//     requests and MaxInflightBytes bytes outstanding, each up to
//     MaxBytesPerRPC.
//   - snapshot: the peer needs entries the leader compacted away; the
//     leader's snapshot is installed on it (install.go), heartbeats going
//     on meanwhile, then it probes from the snapshot's last index + 1.
//
// A replicator starts probing at Config.NextIndex, the leader's last index
// + 1 (Raft §5.3): a peer that is up to date needs no back-off at all.
//
// Every request carries the cluster identity (Config.Cluster), and a reply
// that carries another is dropped (and counted in Config.Foreign).
//
// Every request carries a sequence number. A reply is matched against the
// outstanding requests by it; a reply that matches none (late, duplicated,
// from before a reset) is dropped. A rejection sends the replicator back to
// probe where the hint points (never before match+1, never at or after the
// rejected point). A silence of ResendTicks with requests outstanding sends
// it back to probe from the first index not acknowledged — in probe state,
// the same probe again — not from the match: at the start of a term the
// match is 0, and a peer that was merely down would be sent the whole log.
// If the peer lost entries meanwhile, its rejection's hint moves the probe
// back. Together this recovers from any loss or reordering.
//
// A read of the log that fails (a storage error) is reported to the node as
// ReadFailed, and no request goes out until a retry on a later tick: after
// 1 tick, then twice as long each time, up to HeartbeatTicks. Heartbeats go
// on meanwhile. The first read that works again is reported as
// ReadResumed. Entries compacted away (ErrCompacted, which no retry
// cures) send the replicator to snapshot state instead: install.go. A
// leader without snapshots (no Config.Copier) cannot compact, so never
// meets it.
//
// A follower that holds less than it acknowledged — its data was wiped or
// its log lost its tail — used to be probed at match+1 forever, refusing
// each probe, for as long as the leader lasted. Replies say the follower's
// last index (heartbeat replies too, so an idle group notices), and a reply
// to a request sent after the replicator learned its match that shows the
// follower's log ending below the match (or a rejection hinting below it)
// proves a loss: the peer cannot have lost entries between acknowledging
// them and receiving a later request otherwise. The replicator then
// reports LostEntries, forgets the match and probes from the follower's
// last index + 1, resending what it lacks. (A reply to an earlier request
// proves nothing: reordered requests may have been refused before the
// acknowledged one arrived.)
//
// Heartbeats (every HeartbeatTicks of the node's ticks, or at once when the
// commit index moves and there is nothing else to send) carry the commit
// index clipped to the peer's match index, which the follower can adopt
// without a log check.
//
// For monitoring, a replicator given a View (Config.View) publishes there
// what an operator needs to see why its peer lags — match, next, state,
// requests in flight, last contact, failed reads — readable from any
// goroutine. It stores only the fields that changed, at the end of each
// message, and allocates nothing to do so; without a View it publishes
// nothing.
package replicator

import (
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Messages the replicator accepts from its node.
type (
	// Tick is the node's clock, forwarded on every node tick.
	Tick struct{}
	// Update says the leader's log may have grown and gives the current
	// commit index.
	Update struct{ Commit uint64 }
	// Beat asks for a heartbeat now: the leader needs a fresh quorum
	// round to confirm its leadership (ReadIndex).
	Beat struct{}
	// Voters replaces the voters' incarnations the replicator passes on
	// (Config.Voters), and makes it report the peer's incarnation again.
	Voters struct{ Voters []*raftpb.PeerIncarnation }
)

// Messages the replicator sends to its node.
type (
	// Progress reports that the peer answered in term Term and that its log
	// matches the leader's up to Match (which may be unchanged: a
	// heartbeat reply is still contact, for check-quorum).
	//
	// SentAt is when the answered request left (on the leader's clock):
	// the peer recognised the leader's term after that instant. Zero if
	// unknown.
	//
	// Progress overtakes a backlog in the node's mailbox, as the node's
	// ticks do: check-quorum weighs the ticks against the contact that
	// Progress reports, so a leader busy with a backlog of proposals must
	// not count an election timeout of ticks while the replies that keep
	// it leader wait behind the backlog.
	Progress struct {
		Peer   string
		Term   uint64
		Match  uint64
		SentAt time.Time
	}
	// HigherTerm reports that the peer answered with a term above the
	// leader's; the node must step down. It is sent once per such term,
	// not once per reply.
	HigherTerm struct {
		Peer string
		Term uint64
	}
	// PeerIncarnation reports an incarnation of the peer's data that a
	// reply carried, when it differs from the last one reported (the
	// node's rules, node/incarnation.go, decide what it means).
	PeerIncarnation struct {
		Peer        string
		Term        uint64
		Incarnation uint64
		Since       uint64 // the peer's Peer.since, from its envelope's member_since
		Rejoined    bool
	}
	// ReadFailed reports that the replicator could not read from the log
	// what the peer needs next (a term or entries), so the peer gets no
	// entries. Failures counts the failed reads in a row, this one
	// included; the replicator reads again in RetryTicks ticks (doubling
	// from 1 up to HeartbeatTicks) and sends ReadFailed after every failed
	// attempt, then ReadResumed once a read works. A failed snapshot
	// offer or install is reported the same way (its Err says which);
	// PeerSide marks an install the peer answered it could not complete
	// (a failure on the peer's side, not of this leader's log).
	ReadFailed struct {
		Peer       string
		Term       uint64
		Err        error
		Failures   int
		RetryTicks int
		PeerSide   bool
	}
	// ReadResumed reports that a read worked again after Failures failed
	// reads in a row (each reported by a ReadFailed).
	ReadResumed struct {
		Peer     string
		Term     uint64
		Failures int
	}
	// Installing reports that the replicator is installing the snapshot
	// up to Index on the peer (it needed entries compacted away); Installed
	// that the peer installed it.
	Installing struct {
		Peer  string
		Term  uint64
		Index uint64
	}
	Installed struct {
		Peer  string
		Term  uint64
		Index uint64
	}
	// LostEntries reports that the peer holds less than it acknowledged:
	// it had acknowledged the leader's log up to Match, and a reply to a
	// request sent after that acknowledgement says its log now matches at
	// most up to Last < Match (its data directory was wiped, or its log
	// lost its tail). The replicator has forgotten the match (it is 0
	// until the peer acknowledges again) and probes from Last+1; the node
	// must lower its own record of the peer's match likewise.
	LostEntries struct {
		Peer        string
		Term        uint64
		Match, Last uint64
	}
)

// GetPriority implements actors.Prioritized.
func (Progress) GetPriority() int8 { return actors.HighPriority }
