package chaos

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

// sweep runs cfgs in parallel and reports every failure with its replay
// command.
func sweep(t *testing.T, cfgs []Config) []Result {
	t.Helper()
	results := make([]Result, len(cfgs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = Run(cfgs[i])
			}
		}()
	}
	for i := range cfgs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, r := range results {
		if !r.Passed() {
			c := cfgs[i]
			t.Errorf("seed %d (%d nodes, nemesis %v): %d violations, first: %v\n  replay: go run ./cmd/asyncraft-sim -seed %d -nodes %d -nemesis %v -duration %v -v",
				r.Seed, c.Nodes, c.Nemeses, len(r.Violations), r.Violations[0], r.Seed, c.Nodes, c.Nemeses, c.Duration)
		}
	}
	return results
}

// TestSeeds runs the full nemesis mix over 200 fixed seeds (every fourth
// with five nodes) and 20 fresh ones, checking every property after each
// run.
func TestSeeds(t *testing.T) {
	fixed, fresh := 200, 20
	if raceEnabled || testing.Short() {
		fixed, fresh = 16, 4
	}
	base := testseed.For(t)
	var cfgs []Config
	add := func(seed uint64) {
		nodes := 3
		if seed%4 == 0 {
			nodes = 5
		}
		cfgs = append(cfgs, Config{Seed: seed, Nodes: nodes, Nemeses: AllNemeses, Duration: 20 * time.Second})
	}
	for s := uint64(1); s <= uint64(fixed); s++ {
		add(s)
	}
	for s := base; s < base+uint64(fresh); s++ {
		add(s)
	}
	start := time.Now()
	results := sweep(t, cfgs)
	wall := time.Since(start)
	var events, ops, crashes uint64
	var virtual time.Duration
	for _, r := range results {
		events += r.Events
		virtual += r.Virtual
		ops += uint64(r.Ops)
		crashes += uint64(r.Crashes)
	}
	t.Logf("%d seeds: %d events, %d client operations, %d crashes, %v virtual in %v wall (%v wall per virtual minute per core)",
		len(cfgs), events, ops, crashes, virtual.Round(time.Second), wall.Round(time.Millisecond),
		time.Duration(float64(wall)*float64(runtime.GOMAXPROCS(0))/virtual.Minutes()).Round(time.Millisecond))
	if ops < uint64(len(cfgs))*100 || crashes == 0 {
		t.Fatalf("the workload or the nemesis did nothing: %d operations, %d crashes", ops, crashes)
	}
}

// TestSameSeedSameTrace runs one seed twice under each nemesis alone and
// under all of them: the event traces must hash the same, and the verdicts
// must agree.
func TestSameSeedSameTrace(t *testing.T) {
	seed := testseed.For(t)
	kinds := []Nemesis{Partitions, Asymmetric, MessageFaults, Crashes, Crashes | TornWrites, ClockDrift, Pauses, AllNemeses}
	var cfgs []Config
	for s := seed; s < seed+3; s++ {
		for _, k := range kinds {
			c := Config{Seed: s, Nemeses: k, Duration: 10 * time.Second}
			cfgs = append(cfgs, c, c)
		}
	}
	results := sweep(t, cfgs)
	for i := 0; i < len(results); i += 2 {
		a, b := results[i], results[i+1]
		if a.TraceHash != b.TraceHash || a.Events != b.Events || a.Ops != b.Ops || a.OK != b.OK {
			t.Errorf("seed %d nemesis %v: trace %s/%d events/%d ops, then %s/%d/%d",
				cfgs[i].Seed, cfgs[i].Nemeses, a.TraceHash, a.Events, a.Ops, b.TraceHash, b.Events, b.Ops)
		}
	}
	// And the hash sees the run: another seed, another trace.
	if other := Run(Config{Seed: seed + 1, Duration: 10 * time.Second}); other.TraceHash == results[len(results)-1].TraceHash {
		t.Fatalf("seeds %d and %d gave the same trace", seed, seed+1)
	}
}

func TestParseNemeses(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Nemesis
	}{
		{"all", AllNemeses}, {"none", 0}, {"crash,torn", Crashes | TornWrites},
		{"partition, pause", Partitions | Pauses},
	} {
		got, err := ParseNemeses(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseNemeses(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if c.want != 0 && c.want != AllNemeses {
			if back, _ := ParseNemeses(got.String()); back != got {
				t.Errorf("%v does not round-trip through String (%q)", got, got.String())
			}
		}
	}
	if _, err := ParseNemeses("crash,earthquake"); err == nil {
		t.Fatal("an unknown nemesis was accepted")
	}
}

func Example() {
	r := Run(Config{Seed: 7, Duration: 5 * time.Second})
	fmt.Println(r.Passed())
	// Output: true
}
