package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The member's commands for the membership workloads (membership.go):
//
//	change    cmd.Change on this process's node of cmd.Group, which must
//	          lead (Node.ChangeMembership, from another goroutine: adding
//	          a voter that installs a snapshot takes long); answered
//	          "changed" with its loadgen.Outcome, whether it succeeded or
//	          not
//	transfer  Node.TransferLeadership(cmd.To) on this process's node of
//	          cmd.Group, which must lead; answered "transferred" with its
//	          Outcome
//
// and the Follow load: clients that propose on this process's node while
// it leads and wait while it does not.

// defaultChangeTimeout bounds a "change" whose MemberChange names no
// timeout.
const defaultChangeTimeout = 15 * time.Minute

func (m *member) membershipCommand(cmd command, emit func(event)) (bool, error) {
	gn, err := m.leaderOf(cmd.Group)
	if err != nil {
		return true, err
	}
	switch cmd.Op {
	case "change":
		if cmd.Change == nil {
			return true, errors.New("change needs a membership change")
		}
		change, err := membershipChange(*cmd.Change)
		if err != nil {
			return true, err
		}
		timeout := cmd.Change.Timeout
		if timeout <= 0 {
			timeout = defaultChangeTimeout
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			o := &loadgen.Outcome{Start: time.Now().UnixNano()}
			index, err := gn.node.ChangeMembership(ctx, change)
			o.End, o.Index = time.Now().UnixNano(), index
			if err != nil {
				o.Err = err.Error()
			}
			emit(event{Ev: "changed", Outcome: o})
		}()
	case "transfer":
		go func() {
			// TransferLeadership ends by itself within an election
			// timeout; the context is a backstop.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			o := &loadgen.Outcome{Start: time.Now().UnixNano()}
			err := gn.node.TransferLeadership(ctx, cmd.To)
			o.End = time.Now().UnixNano()
			o.Leader = gn.node.Status().Leader
			if err != nil {
				o.Err = err.Error()
			}
			emit(event{Ev: "transferred", Outcome: o})
		}()
	}
	return true, nil
}

// membershipChange is the library's change for c.
func membershipChange(c loadgen.MemberChange) (asyncraft.MembershipChange, error) {
	if c.ID == "" {
		return asyncraft.MembershipChange{}, fmt.Errorf("change %q: no member id", c.Op)
	}
	p := asyncraft.Peer{ID: c.ID, Addr: c.Addr}
	switch c.Op {
	case "add-voter":
		return asyncraft.AddVoter(p), nil
	case "add-learner":
		return asyncraft.AddLearner(p), nil
	case "promote":
		return asyncraft.PromoteLearner(c.ID), nil
	case "remove":
		return asyncraft.RemoveMember(c.ID), nil
	}
	return asyncraft.MembershipChange{}, fmt.Errorf("unknown membership change %q (add-voter, add-learner, promote, remove)", c.Op)
}

func peerIDs(ps []asyncraft.Peer) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// launchFollow returns the function that starts a Follow load: spec.Clients
// goroutine clients on this process's node of each of groups, in any role.
func (m *member) launchFollow(spec loadgen.Spec, groups []string) (func(loadgen.Sink), error) {
	if spec.Client != "" && spec.Client != loadgen.ClientGoroutine {
		return nil, fmt.Errorf("a load that follows the leader has goroutine clients only, not %s", spec.Client)
	}
	if len(groups) == 0 {
		return nil, errors.New("no groups to drive")
	}
	var nodes []*groupNode
	for _, g := range groups {
		gn, err := m.nodeOf(g)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, gn)
	}
	return followClients(nodes, m.ErrorName), nil
}

// followPoll is how often a waiting client of a Follow load looks at
// its node's role (it is also woken when the node starts to lead).
const followPoll = time.Millisecond

// followClients returns a Launch function that starts spec.Clients
// goroutine clients, client i on nodes[i mod len]. A client proposes
// (ApplyWait, the spec's deadline per operation) while its node leads.
// An operation refused (EBUSY during a transfer, say) is counted under
// name(err) and retried 1 ms later, and its latency, once it succeeds,
// runs from its first attempt. When the node no longer leads, the client
// drops its operation (a client of the new leader's process takes over)
// and waits until its node leads again: woken by OnLeaderStart, or by
// its own look at the node's role every followPoll. (It looks at the
// role when it starts and after a failure, not before every proposal.)
func followClients(nodes []*groupNode, name func(error) string) func(loadgen.Sink) {
	return func(r loadgen.Sink) {
		spec := r.Spec()
		value := r.Value()
		timeout := spec.OpTimeout
		if timeout <= 0 {
			timeout = loadgen.DefaultOpTimeout
		}
		for i := 0; i < spec.Clients; i++ {
			gi := i % len(nodes)
			gn := nodes[gi]
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(i)))
			go func() {
				defer r.Stopped()
				var first time.Time // the current operation's first attempt
				var key uint64
				check := true // look at the node's role before proposing
				for {
					now := time.Now()
					if r.Over(now) {
						return
					}
					if check && gn.node.Status().Role != asyncraft.Leader {
						first = time.Time{}
						select {
						case <-gn.sm.leading:
						case <-time.After(followPoll):
						}
						continue
					}
					check = false
					if first.IsZero() {
						first, key = now, rng.Uint64N(uint64(spec.Keys))
					}
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					_, err := gn.node.ApplyWait(ctx, loadgen.EncodeCommand(key, value))
					cancel()
					done := time.Now()
					if err != nil {
						r.Fail(name(err))
						check = true
						time.Sleep(time.Millisecond) // no hot loop on a refusing leader
						continue
					}
					r.OK(gi, first, done)
					first = time.Time{}
				}
			}()
		}
	}
}
