package node

import (
	"fmt"
	"github.com/asyncraft/asyncraft/replicator"
	"strings"
	"time"
)

// Role is a node's part in its group.
type Role int32

const (
	// Follower: accepts entries from a leader; campaigns when it has not
	// heard from one for an election timeout.
	Follower Role = iota
	// PreCandidate: asks whether it could win an election before
	// disturbing the group with a new term.
	PreCandidate
	// Candidate: campaigns for votes in a new term.
	Candidate
	// Leader: accepts proposals and replicates the log.
	Leader
	// Errored: stopped taking part after a state machine or storage
	// failure; Status.Err says why. Only Shutdown helps.
	Errored
	// Shutdown: stopped.
	Shutdown
)

var roleNames = [...]string{"follower", "pre-candidate", "candidate", "leader", "error", "shutdown"}

func (r Role) String() string {
	if r >= 0 && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", int32(r))
}

// InstallProgress is a snapshot install under way on a follower.
type InstallProgress struct {
	Index, Term uint64
	Leader      string
	Done, Total uint64
}

// Status is a snapshot of a node's state, for monitoring and tests.
type Status struct {
	Group string
	ID    string
	Role  Role
	Term  uint64
	// Leader is the id of the leader this node knows of ("" if none).
	Leader string
	// Configuration is the configuration in force on this node: the
	// newest in its log, committed or not (a leader that appended a
	// change uses it at once). ConfigurationIndex is the index of its
	// entry, or of the snapshot that carried it (0: the bootstrap
	// configuration, NodeOptions.Peers).
	Configuration      Configuration
	ConfigurationIndex uint64
	// Commit, Applied and LastIndex: the node's commit index, the last
	// index applied to its state machine, and the last index in its log.
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	// FirstIndex is the first index in the node's log: entries before it
	// were compacted away after a snapshot (1 if none were). SnapshotIndex
	// is the last index of the node's newest snapshot (0: none).
	FirstIndex    uint64
	SnapshotIndex uint64
	// Installing is set on a follower while it fetches a snapshot from
	// its leader: which one, from whom, and the bytes received so far of
	// the total (nil when none is being fetched).
	Installing *InstallProgress
	// PendingTasks is the number of proposals queued or appended and not
	// yet committed.
	PendingTasks int
	// Proposals and ProposalBytes count the proposals the node accepted
	// whose closures have not run yet, and the bytes of their commands:
	// what MaxPendingTasks and MaxPendingBytes bound.
	Proposals     int
	ProposalBytes int64
	// CachedBytes is the size of the log entries the node holds in memory
	// (each counted as its data plus 24 bytes); MaxLogCacheBytes bounds
	// the committed, durable ones.
	CachedBytes uint64
	// LeaseUntil is when the leader's lease runs out, on this host's
	// clock: until then it serves lease reads without a quorum round
	// (zero when the node does not lead or holds no lease).
	LeaseUntil time.Time
	// Err is set in the Errored role.
	Err error
	// ReplicationErr is set on a leader one of whose replicators cannot
	// read from the log what its peer needs (a storage error): that peer
	// gets no entries while the replicator retries. It names the peer and
	// wraps the latest failure; it is cleared when that replicator reads
	// again (another one still failing sets it again at its next retry)
	// and when leadership ends. See also Metrics.ReplicationReadFailures.
	ReplicationErr error
	// PeerLogLoss is set on a leader one of whose followers holds less
	// than it had acknowledged (its data directory was wiped or its log
	// cut short): the leader sends it the log again. It wraps
	// ErrPeerLogLost, names the peer and the indexes, and is cleared once
	// that peer holds what it had acknowledged, and when leadership ends.
	// See also Metrics.PeerLogLosses.
	PeerLogLoss error
	// Peers is, on a leader, its view of every other member, in id order:
	// what it knows the peer holds (Match), what it sends next (Next),
	// whether it is still probing for the point where their logs agree
	// ("probe") or streaming ("replicate"), its requests in flight
	// (count and bytes), when the peer last answered in this term, and
	// the log reads that failed in a row for it. A follower that lags
	// shows here why: silent (LastContact old), probing, a full window
	// (Inflight at MaxInflightMsgs or bytes at MaxInflightBytes), or
	// reads failing. Nil on a node that does not lead. Each peer's fields
	// are read one by one while its replicator runs (see
	// replicator.View.Load).
	Peers []PeerStatus
}

// PeerStatus is a leader's view of one follower (Status.Peers).
type PeerStatus = replicator.PeerView

func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s %s term=%d leader=%q commit=%d applied=%d last=%d",
		s.Group, s.ID, s.Role, s.Term, s.Leader, s.Commit, s.Applied, s.LastIndex)
	if s.Err != nil {
		fmt.Fprintf(&b, " err=%q", s.Err)
	}
	if s.ReplicationErr != nil {
		fmt.Fprintf(&b, " replication-err=%q", s.ReplicationErr)
	}
	if s.PeerLogLoss != nil {
		fmt.Fprintf(&b, " peer-log-loss=%q", s.PeerLogLoss)
	}
	return b.String()
}
