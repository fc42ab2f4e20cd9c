package node

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// maxBatchesPerTurn bounds the proposal batches one Receive appends, so a
// flood of proposals cannot starve the node's other messages.
const maxBatchesPerTurn = 16

// becomeLeader takes over the group in the current term: it spawns a
// replicator per peer and appends a no-op entry, whose commit commits every
// earlier entry (Raft §5.4.2) and tells the state machine it leads.
func (a *Actor) becomeLeader(env actors.Env) {
	a.sh.Metrics.BecameLeader.Add(1)
	a.role = Leader
	a.tr.endVote()
	a.abandonInstall(env)
	a.setLeader(env, a.cfg.ID)
	a.quorumElapsed = 0
	last := a.log.LastIndex()
	err := a.tr.startReplicators(a.spawnReplicator(env))
	if err != nil {
		a.fail(env, err, closure.EINTERNAL)
		return
	}
	views := a.tr.views()
	a.sh.peers.Store(&views)
	noop := &raftpb.Entry{Index: last + 1, Term: a.term, Type: raftpb.EntryType_ENTRY_TYPE_NOOP}
	a.writeLog(env, []*raftpb.Entry{noop})
	a.termStart = noop.Index
	a.debug("became leader", "first index", noop.Index)
	env.Send(a.cfg.FSMCaller, fsm.LeaderStart{Term: a.term, Index: noop.Index})
	a.toReplicators(env, replicator.Update{Commit: a.commit})
	a.drain(env)
}

// stopLeading ends this node's leadership: its replicators stop (replies
// to them are dropped from now on). Appended tasks stay pending: entries of
// this term may still be committed by a later leader.
func (a *Actor) stopLeading(env actors.Env, st closure.Status) {
	a.abandonChange("this node stopped leading (" + st.Msg + ")")
	a.transferStepDown()
	a.tr.stopReplicators(env.Stop)
	clear(a.snap.sending)
	a.sh.peers.Store(nil)
	a.sh.readErr.Store(nil)
	a.sh.lostErr.Store(nil)
	a.stopLeadingReads(env)
	env.Send(a.cfg.FSMCaller, fsm.LeaderStop{Term: a.term, Status: st})
}

// drain takes proposals from the queue: appended as batches of up to
// ApplyBatch entries by a leader, refused with EPERM otherwise.
func (a *Actor) drain(env actors.Env) {
	appended := false
	for i := 0; i < maxBatchesPerTurn; i++ {
		if a.holdProposals() {
			a.held = true
			break // resumes when the state machine catches up (resumeHeld)
		}
		batch := a.sh.Proposals.Take(a.scratch[:0], a.cfg.ApplyBatch)
		if len(batch) == 0 {
			break
		}
		if a.role != Leader {
			st := closure.NotLeader(a.leader)
			for _, p := range batch {
				a.complete(&p.Task.Guard, st)
			}
		} else if t := a.transfer; t != nil {
			st := closure.Newf(closure.EBUSY, "the leader is transferring its leadership to %s; retry on the new leader", t.to)
			for _, p := range batch {
				a.complete(&p.Task.Guard, st)
			}
		} else {
			a.appendProposals(env, batch)
			appended = true
		}
		clear(batch)
		a.scratch = batch[:0]
	}
	if appended && !faults.On(faults.ReplicateAfterSync) {
		a.toReplicators(env, replicator.Update{Commit: a.commit}) // in parallel with the log manager's write
	}
	if !a.holdProposals() && a.sh.Proposals.Len() > 0 {
		env.Send(env.Self(), Nudge{}) // more to do after other messages
	}
}

// holdProposals reports whether a leader must leave proposals queued for
// now: MaxPendingTasks entries are committed and not yet applied. Its own
// proposals in that backlog are bounded by the node's budget already
// (MaxPendingTasks, MaxPendingBytes); this also bounds the entries it
// inherited from earlier terms, and keeps new proposals out of the log,
// where a step-down would leave their fate open, until the state machine
// has caught up. The backlog's memory is bounded by MaxLogCacheBytes.
func (a *Actor) holdProposals() bool {
	return a.role == Leader && a.commit-a.applied >= uint64(a.cfg.MaxPendingTasks)
}

// resumeHeld resumes the drain that holdProposals stopped, once the state
// machine has caught up or the node no longer leads (its queued proposals
// then get EPERM). Called on Applied and on every tick, so a leader that
// steps down while holding them does not wait for its next apply.
func (a *Actor) resumeHeld(env actors.Env) {
	if a.held && !a.holdProposals() {
		a.held = false
		a.drain(env)
	}
}

// appendProposals turns a batch of proposals into entries of the current
// term and appends them as one write.
func (a *Actor) appendProposals(env actors.Env, batch []Proposal) {
	slab := make([]raftpb.Entry, len(batch)) // one allocation for the batch's entries
	ents := make([]*raftpb.Entry, 0, len(batch))
	next := a.log.LastIndex() + 1
	// Tasks of an earlier leadership may wait at indexes this term reuses
	// (their entries were truncated here but may still commit elsewhere):
	// keep tasks ordered by index, older first, for the FSM caller.
	unordered := len(a.tasks) > 0 && a.tasks[len(a.tasks)-1].Index >= next
	for i, p := range batch {
		if p.ExpectedTerm != 0 && p.ExpectedTerm != a.term {
			a.complete(&p.Task.Guard, closure.Newf(closure.ESTALE, "expected term %d, the leader is in term %d", p.ExpectedTerm, a.term))
			continue
		}
		e := &slab[i]
		e.Index, e.Term, e.Data = next, a.term, p.Data
		next++
		p.Task.Index, p.Task.Term = e.Index, e.Term
		a.tasks = append(a.tasks, p.Task)
		ents = append(ents, e)
	}
	if unordered {
		slices.SortStableFunc(a.tasks, func(x, y *fsm.Task) int { return cmp.Compare(x.Index, y.Index) })
	}
	a.sh.inflight.Store(int64(len(a.tasks)))
	a.writeLog(env, ents)
}

func (a *Actor) onProgress(env actors.Env, m replicator.Progress) {
	if a.role != Leader || m.Term != a.term {
		return
	}
	if a.tr.peer(m.Peer) == nil {
		return
	}
	a.onContact(env, m.Peer, m.SentAt)
	if a.tr.progressed(m.Peer, m.Match) {
		a.peerCaughtUp(m.Peer, m.Match)
		a.maybeCommit(env)
		a.maybeTimeoutNow(env)
		a.advanceCatchUp(env)
	}
}

// peerError is a replicator's failure to read the log for peer.
type peerError struct {
	peer string
	err  error
}

// onReadReport handles a replicator's replicator.ReadFailed and
// replicator.ReadResumed: it counts every failed read, shows the latest
// failure in Status.ReplicationErr until that replicator reads again, and
// logs when a run of failures starts and ends. With several replicators
// failing, Status shows the one that reported last (each reports at least
// every HeartbeatInterval while it fails).
func (a *Actor) onReadReport(msg any) {
	switch m := msg.(type) {
	case replicator.ReadFailed:
		a.sh.Metrics.ReplicationReadFailures.Add(1)
		if a.role != Leader || m.Term != a.term {
			return
		}
		switch {
		case m.Failures != 1:
		case m.PeerSide:
			// The follower's own log says why; the leader offers a
			// snapshot again.
			a.logger.Warn("asyncraft: a follower could not install the snapshot; it is offered again",
				"peer", m.Peer, "term", m.Term, "retry in ticks", m.RetryTicks, "err", m.Err)
		default:
			a.logger.Error("asyncraft: a replicator cannot read the log; the peer gets no entries while it retries",
				"peer", m.Peer, "term", m.Term, "err", m.Err)
		}
		a.sh.readErr.Store(&peerError{m.Peer, fmt.Errorf("replicate to %s: read failed (%d in a row; retry in %d ticks): %w", m.Peer, m.Failures, m.RetryTicks, m.Err)})
		delete(a.snap.sending, m.Peer) // an install that failed holds compaction back no more
	case replicator.ReadResumed:
		if a.role != Leader || m.Term != a.term {
			return
		}
		a.logger.Info("asyncraft: a replicator reads the log again", "peer", m.Peer, "term", m.Term, "failed reads", m.Failures)
		if p := a.sh.readErr.Load(); p != nil && p.peer == m.Peer {
			a.sh.readErr.Store(nil)
		}
	}
}
