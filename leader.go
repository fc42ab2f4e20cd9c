package asyncraft

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// maxBatchesPerTurn bounds the proposal batches one Receive appends, so a
// flood of proposals cannot starve the node's other messages.
const maxBatchesPerTurn = 16

// becomeLeader takes over the group in the current term: it spawns a
// replicator per peer and appends a no-op entry, whose commit commits every
// earlier entry (Raft §5.4.2) and tells the state machine it leads.
func (a *nodeActor) becomeLeader(env actors.Env) {
	a.n.metrics.BecameLeader.Add(1)
	a.role = Leader
	a.votes = nil
	a.setLeader(env, a.opts.ID)
	a.match = map[string]uint64{}
	a.active = map[string]bool{}
	a.repls = map[string]actors.Ref{}
	a.quorumElapsed = 0
	last := a.log.LastIndex()
	for _, id := range a.others {
		ref, err := env.Spawn(replicatorChild(id, a.term), replicator.New(replicator.Config{
			Group:            a.opts.Group,
			LeaderID:         a.opts.ID,
			PeerID:           id,
			Term:             a.term,
			Peer:             a.peerRef(id),
			Node:             env.Self(),
			Log:              a.log,
			NextIndex:        last + 1,
			Commit:           a.commit,
			MaxInflightMsgs:  a.opts.MaxInflightMsgs,
			MaxInflightBytes: a.opts.MaxInflightBytes,
			MaxBytesPerRPC:   a.opts.MaxBytesPerRPC,
			HeartbeatTicks:   a.ticks.heartbeat,
			Logger:           a.logger,
			Cluster:          a.cluster,
			Foreign:          &a.n.metrics.Foreign,
		}))
		if err != nil {
			a.fail(env, fmt.Errorf("spawn replicator for %s: %w", id, err), closure.EINTERNAL)
			return
		}
		a.repls[id] = ref
	}
	noop := &raftpb.Entry{Index: last + 1, Term: a.term, Type: raftpb.EntryType_ENTRY_TYPE_NOOP}
	a.appendLocal(env, []*raftpb.Entry{noop})
	a.termStart = noop.Index
	a.debug("became leader", "first index", noop.Index)
	env.Send(a.fsmRef, fsm.LeaderStart{Term: a.term, Index: noop.Index})
	a.wakeReplicators(env)
	a.drain(env)
}

// stopLeading ends this node's leadership: its replicators stop (replies
// to them are dropped from now on). Appended tasks stay pending: entries of
// this term may still be committed by a later leader.
func (a *nodeActor) stopLeading(env actors.Env, st closure.Status) {
	for _, id := range a.others {
		if ref, ok := a.repls[id]; ok {
			env.Stop(ref)
		}
	}
	a.repls, a.match, a.active = nil, nil, nil
	a.n.readErr.Store(nil)
	a.forgetLosses()
	a.dropLeaderReads(env)
	env.Send(a.fsmRef, fsm.LeaderStop{Term: a.term, Status: st})
}

// drain takes proposals from the queue: appended as batches of up to
// ApplyBatch entries by a leader, refused with EPERM otherwise.
func (a *nodeActor) drain(env actors.Env) {
	appended := false
	for i := 0; i < maxBatchesPerTurn; i++ {
		if a.holdProposals() {
			a.held = true
			break // resumes when the state machine catches up (resumeHeld)
		}
		batch := a.n.queue.take(a.scratch[:0], a.opts.ApplyBatch)
		if len(batch) == 0 {
			break
		}
		if a.role != Leader {
			st := closure.NotLeader(a.leader)
			for _, p := range batch {
				a.complete(&p.task.Guard, st)
			}
		} else {
			a.appendProposals(env, batch)
			appended = true
		}
		clear(batch)
		a.scratch = batch[:0]
	}
	if appended && !faults.On(faults.ReplicateAfterSync) {
		a.wakeReplicators(env) // in parallel with the log manager's write
	}
	if !a.holdProposals() && a.n.queue.len() > 0 {
		env.Send(env.Self(), nudge{}) // more to do after other messages
	}
}

// holdProposals reports whether a leader must leave proposals queued for
// now: MaxPendingTasks entries are committed and not yet applied. Its own
// proposals in that backlog are bounded by the node's budget already
// (MaxPendingTasks, MaxPendingBytes); this also bounds the entries it
// inherited from earlier terms, and keeps new proposals out of the log,
// where a step-down would leave their fate open, until the state machine
// has caught up. The backlog's memory is bounded by MaxLogCacheBytes.
func (a *nodeActor) holdProposals() bool {
	return a.role == Leader && a.commit-a.applied >= uint64(a.opts.MaxPendingTasks)
}

// resumeHeld resumes the drain that holdProposals stopped, once the state
// machine has caught up or the node no longer leads (its queued proposals
// then get EPERM). Called on Applied and on every tick, so a leader that
// steps down while holding them does not wait for its next apply.
func (a *nodeActor) resumeHeld(env actors.Env) {
	if a.held && !a.holdProposals() {
		a.held = false
		a.drain(env)
	}
}

// appendProposals turns a batch of proposals into entries of the current
// term and appends them as one write.
func (a *nodeActor) appendProposals(env actors.Env, batch []proposal) {
	slab := make([]raftpb.Entry, len(batch)) // one allocation for the batch's entries
	ents := make([]*raftpb.Entry, 0, len(batch))
	next := a.log.LastIndex() + 1
	// Tasks of an earlier leadership may wait at indexes this term reuses
	// (their entries were truncated here but may still commit elsewhere):
	// keep tasks ordered by index, older first, for the FSM caller.
	unordered := len(a.tasks) > 0 && a.tasks[len(a.tasks)-1].Index >= next
	for i, p := range batch {
		if p.expectedTerm != 0 && p.expectedTerm != a.term {
			a.complete(&p.task.Guard, closure.Newf(closure.ESTALE, "expected term %d, the leader is in term %d", p.expectedTerm, a.term))
			continue
		}
		e := &slab[i]
		e.Index, e.Term, e.Data = next, a.term, p.data
		next++
		p.task.Index, p.task.Term = e.Index, e.Term
		a.tasks = append(a.tasks, p.task)
		ents = append(ents, e)
	}
	if unordered {
		slices.SortStableFunc(a.tasks, func(x, y *fsm.Task) int { return cmp.Compare(x.Index, y.Index) })
	}
	a.n.inflight.Store(int64(len(a.tasks)))
	a.appendLocal(env, ents)
}

// appendLocal adds entries to the log and sends them to the log manager to
// be made durable.
func (a *nodeActor) appendLocal(env actors.Env, ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	if err := a.log.Append(ents); err != nil {
		a.fail(env, err, closure.EINTERNAL)
		return
	}
	env.Send(a.logRef, logmgr.Append{Entries: ents})
	a.n.last.Store(ents[len(ents)-1].Index)
}

func (a *nodeActor) wakeReplicators(env actors.Env) {
	for _, id := range a.others {
		if ref, ok := a.repls[id]; ok {
			env.Send(ref, replicator.Update{Commit: a.commit})
		}
	}
}

func (a *nodeActor) onProgress(env actors.Env, m replicator.Progress) {
	if a.role != Leader || m.Term != a.term {
		return
	}
	if _, ok := a.repls[m.Peer]; !ok {
		return
	}
	a.active[m.Peer] = true
	a.onContact(env, m.Peer, m.SentAt)
	if m.Match > a.match[m.Peer] {
		a.match[m.Peer] = m.Match
		a.peerCaughtUp(m.Peer, m.Match)
		a.maybeCommit(env)
	}
}

// maybeCommit advances the commit index to the largest index durable on a
// quorum, if that entry is of the current term (Raft §5.4.2: entries of
// earlier terms commit only through it).
func (a *nodeActor) maybeCommit(env actors.Env) {
	c := a.conf.Committed(func(id string) (uint64, bool) {
		if id == a.opts.ID {
			return a.stable, true
		}
		v, ok := a.match[id]
		return v, ok
	})
	if c > a.commit && (a.log.MatchTerm(c, a.term) || faults.On(faults.CommitPriorTerm)) {
		a.advanceCommit(env, c)
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
func (a *nodeActor) onReadReport(msg any) {
	switch m := msg.(type) {
	case replicator.ReadFailed:
		a.n.metrics.ReplicationReadFailures.Add(1)
		if a.role != Leader || m.Term != a.term {
			return
		}
		if m.Failures == 1 {
			a.logger.Error("asyncraft: a replicator cannot read the log; the peer gets no entries while it retries",
				"peer", m.Peer, "term", m.Term, "err", m.Err)
		}
		a.n.readErr.Store(&peerError{m.Peer, fmt.Errorf("replicate to %s: read failed (%d in a row; retry in %d ticks): %w", m.Peer, m.Failures, m.RetryTicks, m.Err)})
	case replicator.ReadResumed:
		if a.role != Leader || m.Term != a.term {
			return
		}
		a.logger.Info("asyncraft: a replicator reads the log again", "peer", m.Peer, "term", m.Term, "failed reads", m.Failures)
		if p := a.n.readErr.Load(); p != nil && p.peer == m.Peer {
			a.n.readErr.Store(nil)
		}
	}
}
