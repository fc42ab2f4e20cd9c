package chaos

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Violation is a failed check.
type Violation struct {
	Check  string
	Detail string
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// Result is the verdict on one run.
type Result struct {
	Seed       uint64
	Events     uint64
	TraceHash  string
	Virtual    time.Duration
	Violations []Violation
	// Ops counts client operations by outcome.
	Ops, OK, Failed, Unknown int
	// Nemesis actions taken, and node crashes.
	Actions, Crashes int
	// Snapshots taken (captures), loaded (at restart or install), and
	// installs completed; Chunks is the snapshot chunks sent.
	Snapshots, Loads, Installs, Chunks, Corrupted int
	// Membership changes started by the nemesis, and those that
	// completed; leadership transfers started, and those that completed.
	Changes, ChangesDone   int
	Transfers, Transferred int
	// WipedRefused counts the nodes back on wiped data that failed with
	// ErrWipedData (the wiped-vote scenario).
	WipedRefused int
	// Visualization is the path of porcupine's HTML rendering of a
	// history found not linearizable, if written.
	Visualization string
}

// OK reports whether every check passed.
func (r Result) Passed() bool { return len(r.Violations) == 0 }

type run struct {
	// wipedRefused: Result.WipedRefused.
	wipedRefused int
	cfg          Config
	c            *cluster.Cluster
	oracle       *oracle
	clientHost   *sim.Host
	ops          []*op
	lastOK       []time.Duration // per client: call time of its last OK op
	stopClients  bool
	// Scenarios may steer clients: while set, reads go to steerReads and
	// writes to steerWrites (when those nodes are up), and noWrites makes
	// every operation a read that appends no entry (a read through the
	// log takes another read path, if the run has one).
	steerReads, steerWrites string
	noWrites                bool
	crashed                 map[string]bool // node lives ("id/life") that crashed
	snapshots, loads        int             // kvMachine captures and loads
	installs, chunks        int             // successful install answers, chunks sent
	corrupted               int             // chunks the CorruptChunks nemesis damaged
	violations              []Violation
	seen                    map[string]bool
	doubleRuns              uint64                // closure.DoubleRuns at the start
	machines                map[string]*kvMachine // each node's current life
	logger                  *slog.Logger
	watchers                []func(from, to actors.Ref, msg any)
	members                 membershipStats
	paused                  map[string]time.Duration // pause time given to each node so far
	pausedUntil             map[string]time.Duration // when each node's latest pause ends
}

// watch calls fn for every message between hosts as it leaves, after the
// oracle has seen it. Scenarios use it to act at a precise point of the
// protocol.
func (r *run) watch(fn func(from, to actors.Ref, msg any)) { r.watchers = append(r.watchers, fn) }

func (r *run) violate(check, format string, args ...any) {
	d := fmt.Sprintf(format, args...)
	if r.seen[check+d] || len(r.violations) >= 20 {
		return
	}
	r.seen[check+d] = true
	r.violations = append(r.violations, Violation{Check: check, Detail: d})
}

func lifeKey(id string, life int) string { return fmt.Sprintf("%s/%d", id, life) }

func (r *run) crash(id string) {
	r.crashed[lifeKey(id, r.c.Life(id))] = true
	r.c.Crash(id)
}

func (r *run) restart(id string) {
	if err := r.c.Restart(id); err != nil {
		r.violate("restart", "%s could not restart: %v", id, err)
	}
}

// Run runs one simulated history and checks it.
func Run(cfg Config) Result { return RunWith(cfg, nil) }

// RunWith is Run with a scenario: script is called once the cluster is up,
// before anything runs, to schedule extra events (sim.At) on the run.
func RunWith(cfg Config, script func(r *run)) Result {
	cfg = cfg.withDefaults()
	r := &run{cfg: cfg, crashed: map[string]bool{}, seen: map[string]bool{}, lastOK: make([]time.Duration, cfg.Clients),
		doubleRuns: closure.DoubleRuns(), machines: map[string]*kvMachine{}, paused: map[string]time.Duration{}, pausedUntil: map[string]time.Duration{}}
	r.oracle = newOracle(r)
	logger := slog.New(slog.DiscardHandler)
	if cfg.Trace != nil {
		logger = slog.New(&traceHandler{w: cfg.Trace, now: func() time.Duration {
			if r.c == nil {
				return 0
			}
			return r.c.Sim.Now()
		}})
	}
	r.logger = logger
	r.c = cluster.New(cluster.Options{
		Logger: logger,
		Seed:   cfg.Seed,
		Nodes:  cfg.Nodes,
		Trace:  cfg.Trace,
		OnSend: r.oracle.observe,
		Tamper: r.tamper(),
		Host: func(id string, hc *sim.HostConfig) {
			hc.TornCrash = cfg.Nemeses&TornWrites != 0
		},
		Node: r.nodeOptions,
		NewStateMachine: func(id string, life int) fsm.StateMachine {
			m := &kvMachine{r: r, id: id, life: life, data: map[string]string{}}
			r.machines[id] = m
			return m
		},
	})
	if cfg.Nemeses&ClockDrift != 0 {
		// Start every clock with its own drift, spread across the bound.
		for i, h := range r.c.Sim.Hosts() {
			h.SetClock(0, cfg.MaxDrift*(2*float64(i)/float64(max(1, cfg.Nodes-1))-1))
		}
	}
	for i := 0; i < cfg.Spares; i++ {
		// Spares join with the founders as their address book, but half
		// of them know nobody: they learn their leader from its requests.
		var book []string
		if i%2 == 0 {
			book = slices.Clone(r.c.IDs[:cfg.Nodes])
		}
		if err := r.c.Join(fmt.Sprintf("n%d", cfg.Nodes+i+1), book...); err != nil {
			panic(err)
		}
	}
	r.clientHost = r.c.Sim.AddHost("clients", sim.HostConfig{})
	for i := 0; i < cfg.Clients; i++ {
		if _, err := r.clientHost.Spawn(fmt.Sprintf("client%d", i), &client{r: r, id: i}); err != nil {
			panic(err)
		}
	}

	if script != nil {
		script(r)
	}
	// Faults, then healing and the liveness phase, then an orderly end.
	nem := newNemesis(r)
	nem.start(cfg.Duration)
	if cfg.ReadOnlyPhases {
		r.phases(cfg.Duration)
	}
	r.c.Sim.RunFor(cfg.Duration)
	nem.heal()
	if cfg.ReadOnlyPhases {
		r.noWrites = false
	}
	r.checkLiveness()
	r.stopClients = true
	r.c.Sim.RunFor(opTimeout + time.Second) // let operations in flight finish
	r.checkConverged()
	r.oracle.checkLogMatching()
	r.checkNodes()
	r.shutdownAll()
	r.checkClosures()
	r.checkTransfers()
	r.checkAcknowledged()
	r.checkDefinite()
	res := Result{
		Seed:      cfg.Seed,
		Events:    r.c.Sim.Events(),
		TraceHash: r.c.Sim.TraceHash(),
		Virtual:   r.c.Sim.Now(),
		Actions:   nem.actions,
		Snapshots: r.snapshots, Loads: r.loads, Installs: r.installs, Chunks: r.chunks, Corrupted: r.corrupted,
		Changes: r.members.started, ChangesDone: r.members.done,
		Transfers: r.members.transfers, Transferred: r.members.transferred,
		WipedRefused: r.wipedRefused,
	}
	for _, id := range r.c.IDs {
		res.Crashes += r.c.Lives[id] - 1
	}
	res.Visualization = r.checkLinearizable()
	for _, o := range r.ops {
		res.Ops++
		switch o.state {
		case opOK:
			res.OK++
		case opFailed:
			res.Failed++
		default:
			res.Unknown++
		}
	}
	for _, p := range r.c.Panics {
		r.violate("actor panic", "%s", p)
	}
	res.Violations = r.violations
	return res
}

// phases alternates the workload between mixed phases and phases of
// reads only, each 0.3–3 s, until end, on a random stream of its own.
func (r *run) phases(end time.Duration) {
	rnd := rand.New(rand.NewPCG(r.cfg.Seed, 0x7068617365))
	var next func()
	next = func() {
		if r.c.Sim.Now() >= end {
			return
		}
		r.noWrites = !r.noWrites
		r.c.Sim.At(300*time.Millisecond+time.Duration(rnd.Int64N(int64(2700*time.Millisecond))), next)
	}
	r.c.Sim.At(300*time.Millisecond+time.Duration(rnd.Int64N(int64(2700*time.Millisecond))), next)
}

// nodeOptions gives each node life storage the oracle can watch: the
// host's files, wrapped to record what is durable.
func (r *run) nodeOptions(o *asyncraft.NodeOptions, h *sim.Host) {
	c := r.cfg
	o.ElectionTimeout, o.HeartbeatInterval = c.ElectionTimeout, c.HeartbeatInterval
	o.MaxClockDrift, o.LeaseRatio = c.LeaseDriftBound, c.LeaseRatio
	o.ApplyBatch, o.MaxInflightMsgs, o.MaxBytesPerRPC = c.ApplyBatch, c.MaxInflightMsgs, c.MaxBytesPerRPC
	o.DisablePreVote, o.DisableCheckQuorum = c.DisablePreVote, c.DisableCheckQuorum
	o.SnapshotEntries, o.SnapshotTrailingEntries = c.SnapshotEntries, c.SnapshotTrailing
	disk := h.Disk()
	dir := "/data/g/" + o.ID
	// Odd seeds write the log through the page cache, even ones directly
	// (each append durable when written): both ways the storage can go.
	buffered := r.cfg.Seed%2 == 1
	segment := int64(256 << 10)
	if c.SnapshotEntries > 0 {
		segment = 8 << 10 // small enough for compaction to drop segments
	}
	st, err := logmgr.OpenWAL(disk, dir, logmgr.WALOptions{SegmentSize: segment, Buffered: buffered, Logger: r.logger})
	if err != nil {
		r.violate("recovery", "%s cannot open its log: %v", o.ID, err)
		st = nil
	}
	meta, err := logmgr.OpenFileMeta(disk, dir)
	if err != nil {
		r.violate("recovery", "%s cannot open its hard state: %v", o.ID, err)
	}
	if st == nil || meta == nil {
		return
	}
	id := o.ID
	l := cluster.NewSyncedLog(st)
	l.OnTruncate = func(s logmgr.LogStorage, from uint64) { r.oracle.truncating(id, s, from) }
	m := &cluster.SavedMeta{MetaStorage: meta, OnSave: func(prev, next *raftpb.HardState) { r.oracle.savedHardState(id, prev, next) }}
	r.oracle.logs[o.ID], r.oracle.metas[o.ID] = l, m
	o.LogStorage, o.MetaStorage = l, m
}

// checkLiveness: once the faults heal, a leader must be elected and every
// client must complete an operation it started after the healing, within
// the bound.
func (r *run) checkLiveness() {
	healed := r.c.Sim.Now()
	ok := r.c.Sim.RunUntil(func() bool {
		if r.c.StableLeader() == "" {
			return false
		}
		for _, t := range r.lastOK {
			if t < healed {
				return false
			}
		}
		return true
	}, r.cfg.LivenessBound)
	if !ok {
		var stuck []int
		for i, t := range r.lastOK {
			if t < healed {
				stuck = append(stuck, i)
			}
		}
		r.violate("liveness", "%v after the faults healed: leader %q, clients without progress %v;%s",
			r.cfg.LivenessBound, r.c.StableLeader(), stuck, r.c.Describe())
	}
}

// checkConverged: once the clients stop, every running node must apply
// the same entries and hold the same state, within the liveness bound.
func (r *run) checkConverged() {
	var why string
	converged := func() bool {
		up := r.memberIDs(r.c.Up())
		if len(up) == 0 {
			why = "no member is up"
			return false
		}
		first := r.c.Node(up[0]).Status()
		for _, id := range up {
			st := r.c.Node(id).Status()
			if st.Applied != first.Applied || st.Commit != st.Applied {
				why = fmt.Sprintf("%s has applied %d of %d committed; %s has applied %d", id, st.Applied, st.Commit, up[0], first.Applied)
				return false
			}
			if !maps.Equal(r.machines[id].data, r.machines[up[0]].data) {
				why = fmt.Sprintf("%s and %s applied up to %d but their state differs", id, up[0], st.Applied)
				return false
			}
		}
		return true
	}
	if !r.c.Sim.RunUntil(converged, r.cfg.LivenessBound) {
		r.violate("liveness", "state machines did not converge within %v of the clients stopping: %s;%s", r.cfg.LivenessBound, why, r.c.Describe())
	}
}

// memberIDs keeps, of ids, the members of the stable leader's
// configuration: nodes removed from the group, and spares never added (or
// added by an entry since truncated), follow nobody. Without a stable
// leader it keeps them all.
func (r *run) memberIDs(ids []string) []string {
	l := r.c.StableLeader()
	if l == "" {
		return ids
	}
	cfg := r.c.Node(l).Status().Configuration
	var out []string
	for _, id := range ids {
		for _, ps := range [][]asyncraft.Peer{cfg.Voters, cfg.Learners, cfg.OldVoters, cfg.OldLearners} {
			if slices.ContainsFunc(ps, func(p asyncraft.Peer) bool { return p.ID == id }) {
				out = append(out, id)
				break
			}
		}
	}
	return out
}

// checkNodes: no node may be in the error state (nothing here injects
// storage errors or state machine failures).
func (r *run) checkNodes() {
	for _, id := range r.c.Up() {
		if s := r.c.Node(id).Status(); s.Err != nil {
			r.violate("node error", "%s: %v", id, s.Err)
		}
	}
}

// shutdownAll stops every node in order, so every closure it holds runs.
func (r *run) shutdownAll() {
	for _, id := range r.c.Up() {
		if err := r.c.Shutdown(id, 10*time.Second); err != nil {
			r.violate("shutdown", "%v", err)
		}
	}
	r.c.Sim.RunFor(time.Second)
}

// checkClosures: every closure ran at most once, and exactly once unless
// the node life it was given to crashed.
func (r *run) checkClosures() {
	for _, o := range r.ops {
		switch {
		case o.runs > 1:
			r.violate("exactly once", "the closure of op %d (%s) ran %d times", o.id, describe(o), o.runs)
		case o.runs == 0 && !r.crashed[lifeKey(o.node, o.life)]:
			r.violate("exactly once", "the closure of op %d (%s) given to %s (life %d) never ran", o.id, describe(o), o.node, o.life)
		}
	}
	if n := closure.DoubleRuns() - r.doubleRuns; n > 0 {
		r.violate("exactly once", "%d framework closures ran more than once", n)
	}
}

// checkDefinite: a write that failed definitely (not OK, not
// Status.Indeterminate) was applied nowhere: outcomes never lie.
func (r *run) checkDefinite() {
	for _, o := range r.ops {
		if o.state != opFailed || o.input.Kind == opGet {
			continue
		}
		if _, applied := r.oracle.firstApplied[string(encode(o.input))]; applied {
			r.violate("definite failure", "%s failed with %v, a definite failure, but was applied", describe(o), o.status)
		}
	}
}

// checkAcknowledged: every write acknowledged as applied is the committed
// entry at the index it was acknowledged at.
func (r *run) checkAcknowledged() {
	for _, o := range r.ops {
		if o.state != opOK || o.input.Kind == opGet {
			continue
		}
		e, ok := r.oracle.committed[o.index]
		if !ok || e.data != string(encode(o.input)) {
			r.violate("acknowledged write", "%s was acknowledged at index %d, which holds %q", describe(o), o.index, e.data)
		}
	}
}

// logOrdered returns history with each write's input carrying the index
// it was first committed at (see kvLogModel).
func (r *run) logOrdered(history []porcupine.Operation) []porcupine.Operation {
	first := map[string]uint64{}
	for i, e := range r.oracle.committed {
		if at, ok := first[e.data]; !ok || i < at {
			first[e.data] = i
		}
	}
	out := make([]porcupine.Operation, len(history))
	for i, op := range history {
		in := op.Input.(kvInput)
		var index uint64
		if in.Kind != opGet {
			index = first[string(encode(in))]
		}
		out[i] = op
		out[i].Input = ordered{in, index}
	}
	return out
}

// linearizabilityTimeout bounds porcupine's search of one history.
const linearizabilityTimeout = 10 * time.Minute

// checkLinearizable builds the client history and checks it with
// porcupine. Operations whose outcome is unknown are resolved from what
// the run observed: a write that some node applied took effect no later
// than that, and one never applied had no effect that anyone observed.
func (r *run) checkLinearizable() string {
	end := r.c.Sim.Now()
	var history []porcupine.Operation
	for _, o := range r.ops {
		ret := o.ret
		switch o.state {
		case opFailed:
			continue
		case opPending, opUnknown:
			if o.input.Kind == opGet {
				continue
			}
			at, applied := r.oracle.firstApplied[string(encode(o.input))]
			if !applied {
				continue
			}
			ret = max(at, o.call)
		}
		if ret == 0 {
			ret = end
		}
		history = append(history, porcupine.Operation{
			ClientId: o.client,
			Input:    o.input,
			Call:     int64(o.call),
			Output:   o.output,
			Return:   int64(ret),
		})
	}
	// First with the writes in log order (kvLogModel): what it accepts is
	// linearizable, and it decides in milliseconds histories that kvModel
	// takes minutes over or cannot decide (swarm seed 4154: 2m10s;
	// seed 21007: undecided in 10 minutes, 12 writes of unknown outcome
	// applied at one instant). What it refuses goes to kvModel, which may
	// still find another order.
	if porcupine.CheckOperationsTimeout(kvLogModel, r.logOrdered(history), linearizabilityTimeout) == porcupine.Ok {
		return ""
	}
	// The plain check: it keeps no partial linearizations and so decides
	// faster; the verbose one only renders a history found wrong. Its
	// search is exponential in the operations in flight on one key.
	switch porcupine.CheckOperationsTimeout(kvModel, history, linearizabilityTimeout) {
	case porcupine.Ok:
		return ""
	case porcupine.Unknown:
		r.violate("linearizability", "porcupine could not decide within %v (%d operations)", linearizabilityTimeout, len(history))
		return ""
	}
	_, info := porcupine.CheckOperationsVerbose(kvModel, history, linearizabilityTimeout)
	path := ""
	if dir := r.cfg.VisualizeDir; dir != "" {
		path = filepath.Join(dir, fmt.Sprintf("asyncraft-sim-seed-%d.html", r.cfg.Seed))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
				path = ""
			}
		}
	}
	r.violate("linearizability", "the history of %d operations is not linearizable (%s)", len(history), orNone(path))
	return path
}

func orNone(path string) string {
	if path == "" {
		return "no visualisation written"
	}
	return "see " + path
}

func describe(o *op) string {
	how := ""
	if o.input.Kind == opGet {
		how = " (" + readPath(o.path) + " read)"
	}
	return fmt.Sprintf("%s%s by client %d on %s", kvModel.DescribeOperation(o.input, o.output), how, o.client, o.node)
}

func readPath(m asyncraft.ReadMode) string {
	if m == asyncraft.ReadDefault {
		return "log"
	}
	return m.String()
}
