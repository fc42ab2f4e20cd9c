package fsm

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Config configures an FSM caller.
type Config struct {
	StateMachine StateMachine
	// Log is read for committed entries.
	Log EntryReader
	// Node receives Applied, Failed and ShutdownDone.
	Node actors.Ref
	// Executor runs task closures (it accepts closure.Batch).
	Executor actors.Ref
	// Applied is the index already reflected in the state machine at
	// start (0 without snapshots: the whole log is replayed), and
	// AppliedTerm the term of that entry.
	Applied     uint64
	AppliedTerm uint64
	// Configuration is the group's configuration at Applied (its
	// snapshot's, or the bootstrap one); the caller follows it through
	// the configuration entries it applies and the snapshots it loads,
	// and records it in every snapshot it captures.
	Configuration *raftpb.Configuration
	// Published, if set, is updated with the applied index after each
	// pass, before the pass's closures are handed to the executor: a
	// caller that learns from a closure that its entry applied sees it in
	// Published too.
	Published *atomic.Uint64
	// MaxReadBytes caps the entries read from the log at once (default
	// 4 MiB).
	MaxReadBytes uint64
	Logger       *slog.Logger
}

// Caller is the FSM caller actor. It owns the applied index, the tasks of
// committed entries not yet applied, and the user's StateMachine, whose
// callbacks it alone invokes.
//
// Batching: a Committed message only raises the target and schedules an
// apply pass (a message to itself); Committed messages that arrive before
// the pass runs are folded into it, so under load one pass — and one
// OnApply per run of normal entries — covers many commits.
//
// Accepts Committed, LeaderStart, LeaderStop, StartFollowing,
// StopFollowing, NodeError and Shutdown from the node, and Capture from
// the snapshot executor; sends the node Applied, Failed and ShutdownDone,
// the executor Captured, and closure.Batch to the callback executor.
type Caller struct {
	cfg Config
	// conf is the configuration at the applied index.
	conf *raftpb.Configuration

	applied     uint64 // invariant: applied <= target
	appliedTerm uint64 // the term of the entry at applied
	target      uint64
	tasks       []*Task // committed tasks not yet settled, by index
	scheduled   bool

	pendingLeader *LeaderStart // a leader start waiting for its index to apply
	leaderTerm    uint64       // the term OnLeaderStart was called for; 0 if none

	failed     error
	failStatus closure.Status // what tasks fail with once failed is set
	shutdown   bool
	done       closure.Batch // completions gathered during a pass
	it         iter
}

// NewCaller returns an FSM caller actor for cfg.
func NewCaller(cfg Config) *Caller {
	if cfg.MaxReadBytes == 0 {
		cfg.MaxReadBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Caller{cfg: cfg, applied: cfg.Applied, appliedTerm: cfg.AppliedTerm, target: cfg.Applied, conf: cfg.Configuration}
}

// Receive implements actors.Actor.
func (c *Caller) Receive(env actors.Env, msg any) {
	if invariants.Enabled {
		defer c.checkInvariants()
	}
	c.receive(env, msg)
}

// checkInvariants checks the invariants written on Caller (under the
// invariants build tag only).
func (c *Caller) checkInvariants() {
	if c.applied > c.target {
		invariants.Violate("FSM caller: applied %d beyond the target %d", c.applied, c.target)
	}
	for i := 1; i < len(c.tasks); i++ {
		if c.tasks[i].Index < c.tasks[i-1].Index {
			invariants.Violate("FSM caller: tasks out of index order")
		}
	}
}

func (c *Caller) receive(env actors.Env, msg any) {
	if _, ok := msg.(actors.Stopped); ok {
		// Stopped from outside without a Shutdown (the runtime went down):
		// the tasks still held complete all the same.
		for _, t := range c.tasks {
			c.complete(t, closure.Newf(closure.EUNKNOWN, "the node stopped before applying the entry here; the entry is committed: the group applies it, and so may this node once restarted"), nil)
		}
		c.tasks = nil
		c.flush(env)
		return
	}
	if c.shutdown {
		if m, ok := msg.(Capture); ok {
			env.Send(m.Reply, Captured{Err: errors.New("fsm: no snapshot: the node is shutting down")})
			return
		}
		if m, ok := msg.(Committed); ok && len(m.Tasks) > 0 {
			// Every closure accepted runs once, even one sent late.
			for _, t := range m.Tasks {
				c.complete(t, unknownAtShutdown(t), nil)
			}
			c.flush(env)
		}
		return
	}
	switch msg := msg.(type) {
	case Committed:
		c.tasks = append(c.tasks, msg.Tasks...)
		if c.failed != nil {
			c.failTasks(c.failStatus)
			c.flush(env)
			return
		}
		if msg.Index > c.target {
			c.target = msg.Index
		}
		if !c.scheduled && c.target > c.applied {
			c.scheduled = true
			env.Send(env.Self(), applyNow{})
		}
	case applyNow:
		c.scheduled = false
		c.pass(env)
	case Capture:
		c.capture(env, msg)
	case Load:
		c.load(env, msg)
	case LeaderStart:
		c.pendingLeader = &msg
		c.maybeStartLeader(env)
	case LeaderStop:
		if c.pendingLeader != nil && c.pendingLeader.Term == msg.Term {
			c.pendingLeader = nil
		}
		if c.leaderTerm == msg.Term && c.leaderTerm != 0 {
			c.leaderTerm = 0
			c.call(env, "OnLeaderStop", func() { c.cfg.StateMachine.OnLeaderStop(msg.Status) })
		}
	case StartFollowing:
		c.call(env, "OnStartFollowing", func() { c.cfg.StateMachine.OnStartFollowing(msg.Change) })
	case StopFollowing:
		c.call(env, "OnStopFollowing", func() { c.cfg.StateMachine.OnStopFollowing(msg.Change) })
	case NodeError:
		if c.failed == nil {
			c.failed = msg.Err
			c.failStatus = closure.Newf(closure.EUNKNOWN, "the node failed before applying the entry here (%v); the entry is committed: the group applies it, and so may this node once restarted", msg.Err)
			c.failTasks(c.failStatus)
			c.call(env, "OnError", func() { c.cfg.StateMachine.OnError(msg.Err) })
			c.flush(env)
		}
		if msg.Stop {
			env.Stop(env.Self())
		}
	case Shutdown:
		c.shutdown = true
		for _, t := range c.tasks {
			c.complete(t, unknownAtShutdown(t), nil)
		}
		c.tasks = nil
		if c.leaderTerm != 0 {
			c.leaderTerm = 0
			c.call(env, "OnLeaderStop", func() { c.cfg.StateMachine.OnLeaderStop(closure.Newf(closure.ESHUTDOWN, "node shutting down")) })
		}
		c.call(env, "OnShutdown", c.cfg.StateMachine.OnShutdown)
		c.flush(env)
		env.Send(c.cfg.Node, ShutdownDone{})
	}
}

// capture runs OnSnapshotSave on the state as applied so far and answers
// m.Reply. Entries committed but not applied yet stay for the next pass:
// the snapshot is of the applied state, whatever it is.
func (c *Caller) capture(env actors.Env, m Capture) {
	meta := SnapshotMeta{Index: c.applied, Term: c.appliedTerm, Configuration: c.conf}
	switch {
	case c.failed != nil:
		env.Send(m.Reply, Captured{Meta: meta, Err: fmt.Errorf("fsm: no snapshot: the node failed: %w", c.failed)})
		return
	case c.applied == 0:
		env.Send(m.Reply, Captured{Meta: meta, Err: errors.New("fsm: no snapshot: nothing is applied yet")})
		return
	case len(c.conf.GetVoters()) == 0:
		// A node that joined a group and has applied no configuration
		// entry yet: a snapshot must record the configuration.
		env.Send(m.Reply, Captured{Meta: meta, Err: errors.New("fsm: no snapshot: the configuration at the applied index is not known yet (this node joined the group and has not applied a configuration entry)")})
		return
	}
	var p SnapshotPersister
	var err error
	if !c.call(env, "OnSnapshotSave", func() { p, err = c.cfg.StateMachine.OnSnapshotSave(meta) }) {
		env.Send(m.Reply, Captured{Meta: meta, Err: fmt.Errorf("fsm: no snapshot: %w", c.failed)})
		return
	}
	if err == nil && p == nil {
		err = errors.New("fsm: OnSnapshotSave returned neither a persister nor an error")
	}
	env.Send(m.Reply, Captured{Meta: meta, Persister: p, Err: err})
}

// load replaces the state with an installed snapshot (Load).
func (c *Caller) load(env actors.Env, m Load) {
	unknown := closure.Newf(closure.EUNKNOWN, "this node installed a snapshot up to entry %d from the leader instead of applying the entries; whether this proposal's entry is the one committed is unknown", m.Meta.Index)
	for _, t := range m.Tasks {
		c.complete(t, unknown, nil)
	}
	n, _ := SearchTasks(c.tasks, m.Meta.Index+1)
	for _, t := range c.tasks[:n] {
		c.complete(t, unknown, nil)
	}
	c.tasks = c.tasks[n:]
	if c.failed != nil {
		c.flush(env)
		return
	}
	if m.Meta.Index <= c.applied {
		// Applied already (the node never asks for that): say so, so
		// that the node does not wait for the load.
		env.Send(c.cfg.Node, Applied{Index: c.applied})
		c.flush(env)
		return
	}
	err := func() (err error) {
		src, closeSrc, err := m.Open()
		if err != nil {
			return err
		}
		defer func() {
			if cerr := closeSrc(); err == nil {
				err = cerr
			}
		}()
		var lerr error
		if !c.call(env, "OnSnapshotLoad", func() { lerr = c.cfg.StateMachine.OnSnapshotLoad(src) }) {
			return nil // failed: c.call reported it
		}
		return lerr
	}()
	if c.failed != nil {
		c.flush(env)
		return
	}
	if err != nil {
		c.fail(env, fmt.Errorf("fsm: load the snapshot installed up to %d: %w", m.Meta.Index, err))
		c.flush(env)
		return
	}
	c.applied, c.appliedTerm = m.Meta.Index, m.Meta.Term
	if m.Meta.Configuration != nil {
		c.conf = m.Meta.Configuration
	}
	c.target = max(c.target, c.applied)
	if c.cfg.Published != nil {
		c.cfg.Published.Store(c.applied)
	}
	env.Send(c.cfg.Node, Applied{Index: c.applied})
	if !c.scheduled && c.target > c.applied {
		c.scheduled = true
		env.Send(env.Self(), applyNow{})
	}
	c.maybeStartLeader(env)
	c.flush(env)
}

// pass applies every committed entry not yet applied.
func (c *Caller) pass(env actors.Env) {
	start := c.applied
	// Size the batch of completions for the tasks this pass settles: one
	// allocation instead of a growing slice.
	if n, _ := SearchTasks(c.tasks, c.target+1); n > cap(c.done)-len(c.done) {
		c.done = append(make(closure.Batch, 0, len(c.done)+n), c.done...)
	}
	for c.applied < c.target && c.failed == nil && !c.shutdown {
		ents, err := c.cfg.Log.Entries(c.applied+1, c.target+1, c.cfg.MaxReadBytes)
		if err == nil && len(ents) == 0 {
			err = fmt.Errorf("no entries returned for [%d, %d]", c.applied+1, c.target)
		}
		if err != nil {
			c.fail(env, fmt.Errorf("fsm: read committed entries from %d: %w", c.applied+1, err))
			break
		}
		c.applyEntries(env, ents)
	}
	if c.applied != start {
		if c.cfg.Published != nil {
			c.cfg.Published.Store(c.applied)
		}
		env.Send(c.cfg.Node, Applied{Index: c.applied})
	}
	c.maybeStartLeader(env)
	c.flush(env)
}

func (c *Caller) applyEntries(env actors.Env, ents []*raftpb.Entry) {
	for len(ents) > 0 && c.failed == nil {
		e := ents[0]
		switch e.Type {
		case raftpb.EntryType_ENTRY_TYPE_NORMAL:
			n := 1
			for n < len(ents) && ents[n].Type == raftpb.EntryType_ENTRY_TYPE_NORMAL {
				n++
			}
			c.applyRun(env, ents[:n])
			ents = ents[n:]
			continue
		case raftpb.EntryType_ENTRY_TYPE_CONFIG:
			conf := &raftpb.Configuration{}
			if err := proto.Unmarshal(e.Data, conf); err != nil {
				c.fail(env, fmt.Errorf("fsm: configuration entry %d: %w", e.Index, err))
				return
			}
			c.conf = conf
			user := proto.CloneOf(conf) // the state machine may keep or change its copy
			if !c.call(env, "OnConfigurationCommitted", func() { c.cfg.StateMachine.OnConfigurationCommitted(user) }) {
				return
			}
		}
		c.settle(e, nil, false)
		c.applied, c.appliedTerm = e.Index, e.Term
		ents = ents[1:]
		// A leader's first entry is its NOOP: report the start before
		// the entries after it, not at the end of the pass.
		c.maybeStartLeader(env)
	}
}

// applyRun hands a run of normal entries to OnApply, again and again if it
// returns early, until all are applied or the state machine fails.
func (c *Caller) applyRun(env actors.Env, run []*raftpb.Entry) {
	replayed := false // for the planted ApplyTwice fault
	for len(run) > 0 && c.failed == nil {
		it := &c.it
		it.reset(c, run)
		perr := c.try("OnApply", func() { c.cfg.StateMachine.OnApply(it) })
		consumed := min(it.pos+1, len(run))
		if perr != nil {
			// A panic rolls back the entry it happened on: the entries
			// before it were applied, it and the later ones were not.
			consumed = min(max(it.pos, 0), len(run))
		}
		if it.rollback >= 0 {
			consumed = min(consumed, it.rollback)
		}
		for i := 0; i < consumed; i++ {
			var result any
			if it.results != nil {
				result = it.results[i]
			}
			c.settle(run[i], result, it.claimed != nil && it.claimed[i])
			c.applied, c.appliedTerm = run[i].Index, run[i].Term
		}
		for i := consumed; it.claimed != nil && i < len(run); i++ {
			if it.claimed[i] {
				c.disown(run[i]) // the state machine runs it
			}
		}
		switch {
		case perr != nil:
			c.fail(env, perr) // after settling what was applied
			return
		case it.rollback >= 0:
			// pos is len(run) if the rollback came after the last Next.
			at := run[min(max(it.pos, 0), len(run)-1)].Index
			c.fail(env, fmt.Errorf("fsm: the state machine rolled back at entry %d: %v", at, it.rollbackStatus))
			return
		case consumed == 0:
			c.fail(env, fmt.Errorf("fsm: OnApply returned without applying entry %d", run[0].Index))
			return
		}
		if faults.On(faults.ApplyTwice) && !replayed {
			replayed = true
			consumed-- // offer the last applied entry again
		}
		run = run[consumed:]
		it.reset(nil, nil)
	}
}

// settle completes the tasks at or before e's index: OK (with result) for
// the task whose entry e is, unless the state machine took it over with
// Done; ENEWLEADER for a task whose index holds another entry.
func (c *Caller) settle(e *raftpb.Entry, result any, claimed bool) {
	for len(c.tasks) > 0 && c.tasks[0].Index <= e.Index {
		t := c.tasks[0]
		c.tasks[0] = nil
		c.tasks = c.tasks[1:]
		switch {
		case t.Index == e.Index && t.Term == e.Term:
			if !claimed {
				c.complete(t, closure.StatusOK, result)
			}
		default:
			c.complete(t, closure.Newf(closure.ENEWLEADER, "entry %d of term %d was overwritten: index %d holds an entry of term %d", t.Index, t.Term, e.Index, e.Term), nil)
		}
	}
	if len(c.tasks) == 0 {
		c.tasks = nil
	}
}

// disown forgets the task of entry e, which the state machine took over
// with Iterator.Done.
func (c *Caller) disown(e *raftpb.Entry) {
	c.tasks = slices.DeleteFunc(c.tasks, func(t *Task) bool { return t.Index == e.Index && t.Term == e.Term })
}

func (c *Caller) complete(t *Task, st closure.Status, result any) {
	c.done = append(c.done, closure.Completion{Closure: &t.Guard, Status: st, Result: result})
}

// unknownAtShutdown is the status of a task whose entry is committed but
// not applied when the node shuts down.
func unknownAtShutdown(t *Task) closure.Status {
	return closure.Newf(closure.EUNKNOWN, "the node shut down before entry %d was applied here; it is committed and may be applied", t.Index)
}

func (c *Caller) failTasks(st closure.Status) {
	for _, t := range c.tasks {
		c.complete(t, st, nil)
	}
	c.tasks = nil
}

// flush sends the completions gathered so far to the executor.
func (c *Caller) flush(env actors.Env) {
	if len(c.done) > 0 {
		env.Send(c.cfg.Executor, c.done)
		c.done = nil
	}
}

func (c *Caller) maybeStartLeader(env actors.Env) {
	if l := c.pendingLeader; l != nil && c.applied >= l.Index && c.failed == nil {
		c.pendingLeader = nil
		c.leaderTerm = l.Term
		c.call(env, "OnLeaderStart", func() { c.cfg.StateMachine.OnLeaderStart(l.Term) })
	}
}

// call runs a user callback, turning a panic into a state machine failure.
// It reports whether the callback returned normally.
func (c *Caller) call(env actors.Env, name string, f func()) bool {
	if err := c.try(name, f); err != nil {
		c.fail(env, err)
		return false
	}
	return true
}

// try runs a user callback and returns its panic, if any, as an error.
func (c *Caller) try(name string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fsm: %s panicked: %v", name, r)
			c.cfg.Logger.Error("asyncraft: state machine panicked; the node enters the error state",
				"callback", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	f()
	return nil
}

// fail puts the FSM caller in the error state: nothing more is applied,
// pending tasks fail, the node is told, and OnError runs.
func (c *Caller) fail(env actors.Env, err error) {
	if c.failed != nil {
		return
	}
	c.failed = err
	c.failStatus = closure.Newf(closure.EUNKNOWN, "this node stopped applying before the entry (%v); the entry is committed: the other members apply it, and so may this node once restarted", err)
	c.failTasks(c.failStatus)
	env.Send(c.cfg.Node, Failed{Err: err, Applied: c.applied})
	c.call(env, "OnError", func() { c.cfg.StateMachine.OnError(err) })
}
