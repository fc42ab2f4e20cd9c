package asyncraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/quorum"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// nodeActor is the Raft node: roles, terms, elections, the commit index and
// the fate of proposals. It owns everything below; nothing else touches it.
//
// It accepts:
//   - envelopes from peers (votes, appends, heartbeats);
//   - tick from the host's ticker, nudge from its Node handle;
//   - Progress, HigherTerm, ReadFailed, ReadResumed and LostEntries from
//     its replicators (children, while it leads);
//   - Stable, HardStateSaved, Failed and Closed from its log manager;
//   - Applied, Failed and ShutdownDone from its FSM caller;
//   - shutdownNode and actorFailed from its host.
//
// It sends envelopes to peers, Append/TruncateSuffix/SaveHardState/Close to
// the log manager, Committed and leadership events to the FSM caller,
// Update and Tick to replicators, and failed closures to the executor.
//
// Durability rules it keeps (Raft §5, thesis §3.8):
//   - no message leaves while the term and vote it is based on are not
//     durable: sends wait in the outbox until HardStateSaved (so a vote is
//     on disk before it is granted, and a candidate's vote for itself
//     before its requests leave);
//   - a follower acknowledges entries only once they are durable (acks
//     wait for Stable);
//   - the leader counts itself toward the commit quorum only for entries
//     it has made durable (its match is its stable index), while its
//     replicators send the same entries in parallel.
type nodeActor struct {
	n      *Node
	host   *Host
	opts   NodeOptions
	ticks  ticks
	logger *slog.Logger

	logRef  actors.Ref
	fsmRef  actors.Ref
	execRef actors.Ref

	// Configuration: voters (joint-ready), member addresses, and the
	// members other than this node in sorted order.
	conf   quorum.Joint
	peers  map[string]string
	others []string

	// boot is the bootstrap record, carried by every hard state saved, and
	// cluster the identity derived from it, on every envelope (identity.go).
	boot    *raftpb.Bootstrap
	cluster uint64
	// diag: what the node warned about, and whether peers answer (admit.go).
	diag diagnostics

	log *logmgr.Log

	role   Role
	term   uint64
	vote   string
	leader string

	// savedTerm and savedVote are durable; while (term, vote) differ,
	// outgoing messages wait in outbox.
	savedTerm uint64
	savedVote string
	outbox    []outgoing

	// Invariant: applied <= commit <= log.LastIndex(); stable <= log.LastIndex().
	commit  uint64
	applied uint64
	stable  uint64

	electionElapsed   int
	randomizedTimeout int
	votes             map[string]bool

	// Leader state, for the current term only.
	repls         map[string]actors.Ref
	match         map[string]uint64
	lost          map[string]uint64 // peers that lost entries: the match they had (lostlog.go)
	active        map[string]bool
	quorumElapsed int

	// tasks holds the proposals appended to the log and not yet committed
	// (and so not yet handed to the FSM caller), in index order. They
	// outlive a step-down: whatever is later committed at their index
	// decides their fate. Two tasks may share an index (one truncated here
	// but alive elsewhere, one of a later term); at most one of them can
	// succeed.
	tasks []*fsm.Task

	// acks are a follower's successful append replies waiting for their
	// entries to become durable.
	acks []pendingAck

	// Reads: see reads.go.
	rd        reads
	tickCount int64
	// termStart is the index of this leader's first entry (its no-op).
	termStart uint64

	failed   error
	stopping bool
	latch    *stopLatch // counts the node's actors down to finish

	scratch     []proposal
	completions closure.Batch
	published   Status

	// held: the drain stopped with proposals queued because the apply
	// backlog is full (holdProposals); resumeHeld resumes it.
	held bool
}

type outgoing struct {
	to  actors.Ref
	env *raftpb.Envelope
}

type pendingAck struct {
	to    actors.Ref
	seq   uint64
	term  uint64
	match uint64
}

// actorFailed reports that another actor of the node panicked.
type actorFailed struct{ err error }

func newNodeActor(n *Node, opts NodeOptions, t ticks, hs *raftpb.HardState, l *logmgr.Log) *nodeActor {
	a := &nodeActor{
		n:         n,
		host:      n.host,
		opts:      opts,
		ticks:     t,
		logger:    n.host.opts.Logger.With("group", opts.Group, "id", opts.ID),
		execRef:   n.host.execRef,
		peers:     map[string]string{},
		log:       l,
		term:      hs.Term,
		vote:      hs.Vote,
		rd:        reads{acked: map[string]uint64{}},
		savedTerm: hs.Term,
		savedVote: hs.Vote,
	}
	ids := make([]string, 0, len(opts.Peers))
	for _, p := range opts.Peers {
		a.peers[p.ID] = p.Addr
		ids = append(ids, p.ID)
		if p.ID != opts.ID {
			a.others = append(a.others, p.ID)
		}
	}
	slices.Sort(a.others)
	a.conf = quorum.Joint{quorum.NewMajority(ids...)}
	last, _ := l.Last()
	a.stable = last // the storage holds only durable entries at start
	a.boot, a.cluster = hs.Bootstrap, clusterIdentity(hs.Bootstrap)
	n.actor, n.log, n.cluster = a, l, a.cluster
	n.last.Store(last)
	return a
}

// Receive implements actors.Actor.
func (a *nodeActor) Receive(env actors.Env, msg any) {
	if a.stopping {
		a.receiveStopping(env, msg)
		return
	}
	switch m := msg.(type) {
	case actors.Started:
		a.rd.epoch = env.Now()
		a.resetElectionTimer(env)
	case tick:
		a.tick(env)
	case nudge:
		a.drain(env)
		a.drainReads(env)
	case *raftpb.Envelope:
		a.step(env, m)
	case replicator.Progress:
		a.onProgress(env, m)
	case replicator.ReadFailed, replicator.ReadResumed:
		a.onReadReport(m)
	case replicator.LostEntries:
		a.onLostEntries(m)
	case replicator.HigherTerm:
		if m.Term > a.term && a.failed == nil {
			a.becomeFollower(env, m.Term, "")
		}
	case logmgr.Stable:
		a.onStable(env, m)
	case logmgr.HardStateSaved:
		a.onHardStateSaved(env, m.HardState)
	case logmgr.Failed:
		code := closure.EIO
		if errors.Is(m.Err, syscall.ENOSPC) {
			code = closure.ENOSPC
		}
		a.fail(env, fmt.Errorf("log storage failed: %w", m.Err), code)
	case fsm.Applied:
		a.applied = m.Index // the FSM caller publishes it to Status itself
		a.onAppliedReads()
		a.trimLog()
		a.resumeHeld(env)
	case fsm.Failed:
		a.applied = m.Applied
		a.fail(env, m.Err, closure.ESTATEMACHINE)
	case actorFailed:
		a.fail(env, m.err, closure.EINTERNAL)
	case shutdownNode:
		a.beginShutdown(env)
	case actors.Stopped:
		// Stopped from outside (the runtime shutting down).
		a.latch.done()
	}
	a.flushCompletions(env)
	a.publish()
}

// debug logs a decision of the node (elections, votes, truncations) at
// DEBUG, where the simulator's readable trace shows it. It costs nothing
// when DEBUG is off.
func (a *nodeActor) debug(msg string, args ...any) {
	if a.logger.Enabled(context.Background(), slog.LevelDebug) {
		a.logger.Debug(msg, append(args, "term", a.term, "role", a.role.String())...)
	}
}

// send delivers e to a peer's actor, or keeps it in the outbox until the
// hard state it rests on is durable.
func (a *nodeActor) send(env actors.Env, to actors.Ref, e *raftpb.Envelope) {
	if a.term != a.savedTerm || a.vote != a.savedVote {
		a.outbox = append(a.outbox, outgoing{to, e})
		return
	}
	env.Send(to, e)
}

func (a *nodeActor) envelope(to string, term, seq uint64) *raftpb.Envelope {
	return &raftpb.Envelope{Group: a.opts.Group, From: a.opts.ID, To: to, Term: term, Seq: seq, Cluster: a.cluster}
}

func (a *nodeActor) peerRef(id string) actors.Ref {
	return actors.Ref{Host: a.peers[id], Name: nodeName(a.opts.Group, id)}
}

// persistHardState asks the log manager to make the current term and vote
// durable. Sends wait until it answers.
func (a *nodeActor) persistHardState(env actors.Env) {
	env.Send(a.logRef, logmgr.SaveHardState{HardState: &raftpb.HardState{Term: a.term, Vote: a.vote, Commit: a.commit,
		Bootstrap: a.boot}})
}

func (a *nodeActor) onHardStateSaved(env actors.Env, hs *raftpb.HardState) {
	a.savedTerm, a.savedVote = hs.Term, hs.Vote
	if a.term != a.savedTerm || a.vote != a.savedVote {
		return // a newer save is on its way
	}
	for i, o := range a.outbox {
		if o.env.Term >= a.term { // messages of earlier terms are moot
			env.Send(o.to, o.env)
		}
		a.outbox[i] = outgoing{}
	}
	a.outbox = a.outbox[:0]
	if a.role == Candidate && a.vote == a.opts.ID {
		a.votes[a.opts.ID] = true
		a.tally(env)
	}
}

func (a *nodeActor) onStable(env actors.Env, m logmgr.Stable) {
	if m.Index <= a.stable || !a.log.MatchTerm(m.Index, m.Term) {
		return // nothing new, or about entries since truncated
	}
	a.stable = m.Index
	if a.role == Leader {
		if faults.On(faults.ReplicateAfterSync) {
			a.wakeReplicators(env)
		}
		a.maybeCommit(env)
	}
	a.flushAcks(env)
	a.trimLog()
}

// trimLog lets the log drop cached entries that are applied and durable,
// keeping those a lagging follower still needs (up to a bound); and, when
// the cache holds more than MaxLogCacheBytes, the oldest committed and
// durable entries even if not applied yet: the FSM caller and the
// replicators read those from storage.
func (a *nodeActor) trimLog() {
	const keepForFollowers = 1 << 16
	upTo := min(a.applied, a.stable)
	if a.role == Leader {
		floor := uint64(0)
		if a.applied > keepForFollowers {
			floor = a.applied - keepForFollowers
		}
		for _, id := range a.others {
			upTo = min(upTo, max(a.match[id], floor))
		}
	}
	a.log.Trim(upTo)
	a.log.Spill(min(a.commit, a.stable), a.opts.MaxLogCacheBytes)
}

// advanceCommit raises the commit index to c and hands the tasks it covers
// to the FSM caller.
func (a *nodeActor) advanceCommit(env actors.Env, c uint64) {
	a.commit = c
	a.n.commit.Store(c)
	n, _ := fsm.SearchTasks(a.tasks, c+1)
	var done []*fsm.Task
	if n > 0 {
		done = a.tasks[:n:n]
		if n == len(a.tasks) {
			a.tasks = nil
		} else {
			a.tasks = a.tasks[n:]
		}
		a.n.inflight.Store(int64(len(a.tasks)))
	}
	env.Send(a.fsmRef, fsm.Committed{Index: c, Tasks: done})
	if a.role == Leader {
		a.wakeReplicators(env)
	}
}

// complete queues a closure to run on the executor with st.
func (a *nodeActor) complete(g *closure.Guard, st closure.Status) {
	a.completions = append(a.completions, closure.Completion{Closure: g, Status: st})
}

func (a *nodeActor) flushCompletions(env actors.Env) {
	if len(a.completions) > 0 {
		env.Send(a.execRef, a.completions)
		a.completions = nil
	}
}

// publish makes role, term, leader and error visible to Node.Status when
// they changed.
func (a *nodeActor) publish() {
	p := &a.published
	if p.Role == a.role && p.Term == a.term && p.Leader == a.leader && p.Err == a.failed {
		return
	}
	a.published = Status{Group: a.opts.Group, ID: a.opts.ID, Role: a.role, Term: a.term, Leader: a.leader, Err: a.failed}
	s := a.published
	a.n.status.Store(&s)
}

// fail puts the node in the error state: it stops taking part in the
// group, fails what it holds, and tells the state machine (unless the
// state machine is what failed). Only proposals never appended fail with
// code (a definite failure); those appended get EUNKNOWN here, and those
// committed get it from the FSM caller (fsm.NodeError): another member may
// commit and apply them, and so may this node once restarted.
func (a *nodeActor) fail(env actors.Env, err error, code closure.Code) {
	if a.failed != nil {
		return
	}
	a.failed = err
	a.logger.Error("asyncraft: node failed; it stops taking part in its group until restarted", "err", err)
	if a.role == Leader {
		a.stopLeading(env, closure.Newf(closure.EINTERNAL, "node failed: %v", err))
	}
	a.role = Errored
	a.setLeader(env, "")
	a.releaseAll(code, fmt.Sprintf("node failed (%v)", err))
	if code != closure.ESTATEMACHINE {
		env.Send(a.fsmRef, fsm.NodeError{Err: err})
	}
}

// releaseAll completes everything the node holds and will not carry on
// with, when it fails or shuts down (why says which): proposals never
// appended and reads with code (definite), proposals appended but not yet
// committed with EUNKNOWN (the group may still commit them). Committed
// tasks are the FSM caller's to complete.
func (a *nodeActor) releaseAll(code closure.Code, why string) {
	queued := closure.Newf(code, "%s before the command was appended", why)
	for _, p := range a.n.queue.close(queued) {
		a.complete(&p.task.Guard, queued)
	}
	a.failAllReads(closure.Newf(code, "%s before the read completed", why))
	a.abandonTasks(closure.Newf(closure.EUNKNOWN, "%s before the entry was committed; it may still be committed by the group", why))
}

// abandonTasks completes every appended, uncommitted task with st.
func (a *nodeActor) abandonTasks(st closure.Status) {
	for _, t := range a.tasks {
		a.complete(&t.Guard, st)
	}
	a.tasks = nil
	a.n.inflight.Store(0)
}

// died handles the panic of the node actor itself, on its goroutine: the
// actor is gone, so it completes what it held and stops its siblings.
func (a *nodeActor) died(err error) {
	a.failed = err
	a.role = Errored
	a.releaseAll(closure.EINTERNAL, fmt.Sprintf("node failed (%v)", err))
	a.host.complete(a.completions)
	a.completions = nil
	a.publish()
	// The FSM caller stops itself once it has handled the messages before
	// this one: stopping it from here could overtake them and lose the
	// tasks they carry (a stop overtakes queued messages in protoactor).
	a.host.rt.Send(a.fsmRef, fsm.NodeError{Err: err, Stop: true})
	a.host.rt.Stop(a.logRef)
	a.latch.done() // this actor is gone; it gets no Stopped
}

// beginShutdown starts an orderly shutdown: no more proposals, leadership
// dropped, tasks failed, then the FSM caller and the log manager are closed
// in that order.
func (a *nodeActor) beginShutdown(env actors.Env) {
	a.stopping = true
	if a.role == Leader {
		a.stopLeading(env, closure.Newf(closure.ESHUTDOWN, "node shutting down"))
	}
	a.releaseAll(closure.ESHUTDOWN, "node "+a.n.key()+" shut down")
	a.role = Shutdown
	a.flushCompletions(env)
	a.publish()
	env.Send(a.fsmRef, fsm.Shutdown{})
}

func (a *nodeActor) receiveStopping(env actors.Env, msg any) {
	switch msg.(type) {
	case fsm.ShutdownDone:
		env.Send(a.logRef, logmgr.Close{})
	case logmgr.Closed:
		env.Stop(a.fsmRef)
		env.Stop(a.logRef)
		env.Stop(env.Self())
	case actors.Stopped:
		a.latch.done()
	}
}

// finish tells the host and the handle that the node is gone: its three
// actors have stopped.
func (a *nodeActor) finish() {
	a.host.nodeStopped(a.n)
	close(a.n.done)
}
