package asyncraft

import (
	"context"
	"fmt"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/confchange"
	"github.com/asyncraft/asyncraft/node"
)

// Membership changes (docs/membership.md).
//
// A change of voters goes through a joint configuration: the leader
// appends C_old,new, in which every decision needs a majority of the old
// voters and one of the new; once that entry commits, the leader appends
// C_new by itself. A change of learners or of addresses only is one
// entry. A node uses a configuration from the moment its entry is in its
// log. One change at a time: while one is under way, another is refused
// with ErrChangeInProgress.
//
// Every method below must be called on the leader (elsewhere it fails
// with closure.ErrNotLeader, naming the leader if known). It returns the
// index of the entry that completed the change once that entry is
// committed. If ctx ends first, or the leader loses its leadership, the
// change may still complete: Status.Configuration tells.

// Errors of a membership change.
var (
	// ErrChangeInProgress: another change is under way; retry once it
	// completes.
	ErrChangeInProgress = node.ErrChangeInProgress
	// ErrConfigurationStale: ChangePeersIf's expected configuration is no
	// longer the one in force.
	ErrConfigurationStale = node.ErrConfigurationStale
	// ErrConfigurationUnchanged: the change leads to the configuration in
	// force.
	ErrConfigurationUnchanged = node.ErrConfigurationUnchanged
	// ErrInvalidConfiguration: the target is not a valid configuration
	// (no voters, an id listed twice or invalid, a missing address), or
	// the helper's change does not apply (adding a member there is,
	// removing one there is not).
	ErrInvalidConfiguration = node.ErrInvalidConfiguration
	// ErrWipedData fails a node (Status.Err) that another member knows
	// under another incarnation of its data: its data directory was wiped
	// or replaced after it voted, so it could vote twice in a term.
	// docs/membership.md, "Wiped data", says what to do.
	ErrWipedData = node.ErrWipedData
)

// A MembershipChange is one change of the configuration, computed by the
// leader from the configuration in force when it starts the change (so
// that, say, AddVoter adds to whatever the voters are then). Make one with
// the functions below, and run it with Node.ChangeMembership or
// ChangeMembershipAsync; the Node methods ChangePeers, AddPeer and the
// others are shorthands.
type MembershipChange struct {
	what   string
	f      func(confchange.Config) (confchange.Config, error)
	expect *confchange.Config
}

func (m MembershipChange) String() string { return m.what }

// SetConfiguration changes the configuration to target (its voters and
// learners; target must not be joint).
func SetConfiguration(target Configuration) MembershipChange {
	t := target.Internal()
	return MembershipChange{what: "set " + t.String(), f: func(confchange.Config) (confchange.Config, error) { return t, nil }}
}

// SetConfigurationIf is SetConfiguration guarded for automation: the
// change is made only if the configuration in force has the members that
// expect has (ids, each a voter or a learner as in expect); otherwise it
// fails with ErrConfigurationStale. Two controllers that read the same
// configuration and change it cannot both succeed.
func SetConfigurationIf(expect, target Configuration) MembershipChange {
	m := SetConfiguration(target)
	e := expect.Internal()
	m.expect = &e
	m.what += " if " + e.String()
	return m
}

// AddVoter adds p as a voter (a learner of that id is promoted).
func AddVoter(p Peer) MembershipChange {
	return MembershipChange{what: "add voter " + p.String(), f: func(c confchange.Config) (confchange.Config, error) {
		return confchange.AddVoter(c, confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority})
	}}
}

// RemoveMember removes the voter or learner id. A leader that removes
// itself steps down once the change is committed.
func RemoveMember(id string) MembershipChange {
	return MembershipChange{what: "remove " + id, f: func(c confchange.Config) (confchange.Config, error) { return confchange.Remove(c, id) }}
}

// ReplaceVoter replaces the voter old by the voter p in one joint change.
func ReplaceVoter(old string, p Peer) MembershipChange {
	return MembershipChange{what: "replace " + old + " by " + p.String(), f: func(c confchange.Config) (confchange.Config, error) {
		return confchange.Replace(c, old, confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority})
	}}
}

// AddLearner adds p as a learner: it gets the log and snapshots but has
// no vote and no weight in any quorum.
func AddLearner(p Peer) MembershipChange {
	return MembershipChange{what: "add learner " + p.String(), f: func(c confchange.Config) (confchange.Config, error) {
		return confchange.AddLearner(c, confchange.Peer{ID: p.ID, Addr: p.Addr, Priority: p.Priority})
	}}
}

// AddLearnerToPromote adds p as a learner that the leader makes a voter
// once it has caught up (within NodeOptions.CatchUpLag entries of the
// leader's log). The mark is part of the configuration: a later leader
// promotes it too. Status.Configuration.Promoting lists such learners.
func AddLearnerToPromote(p Peer) MembershipChange {
	return MembershipChange{what: "add learner to promote " + p.String(), f: func(c confchange.Config) (confchange.Config, error) {
		return confchange.AddLearner(c, confchange.Peer{ID: p.ID, Addr: p.Addr, Promote: true, Priority: p.Priority})
	}}
}

// RemoveLearner removes the learner id (and refuses to remove a voter).
func RemoveLearner(id string) MembershipChange {
	return MembershipChange{what: "remove learner " + id, f: func(c confchange.Config) (confchange.Config, error) {
		if !c.IsLearner(id) {
			return confchange.Config{}, fmt.Errorf("%w: %s is not a learner of %v", ErrInvalidConfiguration, id, c)
		}
		return confchange.Remove(c, id)
	}}
}

// SetPriority sets the election priority of the member id (Peer.Priority):
// one configuration entry, no change of any quorum. Once it commits, a
// leader of a lower priority hands its leadership to id when id holds the
// committed log and answers (docs/membership.md, "Priorities").
func SetPriority(id string, priority uint32) MembershipChange {
	return MembershipChange{what: fmt.Sprintf("set the priority of %s to %d", id, priority), f: func(c confchange.Config) (confchange.Config, error) {
		return confchange.SetPriority(c, id, priority)
	}}
}

// PromoteLearner makes the learner id a voter (a joint change).
func PromoteLearner(id string) MembershipChange {
	return MembershipChange{what: "promote " + id, f: func(c confchange.Config) (confchange.Config, error) { return confchange.Promote(c, id) }}
}

// ChangeMembership runs m on this node, which must lead, and waits until
// it completes (the index of its last entry, committed) or fails, or ctx
// ends (the change may then still complete).
func (n *Node) ChangeMembership(ctx context.Context, m MembershipChange) (uint64, error) {
	type outcome struct {
		index uint64
		err   error
	}
	ch := make(chan outcome, 1)
	n.ChangeMembershipAsync(m, func(index uint64, err error) { ch <- outcome{index, err} })
	select {
	case o := <-ch:
		return o.index, o.err
	case <-ctx.Done():
		return 0, fmt.Errorf("asyncraft: membership change (%s): %w; the change may still complete: check Status.Configuration", m, ctx.Err())
	}
}

// ChangeMembershipAsync is ChangeMembership with a callback: done runs
// once, on the host's callback executor, with the index of the change's
// last entry once committed, or why the change failed (on the caller's
// goroutine if the node has shut down already).
func (n *Node) ChangeMembershipAsync(m MembershipChange, done func(index uint64, err error)) {
	if m.f == nil {
		done(0, fmt.Errorf("%w: an empty MembershipChange (make one with SetConfiguration, AddVoter, ...)", ErrInvalidConfiguration))
		return
	}
	id, ok := n.changeWaiters.add(done)
	if !ok {
		done(0, n.changeStopped())
		return
	}
	n.host.rt.Send(n.ref, node.ChangeConfig{Change: m.f, Expect: m.expect, Done: func(index uint64, err error) {
		if f := n.changeWaiters.take(id); f != nil {
			f(index, err)
		}
	}})
}

// ChangePeers changes the configuration to target: ChangeMembership of
// SetConfiguration(target).
func (n *Node) ChangePeers(ctx context.Context, target Configuration) (uint64, error) {
	return n.ChangeMembership(ctx, SetConfiguration(target))
}

// ChangePeersIf is ChangeMembership of SetConfigurationIf(expect, target).
func (n *Node) ChangePeersIf(ctx context.Context, expect, target Configuration) (uint64, error) {
	return n.ChangeMembership(ctx, SetConfigurationIf(expect, target))
}

// AddPeer adds p as a voter: ChangeMembership of AddVoter(p).
func (n *Node) AddPeer(ctx context.Context, p Peer) (uint64, error) {
	return n.ChangeMembership(ctx, AddVoter(p))
}

// RemovePeer removes the member id: ChangeMembership of RemoveMember(id).
func (n *Node) RemovePeer(ctx context.Context, id string) (uint64, error) {
	return n.ChangeMembership(ctx, RemoveMember(id))
}

// ReplacePeer replaces the voter old by p: ChangeMembership of
// ReplaceVoter(old, p).
func (n *Node) ReplacePeer(ctx context.Context, old string, p Peer) (uint64, error) {
	return n.ChangeMembership(ctx, ReplaceVoter(old, p))
}

// AddLearner adds p as a learner: ChangeMembership of AddLearner(p).
func (n *Node) AddLearner(ctx context.Context, p Peer) (uint64, error) {
	return n.ChangeMembership(ctx, AddLearner(p))
}

// RemoveLearner removes the learner id: ChangeMembership of
// RemoveLearner(id).
func (n *Node) RemoveLearner(ctx context.Context, id string) (uint64, error) {
	return n.ChangeMembership(ctx, RemoveLearner(id))
}

// PromoteLearner makes the learner id a voter: ChangeMembership of
// PromoteLearner(id).
func (n *Node) PromoteLearner(ctx context.Context, id string) (uint64, error) {
	return n.ChangeMembership(ctx, PromoteLearner(id))
}

// SetPriority runs SetPriority(id, priority).
func (n *Node) SetPriority(ctx context.Context, id string, priority uint32) (uint64, error) {
	return n.ChangeMembership(ctx, SetPriority(id, priority))
}

func (n *Node) transferStopped() error {
	return fmt.Errorf("asyncraft: no leadership transfer: node %s: %w", n.key(), closure.ErrShutdown)
}

func (n *Node) changeStopped() error {
	return fmt.Errorf("asyncraft: no membership change: node %s: %w", n.key(), closure.ErrShutdown)
}

// TransferLeadership hands this leader's leadership to the voter to ("":
// the most up-to-date one) and waits until to leads, or the transfer
// fails, or ctx ends. Meanwhile the leader refuses proposals (EBUSY) and
// holds no lease; it sends to what it lacks of the log, then TimeoutNow,
// and to campaigns at once. A transfer that has not completed within an
// election timeout ends with ETIMEDOUT, and the leader, if it still leads,
// accepts proposals again; if TimeoutNow was sent, to may still win the
// election it began after that (docs/membership.md, "Leadership
// transfer").
func (n *Node) TransferLeadership(ctx context.Context, to string) error {
	ch := make(chan error, 1)
	n.TransferLeadershipAsync(to, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("asyncraft: leadership transfer to %q: %w; it may still complete: check Status.Leader", to, ctx.Err())
	}
}

// TransferLeadershipAsync is TransferLeadership with a callback: done runs
// once, on the host's callback executor (on the caller's goroutine if the
// node has shut down already).
func (n *Node) TransferLeadershipAsync(to string, done func(err error)) {
	id, ok := n.transferWaiters.add(func(_ uint64, err error) { done(err) })
	if !ok {
		done(n.transferStopped())
		return
	}
	n.host.rt.Send(n.ref, node.TransferLeadership{To: to, Done: func(err error) {
		if f := n.transferWaiters.take(id); f != nil {
			f(0, err)
		}
	}})
}
