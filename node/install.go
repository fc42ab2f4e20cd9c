package node

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/snapshot"
)

// A follower's side of a snapshot install (Raft §7; the leader's side is
// in replicator/install.go):
//
//  1. The leader's InstallSnapshotRequest passes the term gate like an
//     append. If this node's log already holds the snapshot's last entry
//     (index and term), or its commit index is there already, it answers
//     success at once: the entries up to there are committed and match.
//  2. Otherwise its copy actor fetches the snapshot from the leader's
//     (snapshot.Fetch) into its store, checks it and reports Fetched (or
//     FetchFailed, answered to the leader as a failure). A request for the
//     snapshot being fetched joins the fetch (a new leader, or the same
//     one asking again).
//  3. On Fetched the FSM caller loads it (fsm.Load), after every entry it
//     was given before; meanwhile appends are dropped (the leader sends
//     them again), so that nothing is written to a log about to be
//     replaced. The node's tasks at or below the snapshot's last index
//     complete with EUNKNOWN.
//  4. When the FSM caller reports the snapshot applied, the log is emptied
//     to continue it (view and storage: logmgr.Reset, ordered with later
//     appends), the commit index moves to its last index, and the leader
//     is answered success.
//
// A crash anywhere leaves a consistent node: before the snapshot is
// committed to the store, the old state and log; after, a restart loads
// the snapshot and lines the log up with it (restore.go).

// installing is a follower's record of the install under way.
type installing struct {
	meta *raftpb.SnapshotMeta
	// The latest request: answered when the install ends.
	replyTo actors.Ref
	seq     uint64
	from    string
	// loading: fetched, and the FSM caller is loading it.
	loading bool
}

// is reports whether m is the snapshot being installed, bytes and all:
// two leaders' snapshots of one index hold the same state but need not be
// the same bytes (a state machine that iterates a Go map writes its pairs
// in an order of its own each time), and a fetch of one is not a fetch of
// the other.
func (i *installing) is(m *raftpb.SnapshotMeta) bool {
	if faults.On(faults.InstallByIndex) {
		return i.of(m)
	}
	return i != nil && m != nil && proto.Equal(i.meta, m)
}

// of reports whether m is a snapshot of the index and term being
// installed, whatever its bytes.
func (i *installing) of(m *raftpb.SnapshotMeta) bool {
	return i != nil && m != nil && i.meta.LastIndex == m.LastIndex && i.meta.LastTerm == m.LastTerm
}

// copyRef is the ref of node id's snapshot copy actor.
func (a *Actor) copyRef(id string) actors.Ref {
	return actors.Ref{Host: a.tr.addr(id), Name: snapshot.CopyName(SnapshotterName(a.cfg.Group, id))}
}

func (a *Actor) onInstallRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.InstallSnapshotRequest) {
	m := req.GetMeta()
	switch {
	case m.GetLastIndex() == 0 || m.GetLastTerm() == 0:
		a.answerInstall(env, e.From, a.replyTo(e), e.Seq, false, 0, "the request names no snapshot")
		return
	case m.LastIndex <= a.commit || a.log.MatchTerm(m.LastIndex, m.LastTerm):
		// The log holds it: committed entries are the same everywhere.
		if m.LastIndex > a.commit {
			a.advanceCommit(env, m.LastIndex)
		}
		a.answerInstall(env, e.From, a.replyTo(e), e.Seq, true, m.LastIndex, "")
		return
	case a.cfg.Snapshotter.IsZero():
		a.answerInstall(env, e.From, a.replyTo(e), e.Seq, false, 0, "this node keeps no snapshots (it has no data directory)")
		return
	case a.inst != nil && a.inst.loading:
		return // busy loading another; the leader asks again
	}
	same := a.inst.is(m)
	if !same {
		// Another leader's snapshot of the index being installed is the
		// same install to the metrics; its fetch replaces the other's,
		// whose end (ErrCanceled) is then about a fetch no longer waited
		// for.
		if !a.inst.of(m) {
			a.sh.Metrics.InstallsStarted.Add(1)
		}
		a.inst = &installing{meta: m}
	}
	a.inst.replyTo, a.inst.seq, a.inst.from = a.replyTo(e), e.Seq, e.From
	a.debug("installing snapshot", "index", m.LastIndex, "term", m.LastTerm, "from", e.From, "again", same)
	env.Send(a.copier(), snapshot.Fetch{Meta: m, Leader: e.From, From: a.copyRef(e.From), Term: e.Term})
}

// copier is this node's copy actor.
func (a *Actor) copier() actors.Ref { return a.cfg.Snapshotter.Child(snapshot.CopyChild) }

func (a *Actor) onFetched(env actors.Env, m snapshot.Fetched) {
	in := a.inst
	if !in.of(m.Meta) || in.loading {
		return // about a fetch this node no longer waits for
	}
	// The store holds a snapshot of that index and term: the one asked
	// for, or one it held already (same state, maybe other bytes), which
	// is the one to load.
	in.meta = m.Meta
	idx, term := in.meta.LastIndex, in.meta.LastTerm
	if idx <= a.commit || a.log.MatchTerm(idx, term) {
		if idx > a.commit {
			a.advanceCommit(env, idx)
		}
		a.endInstall(env, true, idx, "")
		return
	}
	in.loading = true
	n, _ := fsm.SearchTasks(a.tasks, idx+1)
	var tasks []*fsm.Task
	if n > 0 {
		tasks = a.tasks[:n:n]
		a.tasks = a.tasks[n:]
		a.sh.inflight.Store(int64(len(a.tasks)))
	}
	// Published ahead of the actor's own indexes, which follow once the
	// snapshot is loaded, so that Status keeps applied <= commit <= last.
	a.sh.commit.Store(max(a.commit, idx))
	a.sh.last.Store(max(a.log.LastIndex(), idx))
	env.Send(a.cfg.FSMCaller, fsm.Load{
		Meta:  fsm.SnapshotMeta{Index: idx, Term: term, Configuration: in.meta.Configuration},
		Open:  a.cfg.OpenSnapshot(in.meta),
		Tasks: tasks,
	})
}

func (a *Actor) onFetchFailed(env actors.Env, m snapshot.FetchFailed) {
	if !a.inst.is(m.Meta) || a.inst.loading {
		return
	}
	a.sh.Metrics.InstallFailures.Add(1)
	a.logger.Warn("asyncraft: snapshot install failed", "index", m.Meta.GetLastIndex(), "term", m.Meta.GetLastTerm(), "from", a.inst.from, "err", m.Err)
	a.endInstall(env, false, 0, m.Err.Error())
}

// installLoaded finishes an install once the FSM caller has applied the
// snapshot (called with each Applied).
func (a *Actor) installLoaded(env actors.Env) {
	in := a.inst
	if in == nil || !in.loading || a.applied < in.meta.LastIndex {
		return
	}
	idx, term := in.meta.LastIndex, in.meta.LastTerm
	if err := a.log.Reset(idx+1, term); err != nil {
		a.fail(env, fmt.Errorf("reset the log after installing snapshot %d/%d: %w", idx, term, err), closure.EINTERNAL)
		return
	}
	env.Send(a.cfg.LogManager, logmgr.Reset{Next: idx + 1, Term: term})
	a.gate.truncated(idx + 1)
	a.stable = idx
	a.commit = max(a.commit, idx)
	a.sh.commit.Store(a.commit)
	a.sh.last.Store(idx)
	s := &a.snap
	if idx > s.index {
		if a.cfg.SnapshotKeep >= 2 {
			s.prev = s.index
		}
		s.index = idx
		a.sh.snapshot.Store(idx)
	}
	s.compacted = max(s.compacted, idx+1)
	a.snapshotConfig(env, idx, in.meta.Configuration)
	a.sh.Metrics.InstallsDone.Add(1)
	a.logger.Info("asyncraft: installed a snapshot from the leader", "index", idx, "term", term, "from", in.from)
	a.endInstall(env, true, idx, "")
	a.flushAcks(env)
}

// endInstall answers the latest request of the install under way and
// forgets it.
func (a *Actor) endInstall(env actors.Env, ok bool, last uint64, reason string) {
	in := a.inst
	a.inst = nil
	a.answerInstall(env, in.from, in.replyTo, in.seq, ok, last, reason)
}

// answerInstall answers request seq of leader from, whose replicator is
// to.
func (a *Actor) answerInstall(env actors.Env, from string, to actors.Ref, seq uint64, ok bool, last uint64, reason string) {
	r := a.envelope(from, a.term, seq)
	r.Body = &raftpb.Envelope_InstallSnapshotResponse{InstallSnapshotResponse: &raftpb.InstallSnapshotResponse{
		Success: ok, LastIndex: last, Reason: reason,
	}}
	a.send(env, to, r)
}

// copierOrZero is this node's copy actor, or the zero ref if it keeps no
// snapshots.
func (a *Actor) copierOrZero() actors.Ref {
	if a.cfg.Snapshotter.IsZero() {
		return actors.Ref{}
	}
	return a.copier()
}

// abandonInstall stops a fetch under way (a node that leads installs
// nothing); its durable part is kept for a later resume. A snapshot being
// loaded is past that point: it is committed state, and the node finishes
// loading it.
func (a *Actor) abandonInstall(env actors.Env) {
	if a.inst == nil || a.inst.loading {
		return
	}
	env.Send(a.copier(), snapshot.CancelFetch{})
	a.inst = nil
}
