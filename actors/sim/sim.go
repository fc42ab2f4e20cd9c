// Package sim is the deterministic runtime of the actors seam: every actor of
// every simulated host runs on one goroutine, in virtual time, with all
// randomness drawn from streams derived from one seed. The same seed and the
// same inputs give the same run, event for event; [Sim.TraceHash] digests
// the run so tests can check it.
//
// The simulator models what the framework must survive:
//
//   - a network between hosts with a latency distribution, drops,
//     duplicates, reordering, delay spikes and partitions of any set of
//     links, one-way ones included ([NetConfig], [Sim.Block]);
//   - per-host clocks with an offset and a drift ([Host.SetClock]);
//   - per-host disks ([vfs.MemFS]) whose writes and fsyncs cost virtual
//     time, charged to the actor doing the I/O;
//   - host crashes ([Host.Crash]): every actor of the host vanishes without
//     a Stopped message, queued messages and timers die with them, and the
//     disk keeps only what was synced; [Host.Restart] brings the host back
//     empty so the caller can start its actors again from the disk;
//   - host pauses ([Host.Pause]): the host's actors run nothing for a while
//     and then catch up, like a process stopped by SIGSTOP or a long GC.
//
// Usage:
//
//	s := sim.New(sim.Config{Seed: 42})
//	h := s.AddHost("h1", sim.HostConfig{})
//	ref, _ := h.Spawn("pinger", myActor)
//	h.Send(ref, start{})
//	s.RunFor(10 * time.Second)
//	fmt.Println(s.TraceHash())
//
// Receive is instantaneous in virtual time unless the actor does disk I/O:
// then its messages leave, and its next message starts, after the I/O's
// latency. Messages between actors of one host arrive in order at the same
// virtual instant; messages between hosts cross the simulated network.
// Every message that crosses hosts must be a protobuf message: the
// simulator marshals it at send time and delivers a fresh copy, as a real
// network would, so a sender that mutates a message after sending it cannot
// affect the receiver.
package sim

import (
	"container/heap"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
)

// Epoch is the wall-clock reading of every host clock (before offsets) at
// virtual time zero.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a simulation.
type Config struct {
	// Seed drives every random choice of the run.
	Seed uint64
	// Net is the network's behaviour; see NetConfig. The zero value is a
	// fault-free network with the default latency.
	Net NetConfig
	// Trace, if set, receives one readable line per event.
	Trace io.Writer
	// OnPanic is called when an actor panics; the actor and its children
	// are then stopped. If nil, the panic propagates out of Step (a bug in
	// a test run should fail the test loudly).
	OnPanic actors.PanicHandler
	// OnSend, if set, sees every message sent from one host to another at
	// the moment it is sent (before the network decides its fate). Checks
	// use it to verify what a node may say and when.
	OnSend func(from, to actors.Ref, msg any)
	// Tamper, if set, may replace a message between hosts before it goes
	// on the wire (a new message: the sender's must not change), to model
	// corruption in transit. It runs before OnSend, which sees what is
	// sent.
	Tamper func(from, to actors.Ref, msg proto.Message) proto.Message
}

// Sim is one simulated world. It is not safe for concurrent use: all calls,
// including the runtimes of its hosts, must come from one goroutine.
type Sim struct {
	cfg     Config
	now     time.Duration
	seq     uint64
	queue   eventQueue
	hosts   map[string]*Host
	order   []*Host // hosts in creation order, for deterministic iteration
	netRand *rand.Rand
	blocked map[link]bool
	running *cell // the actor inside Receive, if any

	lastArrival arrivals
	// linkFree records, per link, when it has sent what it was given
	// (NetConfig.Bandwidth).
	linkFree arrivals

	hash   hash.Hash64
	events uint64
	drops  uint64
	buf    []byte
}

// New creates an empty simulation.
func New(cfg Config) *Sim {
	cfg.Net = cfg.Net.withDefaults()
	return &Sim{
		cfg:     cfg,
		hosts:   map[string]*Host{},
		netRand: rand.New(rand.NewPCG(cfg.Seed, 0x6e6574)),
		blocked: map[link]bool{},
		hash:    fnv.New64a(),

		lastArrival: arrivals{},
		linkFree:    arrivals{},
	}
}

// Seed is the simulation's seed.
func (s *Sim) Seed() uint64 { return s.cfg.Seed }

// Now is the virtual time elapsed since the start of the run.
func (s *Sim) Now() time.Duration { return s.now }

// Events is the number of events processed so far (deliveries, timers,
// stops and drops).
func (s *Sim) Events() uint64 { return s.events }

// Dropped is the number of messages dropped so far, by the network or
// because no actor held the destination name.
func (s *Sim) Dropped() uint64 { return s.drops }

// TraceHash digests every event processed so far: its time, kind, source,
// destination and message type (and, for messages that crossed the
// network, their encoded bytes). Two runs with equal hashes made the same
// decisions in the same order.
func (s *Sim) TraceHash() string { return fmt.Sprintf("%016x", s.hash.Sum64()) }

// Pending is the number of queued events.
func (s *Sim) Pending() int { return len(s.queue) }

// Hosts returns the hosts in creation order.
func (s *Sim) Hosts() []*Host { return slices.Clone(s.order) }

// Host returns the host called name, or nil.
func (s *Sim) Host(name string) *Host { return s.hosts[name] }

// Step processes the next event and reports whether there was one.
func (s *Sim) Step() bool {
	if len(s.queue) == 0 {
		return false
	}
	ev := heap.Pop(&s.queue).(*event)
	if ev.at > s.now {
		s.now = ev.at
	}
	s.process(ev)
	return true
}

// RunFor processes events until d of virtual time has passed (or nothing
// is left to do, in which case time still advances to the end).
func (s *Sim) RunFor(d time.Duration) {
	end := s.now + d
	for len(s.queue) > 0 && s.queue[0].at <= end {
		s.Step()
	}
	if s.now < end {
		s.now = end
	}
}

// RunUntil processes events until cond returns true (checked after every
// event) or limit of virtual time has passed. It reports whether cond
// became true.
func (s *Sim) RunUntil(cond func() bool, limit time.Duration) bool {
	end := s.now + limit
	for !cond() {
		if len(s.queue) == 0 || s.queue[0].at > end {
			if s.now < end {
				s.now = end
			}
			return cond()
		}
		s.Step()
	}
	return true
}

// At runs fn at virtual time now+d, outside any actor (as test code).
// Functions scheduled for the same instant run in scheduling order.
func (s *Sim) At(d time.Duration, fn func()) {
	s.push(&event{at: s.now + d, kind: evCall, fn: fn})
}

type evKind uint8

const (
	evDeliver evKind = iota
	evTimer
	evStop
	evCall
)

var kindNames = [...]string{evDeliver: "deliver", evTimer: "timer", evStop: "stop", evCall: "call"}

type event struct {
	at    time.Duration
	seq   uint64
	kind  evKind
	to    actors.Ref
	from  actors.Ref
	msg   any
	inc   uint64 // the incarnation of to.Host the event belongs to; 0 = any
	timer *timer
	fn    func()
	wire  bool // crossed the network
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	n := len(old)
	ev := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return ev
}

func (s *Sim) push(ev *event) {
	s.seq++
	ev.seq = s.seq
	heap.Push(&s.queue, ev)
}

func (s *Sim) process(ev *event) {
	if ev.kind == evCall {
		s.record(ev, "run")
		ev.fn()
		return
	}
	h := s.hosts[ev.to.Host]
	switch {
	case h == nil || !h.up:
		s.drop(ev, "host down")
		return
	case ev.inc != 0 && ev.inc != h.inc:
		s.drop(ev, "stale incarnation")
		return
	case ev.timer != nil && ev.timer.stopped:
		return // a canceled timer leaves no trace
	}
	c := h.cells[ev.to.Name]
	if c == nil {
		s.drop(ev, "no such actor")
		return
	}
	if wait := max(c.busyUntil, h.pausedUntil); wait > s.now {
		// The actor is still doing I/O (or its host is paused): requeue
		// behind everything already waiting for it.
		ev.at = wait
		s.push(ev)
		return
	}
	if ev.timer != nil {
		ev.timer.fired = true
	}
	switch ev.kind {
	case evStop:
		s.record(ev, "stop")
		s.stopTree(c, true)
	default:
		s.record(ev, "")
		s.invoke(c, ev.msg)
	}
}

// invoke runs one Receive of c.
func (s *Sim) invoke(c *cell, msg any) {
	prev := s.running
	s.running = c
	c.charge = 0
	defer func() {
		s.running = prev
		c.busyUntil = s.now + c.charge
	}()
	if s.cfg.OnPanic == nil {
		c.actor.Receive(c, msg)
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.cfg.OnPanic(c.ref, r, stackOf())
			s.stopTree(c, false)
		}
	}()
	c.actor.Receive(c, msg)
}

// stopTree stops c and its descendants, deepest first, delivering Stopped
// to each (but not to c itself unless notify: an actor that panicked gets
// nothing more, as in the production runtime).
func (s *Sim) stopTree(c *cell, notify bool) {
	if c.dead {
		return
	}
	for _, child := range c.sortedChildren() {
		s.stopTree(child, true)
	}
	c.dead = true
	if c.parent != nil {
		delete(c.parent.children, c.ref.Name)
	}
	if notify {
		s.invoke(c, actors.Stopped{})
	}
	if c.host.cells[c.ref.Name] == c {
		delete(c.host.cells, c.ref.Name)
	}
}

func (s *Sim) drop(ev *event, why string) {
	s.drops++
	s.record(ev, "drop: "+why)
}

// record folds an event into the trace hash and, if tracing, prints it.
func (s *Sim) record(ev *event, note string) {
	s.events++
	b := s.buf[:0]
	b = appendUint(b, uint64(s.now))
	b = append(b, byte(ev.kind))
	b = append(b, ev.from.Host...)
	b = append(b, 0)
	b = append(b, ev.from.Name...)
	b = append(b, 0)
	b = append(b, ev.to.Host...)
	b = append(b, 0)
	b = append(b, ev.to.Name...)
	b = append(b, 0)
	if ev.msg != nil {
		b = append(b, reflect.TypeOf(ev.msg).String()...)
	}
	b = append(b, note...)
	s.buf = b
	s.hash.Write(b)
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "%12.6fs %-7s %s <- %s %s", s.now.Seconds(), kindNames[ev.kind], ev.to, ev.from, describe(ev.msg))
		if note != "" {
			fmt.Fprintf(s.cfg.Trace, " [%s]", note)
		}
		fmt.Fprintln(s.cfg.Trace)
	}
}

func appendUint(b []byte, v uint64) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
}

func describe(msg any) string {
	switch m := msg.(type) {
	case nil:
		return ""
	case interface{ TraceString() string }:
		return m.TraceString()
	case fmt.Stringer:
		return fmt.Sprintf("%T{%s}", msg, m.String())
	default:
		return fmt.Sprintf("%T%+v", msg, msg)
	}
}
