package node

// Leadership transfer on the leader, in the harness of harness_test.go.

import (
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/raftpb"
)

// runCompletions runs the callbacks the node sent its host's executor
// since the last call (the harness's executor only records them).
func (w *world) runCompletions(from *int) {
	for ; *from < len(w.exec.msgs); *from++ {
		if b, ok := w.exec.msgs[*from].(closure.Batch); ok {
			for _, c := range b {
				c.Closure.Run(c.Status)
			}
		}
	}
}

// TestHarnessTransferTimeoutAfterTimeoutNow: a transfer whose target was
// told to campaign but did not lead within an election timeout ends with
// ETIMEDOUT saying that the target may still win; one whose target never
// caught up (so never told) ends with ETIMEDOUT that does not say so.
func TestHarnessTransferTimeoutAfterTimeoutNow(t *testing.T) {
	forSeeds(t, func(t *testing.T, seed uint64) {
		for _, c := range []struct {
			to       string
			timedOut bool // TimeoutNow sent
		}{{"b", true}, {"c", false}} {
			w := newWorld(t, setup{seed: seed, term: 1, log: ents(1, 1, 1)})
			w.leadWithVoteOf("b", 0xb0b)
			w.stable(2, 2)
			// b holds the whole log; c never answers.
			last := w.sentTo(w.peers["b"].ref)
			w.fromPeerTo("b", replicatorRef("A", hGroup, hSelf, "b", 2), 2, &raftpb.Envelope{Seq: last[len(last)-1].Seq,
				Body: &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{Success: true, MatchIndex: 2, LastLogIndex: 2}}})

			var outcomes []error
			ran := 0
			w.A.Send(hNodeRef, TransferLeadership{To: c.to, Done: func(err error) { outcomes = append(outcomes, err) }})
			w.settle()
			for i := 0; len(outcomes) == 0 && i < 2*hTicks.Election; i++ {
				w.tick(1)
				w.runCompletions(&ran)
			}
			if len(outcomes) != 1 {
				w.fatalf("transfer to %s: %d outcomes after %d ticks, want 1", c.to, len(outcomes), 2*hTicks.Election)
			}
			tn := got[*raftpb.Envelope_TimeoutNow](w.peers[c.to], w.peers[c.to].ref)
			err := outcomes[0]
			switch {
			case (len(tn) == 1) != c.timedOut:
				w.fatalf("transfer to %s: %d TimeoutNow sent", c.to, len(tn))
			case err == nil || !strings.Contains(err.Error(), "ETIMEDOUT"):
				w.fatalf("transfer to %s, which did not lead: %v, want ETIMEDOUT", c.to, err)
			case strings.Contains(err.Error(), "may still win") != c.timedOut:
				w.fatalf("transfer to %s (TimeoutNow sent: %v): %v; want 'may still win' only after TimeoutNow", c.to, c.timedOut, err)
			}
		}
	})
}
