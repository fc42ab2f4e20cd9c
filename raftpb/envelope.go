package raftpb

import "fmt"

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

// TraceString renders the envelope on one line for event traces, e.g.
// "g n1->n2 t5 #12 append prev=10/4 n=3 commit=9".
func (e *Envelope) TraceString() string {
	head := fmt.Sprintf("%s %s->%s t%d #%d ", e.Group, e.From, e.To, e.Term, e.Seq)
	switch b := e.Body.(type) {
	case *Envelope_PreVoteRequest:
		return head + fmt.Sprintf("pre-vote? last=%d/%d", b.PreVoteRequest.LastLogIndex, b.PreVoteRequest.LastLogTerm)
	case *Envelope_PreVoteResponse:
		return head + fmt.Sprintf("pre-vote granted=%v", b.PreVoteResponse.Granted)
	case *Envelope_VoteRequest:
		return head + fmt.Sprintf("vote? last=%d/%d transfer=%v", b.VoteRequest.LastLogIndex, b.VoteRequest.LastLogTerm, b.VoteRequest.LeadershipTransfer)
	case *Envelope_VoteResponse:
		return head + fmt.Sprintf("vote granted=%v", b.VoteResponse.Granted)
	case *Envelope_AppendRequest:
		r := b.AppendRequest
		return head + fmt.Sprintf("append prev=%d/%d n=%d commit=%d", r.PrevLogIndex, r.PrevLogTerm, len(r.Entries), r.Commit)
	case *Envelope_AppendResponse:
		r := b.AppendResponse
		if r.Success {
			return head + fmt.Sprintf("append ok match=%d", r.MatchIndex)
		}
		return head + fmt.Sprintf("append rejected hint=%d/%d last=%d", r.RejectHintIndex, r.RejectHintTerm, r.LastLogIndex)
	case *Envelope_HeartbeatRequest:
		return head + fmt.Sprintf("heartbeat commit=%d", b.HeartbeatRequest.Commit)
	case *Envelope_HeartbeatResponse:
		return head + "heartbeat ok"
	case *Envelope_TimeoutNow:
		return head + "timeout-now"
	case *Envelope_InstallSnapshotRequest:
		m := b.InstallSnapshotRequest.GetMeta()
		return head + fmt.Sprintf("install? snap=%d/%d", m.GetLastIndex(), m.GetLastTerm())
	case *Envelope_InstallSnapshotResponse:
		r := b.InstallSnapshotResponse
		return head + fmt.Sprintf("install ok=%v last=%d %s", r.Success, r.LastIndex, r.Reason)
	case *Envelope_SnapshotFetch:
		r := b.SnapshotFetch
		return head + fmt.Sprintf("fetch snap=%d/%d %q @%d+%d", r.Index, r.Term, r.File, r.Offset, r.Length)
	case *Envelope_SnapshotChunk:
		r := b.SnapshotChunk
		return head + fmt.Sprintf("chunk snap=%d/%d %q @%d n=%d eof=%v missing=%v", r.Index, r.Term, r.File, r.Offset, len(r.Data), r.Eof, r.Missing)
	}
	return head + fmt.Sprintf("%T", e.Body)
}
