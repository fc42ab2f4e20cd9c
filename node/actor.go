package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
	"github.com/asyncraft/asyncraft/snapshot"
)

// Actor is the Raft node: roles, terms, elections, the commit index and
// the fate of proposals (the package doc lists what it accepts and
// sends). Its state is split among owners that each keep their own
// invariants: the tracker (configuration, peers, votes), the read service
// (pending reads, lease), the ack gate (what waits for durability) and the
// admission diagnostics; the fields below are the ones the protocol's
// rooms share.
type Actor struct {
	cfg    Config
	sh     *Shared
	logger *slog.Logger
	log    *logmgr.Log

	tr *tracker
	// confs is the configurations along the log (membership.go); the
	// newest is the tracker's.
	confs confchange.History
	rd    readService
	gate  ackGate
	diag  diagnostics
	snap  snapshots
	// inst is the snapshot install under way on this follower (nil:
	// none): install.go.
	inst *installing
	// change is the membership change this leader is seeing through
	// (nil: none): membership.go.
	change *changing
	// transfer is the leadership transfer this node began (nil: none);
	// transferCampaign marks the vote requests of a campaign that
	// TimeoutNow started: transfer.go.
	transfer *transferring
	// incs are the voters\' incarnations this node heard from
	// (incarnation.go).
	incs incarnations
	// prio paces the hand-over to voters of a higher priority.
	prio             priorityBackoff
	transferCampaign bool

	role   Role
	term   uint64
	vote   string
	leader string

	// Invariant: applied <= commit <= log.LastIndex(); stable <=
	// log.LastIndex().
	commit  uint64
	applied uint64
	stable  uint64
	// savedCommit is the commit index last given to the log manager with
	// the hard state (persistHardState).
	savedCommit uint64
	// logClosed: shutting down, the log manager has closed (the node waits
	// for a snapshot being persisted before it stops everything).
	logClosed bool

	electionElapsed   int
	randomizedTimeout int
	quorumElapsed     int
	tickCount         int64
	// epoch is when the actor started: the read clock's zero.
	epoch time.Time

	// tasks holds the proposals appended to the log and not yet committed
	// (and so not yet handed to the FSM caller), in index order. They
	// outlive a step-down: whatever is later committed at their index
	// decides their fate. Two tasks may share an index (one truncated here
	// but alive elsewhere, one of a later term); at most one of them can
	// succeed.
	tasks []*fsm.Task
	// termStart is the index of this leader's first entry (its no-op).
	termStart uint64

	failed   error
	stopping bool

	scratch     []Proposal
	readScratch []*ReadTask
	completions closure.Batch
	published   Status

	// held: the drain stopped with proposals queued because the apply
	// backlog is full (holdProposals); resumeHeld resumes it.
	held bool
}

// New returns the node actor for cfg.
func New(cfg Config) *Actor {
	hs := cfg.HardState
	a := &Actor{
		cfg:    cfg,
		sh:     cfg.Shared,
		logger: cfg.Logger.With("group", cfg.Group, "id", cfg.ID),
		log:    cfg.Log,
		confs:  cfg.Configs,
		term:   hs.GetTerm(),
		vote:   hs.GetVote(),
		gate:   ackGate{savedTerm: hs.GetTerm(), savedVote: hs.GetVote()},
	}
	lease := int64(cfg.LeaseRatio*float64(cfg.ElectionTimeout)) - int64(cfg.MaxClockDrift)
	if lease < 0 || !cfg.sticky() {
		lease = 0 // without stickiness a quorum promises nothing: no lease at all
	}
	latest, _, _ := a.confs.Latest()
	a.tr = newTracker(cfg.ID, latest)
	a.incs = a.knownIncarnations(hs)
	for _, p := range cfg.AddressBook {
		if !a.tr.isMember(p.ID) && p.ID != cfg.ID {
			a.tr.learn(p.ID, p.Addr)
		}
	}
	a.publishConfig()
	a.rd = readService{mode: cfg.ReadMode, lease: uint64(lease), lag: cfg.MaxReadIndexLag,
		timeout: int64(cfg.Ticks.ReadTimeout), out: &a.completions}
	a.stable, _ = a.log.Last() // the storage holds only durable entries at start
	a.snap.index, a.snap.prev = cfg.SnapshotIndex, cfg.PrevSnapshotIndex
	a.sh.snapshot.Store(cfg.SnapshotIndex)
	// The state machine starts at Applied (its snapshot); the hard state's
	// commit index, saved no further than what was durable in the log
	// then (persistHardState), lets the node replay up to it at once.
	a.applied = cfg.Applied
	a.commit = max(cfg.Applied, min(hs.GetCommit(), a.stable))
	a.savedCommit = hs.GetCommit()
	a.sh.commit.Store(a.commit)
	return a
}

// Receive implements actors.Actor. It is the node's one dispatcher: each
// message goes to the room that handles it.
func (a *Actor) Receive(env actors.Env, msg any) {
	if a.stopping {
		a.receiveStopping(env, msg)
		return
	}
	switch m := msg.(type) {
	case actors.Started:
		a.epoch = env.Now()
		a.rd.startBatches(a.epoch)
		a.resetElectionTimer(env)
		if a.commit > a.applied {
			env.Send(a.cfg.FSMCaller, fsm.Committed{Index: a.commit})
		}
	case Tick:
		a.tick(env)
	case Nudge:
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
	case replicator.Installing:
		if m.Term == a.term && a.role == Leader {
			a.snap.installing(m.Peer, m.Index)
		}
	case replicator.Installed:
		if m.Term == a.term {
			a.sh.Metrics.SnapshotsSent.Add(1)
			delete(a.snap.sending, m.Peer)
		}
	case snapshot.Fetched:
		a.onFetched(env, m)
	case snapshot.FetchFailed:
		a.onFetchFailed(env, m)
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
		a.installLoaded(env)
		a.rd.applied(a.applied)
		a.trimLog()
		a.resumeHeld(env)
		a.maybeSnapshot(env)
	case fsm.Failed:
		a.applied = m.Applied
		a.fail(env, m.Err, closure.ESTATEMACHINE)
	case ActorFailed:
		a.fail(env, m.Err, closure.EINTERNAL)
	case TakeSnapshot:
		a.onTakeSnapshot(env, m)
	case ChangeConfig:
		a.onChangeConfig(env, m)
	case TransferLeadership:
		a.onTransferLeadership(env, m)
	case replicator.PeerIncarnation:
		a.replicatorIncarnation(env, m)
	case snapshot.Saved, snapshot.SaveFailed:
		a.onSnapshotReport(env, m)
	case ShutdownNode:
		a.beginShutdown(env)
	case actors.Stopped:
		// Stopped from outside (the runtime shutting down).
		a.cfg.Stopped()
	}
	a.flushCompletions(env)
	a.publish()
	if invariants.Enabled {
		a.checkInvariants()
	}
}

// tick is the host's clock: reads time out, held proposals are retried,
// and the role's timer runs (the leader's replicators and check-quorum,
// the others' election timeout).
func (a *Actor) tick(env actors.Env) {
	a.tickCount++
	a.rd.expire(a.tickCount)
	a.resumeHeld(env)
	a.transferTick(env)
	switch a.role {
	case Leader:
		a.toReplicators(env, replicator.Tick{})
		a.checkQuorum(env)
		if a.role == Leader {
			a.membershipTick(env)
		}
	case Follower, PreCandidate, Candidate:
		a.electionTick(env)
	}
	a.snapshotTick(env)
}

// debug logs a decision of the node (elections, votes, truncations) at
// DEBUG, where the simulator's readable trace shows it. It costs nothing
// when DEBUG is off.
func (a *Actor) debug(msg string, args ...any) {
	if a.logger.Enabled(context.Background(), slog.LevelDebug) {
		a.logger.Debug(msg, append(args, "term", a.term, "role", a.role.String())...)
	}
}

func (a *Actor) envelope(to string, term, seq uint64) *raftpb.Envelope {
	return &raftpb.Envelope{Group: a.cfg.Group, From: a.cfg.ID, To: to, Term: term, Seq: seq, Cluster: a.cfg.Cluster,
		Incarnation: a.incarnation(), Rejoined: a.rejoined(), MemberSince: a.memberSince()}
}

func (a *Actor) peerRef(id string) actors.Ref {
	return actors.Ref{Host: a.tr.addr(id), Name: ActorName(a.cfg.Group, id)}
}

// send delivers e to a peer's actor, or holds it in the ack gate until the
// hard state it rests on is durable.
func (a *Actor) send(env actors.Env, to actors.Ref, e *raftpb.Envelope) {
	if !a.gate.hold(a.term, a.vote, to, e) {
		env.Send(to, e)
	}
}

// toReplicators sends msg to every replicator (a leader's).
func (a *Actor) toReplicators(env actors.Env, msg any) {
	a.tr.replicators(func(ref actors.Ref) { env.Send(ref, msg) })
}

// complete queues a closure to run on the executor with st.
func (a *Actor) complete(g *closure.Guard, st closure.Status) {
	a.completions = append(a.completions, closure.Completion{Closure: g, Status: st})
}

func (a *Actor) flushCompletions(env actors.Env) {
	if len(a.completions) > 0 {
		env.Send(a.cfg.Executor, a.completions)
		a.completions = nil
	}
}

// publish makes role, term, leader and error visible to Status when they
// changed.
func (a *Actor) publish() {
	p := &a.published
	if p.Role == a.role && p.Term == a.term && p.Leader == a.leader && p.Err == a.failed {
		return
	}
	a.published = Status{Group: a.cfg.Group, ID: a.cfg.ID, Role: a.role, Term: a.term, Leader: a.leader, Err: a.failed}
	s := a.published
	a.sh.status.Store(&s)
}

// checkInvariants checks, after every message, the invariants written on
// the fields and on the owners (under the invariants build tag only).
func (a *Actor) checkInvariants() {
	last := a.log.LastIndex()
	if a.failed != nil {
		return // a failed node keeps what it had; some may be inconsistent
	}
	if a.applied > a.commit || a.commit > last {
		invariants.Violate("node %s: applied %d <= commit %d <= last index %d does not hold", a.cfg.ID, a.applied, a.commit, last)
	}
	if a.stable > last {
		invariants.Violate("node %s: stable %d beyond the last index %d", a.cfg.ID, a.stable, last)
	}
	for i := 1; i < len(a.tasks); i++ {
		if a.tasks[i].Index < a.tasks[i-1].Index {
			invariants.Violate("node %s: tasks out of index order", a.cfg.ID)
		}
	}
	if len(a.tasks) > 0 && a.tasks[0].Index <= a.commit {
		invariants.Violate("node %s: task at %d pending although %d is committed", a.cfg.ID, a.tasks[0].Index, a.commit)
	}
	a.tr.checkInvariants(a.role == Leader, last)
	a.rd.checkInvariants(a.applied, a.role == Leader)
	a.gate.checkInvariants(a.term, a.vote, a.stable)
}

// fail puts the node in the error state: it stops taking part in the
// group, fails what it holds, and tells the state machine (unless the
// state machine is what failed). Only proposals never appended fail with
// code (a definite failure); those appended get EUNKNOWN here, and those
// committed get it from the FSM caller (fsm.NodeError): another member may
// commit and apply them, and so may this node once restarted.
func (a *Actor) fail(env actors.Env, err error, code closure.Code) {
	if a.failed != nil {
		return
	}
	a.failed = err
	a.logger.Error("asyncraft: node failed; it stops taking part in its group until restarted", "err", err)
	a.leave(env, Errored, closure.Newf(closure.EINTERNAL, "node failed: %v", err), code, fmt.Sprintf("node failed (%v)", err))
	a.setLeader(env, "")
	if code != closure.ESTATEMACHINE {
		env.Send(a.cfg.FSMCaller, fsm.NodeError{Err: err})
	}
}

// leave ends this node's part in its group for this run, the one sequence
// that failing (fail), shutting down (beginShutdown) and dying (Died)
// share: leadership ends with led (when the actor still runs: env is
// nil in Died, whose replicators are gone with it), the role becomes role,
// and everything held is released (releaseAll). What follows differs: a
// failure tells the FSM caller, a shutdown closes it and then the log
// manager, a death stops them from outside.
func (a *Actor) leave(env actors.Env, role Role, led closure.Status, code closure.Code, why string) {
	if env != nil && a.role == Leader {
		a.stopLeading(env, led)
	}
	a.role = role
	a.abandonChange(why)
	a.abandonTransfer(why)
	a.releaseAll(code, why)
	if done := a.snap.waiter; done != nil {
		a.snap.waiter = nil
		a.snapshotDone(done, 0, closure.Newf(code, "%s before the snapshot completed", why).Err())
	}
}

// releaseAll completes everything the node holds and will not carry on
// with, when it fails or shuts down (why says which): proposals never
// appended and reads with code (definite), proposals appended but not yet
// committed with EUNKNOWN (the group may still commit them). Committed
// tasks are the FSM caller's to complete.
func (a *Actor) releaseAll(code closure.Code, why string) {
	queued := closure.Newf(code, "%s before the command was appended", why)
	for _, p := range a.sh.Proposals.Close(queued) {
		a.complete(&p.Task.Guard, queued)
	}
	a.failAllReads(closure.Newf(code, "%s before the read completed", why))
	a.abandonTasks(closure.Newf(closure.EUNKNOWN, "%s before the entry was committed; it may still be committed by the group", why))
}

// abandonTasks completes every appended, uncommitted task with st.
func (a *Actor) abandonTasks(st closure.Status) {
	for _, t := range a.tasks {
		a.complete(&t.Guard, st)
	}
	a.tasks = nil
	a.sh.inflight.Store(0)
}

// Died handles the panic of the node actor itself; the host calls it on
// the actor's goroutine. The actor is gone, so it completes what it held
// and stops its siblings.
func (a *Actor) Died(err error) {
	a.failed = err
	a.leave(nil, Errored, closure.Status{}, closure.EINTERNAL, fmt.Sprintf("node failed (%v)", err))
	a.cfg.Outside.Complete(a.completions)
	a.completions = nil
	a.publish()
	// The FSM caller stops itself once it has handled the messages before
	// this one: stopping it from here could overtake them and lose the
	// tasks they carry (a stop overtakes queued messages in protoactor).
	a.cfg.Outside.Send(a.cfg.FSMCaller, fsm.NodeError{Err: err, Stop: true})
	a.cfg.Outside.Stop(a.cfg.LogManager)
	if !a.cfg.Snapshotter.IsZero() {
		a.cfg.Outside.Stop(a.cfg.Snapshotter)
	}
	a.cfg.Stopped() // this actor is gone; it gets no Stopped
}

// stopAll stops the node's siblings and itself, at the end of a shutdown.
func (a *Actor) stopAll(env actors.Env) {
	env.Stop(a.cfg.FSMCaller)
	env.Stop(a.cfg.LogManager)
	if !a.cfg.Snapshotter.IsZero() {
		env.Stop(a.cfg.Snapshotter)
	}
	env.Stop(env.Self())
}

// beginShutdown starts an orderly shutdown: no more proposals, leadership
// dropped, tasks failed, then the FSM caller and the log manager are closed
// in that order.
func (a *Actor) beginShutdown(env actors.Env) {
	a.stopping = true
	a.leave(env, Shutdown, closure.Newf(closure.ESHUTDOWN, "node shutting down"), closure.ESHUTDOWN,
		"node "+a.cfg.Group+"/"+a.cfg.ID+" shut down")
	a.flushCompletions(env)
	a.publish()
	env.Send(a.cfg.FSMCaller, fsm.Shutdown{})
}

func (a *Actor) receiveStopping(env actors.Env, msg any) {
	switch m := msg.(type) {
	case TakeSnapshot:
		a.snapshotDone(m.Done, 0, fmt.Errorf("asyncraft: no snapshot: node %s/%s: %w", a.cfg.Group, a.cfg.ID, closure.ErrShutdown))
		a.flushCompletions(env)
	case ChangeConfig:
		a.changeDone(m.Done, 0, fmt.Errorf("asyncraft: no membership change: node %s/%s: %w", a.cfg.Group, a.cfg.ID, closure.ErrShutdown))
		a.flushCompletions(env)
	case TransferLeadership:
		a.transferDone(m.Done, fmt.Errorf("asyncraft: no leadership transfer: node %s/%s: %w", a.cfg.Group, a.cfg.ID, closure.ErrShutdown))
		a.flushCompletions(env)
	case fsm.ShutdownDone:
		if min(a.commit, a.stable) > a.savedCommit {
			a.persistHardState(env) // a restart replays up to it at once
		}
		env.Send(a.cfg.LogManager, logmgr.Close{})
	case logmgr.Closed:
		a.logClosed = true
		if a.snap.running {
			// A snapshot is being persisted: the state machine's Persist
			// runs, and Release must follow it. Wait for its report.
			return
		}
		a.stopAll(env)
	case snapshot.Saved, snapshot.SaveFailed:
		// Its waiter, if any, was answered when the shutdown began.
		a.snap.running = false
		if _, ok := msg.(snapshot.Saved); ok {
			a.sh.Metrics.Snapshots.Add(1)
		} else {
			a.sh.Metrics.SnapshotFailures.Add(1)
		}
		if a.logClosed {
			a.stopAll(env)
		}
	case actors.Stopped:
		a.cfg.Stopped()
	}
}
