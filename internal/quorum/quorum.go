// Package quorum is the pure arithmetic of Raft decisions: which index a
// configuration has committed, and whether an election is won, lost or
// still open. It knows nothing of messages or time.
//
// A [Majority] is a set of voters that decides by strict majority. A
// [Joint] configuration is two majorities, the incoming one and (during a
// membership change, Raft thesis §4.3) the outgoing one; it decides only
// when both do. A Joint whose outgoing half is empty is an ordinary
// configuration.
package quorum

import (
	"slices"
	"strings"
)

// Majority is a set of voter ids, deciding by strict majority. The empty
// Majority is the neutral element of a Joint: it has committed every index
// and has won every vote.
type Majority []string

// NewMajority returns the voters as a sorted, duplicate-free Majority.
func NewMajority(ids ...string) Majority {
	m := slices.Clone(ids)
	slices.Sort(m)
	return slices.Compact(m)
}

// Contains reports whether id is a voter.
func (m Majority) Contains(id string) bool {
	_, ok := slices.BinarySearch(m, id)
	return ok
}

func (m Majority) String() string { return "(" + strings.Join(m, " ") + ")" }

// IndexOf returns the acknowledged index of a voter; ok is false for a
// voter that has acknowledged nothing.
type IndexOf func(id string) (index uint64, ok bool)

// Committed returns the largest index acknowledged by a majority of the
// voters. The empty Majority returns the maximum uint64.
func (m Majority) Committed(acked IndexOf) uint64 {
	n := len(m)
	if n == 0 {
		return ^uint64(0)
	}
	var stack [7]uint64
	idx := stack[:0]
	if n > len(stack) {
		idx = make([]uint64, 0, n)
	}
	for _, id := range m {
		v, _ := acked(id)
		idx = append(idx, v)
	}
	slices.Sort(idx)
	// With idx ascending, idx[n-q] is acknowledged by the q voters at
	// positions n-q..n-1, a majority when q = n/2+1.
	return idx[n-(n/2+1)]
}

// VoteResult is the state of an election.
type VoteResult int8

const (
	// VotePending: neither won nor lost yet.
	VotePending VoteResult = iota
	// VoteLost: a majority can no longer be reached.
	VoteLost
	// VoteWon: a majority granted.
	VoteWon
)

func (r VoteResult) String() string {
	switch r {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return "VoteResult(?)"
}

// VoteOf returns a voter's answer: granted, and whether it answered at all.
type VoteOf func(id string) (granted, answered bool)

// Vote tallies an election. The empty Majority has won.
func (m Majority) Vote(votes VoteOf) VoteResult {
	if len(m) == 0 {
		return VoteWon
	}
	yes, missing := 0, 0
	for _, id := range m {
		g, ok := votes(id)
		switch {
		case !ok:
			missing++
		case g:
			yes++
		}
	}
	q := len(m)/2 + 1
	switch {
	case yes >= q:
		return VoteWon
	case yes+missing >= q:
		return VotePending
	}
	return VoteLost
}

// Joint is a configuration of one or two majorities; both must agree.
// Joint[0] is the incoming (current) voters, Joint[1] the outgoing voters
// during a change (empty otherwise).
type Joint [2]Majority

// IsJoint reports whether a membership change is in progress.
func (j Joint) IsJoint() bool { return len(j[1]) > 0 }

// Contains reports whether id votes in either half.
func (j Joint) Contains(id string) bool { return j[0].Contains(id) || j[1].Contains(id) }

// IDs returns the voters of both halves, sorted and without duplicates.
func (j Joint) IDs() []string {
	return NewMajority(append(slices.Clone(j[0]), j[1]...)...)
}

func (j Joint) String() string {
	if !j.IsJoint() {
		return j[0].String()
	}
	return j[0].String() + "&&" + j[1].String()
}

// Committed returns the largest index committed in both halves.
func (j Joint) Committed(acked IndexOf) uint64 {
	return min(j[0].Committed(acked), j[1].Committed(acked))
}

// Vote tallies an election in both halves: won when both are won, lost
// when either is lost.
func (j Joint) Vote(votes VoteOf) VoteResult {
	a, b := j[0].Vote(votes), j[1].Vote(votes)
	switch {
	case a == VoteWon && b == VoteWon:
		return VoteWon
	case a == VoteLost || b == VoteLost:
		return VoteLost
	}
	return VotePending
}
