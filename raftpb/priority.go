package raftpb

// priorityHigh matches actors.HighPriority (raftpb imports nothing of
// asyncraft).
const priorityHigh int8 = 7

// GetPriority lets elections and heartbeats overtake a backlog of
// replication traffic in a node's priority mailbox: a follower must not
// time out, nor a vote wait, behind a queue of AppendEntries.
func (e *Envelope) GetPriority() int8 {
	switch e.Body.(type) {
	case *Envelope_PreVoteRequest, *Envelope_PreVoteResponse,
		*Envelope_VoteRequest, *Envelope_VoteResponse,
		*Envelope_HeartbeatRequest, *Envelope_HeartbeatResponse,
		*Envelope_TimeoutNow:
		return priorityHigh
	}
	return 4
}
