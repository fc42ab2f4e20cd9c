package sim

import (
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"time"

	"github.com/asyncraft/asyncraft/actors"
)

// cell is one live actor: its identity, state as seen by the scheduler, and
// its Env (the cell itself).
type cell struct {
	host     *Host
	ref      actors.Ref
	actor    actors.Actor
	parent   *cell
	children map[string]*cell
	cfg      actors.SpawnConfig
	rand     *rand.Rand

	busyUntil time.Duration // virtual time until which its I/O keeps it busy
	charge    time.Duration // I/O cost accumulated in the current Receive
	dead      bool
}

var _ actors.Env = (*cell)(nil)

func (c *cell) Self() actors.Ref { return c.ref }

func (c *cell) Send(to actors.Ref, msg any) {
	s := c.host.sim
	if to.Host == c.host.name {
		s.push(&event{at: s.base(), kind: evDeliver, to: to, from: c.ref, msg: msg, inc: c.host.inc})
		return
	}
	s.sendRemote(c.ref, to, msg)
}

func (c *cell) Spawn(name string, a actors.Actor, opts ...actors.SpawnOption) (actors.Ref, error) {
	return c.host.spawn(c, name, a, opts)
}

func (c *cell) Stop(ref actors.Ref) { c.host.Stop(ref) }

func (c *cell) Now() time.Time { return c.host.Now().Add(c.chargeOnClock()) }

// chargeOnClock is the I/O time spent so far in this Receive, on the host's
// clock: after a slow fsync, Now has moved on.
func (c *cell) chargeOnClock() time.Duration {
	return time.Duration(float64(c.charge) * (1 + c.host.drift))
}

func (c *cell) Rand() *rand.Rand { return c.rand }

func (c *cell) After(d time.Duration, msg any) actors.Timer {
	s := c.host.sim
	t := &timer{}
	s.push(&event{at: s.base() + c.host.toVirtual(d), kind: evTimer, to: c.ref, from: c.ref, msg: msg, inc: c.host.inc, timer: t})
	return t
}

func (c *cell) sortedChildren() []*cell {
	names := make([]string, 0, len(c.children))
	for n := range c.children {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]*cell, len(names))
	for i, n := range names {
		out[i] = c.children[n]
	}
	return out
}

type timer struct {
	stopped, fired bool
}

func (t *timer) Stop() bool {
	if t.stopped || t.fired {
		return false
	}
	t.stopped = true
	return true
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

func stackOf() []byte { return debug.Stack() }
