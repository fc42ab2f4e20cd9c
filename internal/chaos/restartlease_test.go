package chaos

import (
	"fmt"
	"testing"
	"time"
)

// TestRestartLease runs the scripted scenario of a voter restarting while
// a leader's lease rests on it, at several points of the lease, over many
// seeds: no run may see a stale read or a leader elected within another's
// lease. (The same scenario with the planted VoteAfterRestart is caught:
// TestPlantedFaultsAreCaught.)
func TestRestartLease(t *testing.T) {
	seeds := 25
	if raceEnabled || testing.Short() {
		seeds = 3
	}
	var cfgs []Config
	var cuts []time.Duration
	for _, cut := range []time.Duration{300 * time.Millisecond, 700 * time.Millisecond, 990 * time.Millisecond, 1200 * time.Millisecond} {
		for s := uint64(1); s <= uint64(seeds); s++ {
			cfgs = append(cfgs, Config{Seed: s})
			cuts = append(cuts, cut)
		}
	}
	results := make([]Result, len(cfgs))
	parallel(len(cfgs), func(i int) { results[i] = RestartLease(cfgs[i], cuts[i]) })
	reads := 0
	for i, r := range results {
		if !r.Passed() {
			t.Errorf("cut after %v, seed %d: %v", cuts[i], r.Seed, r.Violations[0])
		}
		reads += r.OK
	}
	if reads == 0 {
		t.Fatal("no operation succeeded: the scenario tested nothing")
	}
	t.Log(fmt.Sprintf("%d runs, %d operations acknowledged", len(results), reads))
}
