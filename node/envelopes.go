package node

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// step handles an envelope from a peer: admission (admit.go), then the
// term gate, then the room that handles its kind.
func (a *Actor) step(env actors.Env, e *raftpb.Envelope) {
	if a.failed != nil {
		return
	}
	if !a.admit(e) { // counted and reported there
		return
	}
	if r, ok := e.Body.(*raftpb.Envelope_IncarnationRefused); ok {
		a.onIncarnationRefused(env, e, r.IncarnationRefused)
		return
	}
	if !a.checkIncarnation(env, e) { // counted and answered there
		return
	}
	if !a.gateTerm(env, e) {
		return
	}
	if len(e.Voters) > 0 && fromLeader(e) {
		a.learnRelayed(env, e.Voters)
	}
	switch b := e.Body.(type) {
	case *raftpb.Envelope_PreVoteRequest:
		a.onVoteRequest(env, e, b.PreVoteRequest, true)
	case *raftpb.Envelope_VoteRequest:
		a.onVoteRequest(env, e, b.VoteRequest, false)
	case *raftpb.Envelope_PreVoteResponse:
		a.tr.recordVote(e.From, b.PreVoteResponse.Granted)
		a.tally(env)
	case *raftpb.Envelope_VoteResponse:
		a.tr.recordVote(e.From, b.VoteResponse.Granted)
		a.tally(env)
	case *raftpb.Envelope_AppendRequest:
		a.onAppend(env, e, b.AppendRequest)
	case *raftpb.Envelope_HeartbeatRequest:
		a.onHeartbeat(env, e, b.HeartbeatRequest)
	case *raftpb.Envelope_ReadIndexRequest:
		a.onReadIndexRequest(env, e, b.ReadIndexRequest)
	case *raftpb.Envelope_ReadIndexResponse:
		a.rd.answered(b.ReadIndexResponse, a.applied, a.leader)
	case *raftpb.Envelope_InstallSnapshotRequest:
		a.onInstallRequest(env, e, b.InstallSnapshotRequest)
	case *raftpb.Envelope_TimeoutNow:
		a.onTimeoutNow(env, e)
	}
}

// gateTerm is the one place where an envelope's term meets the node's
// (Raft §5.1: a higher term makes the node a follower of it; a lower one
// is stale). It answers or drops what its handler must not see, and
// reports whether the handler runs. Past it:
//   - appends and heartbeats are of the current term, from the leader this
//     node now follows;
//   - (pre-)vote requests are of the current term or later, from a
//     candidate this node may help elect (not while it still trusts a
//     leader: stickiness); a vote request's later term has been adopted;
//   - (pre-)vote answers belong to this node's current (pre-)election: an
//     answer to an earlier candidacy is dropped, even one carrying a higher
//     term. A node that went back to following a leader must not let such
//     an answer raise its term: that would clear its leader and end its
//     promise to that leader (stickiness, on which the leader's lease
//     rests) before the election timeout. Dropping it is as safe as losing
//     it on the network;
//   - read requests are of the current term (else refused: the follower
//     asked an earlier leader); read answers pass whatever their term, as
//     their batch id is what matches them.
//
// Envelopes of any other kind are not meant for a node actor: dropped and
// counted.
func (a *Actor) gateTerm(env actors.Env, e *raftpb.Envelope) bool {
	switch b := e.Body.(type) {
	case *raftpb.Envelope_AppendRequest:
		return a.fromLeader(env, e)
	case *raftpb.Envelope_HeartbeatRequest:
		return a.fromLeader(env, e)
	case *raftpb.Envelope_InstallSnapshotRequest:
		return a.fromLeader(env, e)
	case *raftpb.Envelope_PreVoteRequest:
		return a.voteRequestTerm(env, e, b.PreVoteRequest, true)
	case *raftpb.Envelope_VoteRequest:
		return a.voteRequestTerm(env, e, b.VoteRequest, false)
	case *raftpb.Envelope_PreVoteResponse:
		if a.role != PreCandidate && !faults.On(faults.StaleVoteAnswers) {
			return false
		}
		granted := b.PreVoteResponse.Granted
		if !granted && e.Term > a.term {
			a.becomeFollower(env, e.Term, "")
			return false
		}
		// A grant is for the next term; a refusal carries the voter's.
		return a.role == PreCandidate && (!granted || e.Term == a.term+1)
	case *raftpb.Envelope_VoteResponse:
		if a.role != Candidate && !faults.On(faults.StaleVoteAnswers) {
			return false
		}
		if e.Term > a.term {
			a.becomeFollower(env, e.Term, "")
			return false
		}
		return a.role == Candidate && e.Term == a.term
	case *raftpb.Envelope_ReadIndexRequest:
		if e.Term != a.term {
			a.rd.refuse(e.From, e.Seq, closure.EPERM) // seq: the batch id
			a.sendReadAnswers(env)
			return false
		}
		return true
	case *raftpb.Envelope_ReadIndexResponse:
		return true
	case *raftpb.Envelope_TimeoutNow:
		return e.Term == a.term // from the leader of this term (transfer.go checks)
	}
	a.sh.Metrics.Dropped.Add(1)
	return false
}

// fromLeader gates a message from a leader: a stale one gets a reply
// carrying the current term, so that it steps down; otherwise this node
// follows its sender in its term.
func (a *Actor) fromLeader(env actors.Env, e *raftpb.Envelope) bool {
	if e.Term < a.term {
		r := a.envelope(e.From, a.term, e.Seq)
		switch e.Body.(type) {
		case *raftpb.Envelope_HeartbeatRequest:
			r.Body = &raftpb.Envelope_HeartbeatResponse{HeartbeatResponse: &raftpb.HeartbeatResponse{}}
		case *raftpb.Envelope_InstallSnapshotRequest:
			r.Body = &raftpb.Envelope_InstallSnapshotResponse{InstallSnapshotResponse: &raftpb.InstallSnapshotResponse{Reason: "stale term"}}
		default:
			r.Body = &raftpb.Envelope_AppendResponse{AppendResponse: &raftpb.AppendResponse{LastLogIndex: a.log.LastIndex()}}
		}
		a.send(env, a.replyTo(e), r)
		return false
	}
	if e.Term == a.term && a.role == Leader {
		invariants.Violate("two leaders in term %d: %s and %s", a.term, a.cfg.ID, e.From)
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

// voteRequestTerm gates a (pre-)vote request: refused while this node
// still trusts a leader (stickiness: election.go) or when it is of an
// earlier term; a vote request of a later term makes this node a follower
// in that term.
func (a *Actor) voteRequestTerm(env actors.Env, e *raftpb.Envelope, req *raftpb.VoteRequest, pre bool) bool {
	// A vote request of a leadership transfer (transfer.go) passes
	// stickiness: the leader that asked for it ended its lease first.
	if (e.Term > a.term && a.inLease() && !(req.LeadershipTransfer && !pre)) ||
		e.Term < a.term {
		a.replyVote(env, e, pre, false, a.term)
		return false
	}
	if !pre && e.Term > a.term {
		a.becomeFollower(env, e.Term, "")
	}
	return true
}
