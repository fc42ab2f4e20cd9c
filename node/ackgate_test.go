package node

import (
	"slices"
	"testing"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Unit tests of the ack gate: no actor, no log manager.

var (
	peerB = actors.Ref{Host: "hb", Name: "b"}
	peerC = actors.Ref{Host: "hc", Name: "c"}
	repl1 = actors.Ref{Host: "leader", Name: "replicator-1"}
	repl2 = actors.Ref{Host: "leader", Name: "replicator-2"}
)

func testEnvelope(to string, term, seq uint64) *raftpb.Envelope {
	return &raftpb.Envelope{To: to, Term: term, Seq: seq}
}

// sameOutgoing reports whether got is want: the same destinations and the
// very same envelopes, in order.
func sameOutgoing(got, want []outgoing) bool {
	return slices.EqualFunc(got, want, func(a, b outgoing) bool { return a.to == b.to && a.env == b.env })
}

func TestAckGateHold(t *testing.T) {
	for _, tc := range []struct {
		name       string
		term       uint64
		vote       string
		wantHeld   bool
		wantOutbox int
	}{
		{"durable", 4, "a", false, 0},
		{"a later term", 5, "a", true, 1},
		{"another vote", 4, "b", true, 1},
		{"a vote where none is durable", 4, "", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ackGate{savedTerm: 4, savedVote: "a"}
			if got := g.durable(tc.term, tc.vote); got == tc.wantHeld {
				t.Errorf("durable(%d, %q) = %v with (4, a) saved", tc.term, tc.vote, got)
			}
			if got := g.hold(tc.term, tc.vote, peerB, testEnvelope("b", tc.term, 1)); got != tc.wantHeld {
				t.Errorf("hold at (%d, %q) with (4, a) saved = %v, want %v", tc.term, tc.vote, got, tc.wantHeld)
			}
			if len(g.outbox) != tc.wantOutbox {
				t.Errorf("outbox holds %d, want %d", len(g.outbox), tc.wantOutbox)
			}
		})
	}
}

// A save of an older hard state releases nothing; the save of the current
// one releases everything held, in order.
func TestAckGateSaved(t *testing.T) {
	g := ackGate{savedTerm: 1}
	// A candidate of term 2 votes for itself and asks for votes.
	e1, e2 := testEnvelope("b", 2, 1), testEnvelope("c", 2, 2)
	if !g.hold(2, "a", peerB, e1) || !g.hold(2, "a", peerC, e2) {
		t.Fatalf("sent before (2, a) is durable")
	}
	// The term alone reached the disk first (an older save).
	if out := g.saved(&raftpb.HardState{Term: 2}, 2, "a"); out != nil {
		t.Errorf("saved((2, \"\")) at (2, a) = %v, want nil", out)
	}
	if g.durable(2, "a") || !g.durable(2, "") {
		t.Errorf("after saving (2, \"\"): durable(2, a) %v, durable(2, \"\") %v", g.durable(2, "a"), g.durable(2, ""))
	}
	if !sameOutgoing(g.outbox, []outgoing{{peerB, e1}, {peerC, e2}}) {
		t.Errorf("outbox after an older save = %v, want e1, e2", g.outbox)
	}
	e3 := testEnvelope("b", 2, 3)
	if !g.hold(2, "a", peerB, e3) {
		t.Errorf("sent while (2, a) is still not durable")
	}
	out := g.saved(&raftpb.HardState{Term: 2, Vote: "a"}, 2, "a")
	if want := []outgoing{{peerB, e1}, {peerC, e2}, {peerB, e3}}; !sameOutgoing(out, want) {
		t.Errorf("saved((2, a)) = %v, want e1, e2, e3 in order", out)
	}
	if len(g.outbox) != 0 {
		t.Errorf("outbox holds %d after the current save", len(g.outbox))
	}
	if !g.durable(2, "a") || g.hold(2, "a", peerB, testEnvelope("b", 2, 4)) {
		t.Errorf("(2, a) is saved, but a send at (2, a) is held")
	}
	if violated(t, func() { g.checkInvariants(2, "a", 0) }) {
		t.Errorf("invariants violated after the current save")
	}
}

// Messages of terms before the current one are not sent when the hard state
// is saved: the node moved on.
func TestAckGateSavedDropsEarlierTerms(t *testing.T) {
	g := ackGate{savedTerm: 1}
	// Term 1: a vote for b, not yet durable.
	v1 := testEnvelope("b", 1, 1)
	g.hold(1, "b", peerB, v1)
	// Term 2: the node campaigns before that save returns.
	r1, r2 := testEnvelope("b", 2, 2), testEnvelope("c", 2, 3)
	g.hold(2, "a", peerB, r1)
	old := testEnvelope("c", 1, 4) // a reply built in term 1, held late
	g.hold(2, "a", peerC, old)
	g.hold(2, "a", peerC, r2)
	// The save of term 1 is older: nothing leaves.
	if out := g.saved(&raftpb.HardState{Term: 1, Vote: "b"}, 2, "a"); out != nil {
		t.Errorf("saved((1, b)) at (2, a) = %v, want nil", out)
	}
	out := g.saved(&raftpb.HardState{Term: 2, Vote: "a"}, 2, "a")
	if want := []outgoing{{peerB, r1}, {peerC, r2}}; !sameOutgoing(out, want) {
		t.Errorf("saved((2, a)) = %v, want r1, r2 (the term 1 messages dropped)", out)
	}
	if len(g.outbox) != 0 {
		t.Errorf("outbox holds %d after the current save", len(g.outbox))
	}
}

func TestAckGateReady(t *testing.T) {
	ack := func(to actors.Ref, seq, term, match uint64) pendingAck {
		return pendingAck{to: to, seq: seq, term: term, match: match}
	}
	for _, tc := range []struct {
		name         string
		held         []pendingAck
		term, stable uint64
		want, kept   []pendingAck
	}{
		{"none", nil, 2, 10, nil, nil},
		{"another term dropped",
			[]pendingAck{ack(repl1, 1, 1, 3), ack(repl1, 2, 3, 3)}, 2, 10,
			nil, nil},
		{"durable sent, beyond stable kept",
			[]pendingAck{ack(repl1, 1, 2, 5), ack(repl1, 2, 2, 8)}, 2, 5,
			[]pendingAck{ack(repl1, 1, 2, 5)}, []pendingAck{ack(repl1, 2, 2, 8)}},
		{"nothing durable yet",
			[]pendingAck{ack(repl1, 1, 2, 6), ack(repl2, 2, 2, 7)}, 2, 5,
			nil, []pendingAck{ack(repl1, 1, 2, 6), ack(repl2, 2, 2, 7)}},
		{"one replicator: coalesced",
			[]pendingAck{ack(repl1, 1, 2, 3), ack(repl1, 2, 2, 4), ack(repl1, 3, 2, 4)}, 2, 4,
			[]pendingAck{ack(repl1, 3, 2, 4)}, nil},
		{"one replicator: the highest seq, not the last",
			[]pendingAck{ack(repl1, 5, 2, 4), ack(repl1, 3, 2, 3)}, 2, 4,
			[]pendingAck{ack(repl1, 5, 2, 4)}, nil},
		{"two replicators, in first-seen order",
			[]pendingAck{ack(repl2, 7, 2, 3), ack(repl1, 1, 2, 3), ack(repl2, 8, 2, 4), ack(repl1, 2, 2, 4)}, 2, 4,
			[]pendingAck{ack(repl2, 8, 2, 4), ack(repl1, 2, 2, 4)}, nil},
		{"mixed",
			[]pendingAck{ack(repl1, 1, 1, 2), ack(repl1, 4, 2, 3), ack(repl2, 5, 2, 9), ack(repl1, 6, 2, 5), ack(repl2, 2, 2, 4)}, 2, 5,
			[]pendingAck{ack(repl1, 6, 2, 5), ack(repl2, 2, 2, 4)}, []pendingAck{ack(repl2, 5, 2, 9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g ackGate
			for _, a := range tc.held {
				g.holdAck(a)
			}
			got := g.ready(tc.term, tc.stable)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ready(%d, %d) = %v, want %v", tc.term, tc.stable, got, tc.want)
			}
			if !slices.Equal(g.acks, tc.kept) {
				t.Errorf("held after ready = %v, want %v", g.acks, tc.kept)
			}
			if violated(t, func() { g.checkInvariants(tc.term, "", tc.stable) }) {
				t.Errorf("invariants violated after ready")
			}
		})
	}
}

// Acks kept by ready leave once their entries are durable.
func TestAckGateReadyLater(t *testing.T) {
	var g ackGate
	g.holdAck(pendingAck{to: repl1, seq: 1, term: 2, match: 4})
	g.holdAck(pendingAck{to: repl1, seq: 2, term: 2, match: 6})
	if got := g.ready(2, 4); !slices.Equal(got, []pendingAck{{repl1, 1, 2, 4}}) {
		t.Errorf("ready(2, 4) = %v, want seq 1", got)
	}
	if got := g.ready(2, 5); got != nil {
		t.Errorf("ready(2, 5) = %v, want nil", got)
	}
	if got := g.ready(2, 6); !slices.Equal(got, []pendingAck{{repl1, 2, 2, 6}}) {
		t.Errorf("ready(2, 6) = %v, want seq 2", got)
	}
	if len(g.acks) != 0 {
		t.Errorf("held after all left: %v", g.acks)
	}
}

func TestAckGateNewTerm(t *testing.T) {
	var g ackGate
	g.holdAck(pendingAck{to: repl1, seq: 1, term: 2, match: 4})
	g.holdAck(pendingAck{to: repl2, seq: 2, term: 2, match: 5})
	g.newTerm()
	if len(g.acks) != 0 {
		t.Errorf("held after newTerm: %v", g.acks)
	}
	if got := g.ready(2, 10); got != nil {
		t.Errorf("ready after newTerm = %v, want nil", got)
	}
}

func TestAckGateTruncated(t *testing.T) {
	held := []pendingAck{{repl1, 1, 2, 3}, {repl2, 2, 2, 5}, {repl1, 3, 2, 7}}
	for _, tc := range []struct {
		from uint64
		kept []pendingAck
	}{
		{8, held},
		{7, held[:2]},
		{6, held[:2]},
		{5, held[:1]},
		{4, held[:1]},
		{3, nil},
		{1, nil},
	} {
		var g ackGate
		for _, a := range held {
			g.holdAck(a)
		}
		g.truncated(tc.from)
		if !slices.Equal(g.acks, tc.kept) {
			t.Errorf("truncated(%d): held %v, want %v", tc.from, g.acks, tc.kept)
		}
	}
}

func TestAckGateCheckInvariants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outbox bool   // a message held at (3, a)
		ack    uint64 // the match of an ack held in term 3 (0: none)
		term   uint64
		vote   string
		stable uint64
		want   bool
	}{
		{"empty", false, 0, 3, "a", 5, false},
		{"outbox while not durable", true, 0, 3, "b", 5, false},
		{"outbox while durable", true, 0, 3, "a", 5, true},
		{"ack beyond stable", false, 6, 3, "a", 5, false},
		{"ack durable", false, 5, 3, "a", 5, true},
		{"ack of another term", false, 5, 4, "a", 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ackGate{savedTerm: 3, savedVote: "a"}
			if tc.outbox {
				g.outbox = append(g.outbox, outgoing{peerB, testEnvelope("b", 3, 1)})
			}
			if tc.ack > 0 {
				g.holdAck(pendingAck{to: repl1, seq: 1, term: 3, match: tc.ack})
			}
			if got := violated(t, func() { g.checkInvariants(tc.term, tc.vote, tc.stable) }); got != tc.want {
				t.Errorf("checkInvariants(%d, %q, %d): violated %v, want %v", tc.term, tc.vote, tc.stable, got, tc.want)
			}
		})
	}
}
