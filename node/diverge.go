package node

import (
	"errors"
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/raftpb"
)

// ErrLogDiverged is the error (in Status.Err) of a node that stopped
// because the leader sent it a different entry where its own is committed.
// Raft never lets that happen while its assumptions hold: a leader holds
// every committed entry (Leader Completeness). A node that ran with a wrong
// peer list, with another node's data, or that lost its log and voted
// again can break them; then the group's logs disagree on acknowledged
// writes. The node stops rather than silently keep either history; see
// docs/operations.md.
var ErrLogDiverged = errors.New("asyncraft: the leader's log differs from this node's on a committed entry")

// checkCommitted reports whether the leader's entry (index, term), at or
// below this node's commit index, is the one this node holds; if not, the
// node fails with ErrLogDiverged naming both. An entry this node no longer
// holds (compacted) cannot be compared and passes.
func (a *Actor) checkCommitted(env actors.Env, e *raftpb.Envelope, index, term uint64) bool {
	local, err := a.log.Term(index)
	if err != nil || local == term {
		return true
	}
	a.fail(env, fmt.Errorf("%w: entry %d is committed on %s with term %d, but leader %s (term %d) has term %d there: the group's logs disagree on a committed entry (a node ran with another peer list or another node's data, or lost its log and voted again); %s stops rather than keep either history",
		ErrLogDiverged, index, a.cfg.ID, local, e.From, e.Term, term, a.cfg.ID), closure.EINTERNAL)
	return false
}

// skipCommitted returns the entries of req after this node's commit
// index, which is beyond req's previous entry: the entries up to it, and
// the previous one, are checked to be the ones this node committed. It
// reports false if one is not (the node has failed).
func (a *Actor) skipCommitted(env actors.Env, e *raftpb.Envelope, req *raftpb.AppendRequest) ([]*raftpb.Entry, bool) {
	ents := req.Entries
	skip := min(a.commit-req.PrevLogIndex, uint64(len(ents)))
	if !a.checkCommitted(env, e, req.PrevLogIndex, req.PrevLogTerm) {
		return nil, false
	}
	for _, ent := range ents[:skip] {
		if !a.checkCommitted(env, e, ent.Index, ent.Term) {
			return nil, false
		}
	}
	return ents[skip:], true
}

// heartbeatCommit is the commit index a heartbeat lets this node adopt.
// The leader clips it to the index up to which it knows this log matches
// its own, and names the term of its entry there:
//   - beyond this log's end, the log lost entries it had acknowledged (a
//     wiped or truncated data directory): adopt nothing; the leader sees
//     the last index in the reply and sends what is missing;
//   - at an entry of another term at or below this node's commit index,
//     the logs diverged on a committed entry: the node fails;
//   - at an entry of another term above it, the leader's idea of this log
//     is wrong: adopt nothing, the entries will be replaced by appends.
func (a *Actor) heartbeatCommit(env actors.Env, e *raftpb.Envelope, hb *raftpb.HeartbeatRequest) uint64 {
	if hb.Commit > a.log.LastIndex() {
		return a.commit
	}
	if hb.Commit == 0 || hb.CommitTerm == 0 {
		return a.commit // no commit, or one that cannot be checked
	}
	if a.log.MatchTerm(hb.Commit, hb.CommitTerm) {
		return hb.Commit
	}
	if hb.Commit <= a.commit {
		a.checkCommitted(env, e, hb.Commit, hb.CommitTerm)
	}
	return a.commit
}
