package replicator

import (
	"testing"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/raftpb"
)

// TestContactOvertakesBacklog: what keeps a leader in place is as urgent
// as the node's clock ticks, in the nodes' priority mailboxes
// (actors/proto tests that such messages overtake a backlog):
// heartbeats and votes at every node, and at the leader the replicators'
// Progress, the contact that check-quorum weighs its ticks against.
// Replication traffic is not.
func TestContactOvertakesBacklog(t *testing.T) {
	urgent := []any{
		Progress{},
		&raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatRequest{}},
		&raftpb.Envelope{Body: &raftpb.Envelope_HeartbeatResponse{}},
		&raftpb.Envelope{Body: &raftpb.Envelope_VoteRequest{}},
		&raftpb.Envelope{Body: &raftpb.Envelope_PreVoteRequest{}},
	}
	for _, m := range urgent {
		if p, ok := m.(actors.Prioritized); !ok || p.GetPriority() != actors.HighPriority {
			t.Errorf("%T (%v) does not overtake a backlog", m, m)
		}
	}
	for _, m := range []any{
		&raftpb.Envelope{Body: &raftpb.Envelope_AppendRequest{}},
		&raftpb.Envelope{Body: &raftpb.Envelope_AppendResponse{}},
	} {
		if p, ok := m.(actors.Prioritized); ok && p.GetPriority() >= actors.HighPriority {
			t.Errorf("%T (%v) overtakes the backlog it is part of", m, m)
		}
	}
}
