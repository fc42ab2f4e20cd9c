package asyncraft

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/node"
	"github.com/asyncraft/asyncraft/replicator"
	"github.com/asyncraft/asyncraft/snapshot"
	"github.com/asyncraft/asyncraft/vfs"
)

// HostOptions configures a Host.
type HostOptions struct {
	// Addr is the host's address, "host:port" ("127.0.0.1:7001"): the host
	// listens there, and peers name it in their configurations. Port 0
	// picks a free port (Host.Addr reports it). NewHost refuses an address
	// without a port unless Local is set. Required, except with Local.
	Addr string
	// Local makes a host without a network: it listens nowhere, and its
	// nodes can only form groups among themselves — for tests and
	// single-process use. Addr is then a name without a port (default
	// "local"), which the nodes' Peers use as the address of every member.
	// TLS cannot be set.
	Local bool
	// TLS, if set, makes every connection between hosts mutual TLS: a host
	// accepts and reaches only peers whose certificate the CA signed. All
	// three files are required.
	TLS *TLSFiles
	// MaxMessageBytes caps one message between hosts (default 4 MiB, at
	// most MaxMessageBytesLimit). It bounds the largest command (see
	// Node.Apply) and NodeOptions.MaxBytesPerRPC.
	MaxMessageBytes int
	// MaxConnections caps the connections the host accepts from other
	// hosts (default 64). Each peer host holds one (two for a while after
	// a reconnect); raise it for hosts with more than about 30 peers.
	// Together with MaxMessageBytes it bounds the memory other hosts can
	// make this one hold (docs/operations.md).
	MaxConnections int
	// DataDir is where nodes keep their logs and hard state, one directory
	// per node (DataDir/<group>/<id>). Empty keeps everything in memory:
	// a restart then loses the node's state, which is only safe for tests.
	DataDir string
	// TickInterval is the period of the host's clock tick, the unit in
	// which nodes count election and heartbeat timeouts. Default 10 ms.
	TickInterval time.Duration
	// Logger receives the framework's logs. Default: slog.Default() at
	// WARN and above.
	Logger *slog.Logger
	// FS is the file system under DataDir. Default: the OS.
	FS vfs.FS
	// WALSegmentSize is the largest size of a log segment file (default
	// 64 MiB; at least 1 KiB). A log's first segment is 1 MiB (or this, if
	// smaller) and each new one doubles up to it; see docs/storage.md.
	WALSegmentSize int64
	// SnapshotBytesPerSecond caps the bytes of snapshots this host sends
	// to followers being installed, all its groups together (default
	// DefaultSnapshotBytesPerSecond; negative: no cap), so that installs
	// leave room for the groups' other traffic.
	SnapshotBytesPerSecond int64
	// SnapshotChunkBytes is how many bytes of a snapshot a node of this
	// host asks for per message while it is installed (default
	// snapshot.DefaultChunkSize, 256 KiB, or less if MaxMessageBytes
	// leaves less room; at least 4 KiB, at most snapshot.MaxChunkLimit
	// and MaxMessageBytes less 64 KiB). A leader of this host serves
	// chunks of up to 1 MiB, or this if larger. Bigger chunks mean fewer
	// round trips on a long link; smaller ones, less memory per install
	// (a fetch buffers at most 4 chunks) and a finer throttle.
	SnapshotChunkBytes int

	// MaxPendingCallbacks bounds the closures the host owes across all
	// its nodes — proposals and reads accepted whose closures have not run
	// yet — and so the backlog of its callback executor: while it owes
	// this many, Apply and Read of every node of the host fail at once
	// with EBUSY. Nothing accepted is dropped; the bound stops new work,
	// so slow callbacks (or slow state machines) cannot make the backlog
	// grow without end. (Each refusal is itself a closure run on the
	// executor: their number is that of the callers' calls in flight.)
	// Default 65536.
	MaxPendingCallbacks int
}

// TLSFiles names the PEM files of a host's mutual-TLS identity: its
// certificate (with the serverAuth and clientAuth key usages, and the
// host's address among its subject alternative names), its private key,
// and the CA that signs every host's certificate.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// DefaultTickInterval is the default HostOptions.TickInterval.
const DefaultTickInterval = 10 * time.Millisecond

// DefaultSnapshotBytesPerSecond is the default
// HostOptions.SnapshotBytesPerSecond: 64 MiB/s, a 1 GiB install in about
// 17 s. At 128 MiB/s (88–97 MiB/s reached) an install doubled the
// leader's p99 latency on the 2-core machine the benchmarks run on; at
// 64 MiB/s it raised it by about half (1.44) (docs/snapshots.md, "Figures"). Raise it
// where the network and processors have room.
const DefaultSnapshotBytesPerSecond = 64 << 20

// DefaultMaxMessageBytes is the default HostOptions.MaxMessageBytes.
const DefaultMaxMessageBytes = 4 << 20

// envelopeOverhead is room left in a message for everything but entry data.
const envelopeOverhead = 64 << 10

// minSnapshotChunkBytes is the smallest HostOptions.SnapshotChunkBytes.
const minSnapshotChunkBytes = 4 << 10

// MaxMessageBytesLimit is the largest HostOptions.MaxMessageBytes: a
// command may fill a message less 64 KiB, and a log entry holds at most
// logmgr.MaxEntryData bytes of command (one WAL record). A larger command
// would be accepted, then put every node that persists it in the error
// state.
const MaxMessageBytesLimit = 64 << 20

// The largest command a message can carry fits in a WAL record: this
// array's length is negative, and the build fails, otherwise.
var _ [logmgr.MaxEntryData - (MaxMessageBytesLimit - envelopeOverhead)]struct{}

// DefaultMaxPendingCallbacks is the default HostOptions.MaxPendingCallbacks.
const DefaultMaxPendingCallbacks = 1 << 16

func (o HostOptions) withDefaults() (HostOptions, error) {
	if o.Local && o.Addr == "" {
		o.Addr = "local"
	}
	if o.Addr == "" {
		return o, errors.New("asyncraft: HostOptions.Addr is required")
	}
	if o.TickInterval == 0 {
		o.TickInterval = DefaultTickInterval
	}
	if o.TickInterval < time.Millisecond {
		return o, fmt.Errorf("asyncraft: HostOptions.TickInterval %v is below 1ms", o.TickInterval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(warnHandler{slog.Default().Handler()})
	}
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.MaxConnections < 0 {
		return o, fmt.Errorf("asyncraft: HostOptions.MaxConnections %d is negative", o.MaxConnections)
	}
	if o.MaxMessageBytes < 2*envelopeOverhead {
		return o, fmt.Errorf("asyncraft: HostOptions.MaxMessageBytes %d is below %d", o.MaxMessageBytes, 2*envelopeOverhead)
	}
	if o.MaxMessageBytes > MaxMessageBytesLimit {
		return o, fmt.Errorf("asyncraft: HostOptions.MaxMessageBytes %d exceeds %d (MaxMessageBytesLimit): a command may fill a message less %d bytes, and a log entry holds at most %d bytes of command (one WAL record); a larger command would put every node that persists it in the error state",
			o.MaxMessageBytes, MaxMessageBytesLimit, envelopeOverhead, logmgr.MaxEntryData)
	}
	if o.SnapshotBytesPerSecond == 0 {
		o.SnapshotBytesPerSecond = DefaultSnapshotBytesPerSecond
	}
	room := min(snapshot.MaxChunkLimit, o.MaxMessageBytes-envelopeOverhead)
	switch {
	case o.SnapshotChunkBytes == 0:
		o.SnapshotChunkBytes = min(snapshot.DefaultChunkSize, room)
	case o.SnapshotChunkBytes < minSnapshotChunkBytes || o.SnapshotChunkBytes > room:
		return o, fmt.Errorf("asyncraft: HostOptions.SnapshotChunkBytes %d is outside [%d, %d] (the upper bound: snapshot.MaxChunkLimit, and MaxMessageBytes less %d)",
			o.SnapshotChunkBytes, minSnapshotChunkBytes, room, envelopeOverhead)
	}
	if o.WALSegmentSize != 0 && (o.WALSegmentSize < logmgr.MinSegmentSize || o.WALSegmentSize > logmgr.MaxSegmentSize) {
		return o, fmt.Errorf("asyncraft: HostOptions.WALSegmentSize %d is outside [%d, %d]", o.WALSegmentSize, logmgr.MinSegmentSize, logmgr.MaxSegmentSize)
	}
	if t := o.TLS; t != nil && (t.CertFile == "" || t.KeyFile == "" || t.CAFile == "") {
		return o, fmt.Errorf("asyncraft: HostOptions.TLS needs CertFile, KeyFile and CAFile (got %q, %q, %q): a host without its certificate or key cannot prove its identity, and one without the CA cannot check its peers'",
			t.CertFile, t.KeyFile, t.CAFile)
	}
	if o.MaxPendingCallbacks == 0 {
		o.MaxPendingCallbacks = DefaultMaxPendingCallbacks
	}
	if o.MaxPendingCallbacks < 0 {
		return o, fmt.Errorf("asyncraft: HostOptions.MaxPendingCallbacks %d is negative", o.MaxPendingCallbacks)
	}
	return o, nil
}

// checkNetwork validates the address of a host on the production runtime
// (NewHost): "host:port", or a name without a port for a Local host.
func (o HostOptions) checkNetwork() error {
	_, _, err := splitHostPort(o.Addr)
	switch {
	case o.Local && o.TLS != nil:
		return errors.New("asyncraft: HostOptions.TLS is set on a Local host: it has no network for TLS to protect")
	case o.Local && err == nil:
		return fmt.Errorf("asyncraft: HostOptions.Addr %q is host:port but Local is set: a local host listens nowhere; name it without a port, or unset Local", o.Addr)
	case !o.Local && err != nil:
		return fmt.Errorf("asyncraft: HostOptions.Addr %q: %v; a host listens on host:port (port 0 picks a free one); for a host without a network, set Local", o.Addr, err)
	}
	return nil
}

// splitHostPort splits a "host:port" address with a numeric port.
func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("not host:port (%v)", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number in [0, 65535]", p)
	}
	return h, port, nil
}

// NodeOptions configures one node: this host's member of one group.
// Durations are rounded to the host's ticks.
type NodeOptions struct {
	// Group names the Raft group. Required; no "/".
	Group string
	// ID is this node's id in the group. Required; no "/"; must be one of
	// Peers.
	ID string
	// Peers is the group's initial configuration: every voter, this node
	// included. All founding members must start with the same list. Once
	// the log or a snapshot holds a configuration (after a membership
	// change), that one is in force and Peers only seeds the addresses
	// of peers this node has not heard of otherwise. On a node that joins
	// (JoinIdentity), Peers lists the group's current members, so that it
	// can answer its leader: this node is not required among them. A
	// peer's Priority is its election priority in the first configuration
	// (SetPriority changes it later; docs/membership.md, "Priorities").
	Peers []Peer
	// JoinIdentity makes this node a new member of an existing group:
	// the group's cluster identity (Node.ClusterIdentity of any member).
	// Start the node, then add it from the leader (AddLearner, AddPeer,
	// ChangePeers). Until a configuration entry or a snapshot names it,
	// it has no configuration: it neither campaigns nor votes, and it
	// takes no snapshots. The identity is stored with its data at the
	// first start; later starts must give the same one.
	JoinIdentity uint64
	// ClusterID names the cluster the group belongs to, the same on every
	// member (for example a UUID chosen when the cluster is deployed).
	// With Group and the voters' ids it makes the cluster identity that a
	// node stores at its first start, checks at every later start and
	// sends on every message (docs/operations.md). Optional, but only a
	// ClusterID tells apart two clusters whose groups and node ids are the
	// same — such as a data directory copied from another cluster.
	ClusterID string
	// StateMachine receives committed entries. Required.
	StateMachine fsm.StateMachine

	// ElectionTimeout is the minimum time without hearing from a leader
	// before a follower campaigns; each term draws a timeout from
	// [ElectionTimeout, 2×ElectionTimeout). It is also the period of the
	// leader's check-quorum. Default 1 s.
	ElectionTimeout time.Duration
	// HeartbeatInterval is the time between a leader's heartbeats to an
	// idle follower. Default ElectionTimeout/10.
	HeartbeatInterval time.Duration
	// ApplyBatch is the most proposals appended to the log as one batch.
	// Default 32.
	ApplyBatch int
	// MaxPendingTasks bounds the proposals this node accepted and whose
	// closures have not run yet — queued, in the log, committed but not
	// yet applied, or waiting for the callback executor — and
	// MaxPendingBytes the sizes of their commands: Apply fails at once
	// with EBUSY when one more would exceed either. A leader also stops
	// appending proposals (they stay queued) while MaxPendingTasks entries
	// are committed and not yet applied. Defaults 8192 and 32 MiB (or four
	// times the largest command, if that is more); MaxPendingBytes may not
	// be below the largest command (the host's MaxMessageBytes less
	// 64 KiB). At most 2^20 proposals and 1 TiB.
	MaxPendingTasks int
	MaxPendingBytes uint64
	// MaxInflightMsgs and MaxInflightBytes bound the AppendEntries a
	// leader has outstanding to one follower. Defaults 256 and 8 MiB: a
	// heartbeat waits behind at most that much of its group's data on the
	// connection to the follower (67 ms at 1 Gbit/s), and the leader holds
	// at most that much encoded per follower. MaxInflightBytes may not be
	// below MaxBytesPerRPC.
	MaxInflightMsgs  int
	MaxInflightBytes uint64
	// MaxBytesPerRPC caps the entries of one AppendEntries. Default 512 KiB.
	MaxBytesPerRPC uint64

	// MaxLogCacheBytes bounds the committed, durable log entries a node
	// keeps in memory, counted as the data plus 24 bytes each: entries its
	// state machine has not applied yet, and entries a leader keeps for
	// lagging followers. Beyond it the oldest leave memory and are read
	// back from the log storage when needed (so a slow state machine, on
	// a follower too, costs disk reads, not memory). Entries not yet
	// committed or not yet durable always stay in memory (the leader's
	// MaxPendingBytes and MaxInflightBytes bound them). With in-memory log
	// storage the entries stay in memory regardless. Default 32 MiB.
	MaxLogCacheBytes uint64
	// DisablePreVote turns off the pre-vote phase (Raft thesis §9.6). With
	// pre-vote, a node that cannot win an election does not disturb the
	// group by raising its term.
	DisablePreVote bool
	// DisableCheckQuorum stops the leader from stepping down when it has
	// not heard from a quorum within an election timeout.
	//
	// With both DisablePreVote and DisableCheckQuorum set, leader
	// stickiness is off too (voters grant votes while they still hear a
	// leader), and lease reads are refused: ReadMode ReadLease fails
	// StartNode, and a read asking for it fails with EINVAL.
	DisableCheckQuorum bool

	// ReadMode is how Node.ReadIndex makes reads linearizable unless a
	// read says otherwise: ReadSafe (a quorum round per batch of reads,
	// the default) or ReadLease (the leader's lease, falling back to
	// ReadSafe when it is stale).
	ReadMode ReadMode
	// LeaseRatio and MaxClockDrift size the leader lease: it lasts
	// LeaseRatio×ElectionTimeout − MaxClockDrift from the send time of
	// the latest heartbeat a quorum answered. MaxClockDrift bounds how
	// much any two hosts' clocks may drift apart over that time; leases
	// are unsafe if it is exceeded. Defaults 0.9 (at most the election
	// timeout less one tick: a larger LeaseRatio is refused) and
	// ElectionTimeout/10. A node that starts refuses votes for
	// ElectionTimeout + MaxClockDrift, so that a restarted voter keeps the
	// promise a lease rests on (docs/reads.md).
	LeaseRatio    float64
	MaxClockDrift time.Duration
	// CatchUpLag and CatchUpTimeout govern new voters. A change that
	// makes a node a voter which is not one yet adds it as a learner
	// first, and makes it a voter only once its log is within CatchUpLag
	// entries of the leader's (so that adding a member does not leave the
	// group waiting on a node that cannot help commit yet). If it makes no
	// progress for CatchUpTimeout — its log does not grow, and no snapshot
	// is being installed on it — the change fails with ETIMEDOUT and the
	// node stays a learner (so a large state may take as long as its
	// install does). Learners added with auto-promotion
	// (asyncraft.AddLearnerToPromote) are promoted on the same lag.
	// Defaults: 1,000 entries, 20 election timeouts (rounded to ticks).
	CatchUpLag     uint64
	CatchUpTimeout time.Duration
	// MaxReadIndexLag makes a follower's read fail at once with EAGAIN
	// when the follower has applied more than this many entries fewer
	// than the read index it got from the leader (0: wait however far
	// behind).
	MaxReadIndexLag uint64
	// MaxPendingReads bounds the reads waiting to be served; Read fails
	// with EBUSY at once when it is full. Default 8192.
	MaxPendingReads int
	// ReadTimeout is how long a read may wait for its quorum round, the
	// leader's answer or the local apply before it fails with ETIMEDOUT.
	// Default 2×ElectionTimeout; at least a tick.
	ReadTimeout time.Duration

	// SnapshotEntries, SnapshotLogBytes and SnapshotInterval make the
	// node take a snapshot every SnapshotEntries applied entries, every
	// SnapshotLogBytes bytes of commands written to its log, and every
	// SnapshotInterval if it applied anything meanwhile (each 0, the
	// default: off; then only Node.Snapshot takes them). Snapshots need a
	// data directory and a state machine that supports them; see
	// docs/snapshots.md for what uses them so far. SnapshotInterval is
	// rounded to the host's ticks, at least one.
	SnapshotEntries  uint64
	SnapshotLogBytes uint64
	SnapshotInterval time.Duration
	// RejoinTerm restarts a member whose data directory was wiped (lost
	// disk, replaced machine) under its old id, safely. Such a node has
	// forgotten its votes: with an empty hard state it could vote twice in
	// a term, and two leaders could be elected in it. Set RejoinTerm to
	// the highest current term among the other members — every one of
	// them up, read from their Status — and the node starts in that term
	// as if it had voted for itself there, so it votes only in later
	// terms: any term it voted in before was some candidate's term, which
	// that member still holds or has passed. It then catches up from the
	// leader (by a snapshot install if the log was compacted). Allowed
	// only on an empty data directory; leave it unset on later starts.
	// docs/snapshots.md, "A member wiped of its data". Without it, a
	// member started on wiped data under its old id fails with
	// ErrWipedData once a peer that knew its earlier data hears it
	// (docs/membership.md, "Wiped data"); removing it and adding it back
	// on new data (JoinIdentity) is the other way back.
	RejoinTerm uint64

	// SnapshotTrailingEntries is how many entries before its newest
	// snapshot a node keeps in its log when it compacts it, so that a
	// follower that lags by less catches up from the log rather than by
	// a snapshot install. Default DefaultSnapshotTrailingEntries. The log
	// also keeps every entry after the snapshot before the newest (so
	// that a restart can fall back to it), and drops whole WAL segments
	// only, so it usually keeps more.
	SnapshotTrailingEntries uint64

	// LogStorage and MetaStorage override the storage the host would
	// choose (files under HostOptions.DataDir, or memory). Both or
	// neither. The node closes them when it shuts down.
	LogStorage  logmgr.LogStorage
	MetaStorage logmgr.MetaStorage
}

// Defaults of NodeOptions (the replication window's are package replicator's).
const (
	DefaultElectionTimeout  = time.Second
	DefaultApplyBatch       = 32
	DefaultMaxPendingTasks  = 8192
	DefaultMaxInflightMsgs  = replicator.DefaultMaxInflightMsgs
	DefaultMaxInflightBytes = replicator.DefaultMaxInflightBytes
	DefaultMaxBytesPerRPC   = replicator.DefaultMaxBytesPerRPC
	DefaultMaxPendingReads  = 8192
	DefaultMaxPendingBytes  = 32 << 20
	DefaultMaxLogCacheBytes = 32 << 20
	// DefaultSnapshotTrailingEntries is the default
	// NodeOptions.SnapshotTrailingEntries.
	DefaultSnapshotTrailingEntries = 10000
	// DefaultCatchUpLag is the default NodeOptions.CatchUpLag.
	DefaultCatchUpLag = 1000
)

// sticky reports whether voters refuse to replace a leader they still hear
// from (leader stickiness). It is on unless both pre-vote and check-quorum
// are off; leases need it.
func (o NodeOptions) sticky() bool { return node.Sticky(o.DisablePreVote, o.DisableCheckQuorum) }

func (o NodeOptions) withDefaults(tick time.Duration, maxMessage int) (NodeOptions, node.Ticks, error) {
	var t node.Ticks
	bad := func(format string, args ...any) (NodeOptions, node.Ticks, error) {
		return o, t, fmt.Errorf("asyncraft: NodeOptions: "+format, args...)
	}
	if err := checkName("Group", o.Group); err != nil {
		return bad("%v", err)
	}
	if err := checkName("ID", o.ID); err != nil {
		return bad("%v", err)
	}
	if o.StateMachine == nil {
		return bad("StateMachine is required")
	}
	if len(o.Peers) == 0 && o.JoinIdentity == 0 {
		return bad("Peers is empty: list every voter of the group, this node included")
	}
	if o.JoinIdentity != 0 && o.RejoinTerm != 0 {
		return bad("JoinIdentity and RejoinTerm are exclusive: a joining node is new to the group; RejoinTerm restarts a member that lost its data under its old identity")
	}
	seen := map[string]bool{}
	self := false
	for _, p := range o.Peers {
		if err := checkName("peer ID", p.ID); err != nil {
			return bad("%v", err)
		}
		if p.Addr == "" {
			return bad("peer %q has no address", p.ID)
		}
		if seen[p.ID] {
			return bad("peer %q is listed twice", p.ID)
		}
		seen[p.ID] = true
		self = self || p.ID == o.ID
	}
	if !self && o.JoinIdentity == 0 {
		return bad("this node's ID %q is not among Peers", o.ID)
	}
	if (o.LogStorage == nil) != (o.MetaStorage == nil) {
		return bad("set both LogStorage and MetaStorage, or neither")
	}
	if err := o.checkDurations(); err != nil {
		return bad("%v", err)
	}
	if o.ElectionTimeout == 0 {
		o.ElectionTimeout = DefaultElectionTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = o.ElectionTimeout / 10
	}
	t.Election = int(o.ElectionTimeout / tick)
	t.Heartbeat = int(o.HeartbeatInterval / tick)
	if t.Heartbeat < 1 {
		return bad("HeartbeatInterval %v is shorter than a tick (%v)", o.HeartbeatInterval, tick)
	}
	if t.Election < 3*t.Heartbeat {
		return bad("ElectionTimeout %v must be at least 3×HeartbeatInterval (%v)", o.ElectionTimeout, o.HeartbeatInterval)
	}
	if o.ApplyBatch == 0 {
		o.ApplyBatch = DefaultApplyBatch
	}
	if o.MaxPendingTasks == 0 {
		o.MaxPendingTasks = DefaultMaxPendingTasks
	}
	if o.MaxInflightMsgs == 0 {
		o.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if o.MaxBytesPerRPC == 0 {
		o.MaxBytesPerRPC = DefaultMaxBytesPerRPC
	}
	maxCommand := uint64(maxMessage - envelopeOverhead)
	if o.MaxPendingBytes == 0 {
		o.MaxPendingBytes = max(DefaultMaxPendingBytes, 4*maxCommand)
	}
	if o.MaxLogCacheBytes == 0 {
		o.MaxLogCacheBytes = DefaultMaxLogCacheBytes
	}
	if o.ReadMode == ReadDefault {
		o.ReadMode = ReadSafe
	}
	// A voter counts its election timeout in ticks from the first tick
	// after it heard the leader, so it may give up on the leader up to a
	// tick early: the lease may last at most ElectionTimeout − one tick.
	maxLease := time.Duration(t.Election-1) * tick
	if o.LeaseRatio == 0 {
		o.LeaseRatio = min(0.9, float64(maxLease)/float64(o.ElectionTimeout))
	}
	if o.MaxClockDrift == 0 {
		o.MaxClockDrift = o.ElectionTimeout / 10
	}
	t.RestartQuiet = t.Election + int((o.MaxClockDrift+tick-1)/tick) + 1
	if o.MaxPendingReads == 0 {
		o.MaxPendingReads = DefaultMaxPendingReads
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 2 * o.ElectionTimeout
	}
	t.ReadTimeout = max(1, int(o.ReadTimeout/tick))
	if o.CatchUpLag == 0 {
		o.CatchUpLag = DefaultCatchUpLag
	}
	if o.CatchUpTimeout == 0 {
		o.CatchUpTimeout = 20 * o.ElectionTimeout
	}
	t.CatchUp = max(1, int(o.CatchUpTimeout/tick))
	if o.SnapshotInterval > 0 {
		t.Snapshot = max(1, int(o.SnapshotInterval/tick))
	}
	if o.SnapshotTrailingEntries == 0 {
		o.SnapshotTrailingEntries = DefaultSnapshotTrailingEntries
	}
	switch {
	case o.ReadMode != ReadSafe && o.ReadMode != ReadLease:
		return bad("ReadMode %v is neither ReadSafe nor ReadLease", o.ReadMode)
	case o.LeaseRatio <= 0 || o.LeaseRatio > 1:
		return bad("LeaseRatio %v must be in (0, 1]", o.LeaseRatio)
	case time.Duration(o.LeaseRatio*float64(o.ElectionTimeout)) > maxLease:
		return bad("LeaseRatio %v × ElectionTimeout %v exceeds the election timeout in ticks less one (%v): voters count the timeout in ticks and may give up on a leader a tick early, so the lease could outlive their promise",
			o.LeaseRatio, o.ElectionTimeout, maxLease)
	case o.ReadMode == ReadLease && !o.sticky():
		return bad("ReadMode ReadLease needs leader stickiness, which is off when both DisablePreVote and DisableCheckQuorum are set: voters would elect a new leader while the old one's lease runs, and lease reads could be stale")
	case o.MaxClockDrift < 0 || time.Duration(o.LeaseRatio*float64(o.ElectionTimeout)) <= o.MaxClockDrift:
		return bad("the lease LeaseRatio×ElectionTimeout − MaxClockDrift (%v×%v − %v) must be positive", o.LeaseRatio, o.ElectionTimeout, o.MaxClockDrift)
	case o.MaxPendingReads < 0:
		return bad("MaxPendingReads must be positive")
	}
	switch {
	case o.ApplyBatch < 0 || o.MaxPendingTasks < 0 || o.MaxInflightMsgs < 0:
		return bad("ApplyBatch, MaxPendingTasks and MaxInflightMsgs must be positive")
	case o.ApplyBatch > o.MaxPendingTasks:
		return bad("ApplyBatch %d exceeds MaxPendingTasks %d", o.ApplyBatch, o.MaxPendingTasks)
	case o.MaxBytesPerRPC > uint64(maxMessage-envelopeOverhead):
		return bad("MaxBytesPerRPC %d does not fit the host's MaxMessageBytes %d (less %d of overhead)", o.MaxBytesPerRPC, maxMessage, envelopeOverhead)
	case o.MaxPendingBytes < maxCommand:
		return bad("MaxPendingBytes %d is below the largest command the host accepts (%d: its MaxMessageBytes %d less %d): such a command could never be proposed", o.MaxPendingBytes, maxCommand, maxMessage, envelopeOverhead)
	case o.MaxPendingBytes > maxBudgetBytes || o.MaxPendingTasks > maxBudgetTasks:
		return bad("MaxPendingBytes %d or MaxPendingTasks %d exceeds its limit (%d, %d)", o.MaxPendingBytes, o.MaxPendingTasks, uint64(maxBudgetBytes), maxBudgetTasks)
	}
	switch {
	case o.MaxInflightBytes < o.MaxBytesPerRPC:
		return bad("MaxInflightBytes %d is below MaxBytesPerRPC %d: one AppendEntries may then carry more than the window allows, so the window bounds nothing and a leader cannot pipeline", o.MaxInflightBytes, o.MaxBytesPerRPC)
	case o.ReadTimeout < tick:
		return bad("ReadTimeout %v is shorter than a tick (%v): reads are timed in ticks, so every read could time out at the next tick", o.ReadTimeout, tick)
	}
	return o, t, nil
}

// checkDurations refuses negative durations, which the defaults (given
// for zero) would not catch.
func (o NodeOptions) checkDurations() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ElectionTimeout", o.ElectionTimeout}, {"HeartbeatInterval", o.HeartbeatInterval},
		{"MaxClockDrift", o.MaxClockDrift}, {"ReadTimeout", o.ReadTimeout}, {"SnapshotInterval", o.SnapshotInterval},
		{"CatchUpTimeout", o.CatchUpTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s %v is negative", d.name, d.v)
		}
	}
	return nil
}

func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is required", what)
	case strings.ContainsAny(s, "/:"):
		return fmt.Errorf("%s %q contains '/' or ':'", what, s)
	}
	return nil
}
