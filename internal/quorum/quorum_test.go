package quorum

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

// oracleCommitted is the definition, checked the slow way: the largest
// index acknowledged by more than half the voters.
func oracleCommitted(m Majority, acked map[string]uint64) uint64 {
	if len(m) == 0 {
		return ^uint64(0)
	}
	var best uint64
	for _, cand := range m {
		i := acked[cand]
		n := 0
		for _, id := range m {
			if acked[id] >= i {
				n++
			}
		}
		if 2*n > len(m) && i > best {
			best = i
		}
	}
	return best
}

// oracleVote enumerates every way the missing voters could still answer.
func oracleVote(m Majority, votes map[string]bool) VoteResult {
	if len(m) == 0 {
		return VoteWon
	}
	var missing []string
	for _, id := range m {
		if _, ok := votes[id]; !ok {
			missing = append(missing, id)
		}
	}
	canWin, canLose := false, false
	for mask := 0; mask < 1<<len(missing); mask++ {
		yes := 0
		for _, id := range m {
			g, ok := votes[id]
			if !ok {
				for k, mid := range missing {
					if mid == id {
						g = mask&(1<<k) != 0
					}
				}
			}
			if g {
				yes++
			}
		}
		if 2*yes > len(m) {
			canWin = true
		} else {
			canLose = true
		}
	}
	switch {
	case canWin && !canLose:
		return VoteWon
	case canLose && !canWin:
		return VoteLost
	}
	return VotePending
}

func randomMajority(r *rand.Rand, pool []string) Majority {
	var ids []string
	for _, id := range pool {
		if r.IntN(2) == 0 {
			ids = append(ids, id)
		}
	}
	return NewMajority(ids...)
}

func TestAgainstOracle(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 0))
	pool := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	for iter := 0; iter < 20000; iter++ {
		j := Joint{randomMajority(r, pool), randomMajority(r, pool)}
		acked := map[string]uint64{}
		votes := map[string]bool{}
		for _, id := range pool {
			if r.IntN(4) > 0 {
				acked[id] = uint64(r.IntN(6))
			}
			if r.IntN(3) > 0 {
				votes[id] = r.IntN(2) == 0
			}
		}
		ackFn := func(id string) (uint64, bool) { v, ok := acked[id]; return v, ok }
		voteFn := func(id string) (bool, bool) { v, ok := votes[id]; return v, ok }
		wantC := min(oracleCommitted(j[0], acked), oracleCommitted(j[1], acked))
		if got := j.Committed(ackFn); got != wantC {
			t.Fatalf("seed %d iter %d: %v committed %d, oracle %d (acked %v)", seed, iter, j, got, wantC, acked)
		}
		a, b := oracleVote(j[0], votes), oracleVote(j[1], votes)
		want := VotePending
		if a == VoteWon && b == VoteWon {
			want = VoteWon
		} else if a == VoteLost || b == VoteLost {
			want = VoteLost
		}
		if got := j.Vote(voteFn); got != want {
			t.Fatalf("seed %d iter %d: %v vote %v, oracle %v (votes %v)", seed, iter, j, got, want, votes)
		}
	}
}

func TestCommittedExamples(t *testing.T) {
	acked := map[string]uint64{"a": 5, "b": 3, "c": 9}
	fn := func(id string) (uint64, bool) { v, ok := acked[id]; return v, ok }
	cases := []struct {
		j    Joint
		want uint64
	}{
		{Joint{NewMajority("a", "b", "c")}, 5},
		{Joint{NewMajority("a")}, 5},
		{Joint{NewMajority("a", "b")}, 3},
		{Joint{NewMajority("a", "b", "c", "d", "e")}, 3},
		{Joint{NewMajority("a", "c"), NewMajority("b", "c")}, 3},
	}
	for _, c := range cases {
		if got := c.j.Committed(fn); got != c.want {
			t.Errorf("%v: got %d want %d", c.j, got, c.want)
		}
	}
}

func TestLargeMajorityUsesHeap(t *testing.T) {
	var ids []string
	acked := map[string]uint64{}
	for i := 0; i < 11; i++ {
		id := fmt.Sprintf("n%02d", i)
		ids = append(ids, id)
		acked[id] = uint64(i)
	}
	m := NewMajority(ids...)
	got := m.Committed(func(id string) (uint64, bool) { return acked[id], true })
	if got != 5 {
		t.Fatalf("got %d want 5", got)
	}
}

func TestMajorityHelpers(t *testing.T) {
	m := NewMajority("c", "a", "b", "a")
	if len(m) != 3 || !m.Contains("b") || m.Contains("z") {
		t.Fatalf("%v", m)
	}
	j := Joint{NewMajority("a", "b"), NewMajority("b", "c")}
	if !j.IsJoint() || !j.Contains("c") || len(j.IDs()) != 3 || j.String() != "(a b)&&(b c)" {
		t.Fatalf("%v %v", j, j.IDs())
	}
}
