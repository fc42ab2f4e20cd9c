package node

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// Peer is a member of a group: its id and its host's address, and its
// election priority (asyncraft.Peer).
type Peer struct {
	ID   string
	Addr string
	// Priority is the member's election priority: a leader hands its
	// leadership to a voter of a higher priority than its own once that
	// voter holds its whole log and answers (docs/membership.md,
	// "Priorities"). 0, the default, is the lowest: a group whose members
	// all have the same priority has no preferred leader.
	Priority uint32
}

func (p Peer) String() string { return p.ID + "@" + p.Addr }

// Ticks are the node's timeouts counted in ticks of its host's clock.
type Ticks struct {
	Election    int
	Heartbeat   int
	ReadTimeout int
	// CatchUp is how long a new voter may take to catch up (membership.go).
	CatchUp int
	// Snapshot is the interval of automatic snapshots (0: none by time).
	Snapshot int
	// RestartQuiet is how many ticks a node that just started refuses
	// votes and starts no election: an election timeout plus the clock
	// drift bound, plus one for the phase of its first tick (election.go).
	RestartQuiet int
}

// Config is what a node actor is built from. The host fills it from the
// public NodeOptions (checked and defaulted there); the actor trusts it.
type Config struct {
	Group string
	ID    string
	// Addr is the address of this node's host (vote requests carry it, so
	// that voters can report a candidate that is not where they list it).
	Addr string
	// Configs is the configuration history the node starts with
	// (BuildHistory): its snapshot's configuration, or the bootstrap one,
	// and those of the log's entries after it. The newest is in force.
	Configs confchange.History
	// AddressBook lists peers whose addresses the node knows besides its
	// configuration's (NodeOptions.Peers): a node that joins hears its
	// leader through it before it has a configuration.
	AddressBook []Peer
	// Boot is the bootstrap record carried by every hard state saved, and
	// Cluster the identity derived from it, carried by every envelope.
	Boot    *raftpb.Bootstrap
	Cluster uint64
	// HardState is the term and vote found in storage at start.
	HardState *raftpb.HardState
	// Log is the node's log view; the actor is its only writer.
	Log *logmgr.Log
	// LogManager, FSMCaller and Executor are the node's sibling actors
	// and the host's callback executor; Snapshotter, its snapshot
	// executor (zero: the node keeps no snapshots).
	LogManager  actors.Ref
	FSMCaller   actors.Ref
	Executor    actors.Ref
	Snapshotter actors.Ref
	// SnapshotIndex is the last index of the newest snapshot at start,
	// PrevSnapshotIndex that of the one before it (0: none, or the store
	// keeps one snapshot only: SnapshotKeep < 2); SnapshotEntries, how many
	// entries are applied between two automatic snapshots (0: only
	// Node.Snapshot takes them).
	SnapshotIndex     uint64
	PrevSnapshotIndex uint64
	SnapshotKeep      int
	SnapshotEntries   uint64
	// SnapshotTrailingEntries is how many entries before the newest
	// snapshot the log keeps when it is compacted, so that a follower a
	// little behind still catches up from the log.
	SnapshotTrailingEntries uint64
	// OpenSnapshot returns how the FSM caller opens a snapshot of the
	// store to load it (fsm.Load.Open).
	OpenSnapshot func(meta *raftpb.SnapshotMeta) func() (fsm.SnapshotSource, func() error, error)
	// Applied is the index (and AppliedTerm its term) that the state
	// machine reflects at start: the snapshot it was restored from, or 0.
	// The node starts with its commit index there, or at the commit index
	// of its hard state if that is beyond it and in the log.
	Applied     uint64
	AppliedTerm uint64
	// SnapshotLogBytes: a snapshot once this many bytes of entries were
	// written to the log since the last one was asked for (0: off); and
	// one every Ticks.Snapshot ticks if anything was applied.
	SnapshotLogBytes uint64
	Logger           *slog.Logger

	Ticks Ticks
	// ElectionTimeout, LeaseRatio and MaxClockDrift size the lease
	// (reads.go); see NodeOptions for each field below.
	ElectionTimeout    time.Duration
	LeaseRatio         float64
	MaxClockDrift      time.Duration
	ApplyBatch         int
	MaxPendingTasks    int
	MaxInflightMsgs    int
	MaxInflightBytes   uint64
	MaxBytesPerRPC     uint64
	MaxLogCacheBytes   uint64
	DisablePreVote     bool
	DisableCheckQuorum bool
	ReadMode           ReadMode
	MaxReadIndexLag    uint64
	// CatchUpLag: a learner is caught up once its log is within this
	// many entries of the leader's (membership.go).
	CatchUpLag uint64

	// Shared is the handle's side of the node: queues and published state.
	Shared *Shared
	// Outside reaches the node's siblings and the executor without an
	// Env: used only once the actor itself is gone (Actor.Died).
	Outside Outside
	// Stopped is called once when the node actor has stopped.
	Stopped func()
}

// Sticky reports whether voters refuse to replace a leader they still hear
// from (leader stickiness). It is on unless both pre-vote and check-quorum
// are off; leases need it.
func Sticky(disablePreVote, disableCheckQuorum bool) bool {
	return !(disablePreVote && disableCheckQuorum)
}

func (c *Config) sticky() bool { return Sticky(c.DisablePreVote, c.DisableCheckQuorum) }

// Outside is what a node actor that died uses instead of its Env: the
// host's runtime, and a way to run closures.
type Outside interface {
	Send(to actors.Ref, msg any)
	Stop(ref actors.Ref)
	Complete(b closure.Batch)
}

// Shared is the part of a node that its handle (any goroutine) and its
// actor share: the two queues into the actor, and what the actor publishes
// for Status. Everything in it is safe for concurrent use.
type Shared struct {
	Proposals *Queue[Proposal]
	Reads     *Queue[*ReadTask]

	status   atomic.Pointer[Status]
	commit   atomic.Uint64
	last     atomic.Uint64
	snapshot atomic.Uint64 // Status.SnapshotIndex
	inflight atomic.Int64
	readErr  atomic.Pointer[peerError] // Status.ReplicationErr
	lostErr  atomic.Pointer[peerError] // Status.PeerLogLoss
	// leaseUntil is when the leader's lease runs out, in Unix nanoseconds
	// of this host's clock (0: no lease).
	leaseUntil atomic.Int64
	// conf is the configuration in force (Status.Configuration).
	conf atomic.Pointer[publishedConf]
	// peers are the replicators' views while the node leads.
	peers atomic.Pointer[[]*replicator.View]

	// Applied is published by the FSM caller.
	Applied atomic.Uint64
	Metrics Metrics
}

// NewShared returns the shared part of a node of group and id, with queues
// of the given capacities.
func NewShared(group, id string, maxProposals, maxReads int) *Shared {
	s := &Shared{
		Proposals: NewQueue[Proposal]("proposals", maxProposals),
		Reads:     NewQueue[*ReadTask]("reads", maxReads),
	}
	s.status.Store(&Status{Group: group, ID: id, Role: Follower})
	return s
}

// Status returns what the actor published: role, term, leader, error, the
// indexes, the lease and the replication errors. Applied <= Commit <=
// LastIndex holds in it.
func (s *Shared) Status() Status {
	st := *s.status.Load()
	// Read in the reverse order of publication so that applied <= commit
	// <= last holds in the snapshot.
	st.Applied = s.Applied.Load()
	st.Commit = s.commit.Load()
	st.LastIndex = s.last.Load()
	st.SnapshotIndex = s.snapshot.Load()
	st.PendingTasks = s.Proposals.Len() + int(s.inflight.Load())
	if c := s.conf.Load(); c != nil {
		st.Configuration, st.ConfigurationIndex = c.cfg, c.index
	}
	if u := s.leaseUntil.Load(); u != 0 && st.Role == Leader {
		st.LeaseUntil = time.Unix(0, u)
	}
	if p := s.readErr.Load(); p != nil {
		st.ReplicationErr = p.err
	}
	if p := s.lostErr.Load(); p != nil {
		st.PeerLogLoss = p.err
	}
	if views := s.peers.Load(); views != nil && st.Role == Leader {
		st.Peers = make([]PeerStatus, len(*views))
		for i, v := range *views {
			st.Peers[i] = v.Load()
		}
	}
	return st
}

// SetLast publishes the log's last index (the host does at start).
func (s *Shared) SetLast(i uint64) { s.last.Store(i) }

// VotersConfig is the configuration whose voters are peers (no learners):
// a group's first configuration.
func VotersConfig(peers []Peer) confchange.Config {
	vs := make([]confchange.Peer, len(peers))
	for i, p := range peers {
		vs[i] = confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority}
	}
	return confchange.Normalize(confchange.Config{Voters: vs})
}
