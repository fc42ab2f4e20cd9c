package node

import (
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// The node's durable state: its log (the view and the storage behind it,
// written together here and nowhere else), its hard state, what waits for
// either to be durable (the ack gate), and the commit index that rests on
// them.

// persistHardState asks the log manager to make the current term and vote
// durable. Sends wait until it answers.
//
// The commit index goes with them, but no further than the log is durable
// now: after a crash the log holds every entry up to it, and they are the
// committed ones (an entry at or below the commit index is never
// rewritten), so a restart may apply them before it hears from a leader.
func (a *Actor) persistHardState(env actors.Env) {
	a.savedCommit = min(a.commit, a.stable)
	env.Send(a.cfg.LogManager, logmgr.SaveHardState{HardState: &raftpb.HardState{Term: a.term, Vote: a.vote,
		Commit: a.savedCommit, Bootstrap: a.cfg.Boot, Peers: a.incs.proto()}})
}

func (a *Actor) onHardStateSaved(env actors.Env, hs *raftpb.HardState) {
	out := a.gate.saved(hs, a.term, a.vote)
	if !a.gate.durable(a.term, a.vote) {
		return // a newer save is on its way
	}
	for i, o := range out {
		env.Send(o.to, o.env)
		out[i] = outgoing{}
	}
	if a.role == Candidate && a.vote == a.cfg.ID {
		a.tr.recordVote(a.cfg.ID, true) // the self-vote counts once durable
		a.tally(env)
	}
}

// writeLog puts ents at the end of the log, first removing the entries
// from ents[0].Index on if the log has them (they conflict with the
// leader's), in the view and then in the storage, as one operation: the
// view is changed first and, if that fails, the node fails and the storage
// is not touched.
func (a *Actor) writeLog(env actors.Env, ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	from := ents[0].Index
	confs, err := decodeConfigs(ents)
	if err != nil {
		a.fail(env, err, closure.EINTERNAL)
		return
	}
	truncate := from <= a.log.LastIndex()
	if truncate {
		a.debug("truncate conflicting entries", "from", from, "last", a.log.LastIndex())
		if err := a.log.TruncateFrom(from); err != nil {
			a.fail(env, fmt.Errorf("truncate the log from %d: %w", from, err), closure.EINTERNAL)
			return
		}
	}
	if err := a.log.Append(ents); err != nil {
		a.fail(env, err, closure.EINTERNAL)
		return
	}
	if truncate {
		env.Send(a.cfg.LogManager, logmgr.TruncateSuffix{From: from})
		a.stable = min(a.stable, from-1)
		a.gate.truncated(from)
	}
	env.Send(a.cfg.LogManager, logmgr.Append{Entries: ents})
	a.sh.last.Store(ents[len(ents)-1].Index)
	if a.cfg.SnapshotLogBytes > 0 {
		for _, e := range ents {
			a.snap.bytes += uint64(len(e.Data))
		}
	}
	a.logConfigs(env, from, confs, truncate)
}

func (a *Actor) onStable(env actors.Env, m logmgr.Stable) {
	if m.Index <= a.stable || !a.log.MatchTerm(m.Index, m.Term) {
		return // nothing new, or about entries since truncated
	}
	a.stable = m.Index
	if a.role == Leader {
		if faults.On(faults.ReplicateAfterSync) {
			a.toReplicators(env, replicator.Update{Commit: a.commit})
		}
		a.maybeCommit(env)
	}
	a.flushAcks(env)
	a.trimLog()
}

// maybeCommit advances the commit index to the largest index durable on a
// quorum, if that entry is of the current term (Raft §5.4.2: entries of
// earlier terms commit only through it). The leader counts itself with
// its durable index.
func (a *Actor) maybeCommit(env actors.Env) {
	c := a.tr.committed(a.stable)
	if c > a.commit && (a.log.MatchTerm(c, a.term) || faults.On(faults.CommitPriorTerm)) {
		a.advanceCommit(env, c)
	}
}

// advanceCommit raises the commit index to c and hands the tasks it covers
// to the FSM caller.
func (a *Actor) advanceCommit(env actors.Env, c uint64) {
	a.commit = c
	a.sh.commit.Store(max(c, a.sh.commit.Load())) // a snapshot being loaded is published ahead (onFetched)
	n, _ := fsm.SearchTasks(a.tasks, c+1)
	var done []*fsm.Task
	if n > 0 {
		done = a.tasks[:n:n]
		if n == len(a.tasks) {
			a.tasks = nil
		} else {
			a.tasks = a.tasks[n:]
		}
		a.sh.inflight.Store(int64(len(a.tasks)))
	}
	env.Send(a.cfg.FSMCaller, fsm.Committed{Index: c, Tasks: done})
	if a.role == Leader {
		a.toReplicators(env, replicator.Update{Commit: c})
		a.advanceMembership(env)
		a.advanceCatchUp(env)
	}
}

// acceptEntries is a follower's write: ents (a suffix the log lacks or
// holds with other terms; possibly none) written to the log, then the
// commit index raised to commit if that is more.
func (a *Actor) acceptEntries(env actors.Env, ents []*raftpb.Entry, commit uint64) {
	a.writeLog(env, ents)
	if a.failed == nil && commit > a.commit {
		a.advanceCommit(env, commit)
	}
}
