package chaos

import (
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// TestHardStateInvariants feeds the oracle's hard-state check the saves
// it must accept and those it must catch.
func TestHardStateInvariants(t *testing.T) {
	hs := func(term uint64, vote string) *raftpb.HardState { return &raftpb.HardState{Term: term, Vote: vote} }
	for _, c := range []struct {
		prev, next *raftpb.HardState
		bad        string
	}{
		{nil, hs(1, "a"), ""},
		{hs(1, ""), hs(1, "a"), ""},      // first vote of the term
		{hs(1, "a"), hs(1, "a"), ""},     // saved again
		{hs(1, "a"), hs(2, ""), ""},      // a new term clears the vote
		{hs(2, "a"), hs(1, "a"), "term"}, // back a term
		{hs(1, "a"), hs(1, "b"), "vote"}, // a second vote in a term
		{hs(1, "a"), hs(1, ""), "vote"},  // a vote taken back
	} {
		r := &run{seen: map[string]bool{}}
		r.oracle = newOracle(r)
		r.oracle.savedHardState("n1", c.prev, c.next)
		switch {
		case c.bad == "" && len(r.violations) > 0:
			t.Errorf("%v then %v: %v", c.prev, c.next, r.violations[0])
		case c.bad != "" && (len(r.violations) == 0 || !strings.Contains(r.violations[0].Detail, c.bad)):
			t.Errorf("%v then %v: want a violation about the %s, got %v", c.prev, c.next, c.bad, r.violations)
		}
	}
}

// TestTruncationInvariant: truncating a log at an index whose entry is
// known committed is caught; truncating a conflicting entry there is not.
func TestTruncationInvariant(t *testing.T) {
	s := logmgr.NewMemoryStorage()
	if err := s.Append([]*raftpb.Entry{{Index: 1, Term: 1, Data: []byte("x")}, {Index: 2, Term: 1, Data: []byte("y")}}); err != nil {
		t.Fatal(err)
	}
	r := &run{seen: map[string]bool{}}
	r.oracle = newOracle(r)
	r.oracle.committed[1] = entry{term: 1, data: "x"}
	r.oracle.committed[2] = entry{term: 2, data: "z"}
	r.oracle.truncating("n1", s, 2) // holds (1, "y") where (2, "z") is committed: a conflict, fine
	if len(r.violations) != 0 {
		t.Fatalf("truncating a conflicting entry flagged: %v", r.violations)
	}
	r.oracle.truncating("n1", s, 1)
	if len(r.violations) != 1 || r.violations[0].Check != "committed entry truncated" {
		t.Fatalf("truncating a committed entry not caught: %v", r.violations)
	}
}
