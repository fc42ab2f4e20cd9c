package node

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/internal/logsearch"
	"github.com/asyncraft/asyncraft/raftpb"
)

// replyTo is the leader's replicator that sent e.
func (a *Actor) replyTo(e *raftpb.Envelope) actors.Ref {
	return replicatorRef(a.tr.addr(e.From), a.cfg.Group, e.From, a.cfg.ID, e.Term)
}

// onAppend handles AppendEntries from the current leader (Raft §5.3).
func (a *Actor) onAppend(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) {
	if a.inst != nil && a.inst.loading {
		return // the log is about to be replaced by a snapshot: the leader sends it again
	}
	ents := req.Entries
	lastNew := req.PrevLogIndex + uint64(len(ents))
	if req.PrevLogIndex >= a.commit {
		if req.PrevLogIndex > a.log.LastIndex() ||
			(!a.log.MatchTerm(req.PrevLogIndex, req.PrevLogTerm) && !faults.On(faults.SkipPrevCheck)) {
			a.reject(env, e, req)
			return
		}
	} else {
		// The previous entry and the entries up to the commit index are
		// committed here, so the leader holds them too (Leader
		// Completeness): skip them, once checked to be the leader's
		// (diverge.go).
		var ok bool
		if ents, ok = a.skipCommitted(env, e, req); !ok {
			return
		}
	}
	// The first entry this log lacks or holds with another term, and all
	// after it, replace the log's suffix.
	var suffix []*raftpb.Entry
	for i, ent := range ents {
		if ent.Index <= a.log.LastIndex() && a.log.MatchTerm(ent.Index, ent.Term) {
			continue
		}
		if ent.Index <= a.commit {
			a.fail(env, invariants.Violate("entry %d of term %d conflicts with a committed entry", ent.Index, ent.Term), closure.EINTERNAL)
			return
		}
		suffix = ents[i:]
		break
	}
	a.acceptEntries(env, suffix, min(req.Commit, lastNew))
	if a.failed != nil {
		return
	}
	ack := pendingAck{to: a.replyTo(e), seq: e.Seq, term: e.Term, match: lastNew}
	if a.stable >= lastNew || faults.On(faults.AckBeforeSync) {
		a.sendAck(env, ack)
		return
	}
	a.gate.holdAck(ack)
}

// reject answers an AppendEntries whose previous entry does not match, with
// a hint: the last index at or before it whose term is at most the
// leader's previous term. Every entry up to the commit index qualifies, as
// terms never decrease along a log.
func (a *Actor) reject(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) {
	a.sh.Metrics.AppendRejects.Add(1)
	last := a.log.LastIndex()
	k := logsearch.LastTermAtMost(a.commit, min(req.PrevLogIndex, last), req.PrevLogTerm, a.log.Term)
	hintTerm, _ := a.log.Term(k)
	r := a.envelope(e.From, a.term, e.Seq)
	r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
		RejectHintIndex: k, RejectHintTerm: hintTerm, LastLogIndex: last,
	}}
	a.send(env, a.replyTo(e), r)
}

// flushAcks sends the acks whose entries are now durable (coalesced per
// replicator by the ack gate).
func (a *Actor) flushAcks(env actors.Env) {
	for _, ack := range a.gate.ready(a.term, a.stable) {
		a.sendAck(env, ack)
	}
}

func (a *Actor) sendAck(env actors.Env, ack pendingAck) {
	r := a.envelope("", ack.term, ack.seq)
	r.To = a.leader
	r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
		Success: true, MatchIndex: ack.match, LastLogIndex: a.log.LastIndex(),
	}}
	a.send(env, ack.to, r)
}

// onHeartbeat handles a heartbeat from the current leader. Its commit index
// is clipped to what the leader knows this log matches, and comes with the
// term of the leader's entry there (see heartbeatCommit). The reply gives
// this log's last index, so that a leader learns when a follower lost
// entries.
func (a *Actor) onHeartbeat(env actors.Env, e *raftpb.Envelope, hb *raftpb.HeartbeatRequest) {
	if c := a.heartbeatCommit(env, e, hb); c > a.commit {
		a.advanceCommit(env, c)
	}
	if a.failed != nil {
		return
	}
	r := a.envelope(e.From, a.term, e.Seq)
	r.Body = &raftpb.Envelope_HeartbeatResponse{HeartbeatResponse: &raftpb.HeartbeatResponse{LastLogIndex: a.log.LastIndex()}}
	a.send(env, a.replyTo(e), r)
}
