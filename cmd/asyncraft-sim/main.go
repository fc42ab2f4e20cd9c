// Command asyncraft-sim runs seeded, faulty histories of an asyncraft group
// in the deterministic simulator and checks each one: election safety, log
// matching, leader completeness, state machine safety, durability, that
// every acknowledged write is applied, linearizability of the clients'
// history (porcupine), liveness once the faults heal, and that every
// closure runs exactly once. A run is a pure function of its seed, so any
// failure replays exactly.
//
//	go run ./cmd/asyncraft-sim -seed 42            # one seed; last line: seed=42 events=… trace=… ok
//	go run ./cmd/asyncraft-sim -seeds 1000         # seeds 1..1000; last line: seeds=1000 violations=0
//	go run ./cmd/asyncraft-sim -seed 42 -v         # with the readable event trace
//	go run ./cmd/asyncraft-sim -nemesis crash,partition -nodes 5
//	go run ./cmd/asyncraft-sim -swarm -seeds 1000  # each seed draws its faults, timing and workload
//	go run ./cmd/asyncraft-sim -swarm -soak 8h     # seeds until the time is up, with progress lines
//	go run ./cmd/asyncraft-sim -scenario restart-lease -seeds 1000   # a scripted scenario over many seeds
//
// Every run ends with the throughput in seeds per core-hour (one core runs
// one seed at a time; -workers sets how many run at once).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/internal/chaos"
	"github.com/asyncraft/asyncraft/internal/faults"
)

// scenario is a scripted history -scenario runs; cut is -cut.
type scenario struct {
	name, what string
	run        func(c chaos.Config, cut time.Duration) chaos.Result
}

func plain(f func(chaos.Config) chaos.Result) func(chaos.Config, time.Duration) chaos.Result {
	return func(c chaos.Config, _ time.Duration) chaos.Result { return f(c) }
}

var scenarios = []scenario{
	{"restart-lease", "a voter restarts while a lease rests on it; -cut sets when", chaos.RestartLease},
	{"figure8", "Figure 8 of the Raft paper", plain(chaos.Figure8)},
	{"joint-loss", "a change of voters while the old majority is cut off", plain(chaos.JointLoss)},
	{"transfer-lease", "a leadership transfer whose old leader does not hear the new one", plain(chaos.TransferLease)},
	{"wiped-vote", "a voter back on a wiped disk in the term it voted in", plain(chaos.WipedVote)},
	{"wiped-follower", "the same, asked by a node that never heard from that voter itself", plain(chaos.WipedFollower)},
	{"readd-behind", "a member removed and added back on new data, then leading, while a follower missed both changes", plain(chaos.ReaddBehind)},
	{"install-handover", "an install a new leader takes over with its own snapshot of the same index", plain(chaos.InstallHandover)},
}

func findScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

func scenarioNames() string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

func scenarioHelp() string {
	parts := make([]string, len(scenarios))
	for i, s := range scenarios {
		parts[i] = s.name + " (" + s.what + ")"
	}
	return strings.Join(parts, ", ")
}

func main() {
	var (
		seed      = flag.Uint64("seed", 0, "run this one seed")
		seeds     = flag.Int("seeds", 0, "run this many seeds, starting at -from")
		from      = flag.Uint64("from", 1, "first seed of -seeds")
		nodes     = flag.Int("nodes", 3, "nodes in the group")
		nemesis   = flag.String("nemesis", "all", "fault kinds: all, none, or a list of all,partition,asymmetric,faults,crash,torn,drift,pause,restart,install-crash,corrupt-chunk,membership (all is every kind but membership)")
		duration  = flag.Duration("duration", 30*time.Second, "virtual time with faults (a liveness phase follows)")
		clients   = flag.Int("clients", 5, "concurrent clients")
		keys      = flag.Int("keys", 6, "keys the clients use")
		reads     = flag.Float64("reads", 0.4, "fraction of reads")
		appends   = flag.Float64("appends", 0.3, "fraction of appends (the rest are puts)")
		paths     = flag.String("read-paths", "log,safe,lease", "how reads are made, each equally likely: a list of log (through the log), safe (ReadIndex), lease")
		drift     = flag.Float64("max-drift", 1e-3, "bound of the hosts' clock drift")
		leaseDr   = flag.Duration("lease-drift-bound", 100*time.Millisecond, "the nodes' MaxClockDrift (the drift their leases allow for)")
		verbose   = flag.Bool("v", false, "print the event trace of a single seed")
		out       = flag.String("out", ".", "directory for porcupine visualisations of non-linearizable histories")
		workers   = flag.Int("workers", runtime.GOMAXPROCS(0), "seeds run in parallel with -seeds")
		plant     = flag.String("plant", "", "switch on a planted bug to see the checks catch it: "+plantable())
		noDirect  = flag.Bool("skip-direct-checks", false, "leave only the end-to-end checks (no durability or lease-safety checks)")
		swarm     = flag.Bool("swarm", false, "swarm testing: each seed draws its own fault kinds, node timing, batching and workload (the other workload flags are ignored)")
		phases    = flag.Bool("read-only-phases", false, "alternate the workload between mixed and read-only phases")
		soak      = flag.Duration("soak", 0, "run seeds from -from until this much wall time has passed (instead of -seeds), printing progress")
		scenario  = flag.String("scenario", "", "run a scripted scenario instead of the nemesis: "+scenarioHelp())
		cut       = flag.Duration("cut", 990*time.Millisecond, "restart-lease: time from cutting the leader from one follower to restarting the other")
		snapEvery = flag.Uint64("snapshot-entries", 100, "each node takes a snapshot every this many applied entries and compacts its log (0: no snapshots)")
		snapTrail = flag.Uint64("snapshot-trailing", 20, "entries a node keeps in its log behind its newest snapshot")
		snapPad   = flag.Int("snapshot-padding", 0, "bytes of filler in each snapshot (several chunks to install, a slower persist)")
	)
	flag.Parse()
	nem, err := chaos.ParseNemeses(*nemesis)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asyncraft-sim:", err)
		os.Exit(2)
	}
	if *plant != "" {
		f, ok := faults.Parse(*plant)
		if !ok {
			fmt.Fprintf(os.Stderr, "asyncraft-sim: unknown planted bug %q (have: %s)\n", *plant, plantable())
			os.Exit(2)
		}
		faults.Set(f)
	}
	readPaths, err := parseReadPaths(*paths)
	if err != nil {
		fmt.Fprintln(os.Stderr, "asyncraft-sim:", err)
		os.Exit(2)
	}
	cfg := chaos.Config{
		ReadPaths:        readPaths,
		Nodes:            *nodes,
		Nemeses:          nem,
		NoNemesis:        nem == 0,
		Duration:         *duration,
		Clients:          *clients,
		Keys:             *keys,
		Reads:            *reads,
		Appends:          *appends,
		MaxDrift:         *drift,
		LeaseDriftBound:  *leaseDr,
		SkipDirectChecks: *noDirect,
		VisualizeDir:     *out,
		ReadOnlyPhases:   *phases,
		SnapshotEntries:  *snapEvery,
		SnapshotTrailing: *snapTrail,
		SnapshotPadding:  *snapPad,
		NoSnapshots:      *snapEvery == 0,
	}
	// configFor is the configuration of one seed.
	configFor := func(s uint64) chaos.Config {
		if !*swarm {
			c := cfg
			c.Seed = s
			return c
		}
		c := chaos.Swarm(s)
		c.SkipDirectChecks, c.VisualizeDir = *noDirect, *out
		return c
	}
	replay := func(s uint64) string {
		extra := ""
		if *plant != "" {
			extra += " -plant " + *plant
		}
		if *noDirect {
			extra += " -skip-direct-checks"
		}
		if *scenario != "" {
			extra += " -scenario " + *scenario
			if *scenario == "restart-lease" {
				extra += fmt.Sprintf(" -cut %v", *cut)
			}
		}
		if *swarm {
			return fmt.Sprintf("go run ./cmd/asyncraft-sim -swarm -seed %d%s -v", s, extra)
		}
		if *phases {
			extra += " -read-only-phases"
		}
		return fmt.Sprintf("go run ./cmd/asyncraft-sim -seed %d -nodes %d -nemesis %s -duration %v -clients %d -keys %d -reads %g -appends %g -read-paths %s -max-drift %g -lease-drift-bound %v%s -v",
			s, *nodes, nem, *duration, *clients, *keys, *reads, *appends, *paths, *drift, *leaseDr, extra)
	}
	describe := func(s uint64) string {
		if !*swarm {
			return ""
		}
		return configFor(s).Describe()
	}

	runOne := chaos.Run
	if *scenario != "" {
		sc, ok := findScenario(*scenario)
		if !ok {
			fmt.Fprintf(os.Stderr, "asyncraft-sim: unknown scenario %q (have: %s)\n", *scenario, scenarioNames())
			os.Exit(2)
		}
		runOne = func(c chaos.Config) chaos.Result { return sc.run(c, *cut) }
	}

	if *seeds == 0 && *soak == 0 {
		if *seed == 0 {
			*seed = 1
		}
		c := configFor(*seed)
		if *verbose {
			c.Trace = os.Stdout
		}
		if *swarm {
			fmt.Printf("swarm seed %d: %s\n", *seed, c.Describe())
		}
		start := time.Now()
		r := runOne(c)
		report(os.Stdout, r, time.Since(start), replay, describe)
		if !r.Passed() {
			os.Exit(1)
		}
		return
	}

	// Seeds run on the workers in order from -from; results are reported
	// as they finish.
	start := time.Now()
	var deadline time.Time
	if *soak > 0 {
		deadline = start.Add(*soak)
	}
	results := make(chan chaos.Result)
	next := make(chan uint64)
	var wg sync.WaitGroup
	workerN := max(1, *workers)
	for w := 0; w < workerN; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				results <- runOne(configFor(s))
			}
		}()
	}
	go func() {
		for i := uint64(0); *soak > 0 || i < uint64(*seeds); i++ {
			if *soak > 0 && time.Now().After(deadline) {
				break
			}
			next <- *from + i
		}
		close(next)
		wg.Wait()
		close(results)
	}()

	var done, violations, snaps, loads, installs, chunks, corrupted, changes, changesDone, transfers, transferred int
	var events uint64
	var virtual time.Duration
	lastProgress := start
	for r := range results {
		done++
		snaps, loads, installs, chunks, corrupted = snaps+r.Snapshots, loads+r.Loads, installs+r.Installs, chunks+r.Chunks, corrupted+r.Corrupted
		changes, changesDone = changes+r.Changes, changesDone+r.ChangesDone
		transfers, transferred = transfers+r.Transfers, transferred+r.Transferred
		events += r.Events
		virtual += r.Virtual
		if !r.Passed() {
			violations++
			report(os.Stdout, r, 0, replay, describe)
		}
		if *soak > 0 && time.Since(lastProgress) >= time.Minute {
			lastProgress = time.Now()
			fmt.Printf("progress: %v seeds=%d violations=%d seeds/core-hour=%.0f\n",
				time.Since(start).Round(time.Second), done, violations, perCoreHour(done, time.Since(start), workerN))
		}
	}
	wall := time.Since(start)
	fmt.Printf("wall=%v events=%d events/s=%.0f virtual=%v wall-per-virtual-minute=%v seeds/core-hour=%.0f\n",
		wall.Round(time.Millisecond), events, float64(events)/wall.Seconds(), virtual.Round(time.Second),
		(time.Duration(float64(wall) / virtual.Minutes() * float64(workerN))).Round(time.Microsecond),
		perCoreHour(done, wall, workerN))
	fmt.Printf("snapshots=%d loads=%d installs=%d chunks=%d corrupted=%d membership-changes=%d (completed %d) transfers=%d (completed %d)\n", snaps, loads, installs, chunks, corrupted, changes, changesDone, transfers, transferred)
	fmt.Printf("seeds=%d violations=%d\n", done, violations)
	if violations > 0 {
		os.Exit(1)
	}
}

// perCoreHour is the rate of n seeds in wall time on workers cores.
func perCoreHour(n int, wall time.Duration, workers int) float64 {
	return float64(n) / (wall.Hours() * float64(min(workers, runtime.NumCPU())))
}

func plantable() string {
	var names []string
	for _, f := range faults.All {
		names = append(names, f.String())
	}
	return strings.Join(names, ", ")
}

func report(w io.Writer, r chaos.Result, wall time.Duration, replay, describe func(uint64) string) {
	fmt.Fprintf(w, "seed=%d ops=%d (ok %d, failed %d, unknown %d) nemesis-actions=%d crashes=%d snapshots=%d loads=%d installs=%d chunks=%d corrupted=%d membership-changes=%d (completed %d) virtual=%v",
		r.Seed, r.Ops, r.OK, r.Failed, r.Unknown, r.Actions, r.Crashes, r.Snapshots, r.Loads, r.Installs, r.Chunks, r.Corrupted, r.Changes, r.ChangesDone, r.Virtual.Round(time.Millisecond))
	if wall > 0 {
		fmt.Fprintf(w, " wall=%v", wall.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if r.Passed() {
		fmt.Fprintf(w, "seed=%d events=%d trace=%s ok\n", r.Seed, r.Events, r.TraceHash)
		return
	}
	if d := describe(r.Seed); d != "" {
		fmt.Fprintf(w, "  swarm: %s\n", d)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  VIOLATION %s\n", v)
	}
	if r.Visualization != "" {
		fmt.Fprintf(w, "  history visualised in %s\n", r.Visualization)
	}
	fmt.Fprintf(w, "seed=%d events=%d trace=%s VIOLATED %s\n  replay: %s\n", r.Seed, r.Events, r.TraceHash, r.Violations[0].Check, replay(r.Seed))
}

// parseReadPaths parses -read-paths.
func parseReadPaths(list string) ([]asyncraft.ReadMode, error) {
	var out []asyncraft.ReadMode
	for _, p := range strings.Split(list, ",") {
		switch strings.TrimSpace(p) {
		case "log":
			out = append(out, asyncraft.ReadDefault)
		case "safe":
			out = append(out, asyncraft.ReadSafe)
		case "lease":
			out = append(out, asyncraft.ReadLease)
		default:
			return nil, fmt.Errorf("-read-paths: unknown read path %q (want log, safe or lease)", p)
		}
	}
	return out, nil
}
