package protoactor

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/asyncraft/asyncraft/actors"
)

// adapter runs one actors.Actor inside a protoactor actor. It is both the
// protoactor Actor (its Receive is called by the actor's mailbox, one
// message at a time) and the actors.Env handed to the wrapped actor, so no
// Env is allocated per message.
//
// All fields but dead and done are touched only from Receive, which
// protoactor never runs concurrently for one actor (the mailbox's
// scheduling handshake orders successive runs, even on different
// goroutines).
type adapter struct {
	s     *System
	ref   actors.Ref
	actor actors.Actor

	ctx      actor.Context // protoactor's context, the same object for every message
	self     *actor.PID
	rng      *rand.Rand // created on first use
	stopping bool       // *actor.Stopping seen: user messages are dropped
	failed   bool       // Receive panicked: nothing more is delivered

	dead atomic.Bool   // stopped: timers are dropped
	done chan struct{} // closed once stopped (after Stopped was delivered)
}

var _ actors.Env = (*adapter)(nil)

func newAdapter(s *System, ref actors.Ref, a actors.Actor) *adapter {
	return &adapter{s: s, ref: ref, actor: a, done: make(chan struct{})}
}

// Receive is the protoactor entry point. It translates protoactor's
// lifecycle messages and delivers everything else as is.
func (a *adapter) Receive(ctx actor.Context) {
	msg := ctx.Message()
	switch msg.(type) {
	case *actor.Started:
		a.ctx = ctx
		a.self = ctx.Self()
		a.deliver(actors.Started{})
	case *actor.Stopping:
		// protoactor is about to stop the children, then this actor.
		a.stopping = true
	case *actor.Stopped:
		// protoactor has removed the actor from its registry and all
		// children have stopped (and received Stopped).
		a.stopping = true
		a.deliver(actors.Stopped{})
		a.s.stopped(a, a.self)
	case *actor.Restarting, *actor.ReceiveTimeout, *actor.Terminated,
		*actor.PoisonPill, actor.SystemMessage, actor.AutoReceiveMessage:
		// Restarts never happen (panics are recovered here), receive
		// timeouts are not used, Terminated reports a stopped child or
		// watchee: none has a counterpart in the seam.
	default:
		if a.stopping {
			return
		}
		a.deliver(msg)
	}
}

// deliver calls the wrapped actor, recovering a panic: the panic is
// reported to OnPanic and the actor is stopped (its children receive
// Stopped; it receives nothing more). protoactor never sees the panic, so
// its supervision, which would restart the actor with lost state, never
// applies.
func (a *adapter) deliver(msg any) {
	if a.failed {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			a.failed = true
			a.s.onPanic(a.ref, v, debug.Stack())
			if !a.stopping {
				a.stopping = true
				a.ctx.Stop(a.self)
			}
		}
	}()
	a.actor.Receive(a, msg)
}

// Self is the actor's own ref.
func (a *adapter) Self() actors.Ref { return a.ref }

// Send delivers msg with ctx.Send — never Request, whose envelope would
// hide the message's priority. Sends to other hosts are dropped and
// counted.
func (a *adapter) Send(to actors.Ref, msg any) {
	if a.s.closed.Load() {
		return
	}
	if to.Host != a.s.addr {
		a.s.sendRemote(a.ctx, to, msg)
		return
	}
	a.ctx.Send(a.s.pid(to), msg)
}

// Spawn starts a child with protoactor's ctx.SpawnNamed, which names it
// Self().Name + "/" + name. It fails once this actor is stopping (the child
// would outlive it). It works during Shutdown: a live parent stops the
// child when it is stopped itself.
func (a *adapter) Spawn(name string, child actors.Actor, opts ...actors.SpawnOption) (actors.Ref, error) {
	if name == "" {
		return actors.Ref{}, errors.New("protoactor: empty actor name")
	}
	if a.stopping {
		return actors.Ref{}, errors.New("protoactor: spawn from a stopping actor")
	}
	ref := a.ref.Child(name)
	ad := newAdapter(a.s, ref, child)
	pid, err := a.ctx.SpawnNamed(a.s.props(ad, actors.ApplySpawnOptions(opts)), name)
	if err != nil {
		return actors.Ref{}, spawnErr(ref.Name, err)
	}
	if pid.Id != ref.Name { // protoactor's naming changed under us
		a.ctx.Stop(pid)
		return actors.Ref{}, errors.New("protoactor: protoactor named child " + pid.Id + ", want " + ref.Name)
	}
	a.s.cache(ad, pid)
	return ref, nil
}

// Stop stops the actor at ref (after the current message, if it is Self)
// and its children. Unknown, dead or remote refs are ignored.
func (a *adapter) Stop(ref actors.Ref) {
	if ref == a.ref {
		if !a.stopping {
			a.ctx.Stop(a.self)
		}
		return
	}
	if pid, ok := a.s.livePID(ref); ok {
		a.ctx.Stop(pid)
	}
}

// Now is time.Now.
func (a *adapter) Now() time.Time { return time.Now() }

// Rand is a PCG source seeded from crypto/rand on first use.
func (a *adapter) Rand() *rand.Rand {
	if a.rng == nil {
		var seed [16]byte
		_, _ = crand.Read(seed[:]) // never fails (Go ≥ 1.24)
		a.rng = rand.New(rand.NewPCG(
			binary.LittleEndian.Uint64(seed[:8]),
			binary.LittleEndian.Uint64(seed[8:])))
	}
	return a.rng
}

// After arms a time.AfterFunc that sends msg to this actor through the root
// context. A timer that fires after its actor stopped is dropped (it does
// not reach a new actor spawned under the same name, barring a race with
// the stop itself).
func (a *adapter) After(d time.Duration, msg any) actors.Timer {
	return timer{time.AfterFunc(d, func() {
		if a.dead.Load() || a.s.closed.Load() {
			return
		}
		a.s.root.Send(a.self, msg)
	})}
}

type timer struct{ t *time.Timer }

// Stop cancels the delivery; it reports whether the timer was pending.
func (t timer) Stop() bool { return t.t.Stop() }
