package snapshot

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
)

// ErrBusy is the error of a snapshot asked for while another is being
// taken: a node takes one at a time.
var ErrBusy = errors.New("snapshot: a snapshot is being taken")

// ExecutorConfig configures a node's snapshot executor.
type ExecutorConfig struct {
	// Store keeps the node's snapshots.
	Store *Store
	// FSMCaller is asked to capture the state (fsm.Capture); Node gets
	// the outcome (Saved or SaveFailed).
	FSMCaller actors.Ref
	Node      actors.Ref
	Logger    *slog.Logger
	// Copier, if set, is spawned as the executor's child CopyChild
	// (Blocking) when the executor starts: it serves and fetches
	// snapshots for installs, apart from the executor, whose Persist may
	// block for long.
	Copier *Copier
}

// Executor is the actor that takes a node's snapshots, one at a time: on
// Save it asks the FSM caller to capture the state (OnSnapshotSave runs
// there, in order with applies), then persists the capture into the store
// on its own goroutine while the FSM caller goes on applying, and reports
// to the node. It must be spawned Blocking: Persist may take long.
//
// With ExecutorConfig.Copier, it spawns the copy actor as its child
// CopyChild when it starts (so a node's copy actor is
// <group>/<id>/snap/copy): installs then run beside a long Persist
// instead of behind it. The child stops with the executor.
type Executor struct {
	cfg  ExecutorConfig
	busy bool
}

// NewExecutor returns a snapshot executor for cfg.
func NewExecutor(cfg ExecutorConfig) *Executor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Executor{cfg: cfg}
}

// Receive implements actors.Actor.
func (x *Executor) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		if x.cfg.Copier != nil {
			if _, err := env.Spawn(CopyChild, x.cfg.Copier, actors.Blocking()); err != nil {
				x.cfg.Logger.Error("asyncraft: the snapshot copy actor did not start; this node cannot send nor receive snapshots", "err", err)
			}
		}
	case Save:
		if x.busy {
			env.Send(x.cfg.Node, SaveFailed{Err: ErrBusy})
			return
		}
		x.busy = true
		env.Send(x.cfg.FSMCaller, fsm.Capture{Reply: env.Self()})
	case fsm.Captured:
		x.busy = false
		if m.Err != nil {
			env.Send(x.cfg.Node, SaveFailed{Err: m.Err})
			return
		}
		meta, err := x.persist(m)
		if err != nil {
			x.cfg.Logger.Warn("asyncraft: snapshot not taken", "index", m.Meta.Index, "err", err)
			env.Send(x.cfg.Node, SaveFailed{Err: err})
			return
		}
		env.Send(x.cfg.Node, Saved{Meta: meta})
	}
}

// persist writes a captured state into the store; the persister is
// released whatever happens.
func (x *Executor) persist(c fsm.Captured) (_ *raftpb.SnapshotMeta, err error) {
	defer func() {
		if rerr := protect("Release", c.Persister.Release); rerr != nil && err == nil {
			err = rerr
		}
	}()
	w, err := x.cfg.Store.Create(&raftpb.SnapshotMeta{LastIndex: c.Meta.Index, LastTerm: c.Meta.Term,
		Configuration: c.Meta.Configuration})
	if err != nil {
		return nil, err
	}
	if err := protect("Persist", func() error { return c.Persister.Persist(sink{w, c.Meta}) }); err != nil {
		if aerr := w.Abort(); aerr != nil {
			x.cfg.Logger.Warn("asyncraft: could not remove an abandoned snapshot; the next start removes it", "err", aerr)
		}
		return nil, err
	}
	return w.Commit()
}

// protect runs a state machine's callback, turning a panic into an error
// (with its stack in the log message).
func protect[F func() | func() error](name string, f F) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot: the state machine's %s panicked: %v\n%s", name, r, debug.Stack())
		}
	}()
	switch f := any(f).(type) {
	case func():
		f()
	case func() error:
		return f()
	}
	return nil
}

// sink is the fsm.SnapshotSink a persister writes to.
type sink struct {
	w    *Writer
	meta fsm.SnapshotMeta
}

func (s sink) Write(p []byte) (int, error)                 { return s.w.Write(p) }
func (s sink) AddFile(name string) (io.WriteCloser, error) { return s.w.AddFile(name) }
func (s sink) Meta() fsm.SnapshotMeta                      { return s.meta }
