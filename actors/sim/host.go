package sim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/vfs"
)

// HostConfig configures a simulated host.
type HostConfig struct {
	// ClockOffset shifts the host's clock from the simulation's epoch.
	ClockOffset time.Duration
	// Drift is the host clock's rate error: its clock advances by
	// (1+Drift) per unit of virtual time (for example 1e-4 runs 100 ppm
	// fast). Must be greater than -1.
	Drift float64
	// Disk sets the virtual cost of disk I/O; the zero value uses
	// DefaultDisk.
	Disk DiskConfig
	// TornCrash makes Crash tear the unsynced writes of the disk (keeping
	// a random prefix of them, the last one possibly cut) instead of
	// dropping them all.
	TornCrash bool
}

// DiskConfig is the virtual cost of disk operations. Each sync costs a
// latency drawn uniformly from [SyncMin, SyncMax]; each write costs
// PerByte for every byte written.
type DiskConfig struct {
	SyncMin, SyncMax time.Duration
	PerByte          time.Duration
}

// DefaultDisk resembles a local SSD: syncs of 200 µs to 1 ms and about
// 1 GB/s of write bandwidth.
var DefaultDisk = DiskConfig{SyncMin: 200 * time.Microsecond, SyncMax: time.Millisecond, PerByte: time.Nanosecond}

// Host is one simulated machine: a set of actors, a clock, a disk. It
// implements actors.Runtime for code that runs outside actors (test code,
// the public API of the framework under test).
type Host struct {
	sim  *Sim
	name string
	cfg  HostConfig
	disk *vfs.MemFS
	rand *rand.Rand

	up          bool
	inc         uint64 // incarnation: incremented by every crash
	cells       map[string]*cell
	pausedUntil time.Duration

	// The clock reads anchorClock at virtual time anchorVirt and advances
	// at 1+drift from there.
	anchorVirt  time.Duration
	anchorClock time.Duration
	drift       float64

	crashes uint64
}

var _ actors.Runtime = (*Host)(nil)

// AddHost adds a host called name, up and empty. Host names are the Host
// field of refs to its actors.
func (s *Sim) AddHost(name string, cfg HostConfig) *Host {
	if _, ok := s.hosts[name]; ok {
		panic(fmt.Sprintf("sim: host %q added twice", name))
	}
	if cfg.Disk == (DiskConfig{}) {
		cfg.Disk = DefaultDisk
	}
	if cfg.Drift <= -1 {
		panic(fmt.Sprintf("sim: host %q: drift %v must be > -1", name, cfg.Drift))
	}
	h := &Host{
		sim:   s,
		name:  name,
		cfg:   cfg,
		disk:  vfs.NewMem(),
		rand:  rand.New(rand.NewPCG(s.cfg.Seed, hashString("host/"+name))),
		up:    true,
		inc:   1,
		cells: map[string]*cell{},
		drift: cfg.Drift,
	}
	h.anchorClock = cfg.ClockOffset
	h.disk.SetObserver(h.observeDisk)
	// A sync is durable only once its latency has passed: a crash while the
	// disk writer is still busy loses it.
	h.disk.SetClock(s.base, func() time.Duration { return s.now })
	s.hosts[name] = h
	s.order = append(s.order, h)
	return h
}

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Host implements actors.Runtime: the host's address.
func (h *Host) Host() string { return h.name }

// Disk is the host's disk. It survives crashes (keeping what was synced).
func (h *Host) Disk() *vfs.MemFS { return h.disk }

// Up reports whether the host is running (not crashed).
func (h *Host) Up() bool { return h.up }

// Incarnation counts the host's lives: 1 at start, plus one per crash.
func (h *Host) Incarnation() uint64 { return h.inc }

// Crashes is the number of times the host crashed.
func (h *Host) Crashes() uint64 { return h.crashes }

// Actors returns the names of the host's live actors (for debugging).
func (h *Host) Actors() []string {
	names := make([]string, 0, len(h.cells))
	for n := range h.cells {
		names = append(names, n)
	}
	return sortedStrings(names)
}

// Now implements actors.Runtime: the host's clock.
func (h *Host) Now() time.Time { return Epoch.Add(h.clock()) }

func (h *Host) clock() time.Duration {
	return h.anchorClock + time.Duration(float64(h.sim.now-h.anchorVirt)*(1+h.drift))
}

// SetClock changes the host's clock from now on: it jumps by step (which
// may be negative; use zero for a pure rate change) and then runs at
// 1+drift. A clock never jumps in the real world without someone setting
// it; protocol code must not rely on wall-clock agreement between hosts.
func (h *Host) SetClock(step time.Duration, drift float64) {
	if drift <= -1 {
		panic(fmt.Sprintf("sim: host %q: drift %v must be > -1", h.name, drift))
	}
	h.anchorClock = h.clock() + step
	h.anchorVirt = h.sim.now
	h.drift = drift
}

// SetDisk changes the virtual cost of the host's disk operations from now
// on (the zero value restores DefaultDisk).
func (h *Host) SetDisk(d DiskConfig) {
	if d == (DiskConfig{}) {
		d = DefaultDisk
	}
	h.cfg.Disk = d
}

// Drift is the host clock's current rate error.
func (h *Host) Drift() float64 { return h.drift }

// toVirtual converts a duration on the host's clock into virtual time.
func (h *Host) toVirtual(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(float64(d) / (1 + h.drift))
}

// Spawn implements actors.Runtime: it starts a top-level actor.
func (h *Host) Spawn(name string, a actors.Actor, opts ...actors.SpawnOption) (actors.Ref, error) {
	if !h.up {
		return actors.Ref{}, fmt.Errorf("sim: spawn %q on host %q: host is down", name, h.name)
	}
	return h.spawn(nil, name, a, opts)
}

func (h *Host) spawn(parent *cell, name string, a actors.Actor, opts []actors.SpawnOption) (actors.Ref, error) {
	full := name
	if parent != nil {
		full = parent.ref.Name + "/" + name
	}
	if _, taken := h.cells[full]; taken {
		return actors.Ref{}, fmt.Errorf("sim: spawn %s:%s: %w", h.name, full, actors.ErrNameTaken)
	}
	ref := actors.Ref{Host: h.name, Name: full}
	c := &cell{
		host:   h,
		ref:    ref,
		actor:  a,
		parent: parent,
		cfg:    actors.ApplySpawnOptions(opts),
		rand:   rand.New(rand.NewPCG(h.sim.cfg.Seed, hashString(fmt.Sprintf("%s/%s/%d", h.name, full, h.inc)))),
	}
	h.cells[full] = c
	if parent != nil {
		if parent.children == nil {
			parent.children = map[string]*cell{}
		}
		parent.children[full] = c
	}
	h.sim.push(&event{at: h.sim.base(), kind: evDeliver, to: ref, msg: actors.Started{}, inc: h.inc})
	return ref, nil
}

// Send implements actors.Runtime: it delivers msg to the actor at to as if
// sent by a local caller (no network faults, even if to is on another
// host).
func (h *Host) Send(to actors.Ref, msg any) {
	h.sim.push(&event{at: h.sim.base(), kind: evDeliver, to: to, msg: msg})
}

// Stop implements actors.Runtime.
func (h *Host) Stop(ref actors.Ref) {
	if ref.Host != h.name {
		return
	}
	h.sim.push(&event{at: h.sim.base(), kind: evStop, to: ref, inc: h.inc})
}

// Crash kills the host: its actors vanish without a Stopped message, its
// queued messages and timers are discarded, and its disk loses what was not
// synced (or, with HostConfig.TornCrash, keeps a torn prefix of it). A sync
// counts only once its virtual latency has passed: one still in progress
// is lost.
// Messages already on the network towards the host are delivered if it is
// up again when they arrive.
func (h *Host) Crash() {
	if !h.up {
		return
	}
	h.up = false
	h.inc++
	h.crashes++
	h.cells = map[string]*cell{}
	h.pausedUntil = 0
	if h.cfg.TornCrash {
		h.disk.CrashTorn(h.rand)
	} else {
		h.disk.Crash()
	}
	h.sim.record(&event{kind: evCall, to: actors.Ref{Host: h.name}}, "crash")
}

// Restart brings a crashed host back up, with no actors: the caller starts
// them again (typically from what the disk kept).
func (h *Host) Restart() {
	if h.up {
		return
	}
	h.up = true
	h.sim.record(&event{kind: evCall, to: actors.Ref{Host: h.name}}, "restart")
}

// Pause freezes the host for d of virtual time: no actor of it runs until
// then, and everything sent to it waits. Its clock keeps running, so when it
// resumes its timers are late and its beliefs (leases, leadership) stale.
func (h *Host) Pause(d time.Duration) {
	if !h.up {
		return
	}
	h.pausedUntil = max(h.pausedUntil, h.sim.now+d)
	h.sim.record(&event{kind: evCall, to: actors.Ref{Host: h.name}}, "pause")
}

// Paused reports whether the host is paused now.
func (h *Host) Paused() bool { return h.pausedUntil > h.sim.now }

// observeDisk charges the virtual cost of a disk operation to the actor
// that performs it.
func (h *Host) observeDisk(op vfs.Op, _ string, n int) {
	c := h.sim.running
	if c == nil || c.host != h {
		return // I/O outside any actor (test setup) is free
	}
	switch op {
	case vfs.OpSync, vfs.OpSyncDir:
		d := h.cfg.Disk.SyncMin
		if span := h.cfg.Disk.SyncMax - h.cfg.Disk.SyncMin; span > 0 {
			d += time.Duration(h.rand.Int64N(int64(span)))
		}
		c.charge += d
	case vfs.OpWrite:
		c.charge += time.Duration(n) * h.cfg.Disk.PerByte
	}
}

// base is the virtual time at which a message sent now leaves: after the
// I/O the running actor has done so far in this Receive.
func (s *Sim) base() time.Duration {
	if s.running != nil {
		return s.now + s.running.charge
	}
	return s.now
}

func hashString(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	return f.Sum64()
}
