package node

import (
	"fmt"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
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

// ReadTask is the framework's record of one read. Owner: the node actor,
// from the queue until completion.
type ReadTask struct {
	closure.Guard
	// Fn, Context and Mode are the read's (ReadRequest's Done, Context
	// and Mode).
	Fn      closure.ReadIndexClosure
	Context []byte
	Mode    ReadMode
	// Slot, if set, is given back first thing when the read completes
	// (the host's callback slot it holds).
	Slot Releaser

	index  uint64
	regAt  uint64 // when the leader registered it (readClock)
	expire int64  // tick after which it times out
}

// Releaser gives back a share of a bound (see ReadTask.Slot).
type Releaser interface{ Release() }

// Run is the closure the Guard wraps: it gives back the read's callback
// slot and calls the user's function.
func (t *ReadTask) Run(st closure.Status) {
	if t.Slot != nil {
		t.Slot.Release()
	}
	if t.Fn != nil {
		t.Fn(st, t.index, t.Context)
	}
}

// The actor's side of reads: it feeds the read service (readservice.go)
// and sends what it decides.

// readClock is now as a duration since the node started, on the monotonic
// clock: leases compare times of this host only.
func (a *Actor) readClock(env actors.Env) uint64 {
	return uint64(env.Now().Sub(a.epoch))
}

// sinceEpoch is t on the read clock (0 for the zero time: never).
func (a *Actor) sinceEpoch(t time.Time) uint64 {
	if t.IsZero() || t.Before(a.epoch) {
		return 0
	}
	return uint64(t.Sub(a.epoch))
}

// drainReads takes the queued reads and starts each on its way.
func (a *Actor) drainReads(env actors.Env) {
	tasks := a.sh.Reads.Take(a.readScratch[:0], 4096)
	defer func() { clear(tasks); a.readScratch = tasks[:0] }() // nothing below keeps the slice
	if len(tasks) == 0 {
		return
	}
	a.rd.arrived(tasks, a.tickCount)
	switch {
	case a.role == Leader:
		now := a.readClock(env)
		a.rd.lead(tasks, now, a.commit, a.applied, a.termStart)
		if a.commit >= a.termStart { // else all refused
			a.sh.Metrics.Reads.Add(uint64(len(tasks)))
			a.beat(env, now)
		}
	case a.role == Follower && a.leader != "":
		a.rd.forward(tasks, func(batch uint64, lease bool) {
			e := a.envelope(a.leader, a.term, batch)
			e.Body = &raftpb.Envelope_ReadIndexRequest{ReadIndexRequest: &raftpb.ReadIndexRequest{Lease: lease}}
			a.send(env, a.peerRef(a.leader), e)
		})
	default:
		a.rd.completeAll(tasks, closure.NotLeader(a.leader))
	}
	if a.sh.Reads.Len() > 0 {
		env.Send(env.Self(), Nudge{})
	}
}

// beat starts a quorum round (a heartbeat from every replicator) if reads
// wait for one that no round in flight covers.
func (a *Actor) beat(env actors.Env, now uint64) {
	if !a.rd.roundNeeded(a.tr.quorumAckedAt(now)) {
		return
	}
	if a.tr.alone() {
		a.confirmReads(env, now) // alone: confirmed at once
		return
	}
	a.rd.roundSent(now)
	a.sh.Metrics.ReadRounds.Add(1)
	a.toReplicators(env, replicator.Beat{})
}

// onContact records that peer answered, in this term, a request sent at
// sentAt: reads registered before it may be confirmed, and the lease
// extended.
func (a *Actor) onContact(env actors.Env, peer string, sentAt time.Time) {
	if a.tr.contact(peer, a.sinceEpoch(sentAt)) {
		a.confirmReads(env, a.readClock(env))
	}
}

// confirmReads serves the reads registered before the latest quorum round
// and extends the lease; reads registered since need another round.
func (a *Actor) confirmReads(env actors.Env, now uint64) {
	if a.rd.confirm(a.tr.quorumAckedAt(now), now, a.applied) {
		a.sh.leaseUntil.Store(a.epoch.Add(time.Duration(a.rd.leaseEnd())).UnixNano())
	}
	a.sendReadAnswers(env)
	a.beat(env, now)
}

// onReadIndexRequest serves a follower's batch (leader side). The term
// gate has checked that the batch is of this term.
func (a *Actor) onReadIndexRequest(env actors.Env, e *raftpb.Envelope, req *raftpb.ReadIndexRequest) {
	// The envelope's seq is the batch id (forward sets it).
	switch {
	case a.role != Leader:
		a.rd.refuse(e.From, e.Seq, closure.EPERM)
	case a.commit < a.termStart:
		a.rd.refuse(e.From, e.Seq, closure.EAGAIN)
	case req.Lease && !a.cfg.sticky():
		a.rd.refuse(e.From, e.Seq, closure.EINVAL)
	default:
		now := a.readClock(env)
		a.rd.serve(e.From, e.Seq, req.Lease, now, a.commit)
		a.beat(env, now)
	}
	a.sendReadAnswers(env)
}

// sendReadAnswers sends the answers the read service owes followers.
func (a *Actor) sendReadAnswers(env actors.Env) {
	for _, r := range a.rd.takeAnswers() {
		e := a.envelope(r.to, a.term, r.batch)
		e.Body = &raftpb.Envelope_ReadIndexResponse{ReadIndexResponse: &raftpb.ReadIndexResponse{
			Batch: r.batch, Success: r.ok, Index: r.index, Code: int32(r.code),
		}}
		a.send(env, a.peerRef(r.to), e)
	}
}

// stopLeadingReads ends the leader's reads and lease.
func (a *Actor) stopLeadingReads(env actors.Env) {
	a.rd.stopLeading()
	a.sendReadAnswers(env)
	a.sh.leaseUntil.Store(0)
}

// failAllReads completes every read the node holds, queued ones included,
// with st (shutdown, node error).
func (a *Actor) failAllReads(st closure.Status) {
	a.rd.completeAll(a.sh.Reads.Close(st), st)
	a.rd.failAll(st)
}
