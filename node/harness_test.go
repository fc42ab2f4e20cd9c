package node

// The test harness: one node actor on sim host "A", alone, driven in the
// deterministic simulator. Probe actors on "A" stand in for its siblings —
// the log manager (records Append, TruncateSuffix, Reset and SaveHardState and
// mirrors the log operations onto the storage under the node's logmgr.Log;
// it answers nothing itself: the test sends Stable and HardStateSaved in
// its name when it chooses, so the test controls durability), the FSM
// caller and the host's executor (and, with setup.snapshots, the snapshot
// executor and its copy actor) — and fake
// peers on "B" and "C" stand in for the other members: their node actors
// and the replies-to names of their replicators record every envelope they
// get, and the test makes them send envelopes to the node. When the node
// leads, it spawns real replicator children; a peer answers them by sending
// to their refs.

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

const (
	hGroup   = "g"
	hSelf    = "a"
	hCluster = uint64(0xa5c4af7)
	// hMaxTerm bounds the terms whose replicator names the fake peers
	// answer at.
	hMaxTerm = 8
)

var (
	hNodeRef = actors.Ref{Host: "A", Name: ActorName(hGroup, hSelf)}
	hLogRef  = actors.Ref{Host: "A", Name: LogManagerName(hGroup, hSelf)}
	hFSMRef  = actors.Ref{Host: "A", Name: FSMCallerName(hGroup, hSelf)}
	hExecRef = actors.Ref{Host: "A", Name: "exec"}
	// hCopyRef is the node's snapshot copy actor (setup.snapshots).
	hCopyRef = actors.Ref{Host: "A", Name: snapshot.CopyName(SnapshotterName(hGroup, hSelf))}

	// hNet has a fixed latency: nothing overtakes anything, and a
	// settle of a millisecond delivers every message in flight.
	hNet = sim.NetConfig{MinLatency: 200 * time.Microsecond, MaxLatency: 200 * time.Microsecond}

	hTicks = Ticks{Election: 10, Heartbeat: 1, ReadTimeout: 20, RestartQuiet: 3}
)

// hSeeds are the seeds every test runs with (the election timer is drawn
// from the seed).
var hSeeds = []uint64{1, 7, 42}

// ents is n entries of term from index from.
func ents(from, term uint64, n int) []*raftpb.Entry {
	out := make([]*raftpb.Entry, n)
	for i := range out {
		idx := from + uint64(i)
		out[i] = &raftpb.Entry{Index: idx, Term: term, Data: []byte(fmt.Sprintf("%d@%d", idx, term))}
	}
	return out
}

// --- probes on host A ---

// logProbe stands in for the log manager. It records every operation in
// the order received and applies Append, TruncateSuffix and Reset to the storage
// under the node's log (as the real manager would), but answers nothing
// by itself (world.saveHardState and world.stable answer for it).
type logProbe struct {
	st   *logmgr.MemoryStorage
	ops  []any // logmgr.Append, TruncateSuffix, Reset, SaveHardState, Close
	errs []string
}

func (p *logProbe) Receive(_ actors.Env, msg any) {
	switch m := msg.(type) {
	case logmgr.Append:
		p.ops = append(p.ops, m)
		if err := p.st.Append(m.Entries); err != nil {
			p.errs = append(p.errs, m.TraceString()+": "+err.Error())
		}
	case logmgr.TruncateSuffix:
		p.ops = append(p.ops, m)
		if err := p.st.TruncateSuffix(m.From); err != nil {
			p.errs = append(p.errs, fmt.Sprintf("truncate from %d: %v", m.From, err))
		}
	case logmgr.Reset:
		p.ops = append(p.ops, m)
		if err := p.st.Reset(m.Next, m.Term); err != nil {
			p.errs = append(p.errs, fmt.Sprintf("reset to %d/%d: %v", m.Next, m.Term, err))
		}
	case logmgr.SaveHardState, logmgr.Close:
		p.ops = append(p.ops, m)
	}
}

// recorder stands in for the FSM caller or the executor: it keeps every
// message but Started.
type recorder struct{ msgs []any }

func (r *recorder) Receive(_ actors.Env, msg any) {
	if _, ok := msg.(actors.Started); !ok {
		r.msgs = append(r.msgs, msg)
	}
}

// outsideFake is the Outside of the node under test.
type outsideFake struct {
	sent    []any
	stopped []actors.Ref
	batches []closure.Batch
}

func (o *outsideFake) Send(_ actors.Ref, msg any) { o.sent = append(o.sent, msg) }
func (o *outsideFake) Stop(ref actors.Ref)        { o.stopped = append(o.stopped, ref) }
func (o *outsideFake) Complete(b closure.Batch)   { o.batches = append(o.batches, b) }

// --- fake peers on hosts B and C ---

// received is an envelope a fake peer got, at the ref it was sent to.
type received struct {
	at time.Duration
	to actors.Ref
	e  *raftpb.Envelope
}

// fakePeer is a member of the group other than the node under test: its
// node actor and the replies-to refs of its replicators share one record.
type fakePeer struct {
	id   string
	host *sim.Host
	ref  actors.Ref // its node actor
	got  []received
}

// peerActor is one of a fake peer's actors. sendEnv makes it send an
// envelope (across the network, as the peer would).
type peerActor struct {
	p   *fakePeer
	sim *sim.Sim
}

type sendEnv struct {
	to actors.Ref
	e  *raftpb.Envelope
}

func (a *peerActor) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case *raftpb.Envelope:
		a.p.got = append(a.p.got, received{at: a.sim.Now(), to: env.Self(), e: m})
	case sendEnv:
		env.Send(m.to, m.e)
	}
}

// replicatorRefOf is the ref of peer's replicator towards the node under
// test, in term: where the node's append and heartbeat replies go.
func (p *fakePeer) replicatorRefOf(term uint64) actors.Ref {
	return replicatorRef(p.host.Name(), hGroup, p.id, hSelf, term)
}

// --- the world ---

// setup describes one test world; zero fields take defaults.
type setup struct {
	seed uint64
	// hs is the hard state found in storage at start (term, vote).
	term uint64
	vote string
	// log is the durable log at start.
	log []*raftpb.Entry
	// snapshots gives the node a snapshot executor and a copy actor (both
	// recorders).
	snapshots bool
}

type world struct {
	t    testing.TB
	seed uint64
	s    *sim.Sim
	A    *sim.Host
	st   *logmgr.MemoryStorage
	log  *logmgr.Log
	sh   *Shared
	node *Actor
	lm   *logProbe
	fsm  *recorder
	exec *recorder
	snap *recorder
	copy *recorder // the snapshot copy actor (setup.snapshots)
	out  *outsideFake
	// opened are the snapshots Config.OpenSnapshot was asked to open.
	opened []*raftpb.SnapshotMeta
	// stopped counts the calls of Config.Stopped.
	stopped int
	peers   map[string]*fakePeer
	// wire is every envelope that left host A, in order.
	wire []received
	// answered is how many SaveHardState the test answered (in order).
	answered int
	seq      uint64
}

func newWorld(t testing.TB, su setup) *world {
	t.Helper()
	t.Logf("seed=%d", su.seed)
	st := logmgr.NewMemoryStorage()
	if err := st.Append(su.log); err != nil {
		t.Fatal(err)
	}
	lg, err := logmgr.NewLog(st)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{
		t: t, seed: su.seed, st: st, log: lg,
		sh:    NewShared(hGroup, hSelf, 64, 64),
		lm:    &logProbe{st: st},
		fsm:   &recorder{},
		exec:  &recorder{},
		snap:  &recorder{},
		copy:  &recorder{},
		out:   &outsideFake{},
		peers: map[string]*fakePeer{},
	}
	w.s = sim.New(sim.Config{Seed: su.seed, Net: hNet, OnSend: func(from, to actors.Ref, msg any) {
		if e, ok := msg.(*raftpb.Envelope); ok && from.Host == "A" {
			w.wire = append(w.wire, received{at: w.s.Now(), to: to, e: proto.Clone(e).(*raftpb.Envelope)})
		}
	}})
	w.A = w.s.AddHost("A", sim.HostConfig{})
	peers := []Peer{{ID: hSelf, Addr: "A"}}
	for _, p := range []struct{ id, host string }{{"b", "B"}, {"c", "C"}} {
		host := w.s.AddHost(p.host, sim.HostConfig{})
		fp := &fakePeer{id: p.id, host: host, ref: actors.Ref{Host: p.host, Name: ActorName(hGroup, p.id)}}
		w.peers[p.id] = fp
		w.spawn(host, fp.ref.Name, &peerActor{p: fp, sim: w.s})
		for term := uint64(1); term <= hMaxTerm; term++ {
			w.spawn(host, fp.replicatorRefOf(term).Name, &peerActor{p: fp, sim: w.s})
		}
		peers = append(peers, Peer{ID: p.id, Addr: p.host})
	}
	boot := &raftpb.Bootstrap{ClusterId: "harness", Group: hGroup, Id: hSelf}
	w.sh.SetLast(lg.LastIndex())
	var snapRef actors.Ref
	if su.snapshots {
		snapRef = actors.Ref{Host: "A", Name: SnapshotterName(hGroup, hSelf)}
	}
	confs, err := BuildHistory(lg, VotersConfig(peers), 0)
	if err != nil {
		t.Fatal(err)
	}
	w.node = New(Config{
		Configs:          confs,
		Snapshotter:      snapRef,
		SnapshotKeep:     3,
		Group:            hGroup,
		ID:               hSelf,
		Addr:             "A",
		Boot:             boot,
		Cluster:          hCluster,
		HardState:        &raftpb.HardState{Term: su.term, Vote: su.vote, Bootstrap: boot},
		Log:              lg,
		LogManager:       hLogRef,
		FSMCaller:        hFSMRef,
		Executor:         hExecRef,
		Logger:           slog.New(slog.DiscardHandler),
		Ticks:            hTicks,
		ElectionTimeout:  100 * time.Millisecond,
		LeaseRatio:       0.8,
		MaxClockDrift:    10 * time.Millisecond,
		ApplyBatch:       32,
		MaxPendingTasks:  1024,
		MaxInflightMsgs:  16,
		MaxInflightBytes: 1 << 20,
		MaxBytesPerRPC:   64 << 10,
		MaxLogCacheBytes: 1 << 30,
		ReadMode:         ReadSafe,
		Shared:           w.sh,
		Outside:          w.out,
		Stopped:          func() { w.stopped++ },
		OpenSnapshot: func(meta *raftpb.SnapshotMeta) func() (fsm.SnapshotSource, func() error, error) {
			w.opened = append(w.opened, meta)
			return nil
		},
	})
	w.spawn(w.A, hLogRef.Name, w.lm)
	w.spawn(w.A, hFSMRef.Name, w.fsm)
	w.spawn(w.A, hExecRef.Name, w.exec)
	if su.snapshots {
		w.spawn(w.A, snapRef.Name, w.snap)
		w.spawn(w.A, hCopyRef.Name, w.copy)
	}
	w.spawn(w.A, hNodeRef.Name, w.node, actors.PriorityMailbox())
	w.settle()
	return w
}

func (w *world) spawn(h *sim.Host, name string, a actors.Actor, opts ...actors.SpawnOption) {
	w.t.Helper()
	if _, err := h.Spawn(name, a, opts...); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) fatalf(format string, args ...any) {
	w.t.Helper()
	st := w.sh.Status()
	w.t.Fatalf("seed=%d at %v: %s\nnode: role %v term %d vote %q leader %q last %d commit %d stable %d err %v\nlog manager got: %s\nleft A: %s",
		w.seed, w.s.Now(), fmt.Sprintf(format, args...), st.Role, st.Term, w.node.vote, st.Leader, st.LastIndex, st.Commit,
		w.node.stable, st.Err, w.describeOps(), w.describeWire())
}

func (w *world) describeOps() string {
	var s []string
	for _, op := range w.lm.ops {
		switch m := op.(type) {
		case logmgr.Append:
			s = append(s, m.TraceString())
		case logmgr.TruncateSuffix:
			s = append(s, fmt.Sprintf("truncate from %d", m.From))
		case logmgr.SaveHardState:
			s = append(s, m.TraceString())
		default:
			s = append(s, fmt.Sprintf("%T", op))
		}
	}
	return "[" + strings.Join(s, "; ") + "]"
}

func (w *world) describeWire() string {
	var s []string
	for _, r := range w.wire {
		s = append(s, fmt.Sprintf("%v→%s %s", r.at, r.to.Name, r.e.TraceString()))
	}
	return "[" + strings.Join(s, "; ") + "]"
}

// check fails on what the probes saw go wrong.
func (w *world) check() {
	w.t.Helper()
	if len(w.lm.errs) > 0 {
		w.fatalf("the log manager could not apply the node's operations: %s", strings.Join(w.lm.errs, "; "))
	}
}

// settle runs the world for a millisecond of virtual time: every message
// in flight arrives, and every answer to it.
func (w *world) settle() { w.run(time.Millisecond) }

func (w *world) run(d time.Duration) {
	w.t.Helper()
	w.s.RunFor(d)
	w.check()
}

// tick sends n ticks of the host's clock, settling after each.
func (w *world) tick(n int) {
	w.t.Helper()
	for range n {
		w.A.Send(hNodeRef, Tick{})
		w.settle()
	}
}

// fromPeer makes peer send e to the node under test (across the network);
// it fills in the header and returns the envelope's seq.
func (w *world) fromPeer(peer string, term uint64, e *raftpb.Envelope) uint64 {
	w.t.Helper()
	return w.fromPeerTo(peer, hNodeRef, term, e)
}

func (w *world) fromPeerTo(peer string, to actors.Ref, term uint64, e *raftpb.Envelope) uint64 {
	w.t.Helper()
	p := w.peers[peer]
	if e.Seq == 0 {
		w.seq++
		e.Seq = 100 + w.seq
	}
	e.Group, e.From, e.To, e.Term, e.Cluster = hGroup, peer, hSelf, term, hCluster
	p.host.Send(p.ref, sendEnv{to: to, e: e})
	w.settle()
	return e.Seq
}

// saves are the SaveHardState the log manager got.
func (w *world) saves() []*raftpb.HardState {
	var out []*raftpb.HardState
	for _, op := range w.lm.ops {
		if m, ok := op.(logmgr.SaveHardState); ok {
			out = append(out, m.HardState)
		}
	}
	return out
}

// saveHardState answers the oldest unanswered SaveHardState, as the log
// manager does once it is durable.
func (w *world) saveHardState() *raftpb.HardState {
	w.t.Helper()
	saves := w.saves()
	if w.answered >= len(saves) {
		w.fatalf("no SaveHardState to answer (%d answered)", w.answered)
	}
	hs := saves[w.answered]
	w.answered++
	w.A.Send(hNodeRef, logmgr.HardStateSaved{HardState: proto.Clone(hs).(*raftpb.HardState)})
	w.settle()
	return hs
}

// stable reports the log durable up to (index, term).
func (w *world) stable(index, term uint64) {
	w.t.Helper()
	w.A.Send(hNodeRef, logmgr.Stable{Index: index, Term: term})
	w.settle()
}

// appends are the Append operations the log manager got.
func (w *world) appends() []logmgr.Append {
	var out []logmgr.Append
	for _, op := range w.lm.ops {
		if m, ok := op.(logmgr.Append); ok {
			out = append(out, m)
		}
	}
	return out
}

// sentTo is what left host A for ref, in order.
func (w *world) sentTo(ref actors.Ref) []*raftpb.Envelope {
	var out []*raftpb.Envelope
	for _, r := range w.wire {
		if r.to == ref {
			out = append(out, r.e)
		}
	}
	return out
}

// got is what peer received at ref (its node, or one of its replicators)
// whose body is of kind (e.g. *raftpb.Envelope_VoteResponse).
func got[T any](p *fakePeer, ref actors.Ref) []*raftpb.Envelope {
	var out []*raftpb.Envelope
	for _, r := range p.got {
		if _, ok := r.e.Body.(T); ok && r.to == ref {
			out = append(out, r.e)
		}
	}
	return out
}

// fsmGot is what the FSM caller got of type T.
func fsmGot[T any](w *world) []T {
	var out []T
	for _, m := range w.fsm.msgs {
		if v, ok := m.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// forSeeds runs f in a subtest per seed.
func forSeeds(t *testing.T, f func(t *testing.T, seed uint64)) {
	for _, seed := range hSeeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { f(t, seed) })
	}
}

func voteRequest(lastIndex, lastTerm uint64, addr string) *raftpb.Envelope {
	return &raftpb.Envelope{Body: &raftpb.Envelope_VoteRequest{VoteRequest: &raftpb.VoteRequest{
		LastLogIndex: lastIndex, LastLogTerm: lastTerm, CandidateAddr: addr}}}
}

func appendRequest(prevIndex, prevTerm, commit uint64, es []*raftpb.Entry) *raftpb.Envelope {
	return &raftpb.Envelope{Body: &raftpb.Envelope_AppendRequest{AppendRequest: &raftpb.AppendRequest{
		PrevLogIndex: prevIndex, PrevLogTerm: prevTerm, Commit: commit, Entries: es}}}
}
