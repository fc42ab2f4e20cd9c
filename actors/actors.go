// Package actors is the seam between asyncraft's components and the runtime
// that executes them.
//
// Every component of asyncraft — node, replicator, log manager, disk writer,
// FSM caller, ticker, callback executor — is an [Actor]: a value whose
// Receive method is called with one message at a time and which owns its
// state outright. An actor acts on the world only through its [Env]: it sends
// messages, spawns and stops children, reads its host's clock, draws random
// numbers and arms timers. Code outside any actor (the public Node handle,
// tests) uses a [Runtime] instead.
//
// Two runtimes implement the seam:
//
//   - actors/proto runs actors on protoactor-go (package protoactor), for production;
//   - actors/sim runs them single-threaded in virtual time with a seeded
//     random source, a simulated network, crashable disks and drifting
//     clocks, for tests. The same seed gives the same run.
//
// Because protocol code only sees this package, the same code runs in both.
// The rules that make that true: no goroutines, no time.Now, no time.Sleep
// and no global random source in actor code; no blocking in Receive except in
// actors spawned with [Blocking]; no ranging over maps where the order can
// reach a message or a decision.
//
// This package imports nothing of asyncraft.
package actors

import (
	"errors"
	"math/rand/v2"
	"time"
)

// ErrNameTaken is returned by Spawn when an actor of that name already runs
// on the host.
var ErrNameTaken = errors.New("actors: name taken")

// Ref addresses an actor: the host it lives on and its name there.
//
// A Ref is resolved when a message is delivered, not when it is built: a
// message sent to a name reaches whatever actor holds that name at delivery
// (after a restart, the new incarnation), or is dropped if none does. Refs
// are comparable values and may be used as map keys.
type Ref struct {
	// Host is the address of the host, as given to its runtime.
	Host string
	// Name is the actor's name on that host. Children are named
	// "<parent name>/<child name>".
	Name string
}

// String renders the ref as "host:name".
func (r Ref) String() string { return r.Host + ":" + r.Name }

// IsZero reports whether r is the zero Ref, which addresses no actor.
func (r Ref) IsZero() bool { return r.Host == "" && r.Name == "" }

// Child returns the ref of the child called name of the actor r.
func (r Ref) Child(name string) Ref { return Ref{Host: r.Host, Name: r.Name + "/" + name} }

// Actor is the unit of execution. A runtime calls Receive with one message
// at a time; calls never overlap for one actor. The first message an actor
// receives is [Started]; the last, when it is stopped in an orderly way, is
// [Stopped]. A crash (in the simulator) delivers neither.
type Actor interface {
	Receive(env Env, msg any)
}

// ActorFunc adapts a function to the Actor interface.
type ActorFunc func(env Env, msg any)

// Receive calls f.
func (f ActorFunc) Receive(env Env, msg any) { f(env, msg) }

// Started is the first message every actor receives, before any other.
type Started struct{}

// Stopped is the last message an actor receives when it is stopped in an
// orderly way (by Stop, or because its parent stopped). Its children have
// already stopped. It may still send messages.
type Stopped struct{}

// Env is what an actor may do from inside Receive. An Env is valid only
// while its actor runs; it must not be retained past Receive or shared with
// other goroutines.
type Env interface {
	// Self is the actor's own ref.
	Self() Ref
	// Send delivers msg to the actor at to, asynchronously and at most
	// once. Ownership of msg passes to the receiver: the sender must not
	// mutate it (or anything it points to) afterwards. Messages from one
	// actor to another actor on the same host arrive in the order sent;
	// across hosts, the network may drop, duplicate or reorder them.
	Send(to Ref, msg any)
	// Spawn starts a child of this actor under Self().Name + "/" + name. It
	// fails if that name is taken.
	Spawn(name string, a Actor, opts ...SpawnOption) (Ref, error)
	// Stop stops the actor at ref (normally a child, or Self) and its
	// children, after the message it is processing.
	Stop(ref Ref)
	// Now is the host's clock. It is monotonic for the life of the actor
	// but hosts' clocks may drift apart; protocol code compares Now values
	// of one host only.
	Now() time.Time
	// Rand is the actor's own random source, seeded by the runtime.
	Rand() *rand.Rand
	// After delivers msg to this actor once d has elapsed on the host's
	// clock, unless the returned timer is stopped first.
	After(d time.Duration, msg any) Timer
}

// Timer is a pending delivery armed by Env.After.
type Timer interface {
	// Stop cancels the delivery. It reports whether the timer was still
	// pending.
	Stop() bool
}

// Runtime is what code outside any actor may do on one host: spawn
// top-level actors, send to actors and stop them.
type Runtime interface {
	// Host is the address of this host; refs to its actors carry it.
	Host() string
	// Spawn starts a top-level actor called name. It fails if the name is
	// taken.
	Spawn(name string, a Actor, opts ...SpawnOption) (Ref, error)
	// Send delivers msg to the actor at to, as Env.Send does.
	Send(to Ref, msg any)
	// Stop stops the actor at ref and its children.
	Stop(ref Ref)
	// Now is the host's clock.
	Now() time.Time
}

// Prioritized is implemented by messages that should overtake others in an
// actor spawned with [PriorityMailbox]: higher values first, 0 to 7, default
// 4. (The method name matches protoactor-go's, so the production runtime
// needs no wrapper.)
type Prioritized interface {
	GetPriority() int8
}

// HighPriority is the priority of clock ticks and of other messages that
// must not wait behind a backlog.
const HighPriority int8 = 7

// SpawnOption configures a spawned actor.
type SpawnOption func(*SpawnConfig)

// SpawnConfig is the result of applying SpawnOptions. Runtimes read it;
// actors do not.
type SpawnConfig struct {
	// PriorityMailbox lets Prioritized messages overtake a backlog.
	PriorityMailbox bool
	// Blocking declares that Receive may block (disk I/O, user callbacks).
	Blocking bool
}

// PriorityMailbox gives the actor a mailbox in which Prioritized messages
// overtake ordinary ones.
func PriorityMailbox() SpawnOption { return func(c *SpawnConfig) { c.PriorityMailbox = true } }

// Blocking declares that the actor's Receive may block. Only dedicated
// workers (the disk writer, the callback executor, the FSM caller) are
// spawned so; no other actor may wait on one.
func Blocking() SpawnOption { return func(c *SpawnConfig) { c.Blocking = true } }

// ApplySpawnOptions folds opts into a SpawnConfig.
func ApplySpawnOptions(opts []SpawnOption) SpawnConfig {
	var c SpawnConfig
	for _, o := range opts {
		o(&c)
	}
	return c
}

// PanicHandler is called by a runtime when an actor's Receive panics. The
// runtime then stops the actor and its children; the handler decides what
// that means for the rest of the host (asyncraft turns it into a node
// error). It runs on the panicking actor's goroutine after recovery and must
// not block.
type PanicHandler func(ref Ref, value any, stack []byte)
