package logsearch

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

// TestLastTermAtMostAgainstALinearScan compares the search with a linear
// scan over random logs (non-decreasing terms, some unreadable tails).
func TestLastTermAtMostAgainstALinearScan(t *testing.T) {
	seed := testseed.For(t)
	rnd := rand.New(rand.NewPCG(seed, 0))
	for round := 0; round < 2000; round++ {
		n := rnd.IntN(40)
		terms := make([]uint64, n+1) // terms[i] is the term of index i
		for i := 1; i <= n; i++ {
			terms[i] = terms[i-1] + uint64(rnd.IntN(3))
		}
		unreadable := uint64(n + 1) // indexes from here on fail
		if rnd.IntN(4) == 0 {
			unreadable = uint64(rnd.IntN(n + 1))
		}
		termOf := func(i uint64) (uint64, error) {
			if i >= unreadable || i > uint64(n) {
				return 0, errors.New("unreadable")
			}
			return terms[i], nil
		}
		lo := uint64(rnd.IntN(n + 1))
		hi := uint64(rnd.IntN(n + 2))
		term := uint64(rnd.IntN(int(terms[n]) + 2))
		want := lo
		for i := lo + 1; i <= hi; i++ {
			if t, err := termOf(i); err != nil || t > term {
				break
			}
			want = i
		}
		if got := LastTermAtMost(lo, hi, term, termOf); got != want {
			t.Fatalf("terms %v unreadable from %d: LastTermAtMost(%d, %d, %d) = %d, want %d", terms, unreadable, lo, hi, term, got, want)
		}
	}
}
