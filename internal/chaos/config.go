// Package chaos runs seeded, faulty histories of a whole asyncraft group in
// the simulator and checks them: every Raft safety property, the
// linearizability of what clients saw (with porcupine), liveness once the
// faults heal, and that every closure runs exactly once.
//
// A run is a pure function of its Config: the same seed gives the same
// events, the same trace hash and the same verdict, so any failure replays
// from its seed (go run ./cmd/asyncraft-sim -seed S -v).
package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft"
)

// Nemesis is a set of fault kinds.
type Nemesis uint32

const (
	// Partitions cuts the network: random halves, a majority ring (each
	// node sees a majority, no two the same one), a bridge (two halves
	// sharing one node), or the leader alone.
	Partitions Nemesis = 1 << iota
	// Asymmetric cuts links one way only: a node that hears others but
	// cannot be heard, or the reverse.
	Asymmetric
	// MessageFaults drops, duplicates, reorders and delays messages for a
	// while.
	MessageFaults
	// Crashes kills nodes (one, or several at once) and restarts them from
	// what their disks kept.
	Crashes
	// TornWrites makes crashes tear unsynced writes instead of dropping
	// them.
	TornWrites
	// ClockDrift changes hosts' clock rates within Config.MaxDrift.
	ClockDrift
	// Pauses freezes a node (often the leader) for a while, as SIGSTOP or
	// a long GC pause would; it wakes up with stale beliefs.
	Pauses
	// Restarts crash nodes and restart them within an election timeout
	// (often at once): one node, or several in a row, and half the time
	// together with a cut around the leader at the same instant
	// (isolated, or deaf, or mute), on top of any cut already there.
	// Quick restarts test what a node must remember, or assume, about the
	// promises it made in its previous life.
	Restarts
	// InstallCrashes crashes the follower receiving a snapshot, or the
	// leader sending it, while its chunks flow, and restarts it after a
	// while: the install must resume or start over, and lose nothing.
	// (Only with snapshots on.)
	InstallCrashes
	// CorruptChunks flips a byte in one snapshot chunk in 6 on its way:
	// only the install's checksums stand between it and a follower
	// loading damaged state. (Only with snapshots on.)
	CorruptChunks
	// Membership changes the group's configuration on its leader: adds
	// voters and learners (from Config.Spares, nodes started to join, and
	// members removed before, with their data), promotes learners,
	// removes voters (the leader too) and learners, replaces voters, at
	// most one change at a time. Not part of AllNemeses: the recorded
	// seeds of the planted-bug tests were found without it; ask for it
	// with "all,membership".
	Membership

	// AllNemeses is every fault kind but Membership.
	AllNemeses = Partitions | Asymmetric | MessageFaults | Crashes | TornWrites | ClockDrift | Pauses | Restarts | InstallCrashes | CorruptChunks
)

var nemesisNames = []struct {
	n    Nemesis
	name string
}{
	{Partitions, "partition"}, {Asymmetric, "asymmetric"}, {MessageFaults, "faults"},
	{Crashes, "crash"}, {TornWrites, "torn"}, {ClockDrift, "drift"}, {Pauses, "pause"},
	{Restarts, "restart"}, {InstallCrashes, "install-crash"}, {CorruptChunks, "corrupt-chunk"},
	{Membership, "membership"},
}

func (n Nemesis) String() string {
	if n == AllNemeses {
		return "all"
	}
	if n == AllNemeses|Membership {
		return "all,membership"
	}
	var parts []string
	for _, x := range nemesisNames {
		if n&x.n != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// ParseNemeses parses "all", "none" or a comma-separated list of all,
// partition, asymmetric, faults, crash, torn, drift, pause, restart,
// install-crash, corrupt-chunk, membership.
func ParseNemeses(s string) (Nemesis, error) {
	switch s {
	case "all":
		return AllNemeses, nil
	case "none", "":
		return 0, nil
	}
	var n Nemesis
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "all" {
			n |= AllNemeses
			continue
		}
		found := false
		for _, x := range nemesisNames {
			if x.name == strings.TrimSpace(part) {
				n |= x.n
				found = true
			}
		}
		if !found {
			names := make([]string, len(nemesisNames))
			for i, x := range nemesisNames {
				names[i] = x.name
			}
			sort.Strings(names)
			return 0, fmt.Errorf("unknown nemesis %q (have: all, none, %s)", part, strings.Join(names, ", "))
		}
	}
	return n, nil
}

// Config describes one simulated history.
type Config struct {
	Seed  uint64
	Nodes int // default 3
	// Nemeses are the fault kinds injected during Duration. Default: all
	// (set NoNemesis to run without faults).
	Nemeses   Nemesis
	NoNemesis bool
	// Duration is the virtual time during which faults are injected; a
	// liveness phase without faults follows. Default 30 s.
	Duration time.Duration
	// Clients, Keys and the operation mix of the workload. Defaults: 5
	// clients, 6 keys, 40% reads, 30% appends, the rest puts.
	Clients int
	Keys    int
	Reads   float64
	Appends float64
	// ReadPaths are the ways a get may read, each equally likely:
	// asyncraft.ReadDefault goes through the log, ReadSafe and ReadLease
	// through Node.Read. Default: all three.
	ReadPaths []asyncraft.ReadMode
	// MaxDrift bounds the hosts' clock rate errors. Default 1e-3.
	MaxDrift float64
	// LeaseDriftBound is the nodes' NodeOptions.MaxClockDrift: how much the
	// lease allows clocks to drift apart over an election timeout. Default
	// 100 ms, far above what MaxDrift produces; a planted test sets it
	// below the drift to show that lease reads then go stale.
	LeaseDriftBound time.Duration
	// LivenessBound is how long after the faults heal the group has to
	// elect a leader and complete every client's next operation. Default
	// 30 s.
	LivenessBound time.Duration
	// ReadOnlyPhases makes the workload alternate between mixed phases
	// and phases of reads only (each 0.3–3 s), as read-mostly
	// applications do: while nobody writes, every log stays as up to date
	// as the leader's, which some faults need to matter.
	ReadOnlyPhases bool

	// Snapshots: every SnapshotEntries applied entries each node takes a
	// snapshot and compacts its log, keeping SnapshotTrailing entries
	// behind it (its WAL then has small segments, so that compaction drops
	// some); SnapshotPadding bytes of filler make each snapshot that much
	// larger (several chunks to install, a slower persist). Defaults: 100,
	// 20, 0. NoSnapshots turns snapshots off.
	SnapshotEntries  uint64
	SnapshotTrailing uint64
	SnapshotPadding  int
	NoSnapshots      bool

	// Spares is how many nodes beyond Nodes start without being members,
	// joining the group (NodeOptions.JoinIdentity), for the Membership
	// nemesis to add. Default 2 with Membership, else 0.
	Spares int

	// Node options; zero values keep the defaults (ElectionTimeout 1 s,
	// the library's defaults for the rest).
	ElectionTimeout    time.Duration
	HeartbeatInterval  time.Duration
	LeaseRatio         float64
	ApplyBatch         int
	MaxInflightMsgs    int
	MaxBytesPerRPC     uint64
	DisablePreVote     bool
	DisableCheckQuorum bool

	// SkipDirectChecks turns off the direct checks — that votes and
	// acknowledged entries are durable before they are sent, and that no
	// leader is elected while an earlier one holds a lease — leaving only
	// the end-to-end checks (used to show those catch planted bugs too).
	SkipDirectChecks bool
	// Trace receives the readable event trace and the nemesis' actions.
	Trace io.Writer
	// VisualizeDir, if set, receives porcupine's HTML visualisation of a
	// history that is not linearizable.
	VisualizeDir string

	swarm bool // drawn by Swarm (for replay commands)
	// snapshotsDiffer makes each node write its own bytes for the same
	// state (its id in the snapshot), as a state machine that iterates a
	// Go map does: two nodes' snapshots of one index then have different
	// checksums (InstallHandover).
	snapshotsDiffer bool
}

func (c Config) withDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Nemeses == 0 && !c.NoNemesis {
		c.Nemeses = AllNemeses
	}
	if c.NoNemesis {
		c.Nemeses = 0
	}
	if c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	if c.Spares == 0 && c.Nemeses&Membership != 0 {
		c.Spares = 2
	}
	if c.Clients == 0 {
		c.Clients = 5
	}
	if c.Keys == 0 {
		c.Keys = 6
	}
	if c.Reads == 0 && c.Appends == 0 {
		c.Reads, c.Appends = 0.4, 0.3
	}
	if len(c.ReadPaths) == 0 {
		c.ReadPaths = []asyncraft.ReadMode{asyncraft.ReadDefault, asyncraft.ReadSafe, asyncraft.ReadLease}
	}
	if c.MaxDrift == 0 {
		c.MaxDrift = 1e-3
	}
	if c.LeaseDriftBound == 0 {
		c.LeaseDriftBound = 100 * time.Millisecond
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = time.Second
	}
	if c.LivenessBound == 0 {
		c.LivenessBound = 30 * time.Second
	}
	if c.NoSnapshots {
		c.SnapshotEntries, c.SnapshotTrailing, c.SnapshotPadding = 0, 0, 0
		c.Nemeses &^= InstallCrashes | CorruptChunks
	} else {
		if c.SnapshotEntries == 0 {
			c.SnapshotEntries = 100
		}
		if c.SnapshotTrailing == 0 {
			c.SnapshotTrailing = 20
		}
	}
	return c
}
