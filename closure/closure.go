package closure

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
)

// Closure receives the outcome of an asynchronous operation. asyncraft calls
// Run exactly once for every closure it accepts, shutdown included, and
// never on one of its own actors' goroutines: closures run on the host's
// callback executor, one at a time, in completion order. A closure may
// block, but while it does no other callback of the host runs.
type Closure interface {
	Run(st Status)
}

// Func adapts a function to the Closure interface.
type Func func(st Status)

// Run calls f.
func (f Func) Run(st Status) { f(st) }

// ResultClosure is a Closure that also receives the value the state machine
// attached to the task's entry with Iterator.SetResult (nil if none, and
// always nil when st is not OK). asyncraft calls RunResult instead of Run
// on closures that implement it.
type ResultClosure interface {
	Closure
	RunResult(st Status, result any)
}

// ResultFunc adapts a function to the ResultClosure interface.
type ResultFunc func(st Status, result any)

// Run calls f with a nil result.
func (f ResultFunc) Run(st Status) { f(st, nil) }

// RunResult calls f.
func (f ResultFunc) RunResult(st Status, result any) { f(st, result) }

// ReadIndexClosure receives the outcome of a ReadIndex request: on OK, the
// local state machine reflects every write acknowledged before the request
// once it has applied index, and reads from it are linearizable.
type ReadIndexClosure func(st Status, index uint64, reqCtx []byte)

var doubleRuns atomic.Uint64

// DoubleRuns counts calls to Guard.Run after the first, process-wide. Tests
// assert it stays zero.
func DoubleRuns() uint64 { return doubleRuns.Load() }

// Guard runs a closure at most once. The framework wraps every user closure
// it accepts in a Guard; it is also what Iterator.Done hands to a state
// machine. A second Run is ignored and counted (see DoubleRuns).
//
// The zero Guard (or one whose closure is nil) runs nothing but still
// records that it ran.
type Guard struct {
	c    Closure
	done atomic.Bool
}

// NewGuard wraps c.
func NewGuard(c Closure) *Guard { return &Guard{c: c} }

// Init sets the wrapped closure of a Guard embedded in a larger record. It
// must be called before the Guard is shared.
func (g *Guard) Init(c Closure) { g.c = c }

// Run runs the closure with st and a nil result, unless it already ran.
func (g *Guard) Run(st Status) { g.RunResult(st, nil) }

// RunResult runs the closure with st and result, unless it already ran. It
// reports whether this call ran it.
func (g *Guard) RunResult(st Status, result any) bool {
	if !g.done.CompareAndSwap(false, true) {
		doubleRuns.Add(1)
		return false
	}
	switch c := g.c.(type) {
	case nil:
	case ResultClosure:
		if !st.OK() {
			result = nil
		}
		c.RunResult(st, result)
	default:
		c.Run(st)
	}
	return true
}

// Ran reports whether the closure has run.
func (g *Guard) Ran() bool { return g.done.Load() }

// Completion is one closure to run with its outcome.
type Completion struct {
	Closure Closure
	Status  Status
	Result  any
}

// Batch is the message the callback executor accepts: completions to run in
// order.
type Batch []Completion

// Executor runs user callbacks. A host has one; it is wrapped in a blocking
// actor, so callbacks never run on the goroutines of the node, replicator,
// log manager or FSM caller actors. A panic in a callback is recovered and
// logged; the executor goes on with the next.
type Executor struct {
	Logger *slog.Logger
	panics atomic.Uint64
}

// Panics is the number of callbacks that panicked.
func (e *Executor) Panics() uint64 { return e.panics.Load() }

// Execute runs every completion of b in order.
func (e *Executor) Execute(b Batch) {
	for i := range b {
		e.run(&b[i])
	}
}

func (e *Executor) run(c *Completion) {
	defer func() {
		if r := recover(); r != nil {
			e.panics.Add(1)
			if e.Logger != nil {
				e.Logger.Error("asyncraft: a user callback panicked",
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}
	}()
	switch c2 := c.Closure.(type) {
	case nil:
	case *Guard:
		c2.RunResult(c.Status, c.Result)
	case ResultClosure:
		c2.RunResult(c.Status, c.Result)
	default:
		c2.Run(c.Status)
	}
}

// TraceString summarises the batch for event traces.
func (b Batch) TraceString() string {
	if len(b) == 1 {
		return "1 completion: " + b[0].Status.String()
	}
	return fmt.Sprintf("%d completions, first %s", len(b), b[0].Status)
}
