package node

import (
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/quorum"
	"github.com/asyncraft/asyncraft/raftpb"
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
// has passed on its clock (Ticks.RestartQuiet). Every start counts, a first
// one included: a node whose data directory was wiped has forgotten its
// term too, and its promise must hold all the same.

// checkQuorum steps the leader down when a quorum of voters did not
// answer within an election timeout (unless DisableCheckQuorum).
// Its period also paces the hand-over to a voter of a higher priority,
// which must have answered within it (transfer.go).
func (a *Actor) checkQuorum(env actors.Env) {
	a.quorumElapsed++
	if a.quorumElapsed < a.cfg.Ticks.Election {
		return
	}
	a.quorumElapsed = 0
	if !a.cfg.DisableCheckQuorum && !a.tr.quorumActive() {
		a.logger.Warn("asyncraft: leader lost contact with a quorum; stepping down", "term", a.term)
		a.becomeFollower(env, a.term, "")
		return
	}
	a.priorityTransfer(env)
	a.tr.resetActive()
}

// electionTick counts a follower's or candidate's election timeout and
// starts an election when it runs out (if this node may vote, and has not
// just restarted).
func (a *Actor) electionTick(env actors.Env) {
	a.electionElapsed++
	if a.electionElapsed >= a.randomizedTimeout && a.tr.isVoter(a.cfg.ID) && !a.restartQuiet() {
		a.startElection(env)
	}
}

// inLease reports whether this node still trusts a leader (or is one), or
// has restarted too recently to know, and so refuses to help elect another.
func (a *Actor) inLease() bool {
	if !a.cfg.sticky() || faults.On(faults.NoStickiness) {
		return false
	}
	return a.role == Leader || (a.leader != "" && a.electionElapsed < a.cfg.Ticks.Election) || a.restartQuiet()
}

// restartQuiet reports whether this node started less than an election
// timeout plus the drift bound ago (counted in its own ticks, one more for
// the phase of the first): it may have promised a leader, before it
// crashed, not to help elect another until then.
func (a *Actor) restartQuiet() bool {
	return a.tickCount < int64(a.cfg.Ticks.RestartQuiet) && !faults.On(faults.VoteAfterRestart)
}

func (a *Actor) resetElectionTimer(env actors.Env) {
	a.electionElapsed = 0
	a.randomizedTimeout = a.cfg.Ticks.Election + env.Rand().IntN(a.cfg.Ticks.Election)
}

func (a *Actor) startElection(env actors.Env) {
	if a.inst != nil && a.inst.loading {
		// A snapshot from the leader is being loaded, and the log is
		// about to be replaced: no candidacy meanwhile (such a node's log
		// cannot win anyway: a quorum holds the snapshot's entries).
		a.resetElectionTimer(env)
		return
	}
	if a.cfg.DisablePreVote {
		a.noteElection()
		a.campaign(env)
		return
	}
	a.noteElection()
	a.sh.Metrics.PreVotes.Add(1)
	a.debug("election timeout: pre-vote", "elapsed ticks", a.electionElapsed)
	a.role = PreCandidate
	a.setLeader(env, "")
	a.resetElectionTimer(env)
	a.tr.startVote(true)
	last, lastTerm := a.log.Last()
	for _, id := range a.tr.voters() {
		if id == a.cfg.ID {
			continue
		}
		e := a.envelope(id, a.term+1, 0)
		e.Body = &raftpb.Envelope_PreVoteRequest{PreVoteRequest: &raftpb.VoteRequest{LastLogIndex: last, LastLogTerm: lastTerm,
			CandidateAddr: a.cfg.Addr}}
		a.send(env, a.peerRef(id), e)
	}
	a.tally(env)
}

// campaign starts a real election in a new term. The self-vote counts once
// it is durable (onHardStateSaved); the requests leave then too.
func (a *Actor) campaign(env actors.Env) {
	a.sh.Metrics.Elections.Add(1)
	a.debug("campaign", "new term", a.term+1)
	a.term++
	a.vote = a.cfg.ID
	a.role = Candidate
	a.setLeader(env, "")
	a.resetElectionTimer(env)
	a.tr.startVote(false)
	a.persistHardState(env)
	last, lastTerm := a.log.Last()
	for _, id := range a.tr.voters() {
		if id == a.cfg.ID {
			continue
		}
		e := a.envelope(id, a.term, 0)
		e.Body = &raftpb.Envelope_VoteRequest{VoteRequest: &raftpb.VoteRequest{LastLogIndex: last, LastLogTerm: lastTerm,
			CandidateAddr: a.cfg.Addr, LeadershipTransfer: a.transferCampaign}}
		a.send(env, a.peerRef(id), e)
	}
}

// tally counts the votes of the current (pre-)election.
func (a *Actor) tally(env actors.Env) {
	res := a.tr.tallyVotes()
	switch {
	case res == quorum.VoteWon && a.role == PreCandidate:
		a.campaign(env)
	case res == quorum.VoteWon && a.role == Candidate:
		a.becomeLeader(env)
	case res == quorum.VoteLost:
		a.becomeFollower(env, a.term, "")
	}
}

// onVoteRequest answers a (pre-)vote request that passed the term gate:
// granted to an up-to-date candidate this node may vote for (a pre-vote
// grant promises nothing and changes nothing here); a real vote is durable
// before the answer leaves.
func (a *Actor) onVoteRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.VoteRequest, pre bool) {
	last, lastTerm := a.log.Last()
	upToDate := req.LastLogTerm > lastTerm || (req.LastLogTerm == lastTerm && req.LastLogIndex >= last)
	canVote := a.vote == e.From || (a.vote == "" && a.leader == "") || (pre && e.Term > a.term) ||
		(!pre && faults.On(faults.VoteTwice))
	// Whether this node is a voter of its own configuration does not
	// matter: it may be one in the candidate's newer configuration (a
	// learner promoted, a member added) whose entry it has not received,
	// and the candidate counts only the votes of its voters.
	if !upToDate || !canVote {
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

func (a *Actor) replyVote(env actors.Env, req *raftpb.Envelope, pre, granted bool, term uint64) {
	e := a.envelope(req.From, term, req.Seq)
	resp := &raftpb.VoteResponse{Granted: granted}
	if pre {
		e.Body = &raftpb.Envelope_PreVoteResponse{PreVoteResponse: resp}
	} else {
		e.Body = &raftpb.Envelope_VoteResponse{VoteResponse: resp}
	}
	a.send(env, a.peerRef(req.From), e)
}

// becomeFollower moves to term (if higher, clearing the vote) as a
// follower of leader ("" if unknown).
func (a *Actor) becomeFollower(env actors.Env, term uint64, leader string) {
	if term > a.term || a.role != Follower {
		a.debug("become follower", "new term", term, "leader", leader)
	}
	if term > a.term {
		a.term = term
		a.vote = ""
		a.persistHardState(env)
		a.gate.newTerm() // replies for the old leader's requests are moot
	}
	if a.role == Leader {
		a.stopLeading(env, closure.Newf(closure.EPERM, "stepped down in term %d", a.term))
	}
	a.role = Follower
	a.tr.endVote()
	a.resetElectionTimer(env)
	a.setLeader(env, leader)
}

// setLeader records the leader this node follows and tells the state
// machine when it changes.
func (a *Actor) setLeader(env actors.Env, id string) {
	if id == a.leader {
		return
	}
	old := a.leader
	a.leader = id
	a.transferLeaderKnown(id)
	if old != "" && old != a.cfg.ID {
		env.Send(a.cfg.FSMCaller, fsm.StopFollowing{Change: fsm.LeaderChange{Leader: old, Term: a.term,
			Status: closure.Newf(closure.EPERM, "stopped following %s", old)}})
	}
	if id != "" && id != a.cfg.ID {
		env.Send(a.cfg.FSMCaller, fsm.StartFollowing{Change: fsm.LeaderChange{Leader: id, Term: a.term}})
	}
}
