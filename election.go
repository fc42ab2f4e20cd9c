package asyncraft

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/quorum"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// Elections (Raft §5.2, thesis §9.6 for pre-vote and leader stickiness).
//
// A follower that has not heard from a leader for its randomized election
// timeout first runs a pre-vote: it asks the voters whether they would vote
// for it in the next term, without raising its own term. Only with a
// majority of yeses does it become a candidate, raise its term, vote for
// itself (durably) and ask for real votes. A node that cannot win — cut off
// from the majority — so never disturbs the group with a higher term.
//
// Voters refuse to help replace a leader they still hear from (leader
// stickiness): a (pre-)vote request for a higher term is refused while the
// voter heard from its leader within the election timeout. Leases rest on
// this promise (reads.go), and it must survive a restart: a node that may
// have acknowledged a leader just before it crashed no longer remembers
// when, so after it starts it refuses every (pre-)vote, and starts no
// election of its own, until an election timeout plus the clock-drift bound
// has passed on its clock (ticks.restartQuiet). Every start counts, a first
// one included: a node whose data directory was wiped has forgotten its
// term too, and its promise must hold all the same.

func (a *nodeActor) tick(env actors.Env) {
	a.tickCount++
	a.expireReads()
	a.resumeHeld(env)
	switch a.role {
	case Leader:
		for _, id := range a.others {
			if ref, ok := a.repls[id]; ok {
				env.Send(ref, replicator.Tick{})
			}
		}
		if !a.opts.DisableCheckQuorum {
			a.quorumElapsed++
			if a.quorumElapsed >= a.ticks.election {
				a.quorumElapsed = 0
				if !a.quorumActive() {
					a.logger.Warn("asyncraft: leader lost contact with a quorum; stepping down", "term", a.term)
					a.becomeFollower(env, a.term, "")
					return
				}
				clear(a.active)
			}
		}
	case Follower, PreCandidate, Candidate:
		a.electionElapsed++
		if a.electionElapsed >= a.randomizedTimeout && a.conf.Contains(a.opts.ID) && !a.restartQuiet() {
			a.startElection(env)
		}
	}
}

// quorumActive reports whether a quorum of voters answered the leader since
// the last check.
func (a *nodeActor) quorumActive() bool {
	return a.conf.Vote(func(id string) (bool, bool) {
		return id == a.opts.ID || a.active[id], true
	}) == quorum.VoteWon
}

// inLease reports whether this node still trusts a leader (or is one), or
// has restarted too recently to know, and so refuses to help elect another.
func (a *nodeActor) inLease() bool {
	if !a.opts.sticky() || faults.On(faults.NoStickiness) {
		return false
	}
	return a.role == Leader || (a.leader != "" && a.electionElapsed < a.ticks.election) || a.restartQuiet()
}

// restartQuiet reports whether this node started less than an election
// timeout plus the drift bound ago (counted in its own ticks, one more for
// the phase of the first): it may have promised a leader, before it
// crashed, not to help elect another until then.
func (a *nodeActor) restartQuiet() bool {
	return a.tickCount < int64(a.ticks.restartQuiet) && !faults.On(faults.VoteAfterRestart)
}

func (a *nodeActor) resetElectionTimer(env actors.Env) {
	a.electionElapsed = 0
	a.randomizedTimeout = a.ticks.election + env.Rand().IntN(a.ticks.election)
}

func (a *nodeActor) startElection(env actors.Env) {
	if a.opts.DisablePreVote {
		a.noteElection()
		a.campaign(env)
		return
	}
	a.noteElection()
	a.n.metrics.PreVotes.Add(1)
	a.debug("election timeout: pre-vote", "elapsed ticks", a.electionElapsed)
	a.role = PreCandidate
	a.setLeader(env, "")
	a.resetElectionTimer(env)
	a.votes = map[string]bool{a.opts.ID: true}
	last, lastTerm := a.log.Last()
	for _, id := range a.conf.IDs() {
		if id == a.opts.ID {
			continue
		}
		e := a.envelope(id, a.term+1, 0)
		e.Body = &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: last, LastLogTerm: lastTerm,
			CandidateAddr: a.host.opts.Addr}}
		a.send(env, a.peerRef(id), e)
	}
	a.tally(env)
}

// campaign starts a real election in a new term. The self-vote counts once
// it is durable (onHardStateSaved); the requests leave then too.
func (a *nodeActor) campaign(env actors.Env) {
	a.n.metrics.Elections.Add(1)
	a.debug("campaign", "new term", a.term+1)
	a.term++
	a.vote = a.opts.ID
	a.role = Candidate
	a.setLeader(env, "")
	a.resetElectionTimer(env)
	a.votes = map[string]bool{}
	a.persistHardState(env)
	last, lastTerm := a.log.Last()
	for _, id := range a.conf.IDs() {
		if id == a.opts.ID {
			continue
		}
		e := a.envelope(id, a.term, 0)
		e.Body = &raftpb.Envelope_VoteRequest{VoteRequest: &raftpb.VoteRequest{LastLogIndex: last, LastLogTerm: lastTerm,
			CandidateAddr: a.host.opts.Addr}}
		a.send(env, a.peerRef(id), e)
	}
}

// tally counts the votes of the current (pre-)election.
func (a *nodeActor) tally(env actors.Env) {
	res := a.conf.Vote(func(id string) (bool, bool) {
		g, ok := a.votes[id]
		return g, ok
	})
	switch {
	case res == quorum.VoteWon && a.role == PreCandidate:
		a.campaign(env)
	case res == quorum.VoteWon && a.role == Candidate:
		a.becomeLeader(env)
	case res == quorum.VoteLost:
		a.becomeFollower(env, a.term, "")
	}
}

func (a *nodeActor) onVoteRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.VoteRequest, pre bool) {
	// req.LeadershipTransfer is ignored: nothing sends it yet, and until a
	// real transfer exists (one that revokes the leader's lease first) it
	// must not bypass stickiness.
	if e.Term > a.term && a.inLease() && !(req.LeadershipTransfer && faults.On(faults.TransferBypassesStickiness)) {
		a.replyVote(env, e, pre, false, a.term)
		return
	}
	if e.Term < a.term {
		a.replyVote(env, e, pre, false, a.term)
		return
	}
	if !pre && e.Term > a.term {
		a.becomeFollower(env, e.Term, "")
	}
	last, lastTerm := a.log.Last()
	upToDate := req.LastLogTerm > lastTerm || (req.LastLogTerm == lastTerm && req.LastLogIndex >= last)
	canVote := a.vote == e.From || (a.vote == "" && a.leader == "") || (pre && e.Term > a.term) ||
		(!pre && faults.On(faults.VoteTwice))
	if !upToDate || !canVote || !a.conf.Contains(a.opts.ID) {
		a.replyVote(env, e, pre, false, a.term)
		return
	}
	if pre {
		a.replyVote(env, e, pre, true, e.Term)
		return
	}
	a.vote = e.From
	a.electionElapsed = 0
	a.debug("grant vote", "candidate", e.From)
	a.persistHardState(env) // the reply waits in the outbox until durable
	if faults.On(faults.VoteWithoutPersist) {
		r := a.envelope(e.From, a.term, e.Seq) // answer before the vote is durable
		r.Body = &raftpb.Envelope_VoteResponse{VoteResponse: &raftpb.VoteResponse{Granted: true}}
		env.Send(a.peerRef(e.From), r)
		return
	}
	a.replyVote(env, e, pre, true, a.term)
}

func (a *nodeActor) replyVote(env actors.Env, req *raftpb.Envelope, pre, granted bool, term uint64) {
	e := a.envelope(req.From, term, req.Seq)
	resp := &raftpb.VoteResponse{Granted: granted}
	if pre {
		e.Body = &raftpb.Envelope_PreVoteResponse{PreVoteResponse: resp}
	} else {
		e.Body = &raftpb.Envelope_VoteResponse{VoteResponse: resp}
	}
	a.send(env, a.peerRef(req.From), e)
}

// onPreVoteResponse (and onVoteResponse): answers to (pre-)vote requests
// count only while this node is still the (pre-)candidate that asked: a
// late answer to an earlier candidacy is dropped, even one carrying a
// higher term. A node that went back to following a leader must not let
// such an answer raise its term: that would clear its leader and end its
// promise to that leader (stickiness, on which the leader's lease rests)
// before the election timeout. Dropping it is as safe as losing it on the
// network.
func (a *nodeActor) onPreVoteResponse(env actors.Env, e *raftpb.Envelope, resp *raftpb.VoteResponse) {
	if a.role != PreCandidate && !faults.On(faults.StaleVoteAnswers) {
		return
	}
	if !resp.Granted && e.Term > a.term {
		a.becomeFollower(env, e.Term, "")
		return
	}
	if a.role != PreCandidate || (resp.Granted && e.Term != a.term+1) {
		return
	}
	a.votes[e.From] = resp.Granted
	a.tally(env)
}

func (a *nodeActor) onVoteResponse(env actors.Env, e *raftpb.Envelope, resp *raftpb.VoteResponse) {
	if a.role != Candidate && !faults.On(faults.StaleVoteAnswers) {
		return
	}
	if e.Term > a.term {
		a.becomeFollower(env, e.Term, "")
		return
	}
	if a.role != Candidate || e.Term < a.term {
		return
	}
	a.votes[e.From] = resp.Granted
	a.tally(env)
}

// becomeFollower moves to term (if higher, clearing the vote) as a
// follower of leader ("" if unknown).
func (a *nodeActor) becomeFollower(env actors.Env, term uint64, leader string) {
	if term > a.term || a.role != Follower {
		a.debug("become follower", "new term", term, "leader", leader)
	}
	if term > a.term {
		a.term = term
		a.vote = ""
		a.persistHardState(env)
		a.acks = a.acks[:0] // replies for the old leader's requests are moot
	}
	if a.role == Leader {
		a.stopLeading(env, closure.Newf(closure.EPERM, "stepped down in term %d", a.term))
	}
	a.role = Follower
	a.votes = nil
	a.resetElectionTimer(env)
	a.setLeader(env, leader)
}

// setLeader records the leader this node follows and tells the state
// machine when it changes.
func (a *nodeActor) setLeader(env actors.Env, id string) {
	if id == a.leader {
		return
	}
	old := a.leader
	a.leader = id
	if old != "" && old != a.opts.ID {
		env.Send(a.fsmRef, fsm.StopFollowing{Change: fsm.LeaderChange{Leader: old, Term: a.term,
			Status: closure.Newf(closure.EPERM, "stopped following %s", old)}})
	}
	if id != "" && id != a.opts.ID {
		env.Send(a.fsmRef, fsm.StartFollowing{Change: fsm.LeaderChange{Leader: id, Term: a.term}})
	}
}
