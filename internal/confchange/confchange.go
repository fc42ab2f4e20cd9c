// Package confchange is the pure arithmetic of membership changes: the
// configuration a change leads to, the joint configuration that gets there
// safely, and the history of configurations along a log. It knows nothing
// of messages, time or storage. The node actor drives it
// (node/membership.go).
//
// A configuration has voters and learners. A change of the voters goes
// through a joint configuration (Raft thesis §4.3): the leader appends
// C_old,new, in which every decision — commit, election, check-quorum,
// read round — needs a majority of the old voters and one of the new; once
// that entry commits it appends C_new. A change of learners only does not
// touch any quorum and is a single step. One change at a time: a joint
// configuration must be left before another change begins.
package confchange

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/asyncraft/asyncraft/internal/quorum"
)

// Peer is a member: its node id and the address of its host. Promote,
// on a learner only, asks the leader to make it a voter once it has
// caught up. Priority is the member's election priority: a leader hands
// its leadership to a caught-up voter of a higher priority than its own
// (0, the default, is the lowest: no preference). Since is the index of
// the configuration entry that made it a member this time (0 for the
// founders), set by Stamp when a leader writes the entry; equality of
// configurations ignores it.
type Peer struct {
	ID, Addr string
	Promote  bool
	Priority uint32
	Since    uint64
}

// Config is a configuration as a log entry states it. In a joint
// configuration OldVoters holds C_old's voters (and OldLearners its
// learners) while Voters and Learners are C_new's; otherwise both Old
// fields are empty. Each list is sorted by id.
type Config struct {
	Voters      []Peer
	Learners    []Peer
	OldVoters   []Peer
	OldLearners []Peer
}

// Joint reports whether c is a joint configuration.
func (c Config) Joint() bool { return len(c.OldVoters) > 0 }

// Quorum returns the voters as the quorum package decides with them: the
// new voters, and the old ones during a joint configuration.
func (c Config) Quorum() quorum.Joint {
	return quorum.Joint{quorum.NewMajority(ids(c.Voters)...), quorum.NewMajority(ids(c.OldVoters)...)}
}

// Members returns every peer c involves — voters and learners, old and new
// — by id, each once (the newest address wins): the peers a leader
// replicates to.
func (c Config) Members() []Peer {
	var all []Peer
	seen := map[string]bool{}
	for _, list := range [][]Peer{c.Voters, c.Learners, c.OldVoters, c.OldLearners} {
		for _, p := range list {
			if !seen[p.ID] {
				seen[p.ID] = true
				all = append(all, p)
			}
		}
	}
	slices.SortFunc(all, byID)
	return all
}

// IsVoter reports whether id votes in c (in either half when joint).
func (c Config) IsVoter(id string) bool { return has(c.Voters, id) || has(c.OldVoters, id) }

// IsLearner reports whether id is in c but votes in neither half.
func (c Config) IsLearner(id string) bool {
	return !c.IsVoter(id) && (has(c.Learners, id) || has(c.OldLearners, id))
}

// Contains reports whether id is in c at all.
func (c Config) Contains(id string) bool { return c.IsVoter(id) || c.IsLearner(id) }

// Equal reports whether c and o have the same members in the same roles,
// with the same addresses, promotion marks and priorities (Since aside).
func (c Config) Equal(o Config) bool {
	return samePeers(c.Voters, o.Voters) && samePeers(c.Learners, o.Learners) &&
		samePeers(c.OldVoters, o.OldVoters) && samePeers(c.OldLearners, o.OldLearners)
}

func samePeers(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool {
		x.Since, y.Since = 0, 0
		return x == y
	})
}

// SinceOf returns id's Since in c, and whether c has id at all.
func (c Config) SinceOf(id string) (uint64, bool) {
	for _, list := range [][]Peer{c.Voters, c.Learners, c.OldVoters, c.OldLearners} {
		for _, p := range list {
			if p.ID == id {
				return p.Since, true
			}
		}
	}
	return 0, false
}

// Stamp returns next, the configuration a leader writes at index over
// cur (the one in force), with each member's Since set: kept from cur
// for a member of cur (in any role: a promotion does not start a new
// membership), index for one that joins. Whatever Since next's peers
// carried is replaced.
func Stamp(cur, next Config, index uint64) Config {
	stamp := func(ps []Peer) []Peer {
		if len(ps) == 0 {
			return nil
		}
		out := slices.Clone(ps)
		for i := range out {
			if s, ok := cur.SinceOf(out[i].ID); ok {
				out[i].Since = s
			} else {
				out[i].Since = index
			}
		}
		return out
	}
	return Config{Voters: stamp(next.Voters), Learners: stamp(next.Learners),
		OldVoters: stamp(next.OldVoters), OldLearners: stamp(next.OldLearners)}
}

// SameMembers reports whether c and o have the same voters and learners,
// by id (addresses aside): what a guarded change compares.
func (c Config) SameMembers(o Config) bool {
	return slices.Equal(ids(c.Voters), ids(o.Voters)) && slices.Equal(ids(c.Learners), ids(o.Learners)) &&
		slices.Equal(ids(c.OldVoters), ids(o.OldVoters)) && slices.Equal(ids(c.OldLearners), ids(o.OldLearners))
}

func (c Config) String() string {
	s := "voters " + list(c.Voters)
	if len(c.Learners) > 0 {
		s += " learners " + list(c.Learners)
	}
	if c.Joint() {
		s += " (joint; old voters " + list(c.OldVoters)
		if len(c.OldLearners) > 0 {
			s += " old learners " + list(c.OldLearners)
		}
		s += ")"
	}
	return s
}

// Errors of a change. Each wraps into a message that says what is wrong.
var (
	// ErrInProgress: the configuration is joint; it must be left (its
	// C_new committed) before another change begins.
	ErrInProgress = errors.New("confchange: a membership change is in progress")
	// ErrUnchanged: the change leads to the configuration there is.
	ErrUnchanged = errors.New("confchange: the configuration would not change")
	// ErrStale: a guarded change named a configuration that is no longer
	// the current one.
	ErrStale = errors.New("confchange: the configuration is no longer the one the change expected")
	// ErrInvalid: the configuration a change leads to is not a valid one.
	ErrInvalid = errors.New("confchange: invalid configuration")
)

// Validate checks a target configuration (not joint): at least one voter;
// every id non-empty, free of "/" and listed once across voters and
// learners; every address non-empty.
func Validate(t Config) error {
	if t.Joint() || len(t.OldLearners) > 0 {
		return fmt.Errorf("%w: a target is not joint (%v)", ErrInvalid, t)
	}
	if len(t.Voters) == 0 {
		return fmt.Errorf("%w: no voters (%v): a group without voters can decide nothing", ErrInvalid, t)
	}
	seen := map[string]bool{}
	for _, p := range append(slices.Clone(t.Voters), t.Learners...) {
		switch {
		case p.ID == "" || strings.Contains(p.ID, "/"):
			return fmt.Errorf("%w: peer id %q: must be non-empty and without \"/\"", ErrInvalid, p.ID)
		case p.Addr == "":
			return fmt.Errorf("%w: peer %s has no address", ErrInvalid, p.ID)
		case seen[p.ID]:
			return fmt.Errorf("%w: peer %s is listed twice (a member is a voter or a learner, once)", ErrInvalid, p.ID)
		case p.Promote && has(t.Voters, p.ID):
			return fmt.Errorf("%w: voter %s is marked for promotion (only a learner can be)", ErrInvalid, p.ID)
		}
		seen[p.ID] = true
	}
	return nil
}

// Normalize returns t with its lists sorted by id (copies).
func Normalize(t Config) Config {
	sorted := func(ps []Peer) []Peer {
		if len(ps) == 0 {
			return nil
		}
		ps = slices.Clone(ps)
		slices.SortFunc(ps, byID)
		return ps
	}
	return Config{Voters: sorted(t.Voters), Learners: sorted(t.Learners), OldVoters: sorted(t.OldVoters), OldLearners: sorted(t.OldLearners)}
}

// Next returns the entry that starts the change of cur to target: C_old,new
// if the voters change (by id), target itself if only learners or
// addresses do. cur must not be joint. If expect is non-nil the change is
// guarded: it is refused with ErrStale unless cur has expect's members.
func Next(cur, target Config, expect *Config) (Config, error) {
	if cur.Joint() {
		return Config{}, fmt.Errorf("%w: %v", ErrInProgress, cur)
	}
	if expect != nil && !cur.SameMembers(Normalize(*expect)) {
		return Config{}, fmt.Errorf("%w: expected %v, the configuration is %v", ErrStale, Normalize(*expect), cur)
	}
	target = Normalize(target)
	if err := Validate(target); err != nil {
		return Config{}, err
	}
	if cur.Equal(target) {
		return Config{}, fmt.Errorf("%w: %v", ErrUnchanged, cur)
	}
	if slices.Equal(ids(cur.Voters), ids(target.Voters)) {
		return target, nil
	}
	return Config{Voters: target.Voters, Learners: target.Learners,
		OldVoters: slices.Clone(cur.Voters), OldLearners: slices.Clone(cur.Learners)}, nil
}

// Leave returns C_new, the entry that ends the joint configuration j.
func Leave(j Config) (Config, error) {
	if !j.Joint() {
		return Config{}, fmt.Errorf("confchange: leave a configuration that is not joint: %v", j)
	}
	return Config{Voters: slices.Clone(j.Voters), Learners: slices.Clone(j.Learners)}, nil
}

// Target returns the configuration a change of cur aims at: C_new if cur
// is joint, cur otherwise.
func Target(cur Config) Config {
	return Config{Voters: slices.Clone(cur.Voters), Learners: slices.Clone(cur.Learners)}
}

// The helpers below return the target of one common change of cur (a
// configuration that is not joint), for Next. They refuse what cannot be
// meant: adding a member there is, removing one there is not.

// AddVoter adds p as a voter (a learner with p's id is promoted).
func AddVoter(cur Config, p Peer) (Config, error) {
	if has(cur.Voters, p.ID) {
		return Config{}, fmt.Errorf("%w: %s is a voter already", ErrUnchanged, p.ID)
	}
	t := Target(cur)
	t.Learners = without(t.Learners, p.ID)
	p.Promote = false
	t.Voters = append(t.Voters, p)
	return Normalize(t), nil
}

// AddLearner adds p as a learner.
func AddLearner(cur Config, p Peer) (Config, error) {
	switch {
	case has(cur.Learners, p.ID):
		return Config{}, fmt.Errorf("%w: %s is a learner already", ErrUnchanged, p.ID)
	case has(cur.Voters, p.ID):
		return Config{}, fmt.Errorf("%w: %s is a voter; demote it with Demote", ErrInvalid, p.ID)
	}
	t := Target(cur)
	t.Learners = append(t.Learners, p)
	return Normalize(t), nil
}

// Promote makes the learner id a voter.
func Promote(cur Config, id string) (Config, error) {
	i := slices.IndexFunc(cur.Learners, func(p Peer) bool { return p.ID == id })
	if i < 0 {
		return Config{}, fmt.Errorf("%w: %s is not a learner", ErrInvalid, id)
	}
	return AddVoter(cur, cur.Learners[i])
}

// Demote makes the voter id a learner.
func Demote(cur Config, id string) (Config, error) {
	i := slices.IndexFunc(cur.Voters, func(p Peer) bool { return p.ID == id })
	if i < 0 {
		return Config{}, fmt.Errorf("%w: %s is not a voter", ErrInvalid, id)
	}
	t := Target(cur)
	p := t.Voters[i]
	t.Voters = without(t.Voters, id)
	t.Learners = append(t.Learners, p)
	return Normalize(t), nil
}

// Remove removes the member id, voter or learner.
func Remove(cur Config, id string) (Config, error) {
	if !has(cur.Voters, id) && !has(cur.Learners, id) {
		return Config{}, fmt.Errorf("%w: %s is not a member", ErrUnchanged, id)
	}
	t := Target(cur)
	t.Voters, t.Learners = without(t.Voters, id), without(t.Learners, id)
	return Normalize(t), nil
}

// SetPriority sets the priority of the member id.
func SetPriority(cur Config, id string, priority uint32) (Config, error) {
	t := Target(cur)
	for _, list := range [][]Peer{t.Voters, t.Learners} {
		for i, p := range list {
			if p.ID != id {
				continue
			}
			if p.Priority == priority {
				return Config{}, fmt.Errorf("%w: %s has priority %d already", ErrUnchanged, id, priority)
			}
			list[i].Priority = priority
			return t, nil
		}
	}
	return Config{}, fmt.Errorf("%w: %s is not a member", ErrInvalid, id)
}

// Replace replaces the voter old with the new voter p (a learner of that
// id is promoted).
func Replace(cur Config, old string, p Peer) (Config, error) {
	if !has(cur.Voters, old) {
		return Config{}, fmt.Errorf("%w: %s is not a voter", ErrInvalid, old)
	}
	if old != p.ID && has(cur.Voters, p.ID) {
		return Config{}, fmt.Errorf("%w: %s is a voter already", ErrInvalid, p.ID)
	}
	t := Target(cur)
	p.Promote = false
	t.Learners = without(t.Learners, p.ID)
	t.Voters = append(without(t.Voters, old), p)
	return Normalize(t), nil
}

func byID(a, b Peer) int { return strings.Compare(a.ID, b.ID) }

func ids(ps []Peer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	slices.Sort(out)
	return out
}

func has(ps []Peer, id string) bool {
	return slices.ContainsFunc(ps, func(p Peer) bool { return p.ID == id })
}

func without(ps []Peer, id string) []Peer {
	return slices.DeleteFunc(slices.Clone(ps), func(p Peer) bool { return p.ID == id })
}

func list(ps []Peer) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.ID
		if p.Promote {
			s[i] += "+" // to be promoted
		}
	}
	return "(" + strings.Join(s, " ") + ")"
}
