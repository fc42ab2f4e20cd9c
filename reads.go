package asyncraft

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/replicator"
)

// Linearizable reads (Raft thesis §6.4), batched.
//
// A read gets an index: once the local state machine has applied it, the
// state machine reflects every write acknowledged before the read began,
// and reading it is linearizable.
//
//   - Safe mode (ReadIndex): the leader takes its commit index and confirms
//     it still leads with one quorum round: a heartbeat (or any request)
//     sent after the read arrived, answered by a quorum in its term. The
//     reads of a batch share one round.
//   - Lease mode: a quorum that answered a request sent at time t will not
//     elect another leader before t + ElectionTimeout less a tick (leader
//     stickiness, kept across restarts: election.go), so the leader may
//     answer alone until t + LeaseRatio×ElectionTimeout − MaxClockDrift
//     (docs/reads.md has the argument). With a stale lease the read falls
//     back to safe mode.
//     A valid lease, once the leader has applied the first entry of its
//     term, lets it answer at once with its applied index (wait-free): a
//     write is acknowledged only after the leader applies it, so every
//     acknowledged write is already in the leader's state machine.
//   - On a follower, the batch is forwarded to the leader for an index
//     (ReadIndexRequest); the follower then waits for its own apply.
//
// Leadership confirmation is tracked as times: each replicator reports the
// send time of every request its peer answered in the leader's term; the
// largest time answered by a quorum (the same arithmetic as the commit
// index) confirms every read registered before it, and anchors the lease.

// ReadMode chooses how a read is made linearizable.
type ReadMode int8

const (
	// ReadDefault uses the node's NodeOptions.ReadMode.
	ReadDefault ReadMode = iota
	// ReadSafe confirms leadership with a quorum round per batch.
	ReadSafe
	// ReadLease answers from the leader's lease when it is valid, and
	// falls back to ReadSafe when it is not.
	ReadLease
)

func (m ReadMode) String() string {
	switch m {
	case ReadDefault:
		return "default"
	case ReadSafe:
		return "safe"
	case ReadLease:
		return "lease"
	}
	return fmt.Sprintf("ReadMode(%d)", int8(m))
}

// ReadRequest is one read for Node.Read.
type ReadRequest struct {
	// Context is handed back to Done unchanged.
	Context []byte
	// Mode overrides NodeOptions.ReadMode for this read.
	Mode ReadMode
	// Done receives the outcome exactly once, on the host's callback
	// executor (or, for a refusal while the host is overloaded, on the
	// caller's goroutine before Read returns: see Host.refuse): OK with
	// the read index (read the local state machine then: it has applied
	// the index), or EPERM (not the leader and none known,
	// or leadership lost; Status.Leader names a leader if known), EAGAIN
	// (a new leader that has not committed an entry of its term yet, or a
	// follower lagging more than MaxReadIndexLag), EBUSY (too many reads
	// queued, or the host owes MaxPendingCallbacks closures), EINVAL
	// (ReadLease with leader stickiness off: both DisablePreVote and
	// DisableCheckQuorum set), ETIMEDOUT, ESHUTDOWN, or the node's error
	// when it fails (ESTATEMACHINE, EIO, ENOSPC, EINTERNAL).
	Done closure.ReadIndexClosure
}

// readTask is the framework's record of one read. Owner: the node actor,
// from the queue until completion.
type readTask struct {
	closure.Guard
	fn     closure.ReadIndexClosure
	reqCtx []byte
	mode   ReadMode
	index  uint64
	regAt  uint64 // when the leader registered it (readClock)
	expire int64  // tick after which it times out
	slot   *slots // the host's callback slot it holds (budget.go), once taken
}

// Run is the closure the Guard wraps: it gives back the read's callback
// slot and calls the user's function.
func (t *readTask) Run(st closure.Status) {
	if t.slot != nil {
		t.slot.give()
	}
	if t.fn != nil {
		t.fn(st, t.index, t.reqCtx)
	}
}

// ReadIndex reads with the node's default mode (see ReadRequest).
func (n *Node) ReadIndex(reqCtx []byte, done closure.ReadIndexClosure) {
	n.Read(ReadRequest{Context: reqCtx, Done: done})
}

// Read starts a linearizable read; r.Done learns its index.
func (n *Node) Read(r ReadRequest) {
	t := &readTask{fn: r.Done, reqCtx: r.Context, mode: r.Mode}
	t.Init(t)
	if r.Mode == ReadLease && !n.sticky {
		n.host.refuse(&t.Guard, closure.Newf(closure.EINVAL,
			"a lease read needs leader stickiness, which this node has off (DisablePreVote and DisableCheckQuorum are both set)"))
		return
	}
	if !n.host.callbacks.take() {
		n.host.refuse(&t.Guard, n.host.callbacksBusy())
		return
	}
	t.slot = &n.host.callbacks
	st, wake := n.reads.push(t)
	if !st.OK() {
		n.host.refuse(&t.Guard, st)
		return
	}
	if wake {
		n.host.rt.Send(n.ref, nudge{})
	}
}

// ReadBarrier returns once the local state machine reflects every write
// acknowledged before the call: reads of it are then linearizable. mode
// (optional) overrides the node's default. If ctx ends first it returns
// ctx.Err().
func (n *Node) ReadBarrier(ctx context.Context, mode ...ReadMode) error {
	m := ReadDefault
	if len(mode) > 0 {
		m = mode[0]
	}
	ch := make(chan closure.Status, 1)
	n.Read(ReadRequest{Mode: m, Done: func(st closure.Status, _ uint64, _ []byte) { ch <- st }})
	select {
	case st := <-ch:
		return st.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reads is the read state of a node actor.
type reads struct {
	epoch time.Time // readClock 0
	// Leader: local reads waiting for their quorum round, by regAt.
	waiting []*readTask
	// Leader: forwarded batches waiting for their quorum round.
	remote []remoteRead
	// Any role: reads with an index, waiting for the state machine.
	applying []*readTask
	// Follower: batches forwarded to the leader, by increasing batch id
	// (a slice, not a map: the order reaches the completions).
	forwarded []*forwarded
	nextBatch uint64
	// scratch holds the reads drainReads takes from the queue, reused.
	scratch []*readTask
	// Leader, this term: the latest send time each peer answered, and
	// when the last Beat went out.
	acked      map[string]uint64
	beatAt     uint64
	leaseUntil uint64
}

type remoteRead struct {
	from  string
	batch uint64
	index uint64
	regAt uint64
}

type forwarded struct {
	batch  uint64
	tasks  []*readTask
	expire int64
}

// readClock is now as a duration since the node started, on the monotonic
// clock: leases compare times of this host only.
func (a *nodeActor) readClock(env actors.Env) uint64 {
	return uint64(env.Now().Sub(a.rd.epoch))
}

func (a *nodeActor) readMode(t *readTask) ReadMode {
	if t.mode != ReadDefault {
		return t.mode
	}
	return a.opts.ReadMode
}

// drainReads takes the queued reads and starts each on its way.
func (a *nodeActor) drainReads(env actors.Env) {
	tasks := a.n.reads.take(a.rd.scratch[:0], 4096)
	defer func() { clear(tasks); a.rd.scratch = tasks[:0] }() // nothing below keeps the slice
	if len(tasks) == 0 {
		return
	}
	for _, t := range tasks {
		t.expire = a.tickCount + int64(a.ticks.readTimeout)
	}
	switch {
	case a.role == Leader:
		a.leaderReads(env, tasks)
	case a.role == Follower && a.leader != "":
		a.forwardReads(env, tasks)
	default:
		a.completeReads(tasks, closure.NotLeader(a.leader))
	}
	if a.n.reads.len() > 0 {
		env.Send(env.Self(), nudge{})
	}
}

// termReady reports whether this leader has committed an entry of its
// term: before that its commit index may lag entries committed by earlier
// leaders.
func (a *nodeActor) termReady() bool { return a.commit >= a.termStart }

func (a *nodeActor) leaseValid(now uint64) bool { return now < a.rd.leaseUntil }

func (a *nodeActor) leaderReads(env actors.Env, tasks []*readTask) {
	if !a.termReady() {
		a.completeReads(tasks, closure.Newf(closure.EAGAIN, "the leader has not yet committed an entry of its term"))
		return
	}
	now := a.readClock(env)
	for _, t := range tasks {
		if a.readMode(t) == ReadLease && a.leaseValid(now) {
			if a.applied >= a.termStart {
				t.index = a.applied // wait-free: see the doc above
				a.complete(&t.Guard, closure.StatusOK)
				continue
			}
			t.index = a.commit
			a.awaitApply(t)
			continue
		}
		t.index, t.regAt = a.commit, now
		if faults.On(faults.ReadWithoutQuorum) {
			a.awaitApply(t)
			continue
		}
		a.rd.waiting = append(a.rd.waiting, t)
	}
	a.n.metrics.Reads.Add(uint64(len(tasks)))
	a.beat(env, now)
}

// beat asks the replicators for a heartbeat now if reads wait for a round
// and none is on its way since they arrived.
func (a *nodeActor) beat(env actors.Env, now uint64) {
	var oldest uint64
	switch {
	case len(a.rd.waiting) > 0:
		oldest = a.rd.waiting[0].regAt
	case len(a.rd.remote) > 0:
		oldest = a.rd.remote[0].regAt
	default:
		return
	}
	if a.rd.beatAt >= oldest && a.rd.beatAt > a.quorumAcked(now) {
		return // a round that covers them is in flight
	}
	if len(a.others) == 0 {
		a.confirmReads(env, now) // alone: confirmed at once
		return
	}
	a.rd.beatAt = now
	a.n.metrics.ReadRounds.Add(1)
	for _, id := range a.others {
		if ref, ok := a.repls[id]; ok {
			env.Send(ref, replicator.Beat{})
		}
	}
}

// quorumAcked is the latest send time answered by a quorum (this node
// counts as answering now).
func (a *nodeActor) quorumAcked(now uint64) uint64 {
	return a.conf.Committed(func(id string) (uint64, bool) {
		if id == a.opts.ID {
			return now, true
		}
		v, ok := a.rd.acked[id]
		return v, ok
	})
}

// onContact records that peer answered, in this term, a request sent at
// sentAt: reads registered before it may be confirmed, and the lease
// extended.
func (a *nodeActor) onContact(env actors.Env, peer string, sentAt time.Time) {
	if sentAt.IsZero() {
		return
	}
	t := uint64(sentAt.Sub(a.rd.epoch))
	if t <= a.rd.acked[peer] {
		return
	}
	a.rd.acked[peer] = t
	a.confirmReads(env, a.readClock(env))
}

// confirmReads serves the reads registered before the quorum round that
// now confirms this node's leadership, and extends the lease.
func (a *nodeActor) confirmReads(env actors.Env, now uint64) {
	q := a.quorumAcked(now)
	lease := uint64(a.opts.LeaseRatio*float64(a.opts.ElectionTimeout)) - uint64(a.opts.MaxClockDrift)
	// Without stickiness a quorum promises nothing: no lease at all.
	if q+lease > a.rd.leaseUntil && lease > 0 && q < now && a.opts.sticky() {
		a.rd.leaseUntil = q + lease
		a.n.leaseUntil.Store(a.rd.epoch.Add(time.Duration(a.rd.leaseUntil)).UnixNano())
	}
	n := 0
	for n < len(a.rd.waiting) && a.rd.waiting[n].regAt <= q {
		a.awaitApply(a.rd.waiting[n])
		a.rd.waiting[n] = nil
		n++
	}
	a.rd.waiting = a.rd.waiting[n:]
	n = 0
	for n < len(a.rd.remote) && a.rd.remote[n].regAt <= q {
		r := a.rd.remote[n]
		a.answerReadIndex(env, r.from, r.batch, true, r.index, closure.OK)
		n++
	}
	a.rd.remote = a.rd.remote[n:]
	a.beat(env, now) // reads registered since the round need another
}

// awaitApply completes t once the state machine has applied its index.
func (a *nodeActor) awaitApply(t *readTask) {
	if a.applied >= t.index {
		a.complete(&t.Guard, closure.StatusOK)
		return
	}
	a.rd.applying = append(a.rd.applying, t)
}

// onAppliedReads completes the reads whose index is now applied.
func (a *nodeActor) onAppliedReads() {
	keep := a.rd.applying[:0]
	for _, t := range a.rd.applying {
		if a.applied >= t.index {
			a.complete(&t.Guard, closure.StatusOK)
		} else {
			keep = append(keep, t)
		}
	}
	clear(a.rd.applying[len(keep):])
	a.rd.applying = keep
}

// forwardReads sends the batch to the leader for a read index, one request
// per mode.
func (a *nodeActor) forwardReads(env actors.Env, tasks []*readTask) {
	var safe, lease []*readTask
	for _, t := range tasks {
		if a.readMode(t) == ReadLease {
			lease = append(lease, t)
		} else {
			safe = append(safe, t)
		}
	}
	a.forwardBatch(env, safe, false)
	a.forwardBatch(env, lease, true)
}

func (a *nodeActor) forwardBatch(env actors.Env, tasks []*readTask, lease bool) {
	if len(tasks) == 0 {
		return
	}
	a.rd.nextBatch++
	id := a.rd.nextBatch
	a.rd.forwarded = append(a.rd.forwarded, &forwarded{batch: id, tasks: tasks, expire: tasks[0].expire})
	e := a.envelope(a.leader, a.term, id)
	e.Body = &raftpb.Envelope_ReadIndexRequest{ReadIndexRequest: &raftpb.ReadIndexRequest{Lease: lease}}
	a.send(env, a.peerRef(a.leader), e)
}

// onReadIndexRequest serves a follower's batch (leader side).
func (a *nodeActor) onReadIndexRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.ReadIndexRequest) {
	switch {
	case a.role != Leader:
		a.answerReadIndex(env, e.From, e.Seq, false, 0, closure.EPERM)
		return
	case !a.termReady():
		a.answerReadIndex(env, e.From, e.Seq, false, 0, closure.EAGAIN)
		return
	}
	if req.Lease && !a.opts.sticky() {
		a.answerReadIndex(env, e.From, e.Seq, false, 0, closure.EINVAL)
		return
	}
	now := a.readClock(env)
	if (req.Lease && a.leaseValid(now)) || faults.On(faults.ReadWithoutQuorum) {
		a.answerReadIndex(env, e.From, e.Seq, true, a.commit, closure.OK)
		return
	}
	a.rd.remote = append(a.rd.remote, remoteRead{from: e.From, batch: e.Seq, index: a.commit, regAt: now})
	a.beat(env, now)
}

func (a *nodeActor) answerReadIndex(env actors.Env, to string, batch uint64, ok bool, index uint64, code closure.Code) {
	r := a.envelope(to, a.term, batch)
	r.Body = &raftpb.Envelope_ReadIndexResponse{ReadIndexResponse: &raftpb.ReadIndexResponse{
		Batch: batch, Success: ok, Index: index, Code: int32(code),
	}}
	a.send(env, a.peerRef(to), r)
}

// onReadIndexResponse completes a forwarded batch (follower side).
func (a *nodeActor) onReadIndexResponse(resp *raftpb.ReadIndexResponse) {
	i, ok := slices.BinarySearchFunc(a.rd.forwarded, resp.Batch, func(f *forwarded, b uint64) int { return cmp.Compare(f.batch, b) })
	if !ok {
		return // timed out, or a duplicate
	}
	f := a.rd.forwarded[i]
	a.rd.forwarded = slices.Delete(a.rd.forwarded, i, i+1)
	if !resp.Success {
		code := closure.Code(resp.Code)
		if code == closure.OK { // a failure must say why: never complete it as OK
			code = closure.EINTERNAL
		}
		st := closure.Newf(code, "the leader could not serve the read")
		if st.Code == closure.EPERM {
			st = closure.NotLeader(a.leader)
		}
		a.completeReads(f.tasks, st)
		return
	}
	lag := a.opts.MaxReadIndexLag
	for _, t := range f.tasks {
		t.index = resp.Index
		if lag > 0 && resp.Index > a.applied+lag {
			a.complete(&t.Guard, closure.Newf(closure.EAGAIN, "this node has applied %d, %d behind the read index %d (MaxReadIndexLag %d)",
				a.applied, resp.Index-a.applied, resp.Index, lag))
			continue
		}
		a.awaitApply(t)
	}
}

// expireReads times out reads that waited longer than their deadline for a
// round or an answer (called every tick).
func (a *nodeActor) expireReads() {
	st := closure.Newf(closure.ETIMEDOUT, "no quorum confirmed the read in time")
	n := 0
	for n < len(a.rd.waiting) && a.rd.waiting[n].expire < a.tickCount {
		a.complete(&a.rd.waiting[n].Guard, st)
		n++
	}
	a.rd.waiting = a.rd.waiting[n:]
	a.rd.forwarded = slices.DeleteFunc(a.rd.forwarded, func(f *forwarded) bool {
		if f.expire >= a.tickCount {
			return false
		}
		a.completeReads(f.tasks, closure.Newf(closure.ETIMEDOUT, "the leader did not answer the read in time"))
		return true
	})
	keep := a.rd.applying[:0]
	for _, t := range a.rd.applying {
		if t.expire < a.tickCount {
			a.complete(&t.Guard, closure.Newf(closure.ETIMEDOUT, "the state machine did not reach the read index %d in time", t.index))
		} else {
			keep = append(keep, t)
		}
	}
	clear(a.rd.applying[len(keep):])
	a.rd.applying = keep
}

// dropLeaderReads fails the reads waiting for a quorum round when this
// node stops leading; reads with an index keep waiting for the apply.
func (a *nodeActor) dropLeaderReads(env actors.Env) {
	st := closure.Newf(closure.EPERM, "leadership lost before the read was confirmed")
	a.completeReads(a.rd.waiting, st)
	a.rd.waiting = nil
	for _, r := range a.rd.remote {
		a.answerReadIndex(env, r.from, r.batch, false, 0, closure.EPERM)
	}
	a.rd.remote = nil
	clear(a.rd.acked)
	a.rd.leaseUntil, a.rd.beatAt = 0, 0
	a.n.leaseUntil.Store(0)
}

// failAllReads completes every read the node holds with st (shutdown,
// node error).
func (a *nodeActor) failAllReads(st closure.Status) {
	a.completeReads(a.n.reads.close(st), st)
	a.completeReads(a.rd.waiting, st)
	a.completeReads(a.rd.applying, st)
	for _, f := range a.rd.forwarded {
		a.completeReads(f.tasks, st)
	}
	a.rd.waiting, a.rd.applying, a.rd.remote, a.rd.forwarded = nil, nil, nil, nil
}

func (a *nodeActor) completeReads(tasks []*readTask, st closure.Status) {
	for _, t := range tasks {
		a.complete(&t.Guard, st)
	}
}
