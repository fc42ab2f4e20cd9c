package protoactor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
)

const waitFor = 10 * time.Second

func newSystem(t *testing.T, onPanic actors.PanicHandler) *System {
	t.Helper()
	s, err := New(Options{
		Addr:    "host-a",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnPanic: onPanic,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func spawn(t *testing.T, rt actors.Runtime, name string, f actors.ActorFunc, opts ...actors.SpawnOption) actors.Ref {
	t.Helper()
	ref, err := rt.Spawn(name, f, opts...)
	if err != nil {
		t.Fatalf("spawn %s: %v", name, err)
	}
	return ref
}

// waitGone waits until the top-level actor ref has fully stopped.
func waitGone(t *testing.T, s *System, ref actors.Ref) {
	t.Helper()
	var done chan struct{}
	s.mu.Lock()
	for ad := range s.top {
		if ad.ref == ref {
			done = ad.done
		}
	}
	s.mu.Unlock()
	if done != nil {
		recv(t, done, ref.String()+" to stop")
	}
}

// eventLog records lifecycle events from many actors in one order.
type eventLog struct {
	mu  sync.Mutex
	evs []string
}

func (l *eventLog) add(ev string) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

type ping struct {
	from actors.Ref
	n    int
}
type pong struct{ n int }

func TestPingPong(t *testing.T) {
	s := newSystem(t, nil)
	const rounds = 1000
	done := make(chan int, 1)
	pinger := spawn(t, s, "ponger", func(env actors.Env, msg any) {
		if p, ok := msg.(ping); ok {
			env.Send(p.from, pong{p.n})
		}
	})
	spawn(t, s, "pinger", func(env actors.Env, msg any) {
		switch m := msg.(type) {
		case actors.Started:
			env.Send(pinger, ping{env.Self(), 0})
		case pong:
			if m.n == rounds {
				done <- m.n
				return
			}
			env.Send(pinger, ping{env.Self(), m.n + 1})
		}
	})
	if n := recv(t, done, "ping-pong"); n != rounds {
		t.Fatalf("got %d rounds", n)
	}
}

type fromActor int
type fromRoot int

func TestFIFOPerSender(t *testing.T) {
	s := newSystem(t, nil)
	const n = 10000
	result := make(chan error, 1)
	var nextActor, nextRoot int
	sink := spawn(t, s, "sink", func(env actors.Env, msg any) {
		var err error
		switch m := msg.(type) {
		case fromActor:
			if int(m) != nextActor {
				err = fmt.Errorf("from actor: got %d, want %d", m, nextActor)
			}
			nextActor++
		case fromRoot:
			if int(m) != nextRoot {
				err = fmt.Errorf("from root: got %d, want %d", m, nextRoot)
			}
			nextRoot++
		default:
			return
		}
		if err != nil {
			select {
			case result <- err:
			default:
			}
			env.Stop(env.Self())
			return
		}
		if nextActor == n && nextRoot == n {
			result <- nil
		}
	})
	spawn(t, s, "source", func(env actors.Env, msg any) {
		if _, ok := msg.(actors.Started); ok {
			for i := range n {
				env.Send(sink, fromActor(i))
			}
		}
	})
	for i := range n {
		s.Send(sink, fromRoot(i))
	}
	if err := recv(t, result, "10000 messages from each sender"); err != nil {
		t.Fatal(err)
	}
}

type urgent struct{}

func (urgent) GetPriority() int8 { return actors.HighPriority }

type filler int

type block struct{}

func TestPriorityOvertakesBacklog(t *testing.T) {
	const backlog = 100000
	for _, tc := range []struct {
		name     string
		opts     []actors.SpawnOption
		position func(int) bool
		want     string
	}{
		{"priority", []actors.SpawnOption{actors.PriorityMailbox()},
			func(p int) bool { return p < 300 }, "within the first 300"},
		{"fifo", nil, func(p int) bool { return p == backlog }, "last"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSystem(t, nil)
			blocked := make(chan struct{})
			release := make(chan struct{})
			position := make(chan int, 1)
			seen := 0
			ref := spawn(t, s, "worker", func(env actors.Env, msg any) {
				switch msg.(type) {
				case block:
					close(blocked)
					<-release
				case filler:
					seen++
				case urgent:
					position <- seen
				}
			}, append(tc.opts, actors.Blocking())...)
			s.Send(ref, block{})
			recv(t, blocked, "worker to block")
			for i := range backlog {
				s.Send(ref, filler(i))
			}
			s.Send(ref, urgent{})
			close(release)
			if p := recv(t, position, "urgent message"); !tc.position(p) {
				t.Fatalf("urgent message received after %d of %d fillers, want %s", p, backlog, tc.want)
			}
		})
	}
}

type spawnChild struct{ name string }
type spawned struct {
	ref actors.Ref
	err error
}

func TestChildrenNamingAndLifecycle(t *testing.T) {
	s := newSystem(t, nil)
	var log eventLog
	replies := make(chan spawned, 4)
	got := make(chan any, 4)
	var recorder func(depth int) actors.ActorFunc
	recorder = func(depth int) actors.ActorFunc {
		return func(env actors.Env, msg any) {
			switch m := msg.(type) {
			case actors.Started:
				log.add(env.Self().Name + " started")
				if depth < 2 {
					ref, err := env.Spawn("c", recorder(depth+1))
					replies <- spawned{ref, err}
				}
			case actors.Stopped:
				log.add(env.Self().Name + " stopped")
			case spawnChild:
				ref, err := env.Spawn(m.name, recorder(2))
				replies <- spawned{ref, err}
			default:
				got <- msg
			}
		}
	}
	p := spawn(t, s, "p", recorder(0))
	// p spawns p/c, whose Started spawns p/c/c: the two replies come from
	// different actors, in either order.
	var names []string
	for range 2 {
		r := recv(t, replies, "child spawn")
		if r.err != nil || r.ref.Host != "host-a" {
			t.Fatalf("child spawn = %v, %v", r.ref, r.err)
		}
		names = append(names, r.ref.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"p/c", "p/c/c"}) {
		t.Fatalf("children spawned as %q, want p/c and p/c/c", names)
	}

	// Duplicate names.
	s.Send(p, spawnChild{"c"})
	if r := recv(t, replies, "duplicate child spawn"); !errors.Is(r.err, actors.ErrNameTaken) {
		t.Fatalf("duplicate child spawn: err = %v, want ErrNameTaken", r.err)
	}
	if _, err := s.Spawn("p", recorder(2)); !errors.Is(err, actors.ErrNameTaken) {
		t.Fatalf("duplicate top-level spawn: err = %v, want ErrNameTaken", err)
	}
	if _, err := s.Spawn("p/c", recorder(2)); !errors.Is(err, actors.ErrNameTaken) {
		t.Fatalf("top-level spawn over a child's name: err = %v, want ErrNameTaken", err)
	}

	// The child's Ref reaches it.
	s.Send(p.Child("c").Child("c"), "hello")
	if m := recv(t, got, "message to grandchild"); m != "hello" {
		t.Fatalf("grandchild got %v", m)
	}

	s.Stop(p)
	waitGone(t, s, p)
	evs := log.snapshot()
	want := []string{"p started", "p/c started", "p/c/c started", "p/c/c stopped", "p/c stopped", "p stopped"}
	if !slices.Equal(evs, want) {
		t.Fatalf("events = %q, want %q", evs, want)
	}
	s.Stop(p)                                        // dead: no-op
	s.Stop(actors.Ref{Host: "host-a", Name: "nope"}) // unknown: no-op
}

type panicReport struct {
	ref   actors.Ref
	value any
	stack []byte
}

func TestPanicStopsActor(t *testing.T) {
	panics := make(chan panicReport, 4)
	s := newSystem(t, func(ref actors.Ref, value any, stack []byte) {
		panics <- panicReport{ref, value, stack}
	})
	var log eventLog
	got := make(chan any, 16)
	bad := spawn(t, s, "bad", func(env actors.Env, msg any) {
		switch msg.(type) {
		case actors.Started:
			if _, err := env.Spawn("kid", actors.ActorFunc(func(env actors.Env, msg any) {
				if _, ok := msg.(actors.Stopped); ok {
					log.add("kid stopped")
				}
			})); err != nil {
				panic(err)
			}
		case actors.Stopped:
			log.add("bad stopped")
		case string:
			if msg == "boom" {
				panic("boom")
			}
			got <- msg
		}
	})
	echo := make(chan any, 16)
	good := spawn(t, s, "good", func(env actors.Env, msg any) { echo <- msg })
	recv(t, echo, "good started")

	s.Send(bad, "boom")
	s.Send(bad, "after boom")
	p := recv(t, panics, "OnPanic")
	if p.ref != bad || p.value != "boom" || len(p.stack) == 0 {
		t.Fatalf("OnPanic(%v, %v, %d bytes of stack)", p.ref, p.value, len(p.stack))
	}
	waitGone(t, s, bad)
	if evs := log.snapshot(); !slices.Equal(evs, []string{"kid stopped"}) {
		t.Fatalf("events = %q, want only the child stopped", evs)
	}

	// The name is free again; the old ref reaches the new actor.
	fresh := spawn(t, s, "bad", func(env actors.Env, msg any) {
		if _, ok := msg.(string); ok {
			got <- "fresh: " + msg.(string)
		}
	})
	s.Send(fresh, "hi")
	if m := recv(t, got, "message to the respawned actor"); m != "fresh: hi" {
		t.Fatalf("got %v; the panicked actor processed a message after the panic?", m)
	}

	s.Send(good, "still there?")
	if m := recv(t, echo, "good to answer"); m != "still there?" {
		t.Fatalf("good got %v", m)
	}
	select {
	case p := <-panics:
		t.Fatalf("OnPanic called again: %v", p)
	default:
	}
}

func TestTimers(t *testing.T) {
	s := newSystem(t, nil)
	got := make(chan any, 8)
	spawn(t, s, "timed", func(env actors.Env, msg any) {
		switch msg.(type) {
		case actors.Started:
			env.After(10*time.Millisecond, "fire")
			cancelled := env.After(10*time.Millisecond, "never")
			got <- cancelled.Stop()
			env.After(200*time.Millisecond, "sentinel")
		case string:
			got <- msg
		}
	})
	if stopped := recv(t, got, "timer stop result"); stopped != true {
		t.Fatalf("Timer.Stop() = %v on a pending timer", stopped)
	}
	var seen []any
	for {
		m := recv(t, got, "timer messages")
		if m == "sentinel" {
			break
		}
		seen = append(seen, m)
	}
	if !slices.Equal(seen, []any{"fire"}) {
		t.Fatalf("before the sentinel got %v, want [fire]", seen)
	}
}

func TestRespawnSameName(t *testing.T) {
	s := newSystem(t, nil)
	got := make(chan string, 16)
	stopped := make(chan struct{})
	ref := spawn(t, s, "a", func(env actors.Env, msg any) {
		switch m := msg.(type) {
		case actors.Stopped:
			close(stopped)
		case string:
			got <- "old: " + m
		}
	})
	s.Send(ref, "1") // makes the cached PID cache the old process
	if m := recv(t, got, "old actor"); m != "old: 1" {
		t.Fatal(m)
	}
	oldPID := s.pid(ref)
	s.Stop(ref)
	recv(t, stopped, "old actor to stop")

	if _, err := s.Spawn("a", actors.ActorFunc(func(env actors.Env, msg any) {
		if m, ok := msg.(string); ok {
			got <- "new: " + m
		}
	})); err != nil {
		t.Fatalf("respawn: %v", err)
	}
	s.Send(ref, "2")
	if m := recv(t, got, "new actor"); m != "new: 2" {
		t.Fatal(m)
	}
	// A PID that cached the old, now dead process still reaches the new one.
	s.root.Send(oldPID, "3")
	if m := recv(t, got, "new actor via the old PID"); m != "new: 3" {
		t.Fatal(m)
	}
}

func TestRemoteSendsDropped(t *testing.T) {
	s := newSystem(t, nil)
	got := make(chan any, 8)
	remote := actors.Ref{Host: "host-b", Name: "x"}
	x := spawn(t, s, "x", func(env actors.Env, msg any) {
		switch msg.(type) {
		case actors.Started:
			env.Send(remote, "from env")
		case string:
			got <- msg
		}
	})
	s.Send(remote, "from root")
	s.Send(x, "sentinel")
	if m := recv(t, got, "sentinel"); m != "sentinel" {
		t.Fatalf("x received %v", m)
	}
	if n := s.DroppedRemote(); n != 2 {
		t.Fatalf("DroppedRemote() = %d, want 2", n)
	}
	s.Stop(remote) // no-op
}

func TestShutdown(t *testing.T) {
	s := newSystem(t, nil)
	var log eventLog
	var actor func(children int) actors.ActorFunc
	actor = func(children int) actors.ActorFunc {
		return func(env actors.Env, msg any) {
			switch msg.(type) {
			case actors.Started:
				for i := range children {
					if _, err := env.Spawn(fmt.Sprint(i), actor(0)); err != nil {
						panic(err)
					}
				}
				log.add(env.Self().Name + " started")
			case actors.Stopped:
				log.add(env.Self().Name + " stopped")
			}
		}
	}
	names := []string{"a", "b", "c"}
	var all []string
	for _, n := range names {
		spawn(t, s, n, actor(2))
		all = append(all, n, n+"/0", n+"/1")
	}
	s.Shutdown()
	s.Shutdown()

	evs := log.snapshot()
	for _, n := range all {
		i := slices.Index(evs, n+" stopped")
		if i < 0 {
			t.Errorf("%s: no Stopped (events %q)", n, evs)
		}
	}
	if _, err := s.Spawn("d", actor(0)); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Spawn after Shutdown: err = %v", err)
	}
	s.Send(actors.Ref{Host: "host-a", Name: "a"}, "x")
	s.Stop(actors.Ref{Host: "host-a", Name: "a"})
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func TestProtoactorLogsFiltered(t *testing.T) {
	var buf lockedBuffer
	s, err := New(Options{
		Addr:   "host-a",
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // dead letters, logged by protoactor at INFO
		s.Send(actors.Ref{Host: "host-a", Name: "nobody"}, i)
	}
	s.Shutdown()
	if out := buf.String(); out != "" {
		t.Fatalf("protoactor logged below WARN:\n%s", out)
	}
}
