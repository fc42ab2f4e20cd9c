package node

import (
	"cmp"
	"slices"
	"time"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/raftpb"
)

// readService holds the node's pending reads and decides when each is
// served (reads.go has the protocol). It sends nothing and reads no clock:
// the actor feeds it the time (the read clock), the time up to which a
// quorum answered, the applied and commit indexes and the tick count; it
// puts completions in out and the answers owed to followers in answers,
// which the actor sends.
//
// Invariants (checkInvariants): waiting and remote are in registration
// order; forwarded is in batch order; every read in applying has an index
// beyond applied (else it would have completed).
type readService struct {
	mode    ReadMode // the node's default
	lease   uint64   // lease length on the read clock; 0: no leases
	lag     uint64   // MaxReadIndexLag
	timeout int64    // ticks a read may wait
	out     *closure.Batch

	// Leader: local reads waiting for their quorum round, by regAt, and
	// forwarded batches waiting for theirs.
	waiting []*ReadTask
	remote  []remoteRead
	// Any role: reads with an index, waiting for the state machine.
	applying []*ReadTask
	// Follower: batches forwarded to the leader, by increasing batch id
	// (a slice, not a map: the order reaches the completions).
	forwarded []*forwarded
	nextBatch uint64 // the last batch id used (startBatches)
	// Leader, this term: when the last round started, and the lease.
	// revoked: a leadership transfer is under way; no lease is held or
	// extended until it ends (the voters may elect the target at once).
	beatAt     uint64
	leaseUntil uint64
	revoked    bool
	// answers are owed to followers' batches, for the actor to send.
	answers []readAnswer
}

type remoteRead struct {
	from  string
	batch uint64
	index uint64
	regAt uint64
}

type forwarded struct {
	batch  uint64
	tasks  []*ReadTask
	expire int64
}

// readAnswer is the leader's answer to a follower's batch.
type readAnswer struct {
	to    string
	batch uint64
	ok    bool
	index uint64
	code  closure.Code
}

func (s *readService) modeOf(t *ReadTask) ReadMode {
	if t.Mode != ReadDefault {
		return t.Mode
	}
	return s.mode
}

func (s *readService) complete(t *ReadTask, st closure.Status) {
	*s.out = append(*s.out, closure.Completion{Closure: &t.Guard, Status: st})
}

func (s *readService) completeAll(tasks []*ReadTask, st closure.Status) {
	for _, t := range tasks {
		s.complete(t, st)
	}
}

// arrived stamps reads taken from the queue at tick with their deadline.
func (s *readService) arrived(tasks []*ReadTask, tick int64) {
	for _, t := range tasks {
		t.expire = tick + s.timeout
	}
}

func (s *readService) leaseValid(now uint64) bool { return now < s.leaseUntil }

// leaseEnd is when the lease runs out on the read clock (0: no lease).
func (s *readService) leaseEnd() uint64 { return s.leaseUntil }

// lead registers a leader's own reads at now. A leader that has not
// committed an entry of its term (commit < termStart) refuses them:
// its commit index may lag entries committed by earlier leaders.
func (s *readService) lead(tasks []*ReadTask, now, commit, applied, termStart uint64) {
	if commit < termStart {
		s.completeAll(tasks, closure.Newf(closure.EAGAIN, "the leader has not yet committed an entry of its term"))
		return
	}
	for _, t := range tasks {
		if s.modeOf(t) == ReadLease && s.leaseValid(now) {
			if applied >= termStart {
				t.index = applied // wait-free: see reads.go
				s.complete(t, closure.StatusOK)
				continue
			}
			t.index = commit
			s.awaitApply(t, applied)
			continue
		}
		t.index, t.regAt = commit, now
		if faults.On(faults.ReadWithoutQuorum) {
			s.awaitApply(t, applied)
			continue
		}
		s.waiting = append(s.waiting, t)
	}
}

// serve registers a follower's batch at now; it answers at once when a
// lease read finds the lease valid.
func (s *readService) serve(from string, batch uint64, lease bool, now, commit uint64) {
	if (lease && s.leaseValid(now)) || faults.On(faults.ReadWithoutQuorum) {
		s.answers = append(s.answers, readAnswer{to: from, batch: batch, ok: true, index: commit, code: closure.OK})
		return
	}
	s.remote = append(s.remote, remoteRead{from: from, batch: batch, index: commit, regAt: now})
}

// refuse answers a follower's batch with code.
func (s *readService) refuse(from string, batch uint64, code closure.Code) {
	s.answers = append(s.answers, readAnswer{to: from, batch: batch, code: code})
}

// roundNeeded reports whether reads wait for a quorum round that no round
// in flight covers (one sent after they registered and not yet answered by
// a quorum, whose answers arrived up to quorumAcked).
func (s *readService) roundNeeded(quorumAcked uint64) bool {
	var oldest uint64
	switch {
	case len(s.waiting) > 0:
		oldest = s.waiting[0].regAt
	case len(s.remote) > 0:
		oldest = s.remote[0].regAt
	default:
		return false
	}
	return s.beatAt < oldest || s.beatAt <= quorumAcked
}

// roundSent records that a round started at now.
func (s *readService) roundSent(now uint64) { s.beatAt = now }

// confirm serves the reads registered up to q, the latest time a quorum
// answered (now is the current time), and extends the lease from q. It
// reports whether the lease changed.
func (s *readService) confirm(q, now, applied uint64) (leaseChanged bool) {
	if s.lease > 0 && !s.revoked && q+s.lease > s.leaseUntil && q < now {
		s.leaseUntil = q + s.lease
		leaseChanged = true
	}
	n := 0
	for n < len(s.waiting) && s.waiting[n].regAt <= q {
		s.awaitApply(s.waiting[n], applied)
		s.waiting[n] = nil
		n++
	}
	s.waiting = s.waiting[n:]
	n = 0
	for n < len(s.remote) && s.remote[n].regAt <= q {
		r := s.remote[n]
		s.answers = append(s.answers, readAnswer{to: r.from, batch: r.batch, ok: true, index: r.index, code: closure.OK})
		n++
	}
	s.remote = s.remote[n:]
	return leaseChanged
}

// awaitApply completes t once the state machine has applied its index.
func (s *readService) awaitApply(t *ReadTask, applied uint64) {
	if applied >= t.index {
		s.complete(t, closure.StatusOK)
		return
	}
	s.applying = append(s.applying, t)
}

// applied completes the reads whose index is now applied.
func (s *readService) applied(applied uint64) {
	keep := s.applying[:0]
	for _, t := range s.applying {
		if applied >= t.index {
			s.complete(t, closure.StatusOK)
		} else {
			keep = append(keep, t)
		}
	}
	clear(s.applying[len(keep):])
	s.applying = keep
}

// startBatches makes this life's batch ids start from its start time in
// nanoseconds: a leader's answer to a batch of an earlier life of this
// node, delivered late, must not match a batch of this one (it carries the
// read index of an earlier time). An earlier life used fewer ids than it
// lived nanoseconds, so its ids lie below this life's first.
func (s *readService) startBatches(start time.Time) {
	if ns := start.UnixNano(); ns > 0 {
		s.nextBatch = uint64(ns)
	}
}

// forward makes a follower's reads into batches for the leader, one per
// mode; send is called with each batch's id and whether it asks for a
// lease read.
func (s *readService) forward(tasks []*ReadTask, send func(batch uint64, lease bool)) {
	var safe, lease []*ReadTask
	for _, t := range tasks {
		if s.modeOf(t) == ReadLease {
			lease = append(lease, t)
		} else {
			safe = append(safe, t)
		}
	}
	for i, b := range [2][]*ReadTask{safe, lease} {
		if len(b) == 0 {
			continue
		}
		s.nextBatch++
		s.forwarded = append(s.forwarded, &forwarded{batch: s.nextBatch, tasks: b, expire: b[0].expire})
		send(s.nextBatch, i == 1)
	}
}

// answered completes a forwarded batch with the leader's answer; leader
// names the leader for a refusal.
func (s *readService) answered(resp *raftpb.ReadIndexResponse, applied uint64, leader string) {
	i, ok := slices.BinarySearchFunc(s.forwarded, resp.Batch, func(f *forwarded, b uint64) int { return cmp.Compare(f.batch, b) })
	if !ok {
		return // timed out, or a duplicate
	}
	f := s.forwarded[i]
	s.forwarded = slices.Delete(s.forwarded, i, i+1)
	if !resp.Success {
		code := closure.Code(resp.Code)
		if code == closure.OK { // a failure must say why: never complete it as OK
			code = closure.EINTERNAL
		}
		st := closure.Newf(code, "the leader could not serve the read")
		if st.Code == closure.EPERM {
			st = closure.NotLeader(leader)
		}
		s.completeAll(f.tasks, st)
		return
	}
	for _, t := range f.tasks {
		t.index = resp.Index
		if s.lag > 0 && resp.Index > applied+s.lag {
			s.complete(t, closure.Newf(closure.EAGAIN, "this node has applied %d, %d behind the read index %d (MaxReadIndexLag %d)",
				applied, resp.Index-applied, resp.Index, s.lag))
			continue
		}
		s.awaitApply(t, applied)
	}
}

// expire times out the reads whose deadline passed before tick.
func (s *readService) expire(tick int64) {
	st := closure.Newf(closure.ETIMEDOUT, "no quorum confirmed the read in time")
	n := 0
	for n < len(s.waiting) && s.waiting[n].expire < tick {
		s.complete(s.waiting[n], st)
		n++
	}
	s.waiting = s.waiting[n:]
	s.forwarded = slices.DeleteFunc(s.forwarded, func(f *forwarded) bool {
		if f.expire >= tick {
			return false
		}
		s.completeAll(f.tasks, closure.Newf(closure.ETIMEDOUT, "the leader did not answer the read in time"))
		return true
	})
	keep := s.applying[:0]
	for _, t := range s.applying {
		if t.expire < tick {
			s.complete(t, closure.Newf(closure.ETIMEDOUT, "the state machine did not reach the read index %d in time", t.index))
		} else {
			keep = append(keep, t)
		}
	}
	clear(s.applying[len(keep):])
	s.applying = keep
}

// stopLeading fails the reads waiting for a quorum round and refuses the
// followers' batches; reads with an index keep waiting for the apply. The
// lease ends.
func (s *readService) stopLeading() {
	s.completeAll(s.waiting, closure.Newf(closure.EPERM, "leadership lost before the read was confirmed"))
	s.waiting = nil
	for _, r := range s.remote {
		s.refuse(r.from, r.batch, closure.EPERM)
	}
	s.remote = nil
	s.leaseUntil, s.beatAt, s.revoked = 0, 0, false
}

// revokeLease ends the lease and stops it from being extended (a
// leadership transfer begins); restoreLease lets it be extended again
// (the transfer was aborted).
func (s *readService) revokeLease()  { s.leaseUntil, s.revoked = 0, true }
func (s *readService) restoreLease() { s.revoked = false }

// failAll completes every read held with st (shutdown, node error).
func (s *readService) failAll(st closure.Status) {
	s.completeAll(s.waiting, st)
	s.completeAll(s.applying, st)
	for _, f := range s.forwarded {
		s.completeAll(f.tasks, st)
	}
	s.waiting, s.applying, s.remote, s.forwarded = nil, nil, nil, nil
}

// takeAnswers returns the answers owed and forgets them.
func (s *readService) takeAnswers() []readAnswer {
	a := s.answers
	s.answers = s.answers[:0]
	return a
}

func (s *readService) checkInvariants(applied uint64, leader bool) {
	for i := 1; i < len(s.waiting); i++ {
		if s.waiting[i].regAt < s.waiting[i-1].regAt {
			invariants.Violate("reads: waiting reads out of registration order")
		}
	}
	for i := 1; i < len(s.remote); i++ {
		if s.remote[i].regAt < s.remote[i-1].regAt {
			invariants.Violate("reads: forwarded batches out of registration order")
		}
	}
	for i := 1; i < len(s.forwarded); i++ {
		if s.forwarded[i].batch <= s.forwarded[i-1].batch {
			invariants.Violate("reads: batches forwarded out of order")
		}
	}
	for _, t := range s.applying {
		if t.index <= applied {
			invariants.Violate("reads: a read of index %d waits although %d is applied", t.index, applied)
		}
	}
	if !leader && (len(s.waiting) > 0 || len(s.remote) > 0 || s.leaseUntil != 0) {
		invariants.Violate("reads: leader reads or a lease held by a node that does not lead")
	}
}
