package replicator

// The test harness: one Replicator on host "L" driven in the simulator
// against a scripted fake follower on host "F", with a probe actor on "L"
// standing in for the leader's node.

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

const (
	testGroup  = "g"
	testLeader = "l"
	testPeer   = "f"
)

var (
	replRef     = actors.Ref{Host: "L", Name: "repl"}
	nodeRef     = actors.Ref{Host: "L", Name: "node"}
	followerRef = actors.Ref{Host: "F", Name: "f"}
	tickerRef   = actors.Ref{Host: "L", Name: "ticker"}
	// copierRef is the leader's copy actor (a copierProbe, spawned when
	// Config.Copier is set), peerCopierRef the follower's (nothing there:
	// only the fake follower's node answers).
	copierRef     = actors.Ref{Host: "L", Name: "copy"}
	peerCopierRef = actors.Ref{Host: "F", Name: "f/copy"}
)

// fifoNet has a fixed latency: messages between two hosts never overtake
// each other, so what the follower sees is exactly what was sent, in order.
var fifoNet = sim.NetConfig{MinLatency: 200 * time.Microsecond, MaxLatency: 200 * time.Microsecond}

// run is n consecutive entries of one term.
type run struct {
	term uint64
	n    int
}

// mkEntries builds entries with indexes from 1: runs of terms, each entry's
// data of size(index) bytes and tagged with its index and term (so entries of
// different terms at one index differ in data too).
func mkEntries(size func(index uint64) int, runs ...run) []*raftpb.Entry {
	return mkEntriesFrom(1, size, runs...)
}

func mkEntriesFrom(from uint64, size func(index uint64) int, runs ...run) []*raftpb.Entry {
	var out []*raftpb.Entry
	idx := from
	for _, r := range runs {
		for i := 0; i < r.n; i++ {
			data := make([]byte, size(idx))
			copy(data, fmt.Sprintf("%d@%d|", idx, r.term))
			out = append(out, &raftpb.Entry{Index: idx, Term: r.term, Data: data})
			idx++
		}
	}
	return out
}

func fixed(n int) func(uint64) int { return func(uint64) int { return n } }

// varied gives sizes from 0 to 199 bytes, irregularly.
func varied(i uint64) int { return int(i*7919%200) % 200 }

func sameEntry(a, b *raftpb.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// nodeProbe stands in for the leader's node actor.
type nodeProbe struct {
	progress   []Progress
	higher     []HigherTerm
	readFailed []ReadFailed
	resumed    []ReadResumed
	lost       []LostEntries
	installing []Installing
	installed  []Installed
	onProgress func(Progress)
	onRead     func(msg any) // ReadFailed or ReadResumed
}

func (n *nodeProbe) Receive(_ actors.Env, msg any) {
	switch m := msg.(type) {
	case Progress:
		n.progress = append(n.progress, m)
		if n.onProgress != nil {
			n.onProgress(m)
		}
	case HigherTerm:
		n.higher = append(n.higher, m)
	case ReadFailed:
		n.readFailed = append(n.readFailed, m)
		if n.onRead != nil {
			n.onRead(m)
		}
	case ReadResumed:
		n.resumed = append(n.resumed, m)
		if n.onRead != nil {
			n.onRead(m)
		}
	case LostEntries:
		n.lost = append(n.lost, m)
	case Installing:
		n.installing = append(n.installing, m)
	case Installed:
		n.installed = append(n.installed, m)
	}
}

// ticker forwards a Tick to the replicator every period while on.
type ticker struct {
	every time.Duration
	on    bool
	n     int
}

type tickNow struct{}

func (t *ticker) Receive(env actors.Env, msg any) {
	switch msg.(type) {
	case actors.Started:
		env.After(t.every, tickNow{})
	case tickNow:
		if t.on {
			t.n++
			env.Send(replRef, Tick{})
		}
		env.After(t.every, tickNow{})
	}
}

// setup describes one test world.
type setup struct {
	seed      uint64
	net       sim.NetConfig
	leader    []*raftpb.Entry
	follower  []*raftpb.Entry
	cfg       Config        // limits, ticks, Term, NextIndex, Commit; the rest is filled in
	tickEvery time.Duration // 0: no ticker (the test sends Ticks itself)
	log       func(*logmgr.Log) LogReader
}

type harness struct {
	t    testing.TB
	seed uint64
	s    *sim.Sim
	L, F *sim.Host
	log  *logmgr.Log
	r    *Replicator
	f    *follower
	node *nodeProbe
	tick *ticker
	// copier stands in for the leader's copy actor (Config.Copier set).
	copier *copierProbe

	common    uint64 // the prefix the logs shared at start
	lastMatch uint64
	// allowLoss: the test cut the follower's log, so the match may go
	// back (once the replicator finds out).
	allowLoss  bool
	violations []string
}

func newHarness(t testing.TB, su setup) *harness {
	t.Helper()
	st := logmgr.NewMemoryStorage()
	if err := st.Append(su.leader); err != nil {
		t.Fatal(err)
	}
	lg, err := logmgr.NewLog(st)
	if err != nil {
		t.Fatal(err)
	}
	cfg := su.cfg
	cfg.Group, cfg.LeaderID, cfg.PeerID = testGroup, testLeader, testPeer
	cfg.Peer, cfg.Node = followerRef, nodeRef
	cfg.Log = lg
	if su.log != nil {
		cfg.Log = su.log(lg)
	}
	if cfg.Term == 0 {
		cfg.Term = 1
		if n := len(su.leader); n > 0 {
			cfg.Term = su.leader[n-1].Term
		}
	}
	if cfg.NextIndex == 0 {
		cfg.NextIndex = lg.LastIndex() + 1
	}
	cfg.Logger = slog.New(slog.DiscardHandler)

	h := &harness{t: t, seed: su.seed, log: lg, r: New(cfg), node: &nodeProbe{}}
	h.s = sim.New(sim.Config{Seed: su.seed, Net: su.net})
	h.L = h.s.AddHost("L", sim.HostConfig{})
	h.F = h.s.AddHost("F", sim.HostConfig{})
	h.f = &follower{
		term:      cfg.Term,
		log:       slices.Clone(su.follower),
		leaderLog: lg,
		maxPerRPC: h.r.cfg.MaxBytesPerRPC,
		violate:   h.violate,
		onTruncate: func(from uint64) {
			if from <= h.r.match {
				h.violate("follower truncates from %d, at or below the match %d", from, h.r.match)
			}
		},
		onCommit: func(c uint64) {
			if p := h.matchedPrefix(); c > p && !(h.allowLoss && c > h.f.last()) {
				h.violate("heartbeat commit %d beyond the follower's prefix matching the leader (%d)", c, p)
			}
		},
	}
	var lastProgress uint64
	h.node.onProgress = func(p Progress) {
		if p.Peer != testPeer || p.Term != cfg.Term {
			h.violate("progress %+v: wrong peer or term", p)
		}
		if p.Match < lastProgress && !h.allowLoss {
			h.violate("progress went back from %d to %d", lastProgress, p.Match)
		}
		if p.Match > h.r.match {
			h.violate("progress %d ahead of the replicator's match %d", p.Match, h.r.match)
		}
		lastProgress = p.Match
	}
	h.spawn(h.L, nodeRef, h.node)
	h.spawn(h.F, followerRef, h.f)
	if !cfg.Copier.IsZero() {
		h.copier = &copierProbe{}
		h.spawn(h.L, cfg.Copier, h.copier)
	}
	if su.tickEvery > 0 {
		h.tick = &ticker{every: su.tickEvery, on: true}
		h.spawn(h.L, tickerRef, h.tick)
	}
	h.spawn(h.L, replRef, h.r)
	h.common = h.matchedPrefix()
	return h
}

// checkResent fails if the replicator sent more entries than the follower
// was missing plus what its rejected requests carried (at most perRPC
// entries each): it must not fall back to resending the shared prefix.
func (h *harness) checkResent(perRPC int) {
	h.t.Helper()
	sent := 0
	for _, r := range h.f.reqs {
		sent += r.n
	}
	if limit := int(h.log.LastIndex()-h.common) + h.f.rejects*perRPC; sent > limit {
		h.fatalf("%d entries sent, want at most %d (%d missing after the shared prefix of %d, %d rejections)",
			sent, limit, h.log.LastIndex()-h.common, h.common, h.f.rejects)
	}
}

func (h *harness) spawn(host *sim.Host, ref actors.Ref, a actors.Actor) {
	if _, err := host.Spawn(ref.Name, a); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) violate(format string, args ...any) {
	h.violations = append(h.violations, fmt.Sprintf("at %v: ", h.s.Now())+fmt.Sprintf(format, args...))
}

func (h *harness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("seed=%d: %s\nreplicator: %s\nfollower: last %d commit %d, %d requests, %d rejects",
		h.seed, fmt.Sprintf(format, args...), h.state(), h.f.last(), h.f.commit, len(h.f.reqs), h.f.rejects)
}

func (h *harness) state() string {
	r := h.r
	return fmt.Sprintf("%v next=%d match=%d commit=%d inflight=%d (%d bytes) seq=%d",
		r.st, r.next, r.match, r.commit, len(r.inflight), r.inBytes, r.seq)
}

// matchedPrefix is the length of the follower's log prefix equal to the
// leader's.
func (h *harness) matchedPrefix() uint64 {
	n := min(h.f.last(), h.log.LastIndex())
	for i := uint64(1); i <= n; i++ {
		if !h.leaderHas(h.f.log[i-1]) {
			return i - 1
		}
	}
	return n
}

func (h *harness) leaderHas(e *raftpb.Entry) bool {
	got, err := h.log.Entries(e.Index, e.Index+1, 1<<40)
	return err == nil && sameEntry(e, got[0])
}

// check verifies the replicator's invariants; it runs after every event.
func (h *harness) check() {
	h.t.Helper()
	r := h.r
	if len(r.inflight) > r.cfg.MaxInflightMsgs {
		h.violate("%d requests outstanding > MaxInflightMsgs %d", len(r.inflight), r.cfg.MaxInflightMsgs)
	}
	if r.st == stateProbe && len(r.inflight) > 1 {
		h.violate("%d requests outstanding in probe", len(r.inflight))
	}
	var b uint64
	for i, fl := range r.inflight {
		b += fl.bytes
		if i > 0 && (fl.seq <= r.inflight[i-1].seq || fl.last <= r.inflight[i-1].last) {
			h.violate("outstanding requests out of order: %+v", r.inflight)
		}
	}
	if b != r.inBytes {
		h.violate("inBytes %d, outstanding requests hold %d", r.inBytes, b)
	}
	if r.match >= r.next {
		h.violate("match %d >= next %d", r.match, r.next)
	}
	if r.match < h.lastMatch {
		if !h.allowLoss {
			h.violate("match went back from %d to %d", h.lastMatch, r.match)
		}
		h.lastMatch = r.match
	}
	if r.match > h.lastMatch {
		// Safety: the follower does hold the leader's entries up to match.
		if r.match > h.f.last() {
			h.violate("match %d beyond the follower's last index %d", r.match, h.f.last())
		} else {
			for i := h.lastMatch + 1; i <= r.match; i++ {
				if !h.leaderHas(h.f.log[i-1]) {
					h.violate("match %d but the follower's entry %d differs from the leader's", r.match, i)
					break
				}
			}
		}
		h.lastMatch = r.match
	}
	if len(h.violations) > 0 {
		h.fatalf("invariant violated:\n  %s", h.violations[0])
	}
}

// runUntil runs the simulation, checking invariants after every event,
// until cond holds or limit of virtual time has passed.
func (h *harness) runUntil(cond func() bool, limit time.Duration) bool {
	h.t.Helper()
	return h.s.RunUntil(func() bool {
		h.check()
		return cond()
	}, limit)
}

// run runs the simulation for d, checking invariants after every event.
func (h *harness) run(d time.Duration) {
	h.t.Helper()
	h.runUntil(func() bool { return false }, d)
}

// converged reports whether the follower's log equals the leader's and the
// replicator knows it.
func (h *harness) converged() bool {
	return h.f.last() == h.log.LastIndex() && h.matchedPrefix() == h.f.last() && h.r.match == h.log.LastIndex()
}

func (h *harness) waitConverged(limit time.Duration) {
	h.t.Helper()
	if !h.runUntil(h.converged, limit) {
		h.fatalf("not converged after %v: leader last %d, follower matches the leader up to %d", limit, h.log.LastIndex(), h.matchedPrefix())
	}
	// The Progress for the last match is on its way to the node.
	if !h.runUntil(func() bool { return h.lastProgress() == h.r.match }, time.Millisecond) {
		h.fatalf("last progress %d, match %d", h.lastProgress(), h.r.match)
	}
}

// appendLeader appends entries to the leader's log and wakes the replicator.
func (h *harness) appendLeader(ents []*raftpb.Entry, commit uint64) {
	h.t.Helper()
	if err := h.log.Append(ents); err != nil {
		h.t.Fatal(err)
	}
	h.L.Send(replRef, Update{Commit: commit})
}

// tickN sends n ticks, letting the network settle after each.
func (h *harness) tickN(n int) {
	h.t.Helper()
	for range n {
		h.L.Send(replRef, Tick{})
		h.run(2 * time.Millisecond)
	}
}

// inject delivers a crafted envelope to the replicator (locally, outside
// the network) and lets the world settle.
func (h *harness) inject(e *raftpb.Envelope) {
	h.t.Helper()
	h.L.Send(replRef, proto.Clone(e))
	h.run(2 * time.Millisecond)
}

// lastProgress is the match of the last Progress, or 0.
func (h *harness) lastProgress() uint64 {
	if n := len(h.node.progress); n > 0 {
		return h.node.progress[n-1].Match
	}
	return 0
}

// snap is the replicator's observable state, for "nothing changed" checks.
type snap struct {
	st                       state
	next, match, commit, seq uint64
	sentHB, inBytes          uint64
	inflight                 int
	idleTicks, quietTicks    int
	progress, higher, reqs   int
	heartbeats               int
}

func (h *harness) snap() snap {
	r := h.r
	return snap{
		st: r.st, next: r.next, match: r.match, commit: r.commit, seq: r.seq,
		sentHB: r.sentHB, inBytes: r.inBytes, inflight: len(r.inflight),
		idleTicks: r.idleTicks, quietTicks: r.quietTicks,
		progress: len(h.node.progress), higher: len(h.node.higher),
		reqs: len(h.f.reqs), heartbeats: len(h.f.hbs),
	}
}
