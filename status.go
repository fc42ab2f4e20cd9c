package asyncraft

import "github.com/asyncraft/asyncraft/node"

// The node's state as its handle shows it; the types are the node
// package's, named here for users of the root package.
type (
	// Role is a node's part in its group.
	Role = node.Role
	// Status is a snapshot of a node's state, for monitoring and tests.
	Status = node.Status
	// Metrics counts what a node did (see node.Metrics for each counter).
	Metrics = node.Metrics
	// ReadMode chooses how a read is made linearizable.
	ReadMode = node.ReadMode
	// PeerStatus is a leader's view of one follower (Status.Peers).
	PeerStatus = node.PeerStatus
	// InstallProgress is a snapshot install under way on a follower
	// (Status.Installing).
	InstallProgress = node.InstallProgress
	// Peer is a member of a group: its id and its host's address.
	Peer = node.Peer
	// Configuration is a group's membership: voters and learners, and
	// the outgoing ones during a joint change (Status.Configuration).
	Configuration = node.Configuration
)

// Roles.
const (
	Follower     = node.Follower
	PreCandidate = node.PreCandidate
	Candidate    = node.Candidate
	Leader       = node.Leader
	Errored      = node.Errored
	Shutdown     = node.Shutdown
)

// Read modes.
const (
	// ReadDefault uses the node's NodeOptions.ReadMode.
	ReadDefault = node.ReadDefault
	// ReadSafe confirms leadership with a quorum round per batch.
	ReadSafe = node.ReadSafe
	// ReadLease answers from the leader's lease when it is valid, and
	// falls back to ReadSafe when it is not.
	ReadLease = node.ReadLease
)

// Errors a node reports in its Status.
var (
	// ErrLogDiverged: the node stopped because the leader sent it a
	// different entry where its own is committed (see node.ErrLogDiverged).
	ErrLogDiverged = node.ErrLogDiverged
	// ErrPeerLogLost is wrapped by Status.PeerLogLoss: a follower holds
	// less than it acknowledged to this leader.
	ErrPeerLogLost = node.ErrPeerLogLost
	// ErrNoSnapshots is the error of Node.Snapshot on a node without a
	// data directory.
	ErrNoSnapshots = node.ErrNoSnapshots
)
