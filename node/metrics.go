package node

import "sync/atomic"

// Metrics counts what a node did. Fields are updated atomically by the
// node's actors and may be read at any time.
type Metrics struct {
	// PreVotes and Elections count pre-vote rounds and real campaigns
	// started by this node.
	PreVotes  atomic.Uint64
	Elections atomic.Uint64
	// BecameLeader counts the terms this node led.
	BecameLeader atomic.Uint64
	// AppendRejects counts AppendEntries this node refused because its log
	// did not match (each answered with a conflict hint).
	AppendRejects atomic.Uint64
	// ReplicationReadFailures counts the reads of the log that this
	// node's replicators (while it leads) failed to make for their peers;
	// each is retried (see Status.ReplicationErr).
	ReplicationReadFailures atomic.Uint64
	// PeerLogLosses counts the times, while this node led, that a
	// follower was found holding less than it had acknowledged (see
	// Status.PeerLogLoss).
	PeerLogLosses atomic.Uint64
	// Dropped counts envelopes dropped on arrival: for another group or
	// node, from a non-member, of another cluster identity, or of an
	// unexpected kind.
	Dropped atomic.Uint64
	// Foreign counts the envelopes (and replies to this node's
	// replicators) dropped for carrying another cluster identity than this
	// node's: from a node started with another ClusterID, group or set of
	// voters, or of another cluster. See the WARN log for who sent them.
	Foreign atomic.Uint64
	// IncarnationRefusals counts the envelopes (and replies to this
	// node's replicators) dropped because their sender, a voter, spoke
	// with another incarnation of its data than this node heard from
	// before: its data was wiped (node/incarnation.go).
	IncarnationRefusals atomic.Uint64
	// Reads counts the reads this node served as leader (its own and
	// forwarded batches); ReadRounds the quorum rounds it started for
	// them. Reads/ReadRounds is the batching factor.
	Reads      atomic.Uint64
	ReadRounds atomic.Uint64
	// Snapshots counts the snapshots this node took; SnapshotFailures
	// those it asked for and did not get (refused by the state machine,
	// failing in Persist or in storage, or asked while one ran).
	Snapshots        atomic.Uint64
	SnapshotFailures atomic.Uint64
	// On a follower: InstallsStarted counts the snapshots a leader began
	// to install on it, InstallsDone those it installed, InstallFailures
	// those whose fetch failed (each is retried by the leader). On a
	// leader: SnapshotsSent counts the installs its followers completed.
	InstallsStarted atomic.Uint64
	InstallsDone    atomic.Uint64
	InstallFailures atomic.Uint64
	SnapshotsSent   atomic.Uint64
	// ConfigChanges counts the configurations this node put in force:
	// each configuration entry appended, and each roll-back (a truncated
	// entry) or snapshot that changed it. MembershipChanges counts the
	// changes this node, as leader, completed (C_new committed), and
	// MembershipFailures those it accepted and could not see through
	// (leadership lost or the node failed before; the change may still
	// complete).
	ConfigChanges atomic.Uint64
	// TransfersStarted counts the leadership transfers this node began as
	// leader; TransfersDone those that ended with the target leading,
	// TransfersFailed the others (timed out, another leader, the node
	// failed or shut down).
	TransfersStarted atomic.Uint64
	TransfersDone    atomic.Uint64
	TransfersFailed  atomic.Uint64
	// PriorityTransfers counts the transfers among TransfersStarted that
	// this leader began by itself, to a voter of a higher priority.
	PriorityTransfers  atomic.Uint64
	MembershipChanges  atomic.Uint64
	MembershipFailures atomic.Uint64
}
