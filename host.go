package asyncraft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/asyncraft/asyncraft/actors"
	protoactor "github.com/asyncraft/asyncraft/actors/proto"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/node"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Host is one process's membership in asyncraft: one actor runtime, one
// clock ticker, one callback executor and one data directory, running any
// number of nodes — one per Raft group the process belongs to.
//
// A Host's methods are safe for concurrent use.
type Host struct {
	opts HostOptions
	rt   actors.Runtime
	sys  *protoactor.System // the runtime, when the host created it
	lock io.Closer

	exec      *closure.Executor
	execRef   actors.Ref
	tickerRef actors.Ref
	// execMu guards execGone: once the executor is drained and stopped,
	// completions run on the caller's goroutine instead.
	execMu   sync.RWMutex
	execGone bool
	// callbacks bounds the closures the host owes (budget.go); refusals
	// the refusals on their way to the executor (Host.refuse).
	callbacks slots
	refusals  slots
	// throttle caps the snapshot bytes the host's nodes send (nil: no cap).
	throttle *snapshot.Throttle

	mu     sync.Mutex
	nodes  map[string]*Node // by group/id
	closed bool
}

// NewHost starts a host on the production runtime (protoactor-go).
func NewHost(opts HostOptions) (*Host, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := opts.checkNetwork(); err != nil {
		return nil, err
	}
	var tlsCfg *protoactor.TLS
	if t := opts.TLS; t != nil {
		if tlsCfg, err = protoactor.LoadTLS(t.CertFile, t.KeyFile, t.CAFile); err != nil {
			return nil, fmt.Errorf("asyncraft: %w", err)
		}
	}
	var h *Host
	sys, err := protoactor.New(protoactor.Options{
		Addr:            opts.Addr,
		TLS:             tlsCfg,
		MaxMessageBytes: opts.MaxMessageBytes,
		MaxConnections:  opts.MaxConnections,
		// Nodes exchange raftpb.Envelopes and nothing else.
		RemoteTypes: []protoreflect.FullName{(&raftpb.Envelope{}).ProtoReflect().Descriptor().FullName()},
		Logger:      opts.Logger,
		OnPanic:     func(ref actors.Ref, v any, stack []byte) { h.HandlePanic(ref, v, stack) },
	})
	if err != nil {
		return nil, fmt.Errorf("asyncraft: start host at %s: %w", opts.Addr, err)
	}
	opts.Addr = sys.Host() // the bound address, for port 0
	h, err = newHost(sys, opts)
	if err != nil {
		sys.Shutdown()
		return nil, err
	}
	h.sys = sys
	return h, nil
}

// NewHostOn starts a host on a runtime the caller provides (the
// simulator, in tests). The caller keeps ownership of the runtime and must
// route actor panics to HandlePanic.
func NewHostOn(rt actors.Runtime, opts HostOptions) (*Host, error) {
	if opts.Local || opts.TLS != nil {
		return nil, errors.New("asyncraft: HostOptions.Local and TLS configure the network of NewHost's runtime; a runtime given to NewHostOn has its own")
	}
	opts.Addr = rt.Host()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return newHost(rt, opts)
}

func newHost(rt actors.Runtime, opts HostOptions) (*Host, error) {
	h := &Host{opts: opts, rt: rt, nodes: map[string]*Node{}, exec: &closure.Executor{Logger: opts.Logger}}
	h.callbacks.max = int64(opts.MaxPendingCallbacks)
	h.refusals.max = int64(opts.MaxPendingCallbacks)
	if opts.SnapshotBytesPerSecond > 0 {
		// A burst of a quarter second: a few chunks at once.
		t, err := snapshot.NewThrottle(opts.SnapshotBytesPerSecond, max(opts.SnapshotBytesPerSecond/4, snapshot.MaxChunkLimit))
		if err != nil {
			return nil, fmt.Errorf("asyncraft: HostOptions.SnapshotBytesPerSecond: %w", err)
		}
		h.throttle = t
	}
	if opts.DataDir != "" {
		if err := opts.FS.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("asyncraft: create data directory: %w", err)
		}
		lock, err := opts.FS.Lock(path.Join(opts.DataDir, "LOCK"))
		if err != nil {
			return nil, fmt.Errorf("asyncraft: data directory %s is in use by another host: %w", opts.DataDir, err)
		}
		h.lock = lock
	}
	var err error
	h.execRef, err = rt.Spawn(hostExecutor, actors.ActorFunc(func(_ actors.Env, msg any) {
		if b, ok := msg.(closure.Batch); ok {
			h.exec.Execute(b)
		}
	}), actors.Blocking())
	if err == nil {
		h.tickerRef, err = rt.Spawn(hostTicker, &ticker{interval: opts.TickInterval})
	}
	if err != nil {
		h.releaseLock()
		return nil, fmt.Errorf("asyncraft: start host: %w", err)
	}
	return h, nil
}

// Addr is the host's address.
func (h *Host) Addr() string { return h.opts.Addr }

// Executor is the host's callback executor (for its panic count).
func (h *Host) Executor() *closure.Executor { return h.exec }

// BoundaryStats counts what the host's network boundary dropped or
// refused (see docs/operations.md).
type BoundaryStats struct {
	// Undeliverable: to another host without a network, or not a protobuf
	// message. Oversized: larger than MaxMessageBytes, dropped before
	// sending. Malformed: arrived but refused (not what an asyncraft host
	// sends: an index out of its table, a type other than raftpb.Envelope,
	// bytes that are not protobuf, too costly to decode), each ending its
	// connection's stream and losing the rest of its batch. DeadLetters:
	// arrived for an actor that does not exist here (an unknown group, a
	// stopped node).
	Undeliverable, Oversized, Malformed, DeadLetters uint64
	// Refused: calls of methods the transport does not serve (anything but
	// protoactor's Receive stream), and connections over MaxConnections.
	Refused uint64
	// Panics: panics recovered at the network boundary; each ended one
	// connection's stream, and each is a bug worth reporting.
	Panics uint64
}

// Boundary returns the host's boundary counters (zero for a host on a
// runtime other than the production one).
func (h *Host) Boundary() BoundaryStats {
	if h.sys == nil {
		return BoundaryStats{}
	}
	return BoundaryStats{
		Undeliverable: h.sys.DroppedRemote(),
		Oversized:     h.sys.Oversized(),
		Malformed:     h.sys.Malformed(),
		DeadLetters:   h.sys.DeadLetters(),
		Refused:       h.sys.Refused(),
		Panics:        h.sys.Panics(),
	}
}

// StartNode starts this host's member of a group. Its log and hard state
// are opened (or created) first, so a node that restarts resumes with its
// term, vote and log. At the node's first start its bootstrap record
// (cluster id, group, id, voters) is stored with its hard state; a later
// start that names another one fails with ErrBootstrapMismatch (see
// identity.go).
func (h *Host) StartNode(opts NodeOptions) (*Node, error) {
	opts, t, err := opts.withDefaults(h.opts.TickInterval, h.opts.MaxMessageBytes)
	if err != nil {
		return nil, err
	}
	if err := h.checkPeers(opts.Peers); err != nil {
		return nil, err
	}
	key := opts.Group + "/" + opts.ID
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("asyncraft: start %s: %w", key, closure.ErrShutdown)
	}
	if _, dup := h.nodes[key]; dup {
		return nil, fmt.Errorf("asyncraft: node %s already runs on this host", key)
	}
	storage, meta, err := h.openStorage(opts)
	if err != nil {
		return nil, err
	}
	hs, err := meta.Load()
	if err == nil {
		hs, err = h.bootstrap(opts, hs, storage, meta)
	}
	var snaps *snapshot.Store
	if err == nil {
		snaps, err = h.openSnapshots(opts)
	}
	var rs restored
	if err == nil {
		rs, err = restore(h.opts.Logger.With("group", opts.Group, "id", opts.ID), opts.StateMachine, snaps, storage)
	}
	if err == nil {
		var l *logmgr.Log
		if l, err = logmgr.NewLog(storage); err == nil {
			var n *Node
			if n, err = h.spawnNode(opts, t, hs, l, storage, meta, snaps, rs); err == nil {
				h.nodes[key] = n
				return n, nil
			}
		}
	}
	storage.Close()
	meta.Close()
	return nil, fmt.Errorf("asyncraft: start %s: %w", key, err)
}

// checkPeers refuses, on a host with a network, a peer address it could
// never reach: one without a port.
func (h *Host) checkPeers(peers []Peer) error {
	if h.sys == nil || h.opts.Local {
		return nil // the simulator's addresses, or a host without a network
	}
	for _, p := range peers {
		if _, _, err := splitHostPort(p.Addr); err != nil {
			return fmt.Errorf("asyncraft: NodeOptions: peer %q at %q: %v; this host reaches its peers over the network", p.ID, p.Addr, err)
		}
	}
	return nil
}

func (h *Host) openStorage(opts NodeOptions) (logmgr.LogStorage, logmgr.MetaStorage, error) {
	switch {
	case opts.LogStorage != nil:
		return opts.LogStorage, opts.MetaStorage, nil
	case h.opts.DataDir == "":
		return logmgr.NewMemoryStorage(), logmgr.NewMemoryMeta(), nil
	}
	dir := path.Join(h.opts.DataDir, opts.Group, opts.ID)
	// Hosts write their logs through the page cache for now: with direct
	// writes the tput workload ran 16% faster, but the leader's peak RSS
	// rose from 61 to 67 MiB (docs/storage.md), over its 64 MiB target.
	storage, err := logmgr.OpenWAL(h.opts.FS, dir, logmgr.WALOptions{SegmentSize: h.opts.WALSegmentSize, Logger: h.opts.Logger, Buffered: true})
	if err != nil {
		return nil, nil, err
	}
	meta, err := logmgr.OpenFileMeta(h.opts.FS, dir)
	if err != nil {
		storage.Close()
		return nil, nil, err
	}
	return storage, meta, nil
}

// openSnapshots opens the node's snapshot store, in its data directory
// (nil on a host without one: the node then keeps no snapshots).
func (h *Host) openSnapshots(opts NodeOptions) (*snapshot.Store, error) {
	if h.opts.DataDir == "" {
		return nil, nil
	}
	return snapshot.Open(h.opts.FS, path.Join(h.opts.DataDir, opts.Group, opts.ID, "snapshots"),
		snapshot.Options{Logger: h.opts.Logger.With("group", opts.Group, "id", opts.ID)})
}

func (h *Host) spawnNode(opts NodeOptions, t node.Ticks, hs *raftpb.HardState, l *logmgr.Log, storage logmgr.LogStorage, meta logmgr.MetaStorage, snaps *snapshot.Store, rs restored) (*Node, error) {
	n := newNode(h, opts)
	n.log, n.cluster = l, clusterIdentity(hs.Bootstrap)
	n.sh.SetLast(l.LastIndex())
	applied, appliedTerm := rs.meta.GetLastIndex(), rs.meta.GetLastTerm()
	n.sh.Applied.Store(applied)
	// The configuration at the state machine's start: its snapshot's, or
	// the bootstrap one; then those of the log after it.
	base, baseIndex := node.VotersConfig(opts.Peers), uint64(0)
	if opts.JoinIdentity != 0 {
		base = confchange.Config{} // none until the leader's log or snapshot gives one
	}
	if c := rs.meta.GetConfiguration(); len(c.GetVoters()) > 0 {
		base, baseIndex = confchange.FromProto(c), applied
	}
	confs, err := node.BuildHistory(l, base, baseIndex)
	if err != nil {
		return nil, err
	}
	// The node is gone when its three actors are: only then may it be
	// started again under the same names.
	latch := &stopLatch{fn: func() { n.stopped(); h.nodeStopped(n); close(n.done) }}
	latch.n.Store(3)
	if snaps != nil {
		latch.n.Store(4)
	}
	logRef, err := h.rt.Spawn(node.LogManagerName(opts.Group, opts.ID), latch.wrap(logmgr.NewManager(logmgr.Config{
		Storage: storage, Meta: meta, Node: n.ref, Stats: &n.logStats, Logger: h.opts.Logger,
	})))
	if err != nil {
		return nil, err
	}
	fsmRef, err := h.rt.Spawn(node.FSMCallerName(opts.Group, opts.ID), latch.wrap(fsm.NewCaller(fsm.Config{
		StateMachine: opts.StateMachine, Log: l, Node: n.ref, Executor: h.execRef, Logger: h.opts.Logger,
		Published: &n.sh.Applied, Applied: applied, AppliedTerm: appliedTerm, Configuration: base.Proto(),
	})), actors.Blocking())
	if err != nil {
		h.rt.Stop(logRef)
		return nil, err
	}
	var snapRef actors.Ref
	if snaps != nil {
		logger := h.opts.Logger.With("group", opts.Group, "id", opts.ID)
		chunk := min(max(snapshot.DefaultMaxChunkSize, h.opts.SnapshotChunkBytes), snapshot.MaxChunkLimit, h.opts.MaxMessageBytes-envelopeOverhead)
		var copier *snapshot.Copier
		copier, err = snapshot.NewCopier(snapshot.CopyConfig{
			Store: snaps, Node: n.ref, Group: opts.Group, ID: opts.ID, Cluster: n.cluster,
			Throttle: h.throttle, ChunkSize: h.opts.SnapshotChunkBytes, MaxChunkSize: chunk,
			Stats: &n.copyStats, Logger: logger,
		})
		if err == nil {
			snapRef, err = h.rt.Spawn(node.SnapshotterName(opts.Group, opts.ID), latch.wrap(snapshot.NewExecutor(snapshot.ExecutorConfig{
				Store: snaps, FSMCaller: fsmRef, Node: n.ref, Logger: logger, Copier: copier,
			})), actors.Blocking())
		}
		if err != nil {
			h.rt.Stop(logRef)
			h.rt.Stop(fsmRef)
			return nil, err
		}
	}
	n.actor = node.New(node.Config{
		Group:                   opts.Group,
		ID:                      opts.ID,
		Addr:                    h.opts.Addr,
		Configs:                 confs,
		AddressBook:             opts.Peers,
		Boot:                    hs.Bootstrap,
		Cluster:                 n.cluster,
		HardState:               hs,
		Log:                     l,
		LogManager:              logRef,
		FSMCaller:               fsmRef,
		Executor:                h.execRef,
		Snapshotter:             snapRef,
		SnapshotIndex:           applied,
		PrevSnapshotIndex:       rs.prev,
		SnapshotKeep:            snapshot.DefaultKeep,
		Applied:                 applied,
		AppliedTerm:             appliedTerm,
		SnapshotEntries:         opts.SnapshotEntries,
		SnapshotTrailingEntries: opts.SnapshotTrailingEntries,
		OpenSnapshot:            openerOf(snaps),
		SnapshotLogBytes:        opts.SnapshotLogBytes,
		Logger:                  h.opts.Logger,
		Ticks:                   t,
		ElectionTimeout:         opts.ElectionTimeout,
		LeaseRatio:              opts.LeaseRatio,
		MaxClockDrift:           opts.MaxClockDrift,
		ApplyBatch:              opts.ApplyBatch,
		MaxPendingTasks:         opts.MaxPendingTasks,
		MaxInflightMsgs:         opts.MaxInflightMsgs,
		MaxInflightBytes:        opts.MaxInflightBytes,
		MaxBytesPerRPC:          opts.MaxBytesPerRPC,
		MaxLogCacheBytes:        opts.MaxLogCacheBytes,
		DisablePreVote:          opts.DisablePreVote,
		DisableCheckQuorum:      opts.DisableCheckQuorum,
		ReadMode:                opts.ReadMode,
		MaxReadIndexLag:         opts.MaxReadIndexLag,
		CatchUpLag:              opts.CatchUpLag,
		Shared:                  n.sh,
		Outside:                 outside{h},
		Stopped:                 latch.done,
	})
	if _, err := h.rt.Spawn(n.ref.Name, n.actor, actors.PriorityMailbox()); err != nil {
		h.rt.Stop(logRef)
		h.rt.Stop(fsmRef)
		if snaps != nil {
			h.rt.Stop(snapRef)
		}
		return nil, err
	}
	h.rt.Send(h.tickerRef, registerTick{ref: n.ref})
	return n, nil
}

// outside is the host as a node actor that died reaches it (node.Outside).
type outside struct{ h *Host }

func (o outside) Send(to actors.Ref, msg any) { o.h.rt.Send(to, msg) }
func (o outside) Stop(ref actors.Ref)         { o.h.rt.Stop(ref) }
func (o outside) Complete(b closure.Batch)    { o.h.complete(b) }

// Nodes returns the host's running nodes.
func (h *Host) Nodes() []*Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Node, 0, len(h.nodes))
	for _, n := range h.nodes {
		out = append(out, n)
	}
	return out
}

// nodeStopped is called by a node actor when its shutdown is complete.
func (h *Host) nodeStopped(n *Node) {
	h.rt.Send(h.tickerRef, unregisterTick{ref: n.ref})
	h.mu.Lock()
	if h.nodes[n.key()] == n {
		delete(h.nodes, n.key())
	}
	h.mu.Unlock()
}

// complete runs closures on the executor with their statuses (or, once
// the host is closed, on the caller's goroutine: a closure always runs).
func (h *Host) complete(b closure.Batch) {
	if len(b) == 0 {
		return
	}
	h.execMu.RLock()
	gone := h.execGone
	if !gone {
		h.rt.Send(h.execRef, b)
	}
	h.execMu.RUnlock()
	if gone {
		h.exec.Execute(b)
	}
}

// drainExecutor waits until every completion sent to the executor so far
// has run.
func (h *Host) drainExecutor(ctx context.Context) error {
	ran := make(chan struct{})
	h.rt.Send(h.execRef, closure.Batch{{Closure: closure.Func(func(closure.Status) { close(ran) })}})
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("asyncraft: waiting for callbacks to finish: %w", ctx.Err())
	}
}

// HandlePanic turns a panic in one of a node's actors into the node's
// error state (a framework bug: the state machine's own panics are handled
// by the FSM caller). Runtimes call it on the panicking actor's goroutine.
func (h *Host) HandlePanic(ref actors.Ref, v any, stack []byte) {
	h.opts.Logger.Error("asyncraft: an actor panicked", "actor", ref.String(), "panic", fmt.Sprint(v), "stack", string(stack))
	err := fmt.Errorf("asyncraft: actor %s panicked: %v", ref.Name, v)
	h.mu.Lock()
	var n *Node
	for key, cand := range h.nodes {
		if strings.HasPrefix(ref.Name, key+"/") {
			n = cand
		}
	}
	h.mu.Unlock()
	if n == nil {
		return
	}
	if ref.Name == n.ref.Name {
		// The node actor itself is gone; it ran on this goroutine, so its
		// state may be read here to complete what it held.
		n.actor.Died(err)
		return
	}
	h.rt.Send(n.ref, node.ActorFailed{Err: err})
}

// Close shuts down every node (see Node.Shutdown) and then the host. It
// waits until ctx is done at most.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	nodes := make([]*Node, 0, len(h.nodes))
	for _, n := range h.nodes {
		nodes = append(nodes, n)
	}
	h.mu.Unlock()
	var errs []error
	for _, n := range nodes {
		n.startShutdown()
	}
	for _, n := range nodes {
		if err := n.wait(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	h.rt.Stop(h.tickerRef)
	// Run every completion already queued before the executor goes; later
	// ones run on their caller's goroutine.
	h.execMu.Lock()
	h.execGone = true
	h.execMu.Unlock()
	if err := h.drainExecutor(ctx); err != nil {
		errs = append(errs, err)
	}
	if h.sys != nil {
		h.sys.Shutdown()
	} else {
		h.rt.Stop(h.execRef)
	}
	h.releaseLock()
	return errors.Join(errs...)
}

func (h *Host) releaseLock() {
	if h.lock != nil {
		h.lock.Close()
		h.lock = nil
	}
}

// stopLatch runs fn once n actors have stopped (each calls done once).
type stopLatch struct {
	n  atomic.Int32
	fn func()
}

func (l *stopLatch) done() {
	if l.n.Add(-1) == 0 {
		l.fn()
	}
}

// wrap returns a that also counts down the latch when it stops.
func (l *stopLatch) wrap(a actors.Actor) actors.Actor {
	return actors.ActorFunc(func(env actors.Env, msg any) {
		a.Receive(env, msg)
		if _, ok := msg.(actors.Stopped); ok {
			l.done()
		}
	})
}

// The host's own actors.
const (
	hostTicker   = "host/ticker"
	hostExecutor = "host/exec"
)

// Messages of the host's ticker.
type (
	registerTick   struct{ ref actors.Ref }
	unregisterTick struct{ ref actors.Ref }
	tickSelf       struct{}
)

// ticker is the host's clock: every interval it sends a tick to each
// registered node actor, in registration order. It is the only timer the
// nodes need; election and heartbeat timeouts are counted in ticks.
type ticker struct {
	interval time.Duration
	nodes    []actors.Ref
}

func (t *ticker) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		env.After(t.interval, tickSelf{})
	case tickSelf:
		for _, n := range t.nodes {
			env.Send(n, node.Tick{})
		}
		env.After(t.interval, tickSelf{})
	case registerTick:
		t.nodes = append(t.nodes, m.ref)
	case unregisterTick:
		for i, n := range t.nodes {
			if n == m.ref {
				t.nodes = append(t.nodes[:i], t.nodes[i+1:]...)
				break
			}
		}
	}
}
