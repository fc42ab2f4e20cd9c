package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): instead of
// every run drawing from the same mix of every fault, each seed first draws
// its own configuration — which fault classes are on, the nodes' timing
// and batching options, the workload's shape — and then runs with it. A
// run with few fault classes explores their interplay deeper than a run
// that spreads its time over all of them, and rare parameter combinations
// (a short election timeout with a long lease, a pipeline of one, a batch
// of one) get their turn.

// Swarm returns the configuration seed draws. The draw is a pure function
// of the seed, so a failure replays from it alone
// (go run ./cmd/asyncraft-sim -swarm -seed S).
func Swarm(seed uint64) Config {
	rnd := rand.New(rand.NewPCG(seed, 0x737761726d))
	pick := func(n int) int { return rnd.IntN(n) }
	c := Config{Seed: seed, Duration: 20 * time.Second, swarm: true}

	for _, k := range []Nemesis{Partitions, Asymmetric, MessageFaults, Crashes, TornWrites, ClockDrift, Pauses, Restarts} {
		if pick(2) == 0 {
			c.Nemeses |= k
		}
	}
	if c.Nemeses&^TornWrites == 0 { // torn writes alone do nothing
		c.Nemeses |= []Nemesis{Crashes, Restarts}[pick(2)]
	}
	if pick(4) == 0 {
		c.Nodes = 5
	} else {
		c.Nodes = 3
	}

	// Timing, on the hosts' default 10 ms tick.
	const tick = 10 * time.Millisecond
	c.ElectionTimeout = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}[pick(4)]
	c.HeartbeatInterval = max(tick, c.ElectionTimeout/time.Duration(3+pick(18)))
	c.DisablePreVote = pick(4) == 0
	c.DisableCheckQuorum = pick(4) == 0
	c.MaxDrift = []float64{1e-5, 1e-4, 1e-3, 1e-2}[pick(4)]
	// The lease: any ratio up to the longest the nodes accept (the
	// election timeout less one tick), and a drift bound that covers two
	// clocks drifting apart at MaxDrift over an election timeout, with a
	// margin, and leaves a positive lease.
	maxRatio := float64(c.ElectionTimeout-tick) / float64(c.ElectionTimeout)
	c.LeaseRatio = 0.3 + rnd.Float64()*(maxRatio-0.3)
	lease := time.Duration(c.LeaseRatio * float64(c.ElectionTimeout))
	minBound := max(time.Millisecond, time.Duration(3*c.MaxDrift*float64(c.ElectionTimeout)))
	c.LeaseDriftBound = minBound
	if lease/2 > minBound {
		c.LeaseDriftBound += time.Duration(rnd.Int64N(int64(lease/2 - minBound)))
	}

	// Batching and flow control.
	c.ApplyBatch = []int{1, 4, 32, 256}[pick(4)]
	c.MaxInflightMsgs = []int{1, 2, 16, 256}[pick(4)]
	c.MaxBytesPerRPC = []uint64{64, 1 << 10, 64 << 10, 512 << 10}[pick(4)]

	// The workload.
	c.Clients = 1 + pick(8)
	c.Keys = 2 + pick(9)
	c.Reads = 0.1 + 0.8*rnd.Float64()
	c.Appends = (1 - c.Reads) * rnd.Float64()
	c.ReadOnlyPhases = pick(2) == 0

	// Snapshots (drawn last, so that the draws above stay what they were
	// for each seed): off in a quarter of the runs; else often or rarely,
	// with few or many entries kept behind, small or several chunks.
	if pick(4) == 0 {
		c.NoSnapshots = true
	} else {
		c.SnapshotEntries = []uint64{10, 50, 200, 1000}[pick(4)]
		c.SnapshotTrailing = []uint64{1, 5, 50, 500}[pick(4)]
		c.SnapshotPadding = []int{0, 300 << 10, 700 << 10, 1500 << 10}[pick(4)]
		if pick(2) == 0 {
			c.Nemeses |= InstallCrashes
		}
		if pick(2) == 0 {
			c.Nemeses |= CorruptChunks
		}
	}
	// Membership changes in a third of the runs (drawn after everything
	// else, for the same reason).
	if pick(3) == 0 {
		c.Nemeses |= Membership
	}
	// In half the runs with snapshots, each node writes its own bytes for
	// the same state, so that a new leader's snapshot of an index is not
	// the old one's (drawn last as well).
	if !c.NoSnapshots && pick(2) == 0 {
		c.snapshotsDiffer = true
	}
	return c
}

// Describe renders the parts of c that shape a run, for reports.
func (c Config) Describe() string {
	c = c.withDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "nodes=%d nemesis=%v duration=%v clients=%d keys=%d reads=%.2f appends=%.2f",
		c.Nodes, c.Nemeses, c.Duration, c.Clients, c.Keys, c.Reads, c.Appends)
	if c.ReadOnlyPhases {
		b.WriteString(" read-only-phases")
	}
	if c.Spares > 0 {
		fmt.Fprintf(&b, " spares=%d", c.Spares)
	}
	fmt.Fprintf(&b, " election=%v", c.ElectionTimeout)
	if c.HeartbeatInterval != 0 {
		fmt.Fprintf(&b, " heartbeat=%v", c.HeartbeatInterval)
	}
	if c.LeaseRatio != 0 {
		fmt.Fprintf(&b, " lease-ratio=%.3f", c.LeaseRatio)
	}
	fmt.Fprintf(&b, " max-drift=%g lease-drift-bound=%v", c.MaxDrift, c.LeaseDriftBound)
	if c.ApplyBatch != 0 {
		fmt.Fprintf(&b, " apply-batch=%d", c.ApplyBatch)
	}
	if c.MaxInflightMsgs != 0 {
		fmt.Fprintf(&b, " inflight=%d", c.MaxInflightMsgs)
	}
	if c.MaxBytesPerRPC != 0 {
		fmt.Fprintf(&b, " rpc-bytes=%d", c.MaxBytesPerRPC)
	}
	if c.DisablePreVote {
		b.WriteString(" no-pre-vote")
	}
	if c.DisableCheckQuorum {
		b.WriteString(" no-check-quorum")
	}
	if c.SnapshotEntries > 0 {
		fmt.Fprintf(&b, " snapshot-every=%d trailing=%d padding=%d", c.SnapshotEntries, c.SnapshotTrailing, c.SnapshotPadding)
		if c.snapshotsDiffer {
			b.WriteString(" snapshots-differ")
		}
	} else {
		b.WriteString(" no-snapshots")
	}
	return b.String()
}
