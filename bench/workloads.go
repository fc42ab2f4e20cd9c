package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// Spec is one workload run by one system in one client model (see
// package loadgen, which the member processes share).
type Spec = loadgen.Spec

// describe is a one-line description of the workload as spec.System runs
// it in spec.Client's model.
func describe(s Spec) string {
	if d := describeKind(s); d != "" {
		return d
	}
	var b strings.Builder
	b.WriteString(apiOf(s))
	fmt.Fprintf(&b, ", %s, %v + %v", plural(s.Clients, "client"), s.Warmup, s.Measure)
	topo := fmt.Sprintf("%s in %s", plural(s.Members, "member"), plural(s.Members, "process"))
	if s.InProc {
		topo = plural(s.Members, "member") + " in 1 process (no network)"
	}
	if s.Groups > 1 {
		topo += fmt.Sprintf(", %d groups", s.Groups)
	}
	return b.String() + ", " + topo
}

// apiOf names the calls a client makes.
func apiOf(s Spec) string {
	size := 8 + s.ValueSize
	read := s.Op == loadgen.OpRead
	switch s.System {
	case "dragonboat":
		if read {
			return "linearizable reads, SyncRead (ReadIndex + Lookup in the map)"
		}
		return fmt.Sprintf("SyncPropose of %d B commands", size)
	case "hashicorp":
		if read {
			return "linearizable reads, VerifyLeader().Error() + local map read"
		}
		return fmt.Sprintf("Apply(%d B command).Error()", size)
	}
	mode := "ReadSafe (ReadIndex)"
	if s.ReadMode == "lease" {
		mode = "ReadLease"
	}
	if s.Client == loadgen.ClientCallback {
		if read {
			return fmt.Sprintf("linearizable reads, Read(%s) with a callback + local map read", mode)
		}
		return fmt.Sprintf("Apply of %d B commands, next one from the callback", size)
	}
	if s.Client == "" { // a workload, before it is given a system and a model
		if read {
			return fmt.Sprintf("linearizable reads, %s + local map read", mode)
		}
		return fmt.Sprintf("propose %d B commands", size)
	}
	if read {
		return fmt.Sprintf("linearizable reads, ReadBarrier(%s) + local map read", mode)
	}
	return fmt.Sprintf("ApplyWait of %d B commands", size)
}

func plural(n int, what string) string {
	switch {
	case n == 1:
		return "1 " + what
	case strings.HasSuffix(what, "s"):
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// standardValue is the value size of the standard command (8 + 120 = 128
// bytes).
const standardValue = 120

func base(name string, clients int, warmup, measure time.Duration) Spec {
	return Spec{
		Name: name, Op: loadgen.OpPropose, Clients: clients, Warmup: warmup, Measure: measure,
		ValueSize: standardValue, Keys: 1024, Members: 3, Groups: 1, Sweep: "standard",
	}
}

// sweepNames lists the sweeps -sweep accepts, in run order.
var sweepNames = []string{"payload", "size", "multigroup", "inproc", "clients"}

// registry returns every workload, standard ones first. groups is the
// number of groups of the multigroup sweep.
func registry(groups int) []Spec {
	var out []Spec
	add := func(s Spec) { out = append(out, s) }

	// The standard workloads (docs/benchmarks.md).
	add(base("tput", 256, 2*time.Second, 10*time.Second))
	add(base("lat1", 1, time.Second, 5*time.Second))
	add(base("lat64", 64, time.Second, 5*time.Second))
	r := base("read64-index", 64, time.Second, 5*time.Second)
	r.Op, r.ReadMode = loadgen.OpRead, "index"
	add(r)
	r.Name, r.ReadMode = "read64-lease", "lease"
	add(r)

	// Sweeps: the tput load (256 clients), 1 s + 5 s.
	for _, v := range []struct {
		name string
		size int
	}{{"16", 16}, {"128", 128}, {"1k", 1 << 10}, {"16k", 16 << 10}} {
		s := base("tput-v"+v.name, 256, time.Second, 5*time.Second)
		s.ValueSize, s.Sweep, s.Param = v.size, "payload", v.size
		add(s)
	}
	for _, n := range []int{1, 3, 5} {
		s := base(fmt.Sprintf("tput-n%d", n), 256, time.Second, 5*time.Second)
		s.Members, s.Sweep, s.Param = n, "size", n
		add(s)
	}
	mg := base(fmt.Sprintf("tput-g%d", groups), 256, time.Second, 5*time.Second)
	mg.Groups, mg.Sweep, mg.Param = groups, "multigroup", groups
	add(mg)
	for _, s := range out[:3] { // tput, lat1, lat64 with everything in one process
		s.Name += "-inproc"
		s.InProc, s.Sweep = true, "inproc"
		add(s)
	}
	for _, c := range []int{1, 4, 16, 64, 256} {
		s := base(fmt.Sprintf("clients-%d", c), c, time.Second, 3*time.Second)
		s.Sweep, s.Param = "clients", c
		add(s)
	}

	// The snapshot workloads (snapruns.go), asyncraft only, by name only.
	soak := base("soak", 256, 2*time.Second, 10*time.Minute)
	soak.Kind, soak.Sweep, soak.Reps, soak.SampleEvery = kindSoak, snapshotFamily, 1, 10*time.Second
	soak.Node = &loadgen.NodeConfig{SnapshotEntries: soakSnapshotEntries}
	add(soak)
	for _, target := range []string{"follower", "leader"} {
		s := base("restart", 0, 0, 0)
		if target == "leader" {
			s.Name = "restart-leader"
		}
		s.Kind, s.Sweep, s.Target = kindRestart, snapshotFamily, target
		s.History, s.StateBytes, s.Tail = 10_000_000, 100<<20, 100_000
		// A snapshot every 500,000 entries: a member keeps 0.5–1 M entries
		// of log (back to the snapshot before its newest), which it reads
		// at start, beside loading the snapshot.
		s.Node = &loadgen.NodeConfig{SnapshotEntries: 500_000}
		add(s)
	}
	inst := base("install", 1, time.Second, 10*time.Second)
	inst.Kind, inst.Sweep, inst.StateBytes = kindInstall, snapshotFamily, 1<<30
	inst.Node = &loadgen.NodeConfig{SnapshotTrailingEntries: 1000, WALSegmentSize: 1 << 20}
	add(inst)

	// The membership workloads (membership.go), asyncraft only, by name
	// only.
	for _, s := range membershipSpecs() {
		add(s)
	}
	return out
}

// snapshotFamily is the Sweep of the snapshot workloads: selected by name
// only (-workload soak), never by "all".
const snapshotFamily = "snapshots"

// soakSnapshotEntries is soak's NodeOptions.SnapshotEntries: a snapshot
// every 2–5 s at tput's 40,000–100,000 ops/s.
const soakSnapshotEntries = 200_000

// describeKind describes a snapshot workload ("" for the others).
func describeKind(s Spec) string {
	switch s.Kind {
	case kindSoak:
		return fmt.Sprintf("tput's load (%s) for %v after %v, a snapshot every %s entries; sampled every %v: ops/s, leader RSS, data dirs; "+
			"first a plain tput (snapshots off) to compare", plural(s.Clients, "client"), s.Measure, s.Warmup, fmtInt(float64(s.Node.SnapshotEntries)), s.SampleEvery)
	case kindRestart:
		return fmt.Sprintf("a %s restarted after a history of %s entries with a %.0f MiB snapshot and %s entries after it: "+
			"StartNode (snapshot load), tail replay, first read served", s.Target, fmtInt(float64(s.History)), float64(s.StateBytes)/(1<<20), fmtInt(float64(s.Tail)))
	case kindInstall:
		return fmt.Sprintf("a %.0f MiB snapshot installed on a wiped follower, lat1 through the leader before/during/after (%v windows): "+
			"install time, RSS of both ends, lat1 p99", float64(s.StateBytes)/(1<<20), s.Measure)
	}
	return describeMembership(s)
}

// selectWorkloads resolves -workload and -sweep into the list to run.
// workloads is "all" (the standard five), or a comma list of names and
// sweep names; sweeps is a comma list of sweep names (or "all").
func selectWorkloads(reg []Spec, workloads, sweeps string) ([]Spec, error) {
	want := map[string]bool{}
	wantSweep := map[string]bool{}
	for _, w := range splitList(workloads) {
		switch {
		case w == "all":
			wantSweep["standard"] = true
		case slices.Contains(sweepNames, w):
			wantSweep[w] = true
		default:
			if !slices.ContainsFunc(reg, func(s Spec) bool { return s.Name == w }) {
				return nil, fmt.Errorf("unknown workload %q (see -list)", w)
			}
			want[w] = true
		}
	}
	for _, s := range splitList(sweeps) {
		switch {
		case s == "all":
			for _, n := range sweepNames {
				wantSweep[n] = true
			}
		case slices.Contains(sweepNames, s):
			wantSweep[s] = true
		default:
			return nil, fmt.Errorf("unknown sweep %q (one of %s, all)", s, strings.Join(sweepNames, ", "))
		}
	}
	var out []Spec
	for _, s := range reg {
		if want[s.Name] || wantSweep[s.Sweep] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload selected")
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
