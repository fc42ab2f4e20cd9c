// Package logsearch holds the one search both sides of a conflict hint
// make in a Raft log: the follower to build the hint, the leader to act
// on it.
package logsearch

import "sort"

// LastTermAtMost returns the last index in (lo, hi] whose entry's term is
// at most term, or lo if there is none. Terms never decrease along a log,
// so it is a binary search. termOf gives an index's term; an index it
// cannot read counts as a term too high (the search stops before it). lo
// itself is not looked at: the caller knows it qualifies.
func LastTermAtMost(lo, hi, term uint64, termOf func(uint64) (uint64, error)) uint64 {
	if hi <= lo {
		return lo
	}
	return lo + uint64(sort.Search(int(hi-lo), func(j int) bool {
		t, err := termOf(lo + 1 + uint64(j))
		return err != nil || t > term
	}))
}
