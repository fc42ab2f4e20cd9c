package node

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// ackGate holds back what the node must not say before its state is
// durable (Raft §5, thesis §3.8):
//   - every outgoing message while the term and vote it rests on are not
//     on disk (so a vote is durable before it is granted, and a
//     candidate's vote for itself before its requests leave);
//   - a follower's successful append replies until their entries are on
//     disk.
//
// Invariants (checkInvariants): the outbox is empty whenever the saved
// hard state is the current one; every held ack is of the current term
// after newTerm, and beyond the durable index (else it would have left).
type ackGate struct {
	// savedTerm and savedVote are the durable hard state.
	savedTerm uint64
	savedVote string
	outbox    []outgoing
	// acks are successful append replies waiting for their entries to be
	// durable.
	acks []pendingAck
}

type outgoing struct {
	to  actors.Ref
	env *raftpb.Envelope
}

// pendingAck is a successful append reply to send once match is durable.
type pendingAck struct {
	to    actors.Ref
	seq   uint64
	term  uint64
	match uint64
}

// durable reports whether (term, vote) is on disk.
func (g *ackGate) durable(term uint64, vote string) bool {
	return term == g.savedTerm && vote == g.savedVote
}

// hold keeps a message until (term, vote) is durable; it reports false
// (send it now) when it already is.
func (g *ackGate) hold(term uint64, vote string, to actors.Ref, e *raftpb.Envelope) bool {
	if g.durable(term, vote) {
		return false
	}
	g.outbox = append(g.outbox, outgoing{to, e})
	return true
}

// saved records a hard state the log manager made durable. When it is the
// current (term, vote), it returns the held messages still worth sending
// (those of earlier terms are moot) and empties the outbox; otherwise a
// newer save is on its way and it returns nil.
func (g *ackGate) saved(hs *raftpb.HardState, term uint64, vote string) []outgoing {
	g.savedTerm, g.savedVote = hs.Term, hs.Vote
	if !g.durable(term, vote) {
		return nil
	}
	out := g.outbox[:0]
	for _, o := range g.outbox {
		if o.env.Term >= term {
			out = append(out, o)
		}
	}
	clear(g.outbox[len(out):])
	g.outbox = g.outbox[:0] // out shares the array: the caller sends it before the next hold
	return out
}

// holdAck keeps ack until its entries are durable.
func (g *ackGate) holdAck(ack pendingAck) { g.acks = append(g.acks, ack) }

// newTerm drops the acks of an earlier term: the old leader's requests
// need no answer.
func (g *ackGate) newTerm() { g.acks = g.acks[:0] }

// truncated drops the acks for entries from index from on, which the log
// no longer holds.
func (g *ackGate) truncated(from uint64) {
	keep := g.acks[:0]
	for _, ack := range g.acks {
		if ack.match < from {
			keep = append(keep, ack)
		}
	}
	clear(g.acks[len(keep):])
	g.acks = keep
}

// ready returns the acks of term whose entries are durable up to stable,
// coalesced per replicator (a success answers every earlier request, so
// only the latest is sent); acks of other terms are dropped.
func (g *ackGate) ready(term, stable uint64) []pendingAck {
	if len(g.acks) == 0 {
		return nil
	}
	var out []pendingAck
	keep := g.acks[:0]
	for _, ack := range g.acks {
		switch {
		case ack.term != term:
		case ack.match > stable:
			keep = append(keep, ack)
		default:
			merged := false
			for i := range out {
				if out[i].to == ack.to {
					if ack.seq > out[i].seq {
						out[i] = ack
					}
					merged = true
				}
			}
			if !merged {
				out = append(out, ack)
			}
		}
	}
	clear(g.acks[len(keep):])
	g.acks = keep
	return out
}

func (g *ackGate) checkInvariants(term uint64, vote string, stable uint64) {
	if len(g.outbox) > 0 && g.durable(term, vote) {
		invariants.Violate("ack gate: %d messages held although term %d and vote %q are durable", len(g.outbox), term, vote)
	}
	for _, ack := range g.acks {
		if ack.term == term && ack.match <= stable {
			invariants.Violate("ack gate: an ack for %d held although %d is durable", ack.match, stable)
		}
	}
}
