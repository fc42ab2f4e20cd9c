package fsm_test

// The harness: one simulated host running the FSM caller, a probe standing
// in for the node (it records what the caller sends it), a probe executor
// (it runs every closure.Batch with a closure.Executor), an in-memory log
// and a recording state machine whose behaviour tests script.

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
)

// memLog is an EntryReader over a slice: entry i+1 is ents[i]. Like
// logmgr.Log it returns [lo, hi) capped at maxBytes, but at least one entry.
type memLog struct {
	ents  []*raftpb.Entry
	reads int
	err   error // returned by Entries when set
}

func (l *memLog) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	l.reads++
	if l.err != nil {
		return nil, l.err
	}
	if lo >= hi {
		return nil, nil
	}
	if lo == 0 || hi > uint64(len(l.ents))+1 {
		return nil, fmt.Errorf("memLog: [%d, %d) out of range (last %d)", lo, hi, len(l.ents))
	}
	out := l.ents[lo-1 : hi-1 : hi-1]
	var size uint64
	for i, e := range out {
		size += uint64(len(e.Data)) + 24
		if i > 0 && size > maxBytes {
			return out[:i:i], nil
		}
	}
	return out, nil
}

func (l *memLog) add(term uint64, typ raftpb.EntryType, data []byte) uint64 {
	idx := uint64(len(l.ents)) + 1
	l.ents = append(l.ents, &raftpb.Entry{Index: idx, Term: term, Type: typ, Data: data})
	return idx
}

// nodeProbe stands in for the node: it records every message it receives.
type nodeProbe struct{ msgs []any }

func (p *nodeProbe) Receive(_ actors.Env, msg any) {
	switch msg.(type) {
	case actors.Started, actors.Stopped:
		return
	}
	p.msgs = append(p.msgs, msg)
}

func (p *nodeProbe) applied() []uint64 {
	var out []uint64
	for _, m := range p.msgs {
		if a, ok := m.(fsm.Applied); ok {
			out = append(out, a.Index)
		}
	}
	return out
}

func (p *nodeProbe) lastApplied() uint64 {
	a := p.applied()
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1]
}

func (p *nodeProbe) failed() []fsm.Failed {
	var out []fsm.Failed
	for _, m := range p.msgs {
		if f, ok := m.(fsm.Failed); ok {
			out = append(out, f)
		}
	}
	return out
}

func (p *nodeProbe) shutdownDones() int {
	n := 0
	for _, m := range p.msgs {
		if _, ok := m.(fsm.ShutdownDone); ok {
			n++
		}
	}
	return n
}

// execProbe is the callback executor: it runs each batch in order.
type execProbe struct {
	ex      closure.Executor
	batches int
	other   []any
}

func (p *execProbe) Receive(_ actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started, actors.Stopped:
	case closure.Batch:
		p.batches++
		p.ex.Execute(m)
	default:
		p.other = append(p.other, msg)
	}
}

// recSM records every callback. apply, if set, replaces the default OnApply
// (apply every entry, result "r<index>"); panicIn makes a callback panic.
type recSM struct {
	events       []string
	seen         []uint64   // every index returned by Next, in order
	calls        [][]uint64 // per OnApply call, the indexes it was shown
	configs      []*raftpb.Configuration
	leaderStarts []uint64
	leaderStops  []closure.Status
	errs         []error
	shutdowns    int
	started      []fsm.LeaderChange
	stopped      []fsm.LeaderChange
	claimed      map[uint64]closure.Closure // closures taken with Done, by index

	apply   func(sm *recSM, it fsm.Iterator)
	panicIn map[string]bool
}

func (sm *recSM) maybePanic(name string) {
	if sm.panicIn[name] {
		panic("boom in " + name)
	}
}

// next is it.Next, recording the entry it moves to.
func (sm *recSM) next(it fsm.Iterator) bool {
	if !it.Next() {
		return false
	}
	sm.seen = append(sm.seen, it.Index())
	sm.calls[len(sm.calls)-1] = append(sm.calls[len(sm.calls)-1], it.Index())
	return true
}

// claim takes the current entry's closure with Done.
func (sm *recSM) claim(it fsm.Iterator) closure.Closure {
	c := it.Done()
	if c != nil {
		if sm.claimed == nil {
			sm.claimed = map[uint64]closure.Closure{}
		}
		sm.claimed[it.Index()] = c
	}
	return c
}

func result(idx uint64) string { return fmt.Sprintf("r%d", idx) }

func applyAll(sm *recSM, it fsm.Iterator) {
	for sm.next(it) {
		it.SetResult(result(it.Index()))
	}
}

func (sm *recSM) OnApply(it fsm.Iterator) {
	sm.calls = append(sm.calls, nil)
	defer func() {
		c := sm.calls[len(sm.calls)-1]
		switch {
		case len(c) == 0:
			sm.events = append(sm.events, "apply[]")
		default:
			sm.events = append(sm.events, fmt.Sprintf("apply[%d-%d]", c[0], c[len(c)-1]))
		}
	}()
	sm.maybePanic("OnApply")
	if sm.apply != nil {
		sm.apply(sm, it)
		return
	}
	applyAll(sm, it)
}

func (sm *recSM) OnSnapshotSave(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	return nil, fsm.ErrSnapshotUnsupported
}
func (sm *recSM) OnSnapshotLoad(fsm.SnapshotSource) error { return fsm.ErrSnapshotUnsupported }

func (sm *recSM) OnLeaderStart(term uint64) {
	sm.events = append(sm.events, fmt.Sprintf("leaderStart:%d", term))
	sm.leaderStarts = append(sm.leaderStarts, term)
	sm.maybePanic("OnLeaderStart")
}

func (sm *recSM) OnLeaderStop(st closure.Status) {
	sm.events = append(sm.events, "leaderStop:"+st.Code.String())
	sm.leaderStops = append(sm.leaderStops, st)
	sm.maybePanic("OnLeaderStop")
}

func (sm *recSM) OnConfigurationCommitted(conf *raftpb.Configuration) {
	sm.events = append(sm.events, "config")
	sm.configs = append(sm.configs, conf)
	sm.maybePanic("OnConfigurationCommitted")
}

func (sm *recSM) OnStartFollowing(ctx fsm.LeaderChange) {
	sm.events = append(sm.events, "startFollowing:"+ctx.Leader)
	sm.started = append(sm.started, ctx)
	sm.maybePanic("OnStartFollowing")
}

func (sm *recSM) OnStopFollowing(ctx fsm.LeaderChange) {
	sm.events = append(sm.events, "stopFollowing:"+ctx.Leader)
	sm.stopped = append(sm.stopped, ctx)
	sm.maybePanic("OnStopFollowing")
}

func (sm *recSM) OnError(err error) {
	sm.events = append(sm.events, "error")
	sm.errs = append(sm.errs, err)
	sm.maybePanic("OnError")
}

func (sm *recSM) OnShutdown() {
	sm.events = append(sm.events, "shutdown")
	sm.shutdowns++
	sm.maybePanic("OnShutdown")
}

// outcome is what a task's closure received.
type outcome struct {
	runs   int
	st     closure.Status
	result any
}

type world struct {
	t      *testing.T
	s      *sim.Sim
	h      *sim.Host
	log    *memLog
	sm     *recSM
	node   *nodeProbe
	exec   *execProbe
	caller actors.Ref

	tasks    []*fsm.Task
	outcomes map[*fsm.Task]*outcome
}

// newWorld starts the caller over an empty memLog with sm. mod, if given,
// edits the config before the caller is created.
func newWorld(t *testing.T, seed uint64, sm *recSM, mod ...func(*fsm.Config)) *world {
	t.Helper()
	w := &world{
		t:        t,
		s:        sim.New(sim.Config{Seed: seed}),
		log:      &memLog{},
		sm:       sm,
		node:     &nodeProbe{},
		exec:     &execProbe{},
		outcomes: map[*fsm.Task]*outcome{},
	}
	w.h = w.s.AddHost("h1", sim.HostConfig{})
	nodeRef := must(w.h.Spawn("node", w.node))
	execRef := must(w.h.Spawn("exec", w.exec, actors.Blocking()))
	cfg := fsm.Config{
		StateMachine: sm,
		Log:          w.log,
		Node:         nodeRef,
		Executor:     execRef,
		Logger:       slog.New(slog.DiscardHandler),
		// The bootstrap configuration of a founding member.
		Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a", Addr: "ha"}}},
	}
	for _, m := range mod {
		m(&cfg)
	}
	w.caller = must(w.h.Spawn("fsm", fsm.NewCaller(cfg), actors.Blocking()))
	doubles := closure.DoubleRuns()
	t.Cleanup(func() {
		if d := closure.DoubleRuns() - doubles; d != 0 {
			t.Errorf("%d closures ran more than once (closure.DoubleRuns)", d)
		}
		if p := w.exec.ex.Panics(); p != 0 {
			t.Errorf("%d callbacks panicked in the executor", p)
		}
		if len(w.exec.other) != 0 {
			t.Errorf("executor got unexpected messages: %v", w.exec.other)
		}
	})
	w.run()
	return w
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// run steps the simulator until nothing is left to do. Nothing in this
// world arms timers, so an empty queue means quiescence.
func (w *world) run() {
	w.t.Helper()
	if !w.s.RunUntil(func() bool { return w.s.Pending() == 0 }, time.Minute) {
		w.t.Fatalf("simulation did not go quiet")
	}
}

func (w *world) send(msg any) { w.h.Send(w.caller, msg) }

func (w *world) normal(term uint64, n int) (first, last uint64) {
	for i := 0; i < n; i++ {
		idx := w.log.add(term, raftpb.EntryType_ENTRY_TYPE_NORMAL, nil)
		w.log.ents[idx-1].Data = []byte(fmt.Sprintf("d%d", idx))
		if i == 0 {
			first = idx
		}
		last = idx
	}
	return first, last
}

func (w *world) noop(term uint64) uint64 {
	return w.log.add(term, raftpb.EntryType_ENTRY_TYPE_NOOP, nil)
}

func confFor(tag string) *raftpb.Configuration {
	return &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: tag, Addr: tag + ":1"}}}
}

func (w *world) config(term uint64, conf *raftpb.Configuration) uint64 {
	return w.log.add(term, raftpb.EntryType_ENTRY_TYPE_CONFIG, must(proto.Marshal(conf)))
}

// badConfig appends a configuration entry whose data does not decode (a
// truncated varint tag).
func (w *world) badConfig(term uint64) uint64 {
	return w.log.add(term, raftpb.EntryType_ENTRY_TYPE_CONFIG, []byte{0xff, 0xff, 0xff})
}

// task makes a task for (index, term) whose closure records its outcome.
func (w *world) task(index, term uint64) *fsm.Task {
	t := &fsm.Task{Index: index, Term: term}
	o := &outcome{}
	w.outcomes[t] = o
	t.Init(closure.ResultFunc(func(st closure.Status, res any) {
		o.runs++
		o.st, o.result = st, res
	}))
	w.tasks = append(w.tasks, t)
	return t
}

// tasksFor makes one task, of the entry's own term, per entry in [lo, hi].
func (w *world) tasksFor(lo, hi uint64) []*fsm.Task {
	var out []*fsm.Task
	for i := lo; i <= hi; i++ {
		out = append(out, w.task(i, w.log.ents[i-1].Term))
	}
	return out
}

func (w *world) commit(index uint64, tasks ...*fsm.Task) {
	w.send(fsm.Committed{Index: index, Tasks: tasks})
}

func (w *world) out(t *fsm.Task) *outcome { return w.outcomes[t] }

// expect checks that t completed exactly once with code (and, when code is
// OK, with result).
func (w *world) expect(t *fsm.Task, code closure.Code, result any) {
	w.t.Helper()
	o := w.out(t)
	if o.runs != 1 {
		w.t.Errorf("task %d@%d ran %d times, want once", t.Index, t.Term, o.runs)
		return
	}
	if o.st.Code != code {
		w.t.Errorf("task %d@%d: status %v, want %v", t.Index, t.Term, o.st, code)
	}
	if code != closure.OK {
		result = nil
	}
	if o.result != result {
		w.t.Errorf("task %d@%d: result %v, want %v", t.Index, t.Term, o.result, result)
	}
}

// expectAll checks that every task made so far (except those in skip) ran
// exactly once.
func (w *world) expectAllRanOnce(skip ...*fsm.Task) {
	w.t.Helper()
	for _, t := range w.tasks {
		if slices.Contains(skip, t) {
			continue
		}
		if o := w.out(t); o.runs != 1 {
			w.t.Errorf("task %d@%d ran %d times, want once", t.Index, t.Term, o.runs)
		}
	}
}

// expectFailedOnce checks that the node was told once that the state
// machine failed, with applied index applied, and that no Applied message
// ever reported more than that.
func (w *world) expectFailedOnce(applied uint64) fsm.Failed {
	w.t.Helper()
	f := w.node.failed()
	if len(f) != 1 {
		w.t.Fatalf("node got %d Failed messages, want 1: %v", len(f), w.node.msgs)
	}
	if f[0].Err == nil {
		w.t.Errorf("Failed without an error")
	}
	if f[0].Applied != applied {
		w.t.Errorf("Failed.Applied = %d, want %d", f[0].Applied, applied)
	}
	for _, a := range w.node.applied() {
		if a > applied {
			w.t.Errorf("node was told Applied{%d}, beyond the last applied index %d", a, applied)
		}
	}
	if len(w.sm.errs) != 1 {
		w.t.Errorf("OnError called %d times, want once", len(w.sm.errs))
	}
	return f[0]
}

func seq(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

var errStorage = errors.New("disk on fire")
