// Package protoactor is the production runtime for the actors seam: it runs
// every [actors.Actor] inside a protoactor-go actor. It lives in
// actors/proto, the one directory allowed to import protoactor-go; its name
// is protoactor so that it does not clash with protobuf's proto package in
// the files that use both (import it as
// protoactor "github.com/asyncraft/asyncraft/actors/proto").
//
// # Mapping onto protoactor
//
//   - One [System] owns one protoactor ActorSystem. A local [actors.Ref]
//     {Host: Options.Addr, Name: n} is the protoactor PID
//     {Address: system.Address(), Id: n}. protoactor's own address stays the
//     default "nonhost": there is no protoactor remoting; refs whose Host is
//     not Options.Addr are dropped and counted (see [System.DroppedRemote])
//     until asyncraft's own transport exists.
//   - Top-level actors are spawned with RootContext.SpawnNamed(props, name),
//     so the PID Id is exactly name. Children are spawned with the parent's
//     Context.SpawnNamed(props, name), which protoactor names
//     parent.Id + "/" + name — exactly the seam's child naming, so Ref.Name
//     is always the PID Id. protoactor's ErrNameExists is reported as
//     [actors.ErrNameTaken]. Names protoactor uses itself ("deadletter",
//     "eventstream", "future$…", "guardian$…") are taken.
//   - Each actor is wrapped in an adapter (see adapter.go) that is the
//     actor's protoactor Actor and its [actors.Env] at once. It translates
//     *actor.Started and *actor.Stopped into [actors.Started] and
//     [actors.Stopped], swallows protoactor's other lifecycle and system
//     messages, and passes user messages through untouched.
//   - Sends are ctx.Send / RootContext.Send of the bare message, never
//     Request: Request wraps the message in a *MessageEnvelope, which hides
//     GetPriority from the priority mailbox. PIDs of live actors are cached
//     by Ref (see [System] internals), so a send costs a sync.Map load, no
//     registry lookup and no allocation.
//   - [actors.PriorityMailbox] is actor.WithMailbox(actor.UnboundedPriority()):
//     eight FIFO queues, one per priority 0–7, popped highest first;
//     messages without GetPriority have priority 4.
//   - [actors.Blocking] needs nothing special: protoactor's default
//     dispatcher runs each scheduled mailbox on its own goroutine (go fn()),
//     so an actor that blocks in Receive holds only that goroutine, and other
//     actors keep running. The option is accepted and otherwise ignored.
//   - Supervision: the adapter recovers every panic from Receive itself, so
//     protoactor's supervision (whose default restarts the actor with a fresh
//     instance, silently losing state) never sees one. As a second line of
//     defence every actor is spawned with a supervisor strategy, and
//     top-level actors with a guardian, whose decider stops the child.
//
// # Behaviour the rest of the project can rely on
//
//   - Started is the first message (protoactor posts it as a system message
//     before the mailbox starts, and system messages are always drained
//     before user messages).
//   - Messages from one sender to one local actor arrive in the order sent.
//     In a priority mailbox this holds within one priority level only.
//   - Stop is a system message, so it overtakes the stopped actor's queued
//     user messages; the adapter drops user messages that reach an actor
//     after it started stopping. Children stop (and receive Stopped) before
//     their parent receives Stopped.
//   - An actor whose Receive panicked receives nothing more, not even
//     Stopped; its children are stopped in an orderly way.
//   - Messages to a name nobody holds go to protoactor's dead-letter process
//     (published on its event stream and logged at INFO, which is filtered
//     out): they are silently lost.
//   - Shutting protoactor's ActorSystem down only closes a channel; it does
//     not stop actors. [System.Shutdown] stops them itself first.
package protoactor

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/asyncraft/asyncraft/actors"
)

// ErrShutdown is returned by Spawn after Shutdown has begun.
var ErrShutdown = errors.New("protoactor: runtime shut down")

// shutdownTimeout bounds how long Shutdown waits for actors to stop.
const shutdownTimeout = 5 * time.Second

// Options configures a System.
type Options struct {
	// Addr is this host's address; refs to local actors carry it as
	// Ref.Host. Required. A "host:port" address makes the host listen there
	// and talk to other hosts (port 0 picks a free port: Host() then
	// reports the bound address); any other name makes a local-only host.
	Addr string
	// TLS, if set, makes connections between hosts mutual TLS.
	TLS *TLS
	// MaxMessageBytes caps one message between hosts (default
	// DefaultMaxMessageBytes). It also sizes what the host accepts: a gRPC
	// message of at most MaxMessageBytes + 64 KiB, whose decoding may
	// allocate at most 16 × MaxMessageBytes (and so may all those being
	// decoded at once).
	MaxMessageBytes int
	// MaxConnections caps the connections the host accepts (default
	// DefaultMaxConnections). Each peer host holds one, two for a while
	// after a reconnect; connections over the cap are refused before their
	// TLS handshake.
	MaxConnections int
	// RemoteTypes lists the message types the host accepts from other
	// hosts; a batch with any other is refused. Empty accepts every
	// registered protobuf type except protoactor's own (whose Stop,
	// PoisonPill and Watch would let a peer stop or watch any actor).
	RemoteTypes []protoreflect.FullName
	// Logger receives the runtime's own logs and protoactor's (the latter
	// filtered to WARN and above). nil means slog.Default().
	Logger *slog.Logger
	// OnPanic is called when an actor's Receive panics, on the panicking
	// actor's goroutine. nil means log at ERROR.
	OnPanic actors.PanicHandler
}

// System is a protoactor-backed [actors.Runtime] for one host.
type System struct {
	addr    string
	log     *slog.Logger
	onPanic actors.PanicHandler

	sys        *actor.ActorSystem
	root       *actor.RootContext
	supervisor actor.SupervisorStrategy // stops failing children; never restarts

	// pids caches the PID of every live local actor, keyed by its Ref.
	// An actor's PID is stored when it is spawned and removed (compare-
	// and-delete, so a newer incarnation's entry survives) when it stops.
	// protoactor PIDs cache a pointer to their process; PID.ref drops the
	// cached pointer once the process is marked dead and looks the name up
	// in the registry again, so even a PID loaded just before its actor
	// stopped reaches a new actor spawned under the same name.
	pids sync.Map // actors.Ref -> *actor.PID

	droppedRemote atomic.Uint64
	deadLetters   atomic.Uint64
	malformed     atomic.Uint64
	oversized     atomic.Uint64
	refused       atomic.Uint64
	panics        atomic.Uint64
	closed        atomic.Bool // Shutdown finished: sends are no-ops

	remote     *remote.Remote // nil for a local-only host
	boundary   *boundary      // nil for a local-only host
	dial       *dialGate      // nil for a local-only host
	maxMessage int
	// listening is Host() once the remote listens; messages that arrive
	// before it is set are dropped.
	listening atomic.Pointer[string]

	mu       sync.Mutex
	stopping bool                    // Shutdown began: spawns fail; guarded by mu
	top      map[*adapter]*actor.PID // live top-level actors; guarded by mu
	once     sync.Once
}

var _ actors.Runtime = (*System)(nil)

// New starts a runtime with its own protoactor ActorSystem.
func New(opts Options) (*System, error) {
	if opts.Addr == "" {
		return nil, errors.New("protoactor: Options.Addr is required")
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	s := &System{
		addr:    opts.Addr,
		log:     lg,
		onPanic: opts.OnPanic,
		top:     make(map[*adapter]*actor.PID),
	}
	if s.onPanic == nil {
		s.onPanic = func(ref actors.Ref, value any, stack []byte) {
			s.log.Error("actor panicked; stopping it",
				slog.String("actor", ref.String()),
				slog.Any("panic", value),
				slog.String("stack", string(stack)))
		}
	}
	protoLog := slog.New(minLevelHandler{min: slog.LevelWarn, h: lg.Handler(), malformed: func() { s.malformed.Add(1) }}).
		With(slog.String("lib", "protoactor"))
	s.sys = actor.NewActorSystem(
		actor.WithLoggerFactory(func(sys *actor.ActorSystem) *slog.Logger {
			return protoLog.With(slog.String("system", sys.ID))
		}),
		// Dead letters are logged at INFO (throttled), which the
		// filter drops; requests' dead letters need not be logged at all.
		actor.WithDeadLetterRequestLogging(false),
	)
	s.root = s.sys.Root
	s.supervisor = actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
		// Only reached if a panic escaped the adapter's own recovery.
		s.log.Error("protoactor reported an actor failure; stopping the actor",
			slog.Any("reason", reason))
		return actor.StopDirective
	})
	s.maxMessage = opts.MaxMessageBytes
	if s.maxMessage <= 0 {
		s.maxMessage = DefaultMaxMessageBytes
	}
	if host, port, ok := networked(opts.Addr); ok {
		addr, err := s.startRemote(host, port, opts)
		if err != nil {
			s.sys.Shutdown()
			return nil, err
		}
		s.addr = addr
		s.listening.Store(&addr)
	}
	return s, nil
}

// Counters of this host's network boundary. Messages lost: sent to another
// host without a network (or not protobuf), larger than MaxMessageBytes,
// arrived malformed (refused by the boundary's inspection, or undecodable:
// each ends its stream and loses the rest of its batch), or addressed to an
// actor that does not exist here. Refused: calls of methods the transport
// does not serve, and connections over MaxConnections. Panics: panics
// recovered at the boundary (each a bug in protoactor or here).
func (s *System) DroppedRemote() uint64 { return s.droppedRemote.Load() }
func (s *System) Oversized() uint64     { return s.oversized.Load() }
func (s *System) Malformed() uint64     { return s.malformed.Load() }
func (s *System) DeadLetters() uint64   { return s.deadLetters.Load() }
func (s *System) Refused() uint64       { return s.refused.Load() }
func (s *System) Panics() uint64        { return s.panics.Load() }

// Host is this host's address (Options.Addr).
func (s *System) Host() string { return s.addr }

// Now is time.Now.
func (s *System) Now() time.Time { return time.Now() }

// Spawn starts a top-level actor whose PID Id and Ref.Name are exactly
// name. It fails with an error wrapping [actors.ErrNameTaken] if the name is
// held, and with [ErrShutdown] once Shutdown has begun.
func (s *System) Spawn(name string, a actors.Actor, opts ...actors.SpawnOption) (actors.Ref, error) {
	if name == "" {
		return actors.Ref{}, errors.New("protoactor: empty actor name")
	}
	ref := actors.Ref{Host: s.addr, Name: name}
	ad := newAdapter(s, ref, a)
	props := s.props(ad, actors.ApplySpawnOptions(opts), actor.WithGuardian(s.supervisor))

	// Hold mu across the spawn so that Shutdown, which snapshots the
	// top-level actors under mu, either sees this actor with its PID or
	// makes this spawn fail. SpawnNamed does not run the actor (protoactor
	// schedules its mailbox on a new goroutine), so this cannot deadlock
	// with the actor's own clean-up, which also takes mu.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return actors.Ref{}, ErrShutdown
	}
	pid, err := s.root.SpawnNamed(props, name)
	if err != nil {
		return actors.Ref{}, spawnErr(name, err)
	}
	s.top[ad] = pid
	s.cache(ad, pid)
	return ref, nil
}

// Send delivers msg to the actor at to through protoactor's root context.
// Sends to another host are dropped and counted; after Shutdown, Send does
// nothing.
func (s *System) Send(to actors.Ref, msg any) {
	if s.closed.Load() {
		return
	}
	if to.Host != s.addr {
		s.sendRemote(s.root, to, msg)
		return
	}
	s.root.Send(s.pid(to), msg)
}

// Stop stops the actor at ref and its children. Unknown, dead or remote
// refs are ignored.
func (s *System) Stop(ref actors.Ref) {
	if pid, ok := s.livePID(ref); ok {
		s.root.Stop(pid)
	}
}

// Shutdown stops every top-level actor (children stop first, and every
// actor receives Stopped), waits up to 5 s for them to finish, then shuts
// the protoactor ActorSystem down. [System.Spawn] fails from the moment
// Shutdown begins (Env.Spawn still works for live actors, whose children
// are stopped with them); sends are no-ops once it returns. Actors may
// still send to each other while stopping. Shutdown is idempotent and safe to call
// concurrently; later calls return at once.
func (s *System) Shutdown() {
	s.once.Do(func() {
		s.mu.Lock()
		s.stopping = true
		live := make(map[*adapter]*actor.PID, len(s.top))
		for ad, pid := range s.top {
			live[ad] = pid
		}
		s.mu.Unlock()

		for _, pid := range live {
			s.root.Stop(pid)
		}
		deadline := time.NewTimer(shutdownTimeout)
		defer deadline.Stop()
	wait:
		for ad := range live {
			select {
			case <-ad.done:
			case <-deadline.C:
				s.log.Warn("actors did not stop in time; shutting down anyway",
					slog.Duration("timeout", shutdownTimeout))
				break wait
			}
		}
		s.closed.Store(true)
		if s.remote != nil {
			if s.boundary != nil {
				s.boundary.close() // see boundary.gate
			}
			s.dial.close()     // no endpoint waits for a peer any more
			s.shutdownRemote() // after the actors: their last words go out
		}
		s.sys.Shutdown()
	})
}

// shutdownRemote stops the remote gracefully. protoactor's endpoint
// manager may panic while it stops ("send on closed channel": a reader
// connection that ended — closed by the boundary on bad input — is still
// in its map); the stop then goes on without the graceful part, and the
// panic is logged instead of ending the process.
func (s *System) shutdownRemote() {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("protoactor panicked while stopping its remote endpoints; stopping its server at once", slog.Any("panic", v))
			s.remote.Shutdown(false)
		}
	}()
	s.remote.Shutdown(true)
}

// props builds the protoactor Props for ad.
func (s *System) props(ad *adapter, cfg actors.SpawnConfig, extra ...actor.PropsOption) *actor.Props {
	opts := append([]actor.PropsOption{actor.WithSupervisor(s.supervisor)}, extra...)
	if cfg.PriorityMailbox {
		opts = append(opts, actor.WithMailbox(actor.UnboundedPriority()))
	}
	// cfg.Blocking: nothing to do, see the package comment.
	return actor.PropsFromProducer(func() actor.Actor { return ad }, opts...)
}

// cache records pid as the PID of the live actor ad. If ad stopped before
// the store, its own clean-up may already have run, so undo the store.
func (s *System) cache(ad *adapter, pid *actor.PID) {
	s.pids.Store(ad.ref, pid)
	if ad.dead.Load() {
		s.pids.CompareAndDelete(ad.ref, pid)
	}
}

// pid returns the PID for a local ref: the cached one of a live actor, or a
// fresh one (which protoactor resolves to dead letters, or to an actor
// spawned meanwhile).
func (s *System) pid(ref actors.Ref) *actor.PID {
	if v, ok := s.pids.Load(ref); ok {
		return v.(*actor.PID)
	}
	return actor.NewPID(s.sys.Address(), ref.Name)
}

// livePID returns the PID of a local ref if protoactor's registry holds a
// process of that name, so that stopping an unknown actor does not produce
// a dead letter.
func (s *System) livePID(ref actors.Ref) (*actor.PID, bool) {
	if ref.Host != s.addr {
		return nil, false
	}
	pid := s.pid(ref)
	if _, ok := s.sys.ProcessRegistry.Get(pid); !ok {
		return nil, false
	}
	return pid, true
}

// stopped is called by ad (on its goroutine) once it has stopped.
func (s *System) stopped(ad *adapter, self *actor.PID) {
	ad.dead.Store(true)
	if self != nil {
		s.pids.CompareAndDelete(ad.ref, self)
	}
	s.mu.Lock()
	delete(s.top, ad)
	s.mu.Unlock()
	close(ad.done)
}

func spawnErr(name string, err error) error {
	if errors.Is(err, actor.ErrNameExists) {
		return fmt.Errorf("protoactor: spawn %q: %w", name, actors.ErrNameTaken)
	}
	return fmt.Errorf("protoactor: spawn %q: %w", name, err)
}
