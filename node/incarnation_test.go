package node

// Incarnations on a leader, in the harness of harness_test.go: what the
// leader learns of a voter's incarnation from its replicator's replies,
// and not from a vote, it passes on to the other followers.

import (
	"testing"

	"github.com/asyncraft/asyncraft/raftpb"
)

// leadWithVoteOf makes the node under test lead term 2 with the pre-vote
// and the vote of peer, whose vote carries incarnation inc.
func (w *world) leadWithVoteOf(peer string, inc uint64) {
	w.t.Helper()
	for ticks := 0; len(w.wire) == 0; ticks++ {
		if ticks > 3*hTicks.Election {
			w.fatalf("no pre-vote after %d ticks", ticks)
		}
		w.tick(1)
	}
	w.fromPeer(peer, 2, &raftpb.Envelope{Body: &raftpb.Envelope_PreVoteResponse{PreVoteResponse: &raftpb.VoteResponse{Granted: true}}})
	w.saveHardState()
	w.fromPeer(peer, 2, &raftpb.Envelope{Incarnation: inc,
		Body: &raftpb.Envelope_VoteResponse{VoteResponse: &raftpb.VoteResponse{Granted: true}}})
	if st := w.sh.Status(); st.Role != Leader || st.Term != 2 {
		w.fatalf("status %v in term %d, want the leader of term 2", st.Role, st.Term)
	}
}

// relayedTo is the incarnations the last request the leader's replicator
// sent to peer's node carried, and whether it sent any.
func (w *world) relayedTo(peer string) (map[string]uint64, bool) {
	sent := w.sentTo(w.peers[peer].ref)
	if len(sent) == 0 {
		return nil, false
	}
	out := map[string]uint64{}
	for _, p := range sent[len(sent)-1].GetVoters() {
		out[p.GetId()] = p.GetIncarnation()
	}
	return out, true
}

// TestHarnessLeaderRelaysAnIncarnationFromAReply: the leader won with b's
// vote, so it heard c's incarnation first in c's answer to its
// replicator, after b had answered the list the leader started with. It
// passes c's on to b with its next request all the same: a leader passes
// on what it learns whenever it learns it, not only what it knew when it
// began to lead (without that, b could take a wiped c's second vote in a
// term c voted in).
func TestHarnessLeaderRelaysAnIncarnationFromAReply(t *testing.T) {
	const incB, incC = 0xb0b, 0xc0c
	forSeeds(t, func(t *testing.T, seed uint64) {
		w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 1)})
		w.leadWithVoteOf("b", incB)
		w.stable(2, 2)

		// b gets the list the leader began with, which lacks c, and
		// answers it.
		got, ok := w.relayedTo("b")
		if !ok || got["b"] != incB || got["c"] != 0 {
			w.fatalf("the leader's first request to b carries incarnations %v (sent: %v), want b's alone", got, ok)
		}
		last := w.sentTo(w.peers["b"].ref)
		w.fromPeerTo("b", replicatorRef("A", hGroup, hSelf, "b", 2), 2, &raftpb.Envelope{Seq: last[len(last)-1].Seq, Incarnation: incB,
			Body: &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{Success: true, MatchIndex: 2, LastLogIndex: 2}}})
		w.tick(2)
		if got, _ := w.relayedTo("b"); len(got) != 0 {
			w.fatalf("b answered the list, and the leader's next request still carries %v", got)
		}

		// c answers its replicator: the leader learns c's incarnation.
		toC := w.sentTo(w.peers["c"].ref)
		if len(toC) == 0 {
			w.fatalf("the leader sent c nothing")
		}
		w.fromPeerTo("c", replicatorRef("A", hGroup, hSelf, "c", 2), 2, &raftpb.Envelope{Seq: toC[len(toC)-1].Seq, Incarnation: incC,
			Body: &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{Success: true, MatchIndex: 2, LastLogIndex: 2}}})
		w.tick(2)
		if got, ok := w.relayedTo("b"); !ok || got["c"] != incC || got["b"] != incB {
			w.fatalf("after c's answer, the leader's requests to b carry incarnations %v, want b's and c's", got)
		}
	})
}
