package asyncraft

import (
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/internal/logsearch"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// step handles an envelope from a peer.
func (a *nodeActor) step(env actors.Env, e *raftpb.Envelope) {
	if a.failed != nil {
		return
	}
	if !a.admit(e) { // counted and reported there
		return
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_PreVoteRequest:
		a.onVoteRequest(env, e, b.PreVoteRequest, true)
	case *raftpb.Envelope_VoteRequest:
		a.onVoteRequest(env, e, b.VoteRequest, false)
	case *raftpb.Envelope_PreVoteResponse:
		a.onPreVoteResponse(env, e, b.PreVoteResponse)
	case *raftpb.Envelope_VoteResponse:
		a.onVoteResponse(env, e, b.VoteResponse)
	case *raftpb.Envelope_AppendRequest:
		if a.fromLeader(env, e, false) {
			a.onAppend(env, e, b.AppendRequest)
		}
	case *raftpb.Envelope_HeartbeatRequest:
		if a.fromLeader(env, e, true) {
			a.onHeartbeat(env, e, b.HeartbeatRequest)
		}
	case *raftpb.Envelope_ReadIndexRequest:
		if e.Term == a.term {
			a.onReadIndexRequest(env, e, b.ReadIndexRequest)
		} else {
			a.answerReadIndex(env, e.From, e.Seq, false, 0, closure.EPERM)
		}
	case *raftpb.Envelope_ReadIndexResponse:
		a.onReadIndexResponse(b.ReadIndexResponse)
	default:
		a.n.metrics.Dropped.Add(1)
	}
}

// fromLeader checks the term of a message from a leader and follows that
// leader. A stale leader gets a reply carrying the current term, so it
// steps down.
func (a *nodeActor) fromLeader(env actors.Env, e *raftpb.Envelope, heartbeat bool) bool {
	if e.Term < a.term {
		r := a.envelope(e.From, a.term, e.Seq)
		if heartbeat {
			r.Body = &raftpb.Envelope_HeartbeatResponse{HeartbeatResponse: &raftpb.HeartbeatResponse{}}
		} else {
			r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{LastLogIndex: a.log.LastIndex()}}
		}
		a.send(env, a.replyTo(e), r)
		return false
	}
	if e.Term == a.term && a.role == Leader {
		invariants.Violate("two leaders in term %d: %s and %s", a.term, a.opts.ID, e.From)
		return false
	}
	if e.Term > a.term || a.role != Follower {
		a.becomeFollower(env, e.Term, e.From)
	} else {
		a.setLeader(env, e.From)
	}
	a.electionElapsed = 0
	return true
}

// replyTo is the leader's replicator that sent e.
func (a *nodeActor) replyTo(e *raftpb.Envelope) actors.Ref {
	return replicatorRef(a.peers[e.From], a.opts.Group, e.From, a.opts.ID, e.Term)
}

// onAppend handles AppendEntries from the current leader (Raft §5.3).
func (a *nodeActor) onAppend(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) {
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
		skip := min(a.commit-req.PrevLogIndex, uint64(len(ents)))
		if !a.checkCommitted(env, e, req.PrevLogIndex, req.PrevLogTerm) {
			return
		}
		for _, ent := range ents[:skip] {
			if !a.checkCommitted(env, e, ent.Index, ent.Term) {
				return
			}
		}
		ents = ents[skip:]
	}
	for i, ent := range ents {
		if ent.Index > a.log.LastIndex() {
			a.appendLocal(env, ents[i:])
			break
		}
		if a.log.MatchTerm(ent.Index, ent.Term) {
			continue
		}
		if ent.Index <= a.commit {
			a.fail(env, invariants.Violate("entry %d of term %d conflicts with a committed entry", ent.Index, ent.Term), closure.EINTERNAL)
			return
		}
		if err := a.truncate(env, ent.Index); err != nil {
			a.fail(env, err, closure.EINTERNAL)
			return
		}
		a.appendLocal(env, ents[i:])
		break
	}
	if c := min(req.Commit, lastNew); c > a.commit {
		a.advanceCommit(env, c)
	}
	ack := pendingAck{to: a.replyTo(e), seq: e.Seq, term: e.Term, match: lastNew}
	if a.stable >= lastNew || faults.On(faults.AckBeforeSync) {
		a.sendAck(env, ack)
		return
	}
	a.acks = append(a.acks, ack)
}

// truncate removes the entries from index from on, which conflict with the
// leader's.
func (a *nodeActor) truncate(env actors.Env, from uint64) error {
	a.debug("truncate conflicting entries", "from", from, "last", a.log.LastIndex())
	if err := a.log.TruncateFrom(from); err != nil {
		return fmt.Errorf("truncate the log from %d: %w", from, err)
	}
	env.Send(a.logRef, logmgr.TruncateSuffix{From: from})
	a.stable = min(a.stable, from-1)
	keep := a.acks[:0]
	for _, ack := range a.acks {
		if ack.match < from {
			keep = append(keep, ack)
		}
	}
	a.acks = keep
	a.n.last.Store(from - 1)
	return nil
}

// reject answers an AppendEntries whose previous entry does not match, with
// a hint: the last index at or before it whose term is at most the
// leader's previous term. Every entry up to the commit index qualifies, as
// terms never decrease along a log.
func (a *nodeActor) reject(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) {
	a.n.metrics.AppendRejects.Add(1)
	last := a.log.LastIndex()
	k := logsearch.LastTermAtMost(a.commit, min(req.PrevLogIndex, last), req.PrevLogTerm, a.log.Term)
	hintTerm, _ := a.log.Term(k)
	r := a.envelope(e.From, a.term, e.Seq)
	r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
		RejectHintIndex: k, RejectHintTerm: hintTerm, LastLogIndex: last,
	}}
	a.send(env, a.replyTo(e), r)
}

func (a *nodeActor) sendAck(env actors.Env, ack pendingAck) {
	r := a.envelope("", ack.term, ack.seq)
	r.To = a.leader
	r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{
		Success: true, MatchIndex: ack.match, LastLogIndex: a.log.LastIndex(),
	}}
	a.send(env, ack.to, r)
}

// flushAcks sends the acks whose entries are now durable. Acks to one
// replicator are coalesced: a success for a request answers every earlier
// one, so only the latest is sent.
func (a *nodeActor) flushAcks(env actors.Env) {
	if len(a.acks) == 0 {
		return
	}
	var ready []pendingAck
	keep := a.acks[:0]
	for _, ack := range a.acks {
		switch {
		case ack.term != a.term:
		case ack.match > a.stable:
			keep = append(keep, ack)
		default:
			merged := false
			for i := range ready {
				if ready[i].to == ack.to {
					if ack.seq > ready[i].seq {
						ready[i] = ack
					}
					merged = true
				}
			}
			if !merged {
				ready = append(ready, ack)
			}
		}
	}
	a.acks = keep
	for _, ack := range ready {
		a.sendAck(env, ack)
	}
}

// onHeartbeat handles a heartbeat from the current leader. Its commit index
// is clipped to what the leader knows this log matches, and comes with the
// term of the leader's entry there (see heartbeatCommit). The reply gives
// this log's last index, so that a leader learns when a follower lost
// entries.
func (a *nodeActor) onHeartbeat(env actors.Env, e *raftpb.Envelope, hb *raftpb.HeartbeatRequest) {
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
