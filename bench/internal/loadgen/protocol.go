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
	// Op: start | status | prefill | run | profile | quit. profile (no
	// answer): write a CPU profile of the window of a run that another
	// process drives, and a heap profile at its end.
	Op string `json:"op"`
	// start: the group's members (this process's ids among them), the
	// number of groups, and the election timeouts of a group's preferred
	// leader (members[g mod len]) and of the others (0: the library's
	// default).
	Peers      []Peer        `json:"peers,omitempty"`
	Groups     int           `json:"groups,omitempty"`
	LeaderET   time.Duration `json:"leader_et,omitempty"`
	FollowerET time.Duration `json:"follower_et,omitempty"`
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
	// error; the orchestrator adds exit when the stream ends.
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
	// result
	Result *Result `json:"result,omitempty"`
	Err    string  `json:"err,omitempty"`
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
