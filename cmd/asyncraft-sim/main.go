// Command asyncraft-sim runs simulated asyncraft clusters from seeds: a
// group of nodes under a closed-loop workload, with leader crashes and
// restarts, in virtual time. Each run is a pure function of its seed, so a
// failing seed replays exactly.
//
//	go run ./cmd/asyncraft-sim -seed 42          # one seed; last line: seed=42 events=… trace=… ok
//	go run ./cmd/asyncraft-sim -seeds 100        # seeds 1..100; last line: seeds=100 violations=0
//	go run ./cmd/asyncraft-sim -seed 42 -v       # with the readable event trace
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/asyncraft/asyncraft/internal/cluster"
)

func main() {
	var (
		seed     = flag.Uint64("seed", 0, "run this one seed")
		seeds    = flag.Int("seeds", 0, "run this many seeds, from -from")
		from     = flag.Uint64("from", 1, "first seed of -seeds")
		nodes    = flag.Int("nodes", 3, "nodes in the group")
		duration = flag.Duration("duration", time.Minute, "virtual time per seed")
		verbose  = flag.Bool("v", false, "print the event trace")
	)
	flag.Parse()
	if *seeds == 0 && *seed == 0 {
		*seed = 1
	}
	if *seeds == 0 {
		var trace io.Writer
		if *verbose {
			trace = os.Stdout
		}
		r := runSeed(*seed, *nodes, *duration, trace)
		if r.err != nil {
			fmt.Printf("seed=%d events=%d trace=%s VIOLATION: %v\nreplay: go run ./cmd/asyncraft-sim -seed %d -nodes %d -duration %v -v\n",
				*seed, r.events, r.hash, r.err, *seed, *nodes, *duration)
			os.Exit(1)
		}
		fmt.Printf("seed=%d events=%d trace=%s ok\n", *seed, r.events, r.hash)
		return
	}
	violations := 0
	start := time.Now()
	var events uint64
	for s := *from; s < *from+uint64(*seeds); s++ {
		r := runSeed(s, *nodes, *duration, nil)
		events += r.events
		if r.err != nil {
			violations++
			fmt.Printf("seed=%d VIOLATION: %v\nreplay: go run ./cmd/asyncraft-sim -seed %d -nodes %d -duration %v -v\n", s, r.err, s, *nodes, *duration)
		}
	}
	el := time.Since(start)
	fmt.Printf("wall=%v events=%d events/s=%.0f\n", el.Round(time.Millisecond), events, float64(events)/el.Seconds())
	fmt.Printf("seeds=%d violations=%d\n", *seeds, violations)
	if violations > 0 {
		os.Exit(1)
	}
}

type result struct {
	events uint64
	hash   string
	err    error
}

// runSeed runs one simulated history: a closed-loop workload against
// whoever leads, and a crash and restart of the leader every few seconds.
func runSeed(seed uint64, nodes int, duration time.Duration, trace io.Writer) (r result) {
	c := cluster.New(cluster.Options{Seed: seed, Nodes: nodes, Trace: trace})
	defer func() {
		r.events, r.hash = c.Sim.Events(), c.Sim.TraceHash()
		if len(c.Panics) > 0 && r.err == nil {
			r.err = fmt.Errorf("actor panic: %s", c.Panics[0])
		}
	}()
	o := cluster.NewOutcomes()
	end := c.Sim.Now() + duration
	var crashed string
	for c.Sim.Now() < end {
		l := c.StableLeader()
		if l != "" && o.Completed() == o.Issued() {
			c.Load(l, fmt.Sprintf("s%d-", c.Sim.Now()), 200, 16, o)
		}
		c.Sim.RunFor(2 * time.Second)
		if crashed != "" {
			if err := c.Restart(crashed); err != nil {
				return result{err: err}
			}
			crashed = ""
		} else if l := c.Leader(); l != "" {
			c.Crash(l)
			crashed = l
		}
	}
	if crashed != "" {
		if err := c.Restart(crashed); err != nil {
			return result{err: err}
		}
	}
	if _, err := c.WaitLeader(time.Minute); err != nil {
		return result{err: fmt.Errorf("liveness: %w", err)}
	}
	c.Sim.RunFor(5 * time.Second)
	if err := c.CheckApplied(); err != nil {
		return result{err: fmt.Errorf("state machine safety: %w", err)}
	}
	if o.Double > 0 {
		return result{err: fmt.Errorf("%d closures ran twice", o.Double)}
	}
	return result{}
}
