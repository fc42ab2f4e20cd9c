package node

import (
	"fmt"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Leadership transfer (Raft thesis §3.10). The leader:
//
//  1. stops appending proposals (they fail at once with EBUSY, never
//     appended) and ends its lease, which it does not extend again while
//     the transfer lasts: the target's election may then come before the
//     election timeout the voters promised the leader;
//  2. waits until the target holds its whole log, then sends it
//     TimeoutNow;
//  3. the target campaigns at once (no pre-vote), its vote requests
//     flagged as a transfer: voters grant them although they still hear
//     the leader (stickiness exists for the lease, which is gone);
//  4. the leader steps down when it sees the target's higher term, and the
//     transfer succeeds when it learns that the target leads.
//
// If the target is not leading within an election timeout of the start,
// the transfer ends with ETIMEDOUT: the old leader, if it still leads,
// accepts proposals and holds leases again. A transfer never leaves the
// group refusing writes for longer than that. ETIMEDOUT is not a definite
// failure once TimeoutNow was sent: the target may win its election
// after the old leader gave up waiting (the old leader then steps down as
// usual).

// transferring is a leadership transfer under way (Actor.transfer).
type transferring struct {
	to    string
	ticks int  // ticks since it began
	sent  bool // TimeoutNow was sent
	// priority: the leader began it by itself, for the target's higher
	// priority.
	priority bool
	// stepped: this node stepped down meanwhile; the outcome is known
	// when it learns who leads.
	stepped bool
	done    func(error)
}

// onTransferLeadership starts a transfer on the leader (TransferLeadership).
func (a *Actor) onTransferLeadership(env actors.Env, m TransferLeadership) {
	refuse := func(err error) { a.transferDone(m.Done, err) }
	cur, curIdx, _ := a.confs.Latest()
	switch {
	case a.failed != nil:
		refuse(fmt.Errorf("asyncraft: no leadership transfer: the node failed: %w", a.failed))
		return
	case a.role != Leader:
		refuse(closure.NotLeader(a.leader).Err())
		return
	case a.transfer != nil:
		refuse(closure.Newf(closure.EBUSY, "a leadership transfer to %s is under way", a.transfer.to).Err())
		return
	case a.change != nil || cur.Joint() || curIdx > a.commit:
		refuse(fmt.Errorf("%w: no leadership transfer while the configuration changes (%v)", ErrChangeInProgress, cur))
		return
	}
	to := m.To
	if to == "" {
		to = a.mostUpToDate()
		if to == "" {
			refuse(closure.Newf(closure.EINVAL, "no other voter to transfer leadership to (%v)", cur).Err())
			return
		}
	}
	switch {
	case to == a.cfg.ID:
		a.transferDone(m.Done, nil) // leads already
		return
	case !cur.IsVoter(to):
		refuse(fmt.Errorf("%w: %s is not a voter of %v: it cannot lead", ErrInvalidConfiguration, to, cur))
		return
	}
	a.startTransfer(env, &transferring{to: to, done: m.Done})
}

// startTransfer begins the transfer t (this node leads, no transfer or
// change is under way, t.to is another voter).
func (a *Actor) startTransfer(env actors.Env, t *transferring) {
	to := t.to
	a.transfer = t
	a.sh.Metrics.TransfersStarted.Add(1)
	if !faults.On(faults.TransferKeepsLease) {
		a.rd.revokeLease()
		a.sh.leaseUntil.Store(0)
	}
	a.logger.Info("asyncraft: leadership transfer started; proposals are refused until it ends", "to", to, "term", a.term)
	a.maybeTimeoutNow(env)
}

// mostUpToDate is the voter, other than this leader, with the highest
// match ("" if none).
func (a *Actor) mostUpToDate() string {
	best, bestMatch := "", uint64(0)
	for _, id := range a.tr.others {
		p := a.tr.peer(id)
		if p == nil || !a.tr.cfg.IsVoter(id) {
			continue
		}
		if best == "" || p.match > bestMatch {
			best, bestMatch = id, p.match
		}
	}
	return best
}

// maybeTimeoutNow sends TimeoutNow to the target once it holds the whole
// log (its replicator keeps sending it entries meanwhile).
func (a *Actor) maybeTimeoutNow(env actors.Env) {
	t := a.transfer
	if t == nil || t.sent || a.role != Leader {
		return
	}
	p := a.tr.peer(t.to)
	if p == nil || p.match < a.log.LastIndex() {
		return
	}
	t.sent = true
	e := a.envelope(t.to, a.term, 0)
	e.Body = &raftpb.Envelope_TimeoutNow{TimeoutNow: &raftpb.TimeoutNow{}}
	a.send(env, a.peerRef(t.to), e)
	a.debug("transfer: timeout-now sent", "to", t.to, "match", p.match)
}

// transferTick counts a tick of the transfer under way; at an election
// timeout it ends with ETIMEDOUT (a leader that still leads takes
// proposals and leases again).
func (a *Actor) transferTick(env actors.Env) {
	t := a.transfer
	if t == nil {
		return
	}
	t.ticks++
	if t.ticks < a.cfg.Ticks.Election {
		return
	}
	a.transfer = nil
	a.rd.restoreLease()
	a.sh.Metrics.TransfersFailed.Add(1)
	if t.priority {
		a.prio.failed(a.tickCount, a.cfg.Ticks.Election)
	}
	a.logger.Warn("asyncraft: leadership transfer did not complete within an election timeout", "to", t.to, "role", a.role.String(), "leader", a.leader)
	// Not a definite failure once TimeoutNow left: the target may still
	// win the election it began, after this.
	maybe := ""
	if t.sent {
		maybe = fmt.Sprintf("; %s was told to campaign and may still win (Status tells who leads)", t.to)
	}
	a.transferDone(t.done, closure.Newf(closure.ETIMEDOUT, "the leadership transfer to %s did not complete within an election timeout (leader now %q); proposals are accepted again%s", t.to, a.leader, maybe).Err())
	if a.role == Leader {
		a.drain(env)
	}
}

// transferStepDown is called as this leader steps down: a transfer under
// way waits to learn who leads.
func (a *Actor) transferStepDown() {
	if t := a.transfer; t != nil {
		t.stepped = true
	}
}

// transferLeaderKnown is called when this node learns of a leader: a
// transfer it began ends, well if the target leads.
func (a *Actor) transferLeaderKnown(id string) {
	t := a.transfer
	if t == nil || !t.stepped || id == "" || id == a.cfg.ID {
		return
	}
	a.transfer = nil
	if id == t.to {
		a.prio.succeeded()
		a.sh.Metrics.TransfersDone.Add(1)
		a.logger.Info("asyncraft: leadership transferred", "to", id, "term", a.term)
		a.transferDone(t.done, nil)
		return
	}
	a.sh.Metrics.TransfersFailed.Add(1)
	if t.priority {
		a.prio.failed(a.tickCount, a.cfg.Ticks.Election)
	}
	a.transferDone(t.done, closure.Newf(closure.EPERM, "leadership went to %s, not %s", id, t.to).Err())
}

// abandonTransfer ends a transfer when the node fails or shuts down.
func (a *Actor) abandonTransfer(why string) {
	t := a.transfer
	if t == nil {
		return
	}
	a.transfer = nil
	a.sh.Metrics.TransfersFailed.Add(1)
	a.transferDone(t.done, closure.Newf(closure.EUNKNOWN, "%s before the leadership transfer to %s completed", why, t.to).Err())
}

// onTimeoutNow makes this follower campaign at once, at its leader's
// request: the leader is transferring its leadership here.
func (a *Actor) onTimeoutNow(env actors.Env, e *raftpb.Envelope) {
	if a.role != Follower || e.From != a.leader || e.Term != a.term || !a.tr.isVoter(a.cfg.ID) {
		return
	}
	if a.inst != nil && a.inst.loading {
		return
	}
	a.logger.Info("asyncraft: leadership transfer: campaigning at the leader's request", "leader", e.From, "term", a.term)
	a.transferCampaign = true
	a.campaign(env)
	a.transferCampaign = false
}

// transferDone completes a TransferLeadership on the callback executor.
func (a *Actor) transferDone(done func(error), err error) {
	if done == nil {
		return
	}
	a.completions = append(a.completions, closure.Completion{Closure: closure.Func(func(closure.Status) { done(err) })})
}

// Priorities (SOFAJRaft's priority election, done by transfer). Every
// check-quorum period (an election timeout) a leader with nothing else
// under way looks for the voter of the highest priority above its own
// that answered during the period and holds every committed entry (under
// load the rest is in flight), and transfers
// its leadership there, as TransferLeadership would: proposals are
// refused meanwhile, for a round trip typically and an election timeout
// at most. A preferred member that recovers thus leads again within an
// election timeout or two of catching up.
//
// A hand-over that fails (the target could not win, or did not answer
// TimeoutNow) is not tried again for priorityBackoffMin election timeouts,
// doubled after each failure in a row up to priorityBackoffMax: a
// preferred member that cannot lead costs the group an election timeout
// of refused writes at most once per priorityBackoffMax.

const (
	priorityBackoffMin = 4  // election timeouts
	priorityBackoffMax = 64 // election timeouts
)

// priorityBackoff is the leader's record of failed hand-overs.
type priorityBackoff struct {
	until int64 // no hand-over before this tick
	wait  int   // the next wait, in election timeouts (0: the minimum)
}

// failed records a failed hand-over at tick now.
func (b *priorityBackoff) failed(now int64, electionTicks int) {
	b.wait = min(max(b.wait*2, priorityBackoffMin), priorityBackoffMax)
	b.until = now + int64(b.wait*electionTicks)
}

// succeeded forgets the failures.
func (b *priorityBackoff) succeeded() { *b = priorityBackoff{} }

// priorityTransfer starts a hand-over to a voter of a higher priority
// than this leader's, if one answered in the period that ends and holds
// the whole log (called by checkQuorum).
func (a *Actor) priorityTransfer(env actors.Env) {
	if a.role != Leader || a.transfer != nil || a.change != nil || a.failed != nil || a.tickCount < a.prio.until {
		return
	}
	cur, curIdx, _ := a.confs.Latest()
	if cur.Joint() || curIdx > a.commit {
		return
	}
	var mine uint32
	for _, p := range cur.Voters {
		if p.ID == a.cfg.ID {
			mine = p.Priority
		}
	}
	best, bestPrio := "", mine
	for _, p := range cur.Voters {
		if p.ID == a.cfg.ID || p.Priority <= bestPrio {
			continue
		}
		pr := a.tr.peer(p.ID)
		if pr == nil || !pr.active || pr.match < a.commit {
			continue
		}
		best, bestPrio = p.ID, p.Priority
	}
	if best == "" {
		return
	}
	a.sh.Metrics.PriorityTransfers.Add(1)
	a.logger.Info("asyncraft: handing leadership to a voter of a higher priority", "to", best, "its priority", bestPrio, "this node's", mine)
	a.startTransfer(env, &transferring{to: best, priority: true})
}
