package replicator

import (
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
)

// TestSteadyStatePipeline streams batches of new entries to a caught-up
// follower that holds its replies for a while, so the replicator's window
// fills: the follower converges, Progress climbs monotonically to the
// leader's last index, and neither the window (counted at the follower as
// requests received and not yet answered, on a FIFO network) nor any request
// exceeds its limit.
func TestSteadyStatePipeline(t *testing.T) {
	cases := []struct {
		name     string
		cfg      Config
		size     func(uint64) int
		wantFull bool // the window of MaxInflightMsgs is reached
	}{
		{"messages-bound", Config{MaxInflightMsgs: 4, MaxBytesPerRPC: 1000, MaxInflightBytes: 1 << 20}, fixed(76), true},
		{"bytes-bound", Config{MaxInflightMsgs: 64, MaxInflightBytes: 2000, MaxBytesPerRPC: 500}, varied, false},
		{"one-at-a-time", Config{MaxInflightMsgs: 1, MaxBytesPerRPC: 300}, varied, true},
		{"entries-above-rpc-size", Config{MaxInflightMsgs: 8, MaxBytesPerRPC: 100}, fixed(300), true},
		{"defaults", Config{}, varied, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := testseed.For(t)
			base := mkEntries(tc.size, run{1, 50})
			cfg := tc.cfg
			cfg.Term, cfg.HeartbeatTicks, cfg.ResendTicks = 2, 5, 1000
			h := newHarness(t, setup{seed: seed, net: fifoNet, leader: base, follower: base, cfg: cfg, tickEvery: 10 * time.Millisecond})
			h.f.hold, h.f.holdFor = true, 2*time.Millisecond
			h.waitConverged(time.Second)

			next := uint64(51)
			for batch := range 10 {
				ents := mkEntriesFrom(next, tc.size, run{2, 100})
				next += 100
				h.appendLeader(ents, h.r.match) // commit what this follower holds
				h.run(time.Duration(1+batch%4) * time.Millisecond)
			}
			h.waitConverged(10 * time.Second)
			last := h.log.LastIndex()
			h.L.Send(replRef, Update{Commit: last})
			if !h.runUntil(func() bool { return h.f.commit == last }, time.Second) {
				h.fatalf("follower commit %d, want %d", h.f.commit, last)
			}

			if got := h.lastProgress(); got != last {
				h.fatalf("last progress %d, want %d", got, last)
			}
			c := h.r.cfg
			if h.f.maxUnreplied > c.MaxInflightMsgs {
				h.fatalf("%d requests outstanding at the follower > MaxInflightMsgs %d", h.f.maxUnreplied, c.MaxInflightMsgs)
			}
			if tc.wantFull && h.f.maxUnreplied != c.MaxInflightMsgs {
				h.fatalf("window never filled: at most %d requests outstanding, MaxInflightMsgs %d", h.f.maxUnreplied, c.MaxInflightMsgs)
			}
			if h.f.maxBytesBefore >= c.MaxInflightBytes {
				h.fatalf("a request was sent with %d bytes already outstanding >= MaxInflightBytes %d", h.f.maxBytesBefore, c.MaxInflightBytes)
			}
			if h.f.rejects != 0 {
				h.fatalf("%d rejections in steady state", h.f.rejects)
			}
			t.Logf("%d requests, window %d (%d bytes before a send at most)", len(h.f.reqs), h.f.maxUnreplied, h.f.maxBytesBefore)
		})
	}
}

// TestDivergentFollower: a follower whose log holds many entries of terms
// the leader never had converges with a handful of rejections, thanks to the
// hint, and its divergent suffix is truncated.
func TestDivergentFollower(t *testing.T) {
	cases := []struct {
		name             string
		leader, follower []run
		maxRejects       int
	}{
		// 1000 entries of an old term after a common prefix: one rejection
		// skips them all.
		{"one-old-term", []run{{1, 10}, {3, 1000}}, []run{{1, 10}, {2, 1000}}, 1},
		// Several old terms on the follower, each still older than the
		// leader's.
		{"several-old-terms", []run{{1, 10}, {5, 1000}}, []run{{1, 10}, {2, 300}, {3, 300}, {4, 400}}, 1},
		// The follower's divergent term falls between two of the leader's.
		{"interleaved-terms", []run{{1, 10}, {2, 490}, {4, 510}}, []run{{1, 10}, {3, 1000}}, 2},
		// Both logs hold several terms; the follower's is longer.
		{"both-multi-term", []run{{1, 10}, {2, 500}, {3, 500}, {6, 10}}, []run{{1, 10}, {2, 200}, {4, 800}, {5, 200}}, 2},
		// Nothing in common at all.
		{"no-common-prefix", []run{{2, 500}, {4, 500}}, []run{{1, 400}, {3, 600}}, 2},
		// A long shared prefix must not be sent again.
		{"long-shared-prefix", []run{{1, 1000}, {3, 500}}, []run{{1, 1000}, {2, 700}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := testseed.For(t)
			for _, rpc := range []uint64{4 << 10, 512 << 10} {
				leader := mkEntries(fixed(16), tc.leader...)
				h := newHarness(t, setup{
					seed: seed, net: fifoNet, leader: leader, follower: mkEntries(fixed(16), tc.follower...),
					cfg: Config{MaxInflightMsgs: 8, MaxBytesPerRPC: rpc}, tickEvery: 10 * time.Millisecond,
				})
				h.waitConverged(10 * time.Second)
				if h.f.rejects > tc.maxRejects || h.f.rejects > 4 {
					h.fatalf("MaxBytesPerRPC %d: %d rejections, want at most %d", rpc, h.f.rejects, tc.maxRejects)
				}
				h.checkResent(int(rpc / 40))
				if got := h.lastProgress(); got != h.log.LastIndex() {
					h.fatalf("last progress %d, want %d", got, h.log.LastIndex())
				}
				t.Logf("MaxBytesPerRPC %d: %d requests, %d rejections", rpc, len(h.f.reqs), h.f.rejects)
			}
			// The default network reorders pipelined requests, and each
			// request that overtakes its predecessor is rejected and sends
			// the replicator back to probe: it still converges.
			h := newHarness(t, setup{
				seed: seed, leader: mkEntries(fixed(16), tc.leader...), follower: mkEntries(fixed(16), tc.follower...),
				cfg: Config{MaxInflightMsgs: 8, MaxBytesPerRPC: 4 << 10}, tickEvery: 10 * time.Millisecond,
			})
			h.waitConverged(10 * time.Second)
			t.Logf("reordering network: %d requests, %d rejections", len(h.f.reqs), h.f.rejects)
		})
	}
}

// TestLaggingFollower: a follower missing entries (all of them, or a
// suffix) catches up after at most one rejection.
func TestLaggingFollower(t *testing.T) {
	leaderRuns := []run{{1, 500}, {2, 500}, {3, 1000}}
	seed := testseed.For(t)
	for _, have := range []int{0, 1, 300, 999, 1999} {
		leader := mkEntries(varied, leaderRuns...)
		h := newHarness(t, setup{
			seed: seed, net: fifoNet, leader: leader, follower: leader[:have],
			cfg: Config{MaxInflightMsgs: 8, MaxBytesPerRPC: 4 << 10}, tickEvery: 10 * time.Millisecond,
		})
		h.waitConverged(10 * time.Second)
		if h.f.rejects > 1 {
			h.fatalf("follower holding %d entries: %d rejections, want at most 1", have, h.f.rejects)
		}
		h.checkResent(4 << 10 / 24)
		h = newHarness(t, setup{
			seed: seed, leader: leader, follower: leader[:have],
			cfg: Config{MaxInflightMsgs: 8, MaxBytesPerRPC: 4 << 10}, tickEvery: 10 * time.Millisecond,
		})
		h.waitConverged(10 * time.Second)
		t.Logf("follower holding %d entries, reordering network: %d requests, %d rejections", have, len(h.f.reqs), h.f.rejects)
	}
}

// TestLongerFollowerLogTruncated: entries of an old term beyond the
// leader's last index go, and the follower ends with exactly the leader's
// log.
func TestLongerFollowerLogTruncated(t *testing.T) {
	cases := []struct {
		name             string
		leader, follower []run
		nextIndex        uint64 // 0: the leader's last index + 1
		maxRejects       int
	}{
		{"old-term-suffix", []run{{1, 10}, {3, 40}}, []run{{1, 10}, {2, 3000}}, 0, 1},
		// A new leader's no-op follows the entries it shares with the
		// follower, which holds more of the old leader's term: the node
		// starts the replicator at the no-op's index.
		{"noop-after-shared-term", []run{{1, 100}, {2, 1}}, []run{{1, 300}}, 101, 0},
		{"noop-probed-first", []run{{1, 100}, {2, 1}}, []run{{1, 300}}, 0, 1},
		// The follower's extra entries are of a term later than some of
		// the leader's but earlier than its current one.
		{"later-old-term", []run{{1, 5}, {2, 5}, {5, 1}}, []run{{1, 5}, {3, 100}}, 0, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := testseed.For(t)
			h := newHarness(t, setup{
				seed: seed, leader: mkEntries(fixed(8), tc.leader...), follower: mkEntries(fixed(8), tc.follower...),
				cfg: Config{NextIndex: tc.nextIndex, MaxBytesPerRPC: 1 << 10}, tickEvery: 10 * time.Millisecond,
			})
			h.waitConverged(10 * time.Second)
			if h.f.rejects > tc.maxRejects {
				h.fatalf("%d rejections, want at most %d", h.f.rejects, tc.maxRejects)
			}
			h.checkResent(1 << 10 / 32)
			// converged checks the length too; say it once more plainly.
			if h.f.last() != h.log.LastIndex() {
				h.fatalf("follower has %d entries, leader %d", h.f.last(), h.log.LastIndex())
			}
		})
	}
}

// lossy runs a divergent follower against a faulty network while the
// leader keeps appending, then checks convergence, the follower's commit
// index and that the replicator settles back into replicate.
func lossy(t *testing.T, seed uint64, net sim.NetConfig) {
	t.Helper()
	leader := mkEntries(varied, run{1, 10}, run{2, 200}, run{4, 300})
	h := newHarness(t, setup{
		seed: seed, net: net, leader: leader,
		follower:  mkEntries(varied, run{1, 10}, run{3, 400}),
		cfg:       Config{Term: 4, MaxInflightMsgs: 8, MaxBytesPerRPC: 1 << 10, HeartbeatTicks: 3, ResendTicks: 6},
		tickEvery: 5 * time.Millisecond,
	})
	next := h.log.LastIndex() + 1
	for range 5 {
		h.run(7 * time.Millisecond)
		ents := mkEntriesFrom(next, varied, run{4, 50})
		next += 50
		h.appendLeader(ents, h.r.match)
	}
	h.waitConverged(60 * time.Second)
	last := h.log.LastIndex()
	h.L.Send(replRef, Update{Commit: last})
	if !h.runUntil(func() bool { return h.f.commit == last }, 10*time.Second) {
		h.fatalf("follower commit %d, want %d", h.f.commit, last)
	}
	if !h.runUntil(func() bool { return h.lastProgress() == last }, 10*time.Second) {
		h.fatalf("last progress %d, want %d", h.lastProgress(), last)
	}
	if !h.runUntil(func() bool { return h.r.st == stateReplicate && len(h.r.inflight) == 0 }, 10*time.Second) {
		h.fatalf("does not settle")
	}
}

// TestLossyNetworkConverges: lost requests and lost replies (and
// duplicates, reordering and delay spikes) do not prevent convergence.
func TestLossyNetworkConverges(t *testing.T) {
	nets := map[string]sim.NetConfig{
		"drop": {Drop: 0.2},
		"drop-dup-reorder": {
			MinLatency: 100 * time.Microsecond, MaxLatency: 2 * time.Millisecond,
			Drop: 0.2, Duplicate: 0.2, Reorder: 0.3, ReorderDelay: 8 * time.Millisecond,
			Spike: 0.02, SpikeDelay: 100 * time.Millisecond,
		},
		"dup-reorder": {Duplicate: 0.5, Reorder: 0.5, ReorderDelay: 20 * time.Millisecond},
	}
	for _, name := range []string{"drop", "drop-dup-reorder", "dup-reorder"} {
		t.Run(name, func(t *testing.T) {
			base := testseed.For(t)
			for i := range uint64(8) {
				lossy(t, base+i, nets[name])
			}
		})
	}
}

// TestScriptedReorderAndDuplicates: the follower holds its replies and
// releases them newest first, each twice; a success answers every earlier
// request, so the rest are dropped and nothing is re-sent.
func TestScriptedReorderAndDuplicates(t *testing.T) {
	seed := testseed.For(t)
	base := mkEntries(fixed(50), run{1, 20})
	h := newHarness(t, setup{
		seed: seed, net: fifoNet, leader: base, follower: base,
		cfg: Config{Term: 2, MaxInflightMsgs: 16, MaxBytesPerRPC: 370, HeartbeatTicks: 5, ResendTicks: 1000},
	})
	h.waitConverged(time.Second)
	h.f.hold, h.f.reverse, h.f.dup = true, true, true
	h.appendLeader(mkEntriesFrom(21, fixed(50), run{2, 40}), 0) // 8 requests of 5 entries
	h.run(5 * time.Millisecond)
	if len(h.f.held) != 8 || len(h.r.inflight) != 8 {
		h.fatalf("%d replies held, %d requests outstanding; want 8 and 8", len(h.f.held), len(h.r.inflight))
	}
	reqs, progress := len(h.f.reqs), len(h.node.progress)
	h.F.Send(followerRef, release{})
	h.run(5 * time.Millisecond)
	if !h.converged() {
		h.fatalf("not converged")
	}
	if len(h.node.progress) != progress+1 || h.lastProgress() != 60 {
		h.fatalf("progress %v, want one more reporting 60", h.node.progress[progress:])
	}
	if len(h.f.reqs) != reqs {
		h.fatalf("%d requests re-sent", len(h.f.reqs)-reqs)
	}
}

// TestProbeOneOutstanding: in probe a single request is outstanding, and it
// carries entries from the probe point when the leader has them.
func TestProbeOneOutstanding(t *testing.T) {
	seed := testseed.For(t)
	leader := mkEntries(fixed(8), run{1, 5}, run{2, 5})
	h := newHarness(t, setup{seed: seed, leader: leader, cfg: Config{NextIndex: 6, ResendTicks: 1000}})
	h.f.hold = true
	h.run(2 * time.Millisecond)
	// At start: a heartbeat (announcing the leader) and one probe.
	if len(h.f.hbs) != 1 || h.f.hbs[0] != 0 {
		h.fatalf("heartbeats %v, want one with commit 0", h.f.hbs)
	}
	if len(h.f.reqs) != 1 || h.f.reqs[0].prev != 5 || h.f.reqs[0].prevTerm != 1 || h.f.reqs[0].n != 5 {
		h.fatalf("requests %+v, want one probe after (5, 1) with 5 entries", h.f.reqs)
	}
	h.appendLeader(mkEntriesFrom(11, fixed(8), run{2, 5}), 0)
	h.tickN(3)
	if len(h.f.reqs) != 1 || h.r.st != stateProbe {
		h.fatalf("%d requests while the probe is outstanding, want 1", len(h.f.reqs))
	}
	h.f.hold = false
	h.F.Send(followerRef, release{})
	h.waitConverged(time.Second) // the rejection leads to a probe from 0, then streaming
	if h.f.rejects != 1 {
		h.fatalf("%d rejections, want 1", h.f.rejects)
	}
}

// TestEmptyLeaderLog: a leader with an empty log still probes (after index
// 0) and reports the match.
func TestEmptyLeaderLog(t *testing.T) {
	h := newHarness(t, setup{seed: testseed.For(t), cfg: Config{Term: 3}})
	if !h.runUntil(func() bool { return h.r.st == stateReplicate && len(h.node.progress) > 0 }, time.Second) {
		h.fatalf("the first probe is not answered")
	}
	if h.r.match != 0 || h.r.next != 1 || len(h.node.progress) == 0 {
		h.fatalf("bad state after the first probe")
	}
	h.appendLeader([]*raftpb.Entry{{Index: 1, Term: 3}}, 0)
	h.waitConverged(time.Second)
}
