// Package loadgen is the member side of the bench harness, shared by the
// asyncraft member (bench/) and the peers' members (bench/peers): the
// protocol between the orchestrator and a member process, the standard
// command, the closed-loop clients and the measured window. Every system
// is measured by this same code; only the calls into the library differ.
//
// A member process reads commands from stdin and writes events to stdout,
// one JSON object per line (Serve). The orchestrator starts it, waits for
// "ready" (its address), sends "start" (every member's address), polls
// "status" until a leader has settled, sends "prefill" and "run" to the
// leader's process, and "quit".
package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// The client models: how the load generator calls the library.
const (
	// ClientGoroutine: each client is a goroutine that calls the
	// library's blocking API with a per-operation context deadline, as
	// most Go applications do.
	ClientGoroutine = "goroutine"
	// ClientCallback: each client issues its next operation from the
	// completion callback of the previous one (asyncraft only).
	ClientCallback = "callback"
)

// The operations of a workload.
const (
	OpPropose = "propose"
	OpRead    = "read"
)

// Spec is one workload run by one system in one client model. It travels
// to the member processes as JSON.
type Spec struct {
	Name string `json:"name"`
	// System is the library ("asyncraft", "dragonboat", "hashicorp");
	// Client the client model (ClientGoroutine, ClientCallback).
	System string `json:"system,omitempty"`
	Client string `json:"client,omitempty"`
	// Op is OpPropose or OpRead (a linearizable read, then a read of the
	// local map); ReadMode is "index" (ReadIndex or the library's
	// equivalent) or "lease".
	Op       string `json:"op"`
	ReadMode string `json:"read_mode,omitempty"`
	// Clients is the number of closed-loop clients in flight, in total,
	// split evenly over the groups.
	Clients int           `json:"clients"`
	Warmup  time.Duration `json:"warmup"`
	Measure time.Duration `json:"measure"`
	// OpTimeout is the deadline of each operation of a goroutine client.
	OpTimeout time.Duration `json:"op_timeout,omitempty"`
	// The command: an 8-byte key (one of Keys, uniform) and ValueSize
	// bytes of value.
	ValueSize int `json:"value_size"`
	Keys      int `json:"keys"`
	// Members per group, groups per host; InProc runs every member in one
	// process on one Host without a network.
	Members int  `json:"members"`
	Groups  int  `json:"groups"`
	InProc  bool `json:"inproc"`
	// Sweep names the family ("standard", "payload", ...); Param is the
	// swept value (clients for the client sweep), for charts.
	Sweep string `json:"sweep"`
	Param int    `json:"param,omitempty"`

	// Kind is "" for a run of the standard kind (a warm-up and a measured
	// window, driven by "run"), or the name of a workload the
	// orchestrator runs its own way: "soak", "restart", "install" (see
	// the bench's snapshot workloads).
	Kind string `json:"kind,omitempty"`
	// Reps, if set, is the workload's default number of repetitions (a
	// -reps given on the command line wins).
	Reps int `json:"reps,omitempty"`
	// Snapshots: the members' snapshot options (soak, restart, install).
	Node *NodeConfig `json:"node,omitempty"`
	// SampleEvery: how often a soak samples throughput, RSS and disk.
	SampleEvery time.Duration `json:"sample_every,omitempty"`
	// History: the entries a restart workload writes before it measures;
	// StateBytes: the size of the state (a restart's map of ValueSize
	// values, an install's blob); Tail: the entries written after the
	// restarted member's last snapshot, which it replays.
	History    uint64 `json:"history,omitempty"`
	StateBytes int64  `json:"state_bytes,omitempty"`
	Tail       uint64 `json:"tail,omitempty"`
	// Target: which member a restart workload restarts ("follower" or
	// "leader").
	Target string `json:"target,omitempty"`

	// The membership workloads (asyncraft only). Transfers: how many
	// leadership transfers the transfer workload makes, one every
	// TransferEvery.
	Transfers     int           `json:"transfers,omitempty"`
	TransferEvery time.Duration `json:"transfer_every,omitempty"`
	// Follow: a background load ("load") whose clients run on this
	// process's node of each group whatever its role, and propose only
	// while it leads: one such load in every member process keeps the
	// load going through leadership changes (asyncraft only).
	Follow bool `json:"follow,omitempty"`
	// Timeline: a background load's cuts carry the time of every
	// completion and of every refusal (Result.OKAt, Result.Refused).
	Timeline bool `json:"timeline,omitempty"`
}

// NodeConfig is what the snapshot workloads set on every member's nodes
// (asyncraft's NodeOptions and HostOptions of the same names; 0 keeps the
// library's default).
type NodeConfig struct {
	SnapshotEntries         uint64 `json:"snapshot_entries,omitempty"`
	SnapshotLogBytes        uint64 `json:"snapshot_log_bytes,omitempty"`
	SnapshotTrailingEntries uint64 `json:"snapshot_trailing_entries,omitempty"`
	// Watch: time the node's recovery after StartNode (see Recovery).
	Watch bool `json:"watch,omitempty"`
	// RejoinTerm is NodeOptions.RejoinTerm: a member restarted on an
	// empty data directory rejoins safely (asyncraft only).
	RejoinTerm uint64 `json:"rejoin_term,omitempty"`
	// JoinIdentity is NodeOptions.JoinIdentity: the node is new to an
	// existing group (every group of the process: the membership
	// workloads run one), whose members start lists as an address book
	// (asyncraft only).
	JoinIdentity uint64 `json:"join_identity,omitempty"`
	// CatchUpTimeout is NodeOptions.CatchUpTimeout: how long a new voter
	// may take to catch up (asyncraft only).
	CatchUpTimeout time.Duration `json:"catch_up_timeout,omitempty"`
	// Host options, given to the member process as flags.
	WALSegmentSize         int64 `json:"wal_segment_size,omitempty"`
	SnapshotBytesPerSecond int64 `json:"snapshot_bytes_per_second,omitempty"`
}

// FillSpec is a "fill": Count proposals through the leader of Group, as
// fast as InFlight callbacks allow, of an 8-byte key and ValueSize bytes
// of value. Keys run from KeyBase: Sequential through KeyBase+Count-1,
// otherwise uniform in [KeyBase, KeyBase+Keys). A Blob > 0 instead
// proposes one command that gives the state machine a blob of that many
// bytes (deterministic, from Seed).
type FillSpec struct {
	Group      string `json:"group"`
	Count      uint64 `json:"count"`
	KeyBase    uint64 `json:"key_base"`
	Keys       uint64 `json:"keys,omitempty"`
	Sequential bool   `json:"sequential,omitempty"`
	ValueSize  int    `json:"value_size"`
	InFlight   int    `json:"in_flight,omitempty"`
	Blob       int64  `json:"blob,omitempty"`
	Seed       uint64 `json:"seed,omitempty"`
}

// Recovery is a restarted node's timeline, in seconds from the moment
// its member called StartNode.
type Recovery struct {
	Group string `json:"group"`
	ID    string `json:"id"`
	// StartNode: until StartNode returned. Load: the part of it spent in
	// the state machine's OnSnapshotLoad, and the bytes it read (data and
	// files).
	StartNode float64 `json:"start_node"`
	Load      float64 `json:"load"`
	LoadBytes int64   `json:"load_bytes"`
	// SnapshotIndex: where the loaded snapshot ends (the applied index
	// when StartNode returned); Commit: the commit index then (saved with
	// the hard state); Replayed: until the node had applied up to Commit,
	// i.e. the Commit-SnapshotIndex entries of the tail.
	SnapshotIndex uint64  `json:"snapshot_index"`
	Commit        uint64  `json:"commit"`
	Replayed      float64 `json:"replayed"`
	// Leader: until the node knew a leader; Serving: until a
	// linearizable read through it (ReadBarrier, ReadSafe) succeeded.
	Leader  float64 `json:"leader"`
	Serving float64 `json:"serving"`
	// Reads: the read attempts it took; LastErr: the last failure.
	Reads   int    `json:"reads"`
	LastErr string `json:"last_err,omitempty"`
}

// MemberChange is a "change": a membership change that the leader makes
// (asyncraft's Node.ChangeMembership). Op is "add-voter", "add-learner",
// "promote" or "remove"; ID and Addr name the member (Addr for the
// additions); Timeout bounds the call (0: 15 minutes).
type MemberChange struct {
	Op      string        `json:"op"`
	ID      string        `json:"id"`
	Addr    string        `json:"addr,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Outcome answers a "change" ("changed") or a "transfer"
// ("transferred"): when the call began and returned (Unix ns, wall
// clock), the index that completed a change, the leader the node knew
// once a transfer returned, and the call's error ("" if none).
type Outcome struct {
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
	Index  uint64 `json:"index,omitempty"`
	Leader string `json:"leader,omitempty"`
	Err    string `json:"err,omitempty"`
}

// Seconds is the call's duration.
func (o Outcome) Seconds() float64 { return float64(o.End-o.Start) / 1e9 }

// Refusal is a failed operation of a Timeline load: when it completed
// (Unix ns) and how it failed.
type Refusal struct {
	At   int64  `json:"at"`
	Kind string `json:"kind"`
}

// Prefill reports whether the workload writes every key once first.
func (s Spec) Prefill() bool { return s.Op == OpRead }

// Peer is a member's id and the address of its process.
type Peer struct {
	ID   string
	Addr string
}

// Command is one line on a member's stdin.
type Command struct {
	// Op: start | status | prefill | run | profile | load | cut | unload
	// | quit, or one of a Commander's own (asyncraft: snapshot, fill,
	// recovery, change, transfer). profile (no answer): write a CPU profile of the window
	// of a run that another process drives, and a heap profile at its
	// end. load: start Spec's closed-loop clients on the groups of Drive
	// in the background (answered "loading"); cut: the completions since
	// the load began or the last cut (answered "cut"); unload: stop the
	// clients, answered with a last "cut".
	Op string `json:"op"`
	// start: the group's members (this process's ids among them), the
	// number of groups, and the election timeouts of a group's preferred
	// leader (members[g mod len]) and of the others (0: the library's
	// default).
	Peers      []Peer        `json:"peers,omitempty"`
	Groups     int           `json:"groups,omitempty"`
	LeaderET   time.Duration `json:"leader_et,omitempty"`
	FollowerET time.Duration `json:"follower_et,omitempty"`
	// start: the snapshot workloads' node options (nil: the defaults).
	Node *NodeConfig `json:"node,omitempty"`
	// snapshot, recovery, change, transfer: the group whose node (in
	// this process) is meant. fill: what to propose. change: the
	// membership change; transfer: the member to hand the leadership to
	// ("": the most up-to-date one).
	Group  string        `json:"group,omitempty"`
	Fill   *FillSpec     `json:"fill,omitempty"`
	Change *MemberChange `json:"change,omitempty"`
	To     string        `json:"to,omitempty"`
	// prefill, run: the workload, and the groups this process drives (it
	// leads them). run: when the warm-up begins (Unix ns), where to write
	// a CPU profile of the measured interval, how long to wait for
	// operations still in flight at the end.
	Spec    *Spec         `json:"spec,omitempty"`
	Drive   []string      `json:"drive,omitempty"`
	Start   int64         `json:"start,omitempty"`
	Profile string        `json:"profile,omitempty"`
	Stall   time.Duration `json:"stall,omitempty"`
}

// Event is one line on a member's stdout.
type Event struct {
	// Ev: ready | started | status | prefilled | progress | result |
	// loading | cut | snapshot | filled | recovery | changed |
	// transferred | error; the orchestrator adds exit when the stream
	// ends.
	Ev   string `json:"ev"`
	PID  int    `json:"pid,omitempty"`
	Addr string `json:"addr,omitempty"`
	// ready: the library and its version, as built into the member.
	Version string `json:"version,omitempty"`
	// status
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// progress: operations completed OK and failed since the run began.
	Ops  uint64 `json:"ops,omitempty"`
	Errs uint64 `json:"errs,omitempty"`
	// result, cut, filled
	Result *Result `json:"result,omitempty"`
	Err    string  `json:"err,omitempty"`
	// snapshot: the snapshot's last index, and how long it took.
	Index   uint64  `json:"index,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	// recovery
	Recovery *Recovery `json:"recovery,omitempty"`
	// changed, transferred
	Outcome *Outcome `json:"outcome,omitempty"`
}

// NodeStatus is one node's view of its group. Role is "leader",
// "follower" or "candidate"; Applied is at least 1 on a leader that has
// applied (or committed, where the library does not apply no-ops) an
// entry of its term.
type NodeStatus struct {
	Group   string `json:"group"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	Term    uint64 `json:"term"`
	Leader  string `json:"leader"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	Err     string `json:"err,omitempty"`

	// Where the library reports them (asyncraft): the log's bounds, the
	// newest snapshot, the snapshot counters (Metrics), the bytes of
	// snapshot transfers (sent as leader, received as follower), and the
	// size of the newest snapshot the state machine wrote.
	LastIndex         uint64 `json:"last_index,omitempty"`
	FirstIndex        uint64 `json:"first_index,omitempty"`
	SnapshotIndex     uint64 `json:"snapshot_index,omitempty"`
	Snapshots         uint64 `json:"snapshots,omitempty"`
	SnapshotFailures  uint64 `json:"snapshot_failures,omitempty"`
	InstallsStarted   uint64 `json:"installs_started,omitempty"`
	InstallsDone      uint64 `json:"installs_done,omitempty"`
	InstallFailures   uint64 `json:"install_failures,omitempty"`
	SnapshotsSent     uint64 `json:"snapshots_sent,omitempty"`
	SnapBytesSent     uint64 `json:"snap_bytes_sent,omitempty"`
	SnapBytesReceived uint64 `json:"snap_bytes_received,omitempty"`
	SnapshotBytes     int64  `json:"snapshot_bytes,omitempty"`

	// Membership, where the library reports it (asyncraft): the group's
	// cluster identity, the configuration in force on this node (voters,
	// learners, and whether it is joint), and the counters of membership
	// changes and leadership transfers (Metrics).
	Identity           uint64   `json:"identity,omitempty"`
	Voters             []string `json:"voters,omitempty"`
	Learners           []string `json:"learners,omitempty"`
	Joint              bool     `json:"joint,omitempty"`
	MembershipChanges  uint64   `json:"membership_changes,omitempty"`
	MembershipFailures uint64   `json:"membership_failures,omitempty"`
	TransfersStarted   uint64   `json:"transfers_started,omitempty"`
	TransfersDone      uint64   `json:"transfers_done,omitempty"`
	TransfersFailed    uint64   `json:"transfers_failed,omitempty"`
}

// Result is what a member process that ran load reports.
type Result struct {
	// Ops completed OK in the measured window, and the window's length.
	Ops     uint64  `json:"ops"`
	Seconds float64 `json:"seconds"`
	// Errors: failed operations by kind, over the whole run.
	Errors map[string]uint64 `json:"errors,omitempty"`
	// Missing: reads that found no value for their key (after the
	// prefill every key has one).
	Missing uint64 `json:"missing,omitempty"`
	// Unfinished: clients still waiting for an operation when the member
	// stopped waiting for them after the run.
	Unfinished int64 `json:"unfinished,omitempty"`
	// Hist: the latencies of the window's operations, µs, HdrHistogram V2
	// compressed.
	Hist []byte `json:"hist"`
	// PerGroup: window ops by group.
	PerGroup map[string]uint64 `json:"per_group"`
	// The driven leaders' log writes (each one fsync) and entries written
	// during the window, and their reads and read quorum rounds, where the
	// library counts them (asyncraft).
	LogWrites  uint64 `json:"log_writes"`
	LogEntries uint64 `json:"log_entries"`
	Reads      uint64 `json:"reads,omitempty"`
	ReadRounds uint64 `json:"read_rounds,omitempty"`
	// A Timeline load's cut: when each operation completed OK and when
	// each failed (Unix ns, wall clock, in completion order).
	OKAt    []int64   `json:"ok_at,omitempty"`
	Refused []Refusal `json:"refused,omitempty"`
}

// GroupName is the name of group g.
func GroupName(g int) string { return fmt.Sprintf("g%d", g) }

// Emitter writes events, one per line, from any goroutine.
type Emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewEmitter writes events to w.
func NewEmitter(w io.Writer) *Emitter { return &Emitter{enc: json.NewEncoder(w)} }

// Emit writes ev. A broken pipe means the orchestrator is gone; the end of
// stdin ends the member.
func (e *Emitter) Emit(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev)
}

// readCommands decodes r into cmds until it ends, then closes gone and
// cmds. A line that is not a command is answered with an error event.
func readCommands(r io.Reader, cmds chan<- Command, gone chan<- struct{}, out *Emitter) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var cmd Command
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			out.Emit(Event{Ev: "error", Err: fmt.Sprintf("bad command %q: %v", sc.Text(), err)})
			continue
		}
		cmds <- cmd
	}
	close(gone)
	close(cmds)
}
