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

func main() {
	var (
		seed     = flag.Uint64("seed", 0, "run this one seed")
		seeds    = flag.Int("seeds", 0, "run this many seeds, starting at -from")
		from     = flag.Uint64("from", 1, "first seed of -seeds")
		nodes    = flag.Int("nodes", 3, "nodes in the group")
		nemesis  = flag.String("nemesis", "all", "fault kinds: all, none, or a list of partition,asymmetric,faults,crash,torn,drift,pause")
		duration = flag.Duration("duration", 30*time.Second, "virtual time with faults (a liveness phase follows)")
		clients  = flag.Int("clients", 5, "concurrent clients")
		keys     = flag.Int("keys", 6, "keys the clients use")
		reads    = flag.Float64("reads", 0.4, "fraction of reads")
		appends  = flag.Float64("appends", 0.3, "fraction of appends (the rest are puts)")
		paths    = flag.String("read-paths", "log,safe,lease", "how reads are made, each equally likely: a list of log (through the log), safe (ReadIndex), lease")
		drift    = flag.Float64("max-drift", 1e-3, "bound of the hosts' clock drift")
		leaseDr  = flag.Duration("lease-drift-bound", 100*time.Millisecond, "the nodes' MaxClockDrift (the drift their leases allow for)")
		verbose  = flag.Bool("v", false, "print the event trace of a single seed")
		out      = flag.String("out", ".", "directory for porcupine visualisations of non-linearizable histories")
		workers  = flag.Int("workers", runtime.GOMAXPROCS(0), "seeds run in parallel with -seeds")
		plant    = flag.String("plant", "", "switch on a planted bug to see the checks catch it: "+plantable())
		noDurab  = flag.Bool("skip-durability-checks", false, "leave only the end-to-end checks")
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
		ReadPaths:            readPaths,
		Nodes:                *nodes,
		Nemeses:              nem,
		NoNemesis:            nem == 0,
		Duration:             *duration,
		Clients:              *clients,
		Keys:                 *keys,
		Reads:                *reads,
		Appends:              *appends,
		MaxDrift:             *drift,
		LeaseDriftBound:      *leaseDr,
		SkipDurabilityChecks: *noDurab,
		VisualizeDir:         *out,
	}
	replay := func(s uint64) string {
		extra := ""
		if *plant != "" {
			extra += " -plant " + *plant
		}
		if *noDurab {
			extra += " -skip-durability-checks"
		}
		return fmt.Sprintf("go run ./cmd/asyncraft-sim -seed %d -nodes %d -nemesis %s -duration %v -clients %d -keys %d -reads %g -appends %g -read-paths %s -max-drift %g -lease-drift-bound %v%s -v",
			s, *nodes, nem, *duration, *clients, *keys, *reads, *appends, *paths, *drift, *leaseDr, extra)
	}

	if *seeds == 0 {
		if *seed == 0 {
			*seed = 1
		}
		cfg.Seed = *seed
		if *verbose {
			cfg.Trace = os.Stdout
		}
		start := time.Now()
		r := chaos.Run(cfg)
		report(os.Stdout, r, time.Since(start), replay)
		if !r.Passed() {
			os.Exit(1)
		}
		return
	}

	start := time.Now()
	results := make([]chaos.Result, *seeds)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(1, *workers); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c := cfg
				c.Seed = *from + uint64(i)
				results[i] = chaos.Run(c)
			}
		}()
	}
	for i := 0; i < *seeds; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)

	violations := 0
	var events uint64
	var virtual time.Duration
	for _, r := range results {
		events += r.Events
		virtual += r.Virtual
		if !r.Passed() {
			violations++
			report(os.Stdout, r, 0, replay)
		}
	}
	fmt.Printf("wall=%v events=%d events/s=%.0f virtual=%v wall-per-virtual-minute=%v\n",
		wall.Round(time.Millisecond), events, float64(events)/wall.Seconds(), virtual.Round(time.Second),
		(time.Duration(float64(wall) / virtual.Minutes() * float64(max(1, *workers)))).Round(time.Microsecond))
	fmt.Printf("seeds=%d violations=%d\n", *seeds, violations)
	if violations > 0 {
		os.Exit(1)
	}
}

func plantable() string {
	var names []string
	for _, f := range faults.All {
		names = append(names, f.String())
	}
	return strings.Join(names, ", ")
}

func report(w io.Writer, r chaos.Result, wall time.Duration, replay func(uint64) string) {
	fmt.Fprintf(w, "seed=%d ops=%d (ok %d, failed %d, unknown %d) nemesis-actions=%d crashes=%d virtual=%v",
		r.Seed, r.Ops, r.OK, r.Failed, r.Unknown, r.Actions, r.Crashes, r.Virtual.Round(time.Millisecond))
	if wall > 0 {
		fmt.Fprintf(w, " wall=%v", wall.Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	if r.Passed() {
		fmt.Fprintf(w, "seed=%d events=%d trace=%s ok\n", r.Seed, r.Events, r.TraceHash)
		return
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
