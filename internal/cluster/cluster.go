// Package cluster runs whole asyncraft groups in the simulator: N hosts,
// each with one node of one group, on a simulated network with simulated
// disks. Tests use it to drive elections, replication, crashes and
// partitions in virtual time, deterministically from a seed.
package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// Options configures a simulated cluster.
type Options struct {
	Seed  uint64
	Nodes int // default 3
	Net   sim.NetConfig
	// Memory keeps logs in memory (lost on crash) instead of files on the
	// hosts' simulated disks.
	Memory bool
	// TornCrash tears unsynced writes on crash instead of dropping them.
	TornCrash bool
	// Drift gives host i a clock drift of Drift*(i-(n-1)/2) (spread around
	// zero).
	Drift float64
	// Node adjusts each node's options before each start; h is the node's
	// simulated host.
	Node func(o *asyncraft.NodeOptions, h *sim.Host)
	// NewStateMachine makes the state machine of each life of each node
	// (life counts from 1). Default: a Recorder.
	NewStateMachine func(id string, life int) fsm.StateMachine
	// Host adjusts each simulated host's configuration.
	Host func(id string, cfg *sim.HostConfig)
	// HostOptions adjusts the options of each asyncraft host before each
	// start.
	HostOptions func(id string, o *asyncraft.HostOptions)
	Trace       io.Writer
	// OnSend sees every message between hosts as it is sent; Tamper may
	// replace it first (sim.Config.Tamper).
	OnSend func(from, to actors.Ref, msg any)
	Tamper func(from, to actors.Ref, msg proto.Message) proto.Message
	// Logger for the framework (default: discard).
	Logger *slog.Logger
}

// Cluster is a simulated group. Its methods must be called from the test's
// goroutine, between simulation steps.
type Cluster struct {
	Sim   *sim.Sim
	IDs   []string
	opts  Options
	peers []asyncraft.Peer

	hosts map[string]*asyncraft.Host
	nodes map[string]*asyncraft.Node
	sms   map[string]fsm.StateMachine
	// Panics lists actor panics (framework bugs).
	Panics []string
	// Lives counts node starts per id.
	Lives map[string]int
	// joined holds the cluster identity each node added by Join was
	// started with, and books its address book.
	joined map[string]uint64
	books  map[string][]asyncraft.Peer
	// rejoin holds the RejoinTerm of a wiped node's next start (Wipe).
	rejoin map[string]uint64
}

// New creates the cluster and starts every node.
func New(opts Options) *Cluster {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		opts:   opts,
		hosts:  map[string]*asyncraft.Host{},
		nodes:  map[string]*asyncraft.Node{},
		sms:    map[string]fsm.StateMachine{},
		Lives:  map[string]int{},
		joined: map[string]uint64{},
		rejoin: map[string]uint64{},
		books:  map[string][]asyncraft.Peer{},
	}
	c.Sim = sim.New(sim.Config{Seed: opts.Seed, Net: opts.Net, Trace: opts.Trace, OnPanic: c.onPanic, OnSend: opts.OnSend, Tamper: opts.Tamper})
	for i := 0; i < opts.Nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		c.IDs = append(c.IDs, id)
		c.peers = append(c.peers, asyncraft.Peer{ID: id, Addr: id})
		hc := sim.HostConfig{Drift: opts.Drift * (float64(i) - float64(opts.Nodes-1)/2), TornCrash: opts.TornCrash}
		if opts.Host != nil {
			opts.Host(id, &hc)
		}
		c.Sim.AddHost(id, hc)
	}
	for _, id := range c.IDs {
		if err := c.Start(id); err != nil {
			panic(err)
		}
	}
	return c
}

func (c *Cluster) onPanic(ref actors.Ref, v any, stack []byte) {
	c.Panics = append(c.Panics, fmt.Sprintf("%v: %v\n%s", ref, v, stack))
	if h := c.hosts[ref.Host]; h != nil {
		h.HandlePanic(ref, v, stack)
	}
}

// Start starts the host and node id (after New, only after a crash).
func (c *Cluster) Start(id string) error {
	sh := c.Sim.Host(id)
	ho := asyncraft.HostOptions{Logger: c.opts.Logger, FS: sh.Disk(), WALSegmentSize: 256 << 10}
	if !c.opts.Memory {
		ho.DataDir = "/data"
	}
	if c.opts.HostOptions != nil {
		c.opts.HostOptions(id, &ho)
	}
	h, err := asyncraft.NewHostOn(sh, ho)
	if err != nil {
		return err
	}
	var sm fsm.StateMachine
	if c.opts.NewStateMachine != nil {
		sm = c.opts.NewStateMachine(id, c.Lives[id]+1)
	} else {
		sm = &Recorder{ID: id}
	}
	no := asyncraft.NodeOptions{Group: "g", ID: id, Peers: c.peers, StateMachine: sm}
	if ident, ok := c.joined[id]; ok {
		no.JoinIdentity, no.Peers = ident, c.books[id]
	}
	if t, ok := c.rejoin[id]; ok {
		no.RejoinTerm = t
		delete(c.rejoin, id)
	}
	if c.opts.Node != nil {
		c.opts.Node(&no, sh)
	}
	n, err := h.StartNode(no)
	if err != nil {
		return err
	}
	c.hosts[id], c.nodes[id], c.sms[id] = h, n, sm
	c.Lives[id]++
	return nil
}

// Join adds a host named id and starts on it a node that joins the group
// (NodeOptions.JoinIdentity, the group's identity), with the nodes book
// (ids of other nodes, each at the host of its name) as its address book
// (NodeOptions.Peers); with none, it learns its leader's address from the
// leader's requests. It becomes a member once the leader adds it.
func (c *Cluster) Join(id string, book ...string) error {
	if _, dup := c.joined[id]; dup || slices.Contains(c.IDs, id) {
		return fmt.Errorf("cluster: %s exists already", id)
	}
	var identity uint64
	for _, n := range c.nodes {
		identity = n.ClusterIdentity()
		break
	}
	if identity == 0 {
		return fmt.Errorf("cluster: no node runs to give the group's identity")
	}
	hc := sim.HostConfig{TornCrash: c.opts.TornCrash}
	if c.opts.Host != nil {
		c.opts.Host(id, &hc)
	}
	c.Sim.AddHost(id, hc)
	c.IDs = append(c.IDs, id)
	c.joined[id] = identity
	for _, b := range book {
		c.books[id] = append(c.books[id], asyncraft.Peer{ID: b, Addr: b})
	}
	// c.peers stays the founders' list: their bootstrap configuration,
	// and the joiners' address book.
	return c.Start(id)
}

// Crash kills host id: its actors vanish and its disk keeps what was
// synced. Closures of its pending proposals never run (the process died).
func (c *Cluster) Crash(id string) {
	c.Sim.Host(id).Crash()
	delete(c.hosts, id)
	delete(c.nodes, id)
}

// Wipe crashes host id (if up) and empties its disk, as a replaced disk
// would. Restart then starts its node on empty data, under its id: as a
// founding member with the group's peers, unless rejoinTerm is set
// (NodeOptions.RejoinTerm, for that start only).
func (c *Cluster) Wipe(id string, rejoinTerm uint64) {
	c.Crash(id)
	c.Sim.Host(id).Disk().Wipe()
	if rejoinTerm > 0 {
		c.rejoin[id] = rejoinTerm
	}
}

// WipeAndJoin wipes host id (Wipe) and starts its node on the empty disk
// as a node that joins the group (NodeOptions.JoinIdentity) under its old
// id, with the founders as its address book: the safe way back for a
// member removed from the configuration.
func (c *Cluster) WipeAndJoin(id string) error {
	var identity uint64
	for _, n := range c.nodes {
		identity = n.ClusterIdentity()
		break
	}
	if identity == 0 {
		return fmt.Errorf("cluster: no node runs to give the group's identity")
	}
	c.Wipe(id, 0)
	c.joined[id] = identity
	c.books[id] = slices.Clone(c.peers)
	return c.Restart(id)
}

// Restart brings a crashed host back and starts its node from its disk.
func (c *Cluster) Restart(id string) error {
	c.Sim.Host(id).Restart()
	return c.Start(id)
}

// Host returns the running asyncraft host id, or nil if it is down.
func (c *Cluster) Host(id string) *asyncraft.Host { return c.hosts[id] }

// Node returns the running node id, or nil if it is down.
func (c *Cluster) Node(id string) *asyncraft.Node { return c.nodes[id] }

// SM returns the Recorder of the current (or last) life of node id (nil
// with a custom state machine).
func (c *Cluster) SM(id string) *Recorder {
	r, _ := c.sms[id].(*Recorder)
	return r
}

// Life is the number of the current (or last) life of node id.
func (c *Cluster) Life(id string) int { return c.Lives[id] }

// Up returns the ids of running nodes.
func (c *Cluster) Up() []string {
	var ids []string
	for _, id := range c.IDs {
		if c.nodes[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// Leader returns the running node that leads in the highest term, or "".
func (c *Cluster) Leader() string {
	best, term := "", uint64(0)
	for _, id := range c.Up() {
		s := c.nodes[id].Status()
		if s.Role == asyncraft.Leader && s.Term >= term {
			best, term = id, s.Term
		}
	}
	return best
}

// StableLeader returns a leader that every running node in its term
// follows, or "".
func (c *Cluster) StableLeader() string {
	l := c.Leader()
	if l == "" {
		return ""
	}
	ls := c.nodes[l].Status()
	lt := ls.Term
	for _, id := range c.Up() {
		if !isMember(ls.Configuration, id) {
			continue // removed, or joining and not added yet: follows nobody
		}
		s := c.nodes[id].Status()
		if s.Term != lt || s.Leader != l {
			return ""
		}
	}
	return l
}

// isMember reports whether id is in cfg (either half, voter or learner).
func isMember(cfg asyncraft.Configuration, id string) bool {
	for _, ps := range [][]asyncraft.Peer{cfg.Voters, cfg.Learners, cfg.OldVoters, cfg.OldLearners} {
		for _, p := range ps {
			if p.ID == id {
				return true
			}
		}
	}
	return false
}

// WaitLeader runs the simulation until a leader is followed by every
// running node, for at most limit of virtual time.
func (c *Cluster) WaitLeader(limit time.Duration) (string, error) {
	var l string
	ok := c.Sim.RunUntil(func() bool { l = c.StableLeader(); return l != "" }, limit)
	if !ok {
		return "", fmt.Errorf("no stable leader after %v (seed %d): %s", limit, c.opts.Seed, c.Describe())
	}
	return l, nil
}

// Describe renders every node's status.
func (c *Cluster) Describe() string {
	s := ""
	for _, id := range c.IDs {
		if n := c.nodes[id]; n != nil {
			s += "\n  " + n.Status().String()
		} else {
			s += "\n  " + id + " down"
		}
	}
	return s
}

// Shutdown shuts node id down in order and runs the simulation until it
// is done.
func (c *Cluster) Shutdown(id string, limit time.Duration) error {
	n := c.nodes[id]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = n.Shutdown(ctx) // starts the shutdown; the simulation does the rest
	done := func() bool {
		select {
		case <-n.Done():
			return true
		default:
			return false
		}
	}
	if !c.Sim.RunUntil(done, limit) {
		return fmt.Errorf("node %s did not shut down within %v", id, limit)
	}
	delete(c.nodes, id)
	return nil
}

// Outcomes counts closure completions by code, and catches closures that
// complete more than once.
type Outcomes struct {
	ByCode  map[closure.Code]int
	Results []any
	Double  int
	issued  int
}

// NewOutcomes returns an empty tally.
func NewOutcomes() *Outcomes { return &Outcomes{ByCode: map[closure.Code]int{}} }

// Closure returns a fresh closure that records its outcome.
func (o *Outcomes) Closure() closure.Closure {
	o.issued++
	ran := false
	return closure.ResultFunc(func(st closure.Status, v any) {
		if ran {
			o.Double++
			return
		}
		ran = true
		o.ByCode[st.Code]++
		if st.OK() {
			o.Results = append(o.Results, v)
		}
	})
}

// Issued is the number of closures handed out.
func (o *Outcomes) Issued() int { return o.issued }

// Completed is the number of closures that ran.
func (o *Outcomes) Completed() int {
	n := 0
	for _, v := range o.ByCode {
		n += v
	}
	return n
}

// Recorder is a state machine that records what it applies and the events
// it sees. Each Result of an applied entry is its index.
type Recorder struct {
	fsm.Base
	ID           string
	Applied      []Entry
	LeaderStarts []uint64
	LeaderStops  int
	Errors       []error
	Shutdowns    int
	// Fail, if set, is called for each entry; a non-nil status makes the
	// recorder roll back that entry.
	Fail func(e Entry) *closure.Status
	// Each, if set, is called once per OnApply call (for example to do
	// disk I/O that makes applying slow in virtual time).
	Each func()
}

// Entry is one applied entry.
type Entry struct {
	Index, Term uint64
	Data        string
}

func (r *Recorder) OnApply(it fsm.Iterator) {
	if r.Each != nil {
		r.Each()
	}
	for it.Next() {
		e := Entry{Index: it.Index(), Term: it.Term(), Data: string(it.Data())}
		if r.Fail != nil {
			if st := r.Fail(e); st != nil {
				it.SetErrorAndRollback(1, *st)
				return
			}
		}
		r.Applied = append(r.Applied, e)
		it.SetResult(e.Index)
	}
}

func (r *Recorder) OnLeaderStart(term uint64)      { r.LeaderStarts = append(r.LeaderStarts, term) }
func (r *Recorder) OnLeaderStop(st closure.Status) { r.LeaderStops++ }
func (r *Recorder) OnError(err error)              { r.Errors = append(r.Errors, err) }
func (r *Recorder) OnShutdown()                    { r.Shutdowns++ }

// CheckApplied verifies that the applied sequences of all recorders (one
// per node's latest life) are prefixes of one another, with no index
// skipped or repeated.
func (c *Cluster) CheckApplied() error {
	var longest []Entry
	for _, id := range c.IDs {
		rec := c.SM(id)
		if rec == nil {
			continue
		}
		for i, e := range rec.Applied {
			if i > 0 && e.Index <= rec.Applied[i-1].Index {
				return fmt.Errorf("%s applied index %d after %d", id, e.Index, rec.Applied[i-1].Index)
			}
		}
		if len(rec.Applied) > len(longest) {
			longest = rec.Applied
		}
	}
	for _, id := range c.IDs {
		rec := c.SM(id)
		if rec == nil {
			continue
		}
		if !slices.Equal(rec.Applied, longest[:len(rec.Applied)]) {
			for i := range rec.Applied {
				if rec.Applied[i] != longest[i] {
					return fmt.Errorf("%s diverges at its applied entry %d: %+v vs %+v", id, i, rec.Applied[i], longest[i])
				}
			}
		}
	}
	return nil
}

// Load proposes total commands to node id, keeping concurrency of them in
// flight: each completion issues the next. Commands are "<prefix><i>".
// Outcomes are recorded in o.
func (c *Cluster) Load(id, prefix string, total, concurrency int, o *Outcomes) {
	n := c.nodes[id]
	next := 0
	var issue func()
	issue = func() {
		if next >= total {
			return
		}
		i := next
		next++
		inner := o.Closure()
		n.Apply(asyncraft.Task{Data: []byte(fmt.Sprintf("%s%d", prefix, i)), Done: closure.ResultFunc(func(st closure.Status, v any) {
			inner.(closure.ResultClosure).RunResult(st, v)
			issue()
		})})
	}
	for i := 0; i < concurrency; i++ {
		issue()
	}
}
