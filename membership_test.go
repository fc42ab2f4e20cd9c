package asyncraft_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
)

type changeResult struct {
	done  bool
	index uint64
	err   error
}

// changeNow starts m on node id; the result fills in as the simulation
// runs.
func changeNow(c *cluster.Cluster, id string, m asyncraft.MembershipChange) *changeResult {
	r := &changeResult{}
	c.Node(id).ChangeMembershipAsync(m, func(index uint64, err error) { r.done, r.index, r.err = true, index, err })
	return r
}

// mustChange runs m on node on and fails the test (saying what, formatted
// with args) unless it completes.
func mustChange(t *testing.T, c *cluster.Cluster, on string, m asyncraft.MembershipChange, what string, args ...any) *changeResult {
	t.Helper()
	r := changeNow(c, on, m)
	waitChange(t, c, r)
	if r.err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), r.err)
	}
	return r
}

func waitChange(t *testing.T, c *cluster.Cluster, r *changeResult) {
	t.Helper()
	if !c.Sim.RunUntil(func() bool { return r.done }, 20*time.Second) {
		t.Fatalf("the membership change was not answered: %s", c.Describe())
	}
}

// voters are the voter ids of a configuration.
func voters(cfg asyncraft.Configuration) []string {
	var ids []string
	for _, p := range cfg.Voters {
		ids = append(ids, p.ID)
	}
	return ids
}

// commitAll applies n commands on the leader and waits until every one
// succeeded.
func commitAll(t *testing.T, c *cluster.Cluster, leader, prefix string, n int) {
	t.Helper()
	o := cluster.NewOutcomes()
	c.Load(leader, prefix, n, 4, o)
	if !c.Sim.RunUntil(func() bool { return o.Completed() == n }, 20*time.Second) || o.ByCode[closure.OK] != n {
		t.Fatalf("%d of %d commands completed, outcomes %v: %s", o.Completed(), n, o.ByCode, c.Describe())
	}
}

// TestRemoveMembers shrinks a group of three to one: a follower is
// removed, then the leader removes itself and steps down, and the last
// member elects itself. After each change the group commits with the
// members left only, every member's configuration agrees, and the
// applied histories are prefixes of one another.
func TestRemoveMembers(t *testing.T) {
	c, l, follower, other := threeNodes(t, 10)

	r := mustChange(t, c, l, asyncraft.RemoveMember(follower), "remove %s", follower)
	st := c.Node(l).Status()
	if want := []string{l, other}; !slices.Equal(voters(st.Configuration), sorted(want)) || st.Configuration.Joint() || st.ConfigurationIndex != r.index {
		t.Fatalf("leader's configuration after removing %s: %v at %d (change completed at %d)", follower, st.Configuration, st.ConfigurationIndex, r.index)
	}
	// The removed member is cut off: the two left commit alone.
	c.Sim.Partition([]string{follower}, []string{l, other})
	commitAll(t, c, l, "b", 10)

	mustChange(t, c, l, asyncraft.RemoveMember(l), "leader %s removes itself", l)
	if !c.Sim.RunUntil(func() bool { return c.Node(other).Status().Role == asyncraft.Leader }, 20*time.Second) {
		t.Fatalf("%s did not take over after the leader removed itself: %s", other, c.Describe())
	}
	if st := c.Node(l).Status(); st.Role == asyncraft.Leader {
		t.Fatalf("the removed leader still leads: %v", st)
	}
	if got := voters(c.Node(other).Status().Configuration); !slices.Equal(got, []string{other}) {
		t.Fatalf("%s's voters %v, want itself only", other, got)
	}
	commitAll(t, c, other, "c", 5)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	if m := c.Node(l).Metrics(); m.MembershipChanges.Load() != 2 {
		t.Fatalf("the first leader counted %d completed changes, want 2", m.MembershipChanges.Load())
	}
}

// threeNodes starts a group of three, waits for its leader and commits
// writes commands; it returns the leader and the two followers.
func threeNodes(t *testing.T, writes int) (c *cluster.Cluster, leader, f1, f2 string) {
	t.Helper()
	c = cluster.New(cluster.Options{Seed: testseed.For(t)})
	leader, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, leader, "a", writes)
	for _, id := range c.IDs {
		switch {
		case id == leader:
		case f1 == "":
			f1 = id
		default:
			f2 = id
		}
	}
	return c, leader, f1, f2
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// A change is refused with a clear error on a follower, while another is
// under way, when it changes nothing, when its guard is stale, and when
// its target is invalid; none of them touches the configuration.
func TestChangeRefusals(t *testing.T) {
	c, l, f, _ := threeNodes(t, 3)
	before := c.Node(l).Status().Configuration
	cases := []struct {
		name string
		on   string
		m    asyncraft.MembershipChange
		want error
	}{
		{"on a follower", f, asyncraft.RemoveMember(l), closure.ErrNotLeader},
		{"unchanged", l, asyncraft.SetConfiguration(before), asyncraft.ErrConfigurationUnchanged},
		{"remove a stranger", l, asyncraft.RemoveMember("n9"), asyncraft.ErrConfigurationUnchanged},
		{"no voters", l, asyncraft.SetConfiguration(asyncraft.Configuration{}), asyncraft.ErrInvalidConfiguration},
		{"stale guard", l, asyncraft.SetConfigurationIf(asyncraft.Configuration{Voters: before.Voters[:1]}, asyncraft.Configuration{Voters: before.Voters[:2]}), asyncraft.ErrConfigurationStale},
		{"remove a voter as a learner", l, asyncraft.RemoveLearner(f), asyncraft.ErrInvalidConfiguration},
		{"empty change", l, asyncraft.MembershipChange{}, asyncraft.ErrInvalidConfiguration},
	}
	for _, tc := range cases {
		r := changeNow(c, tc.on, tc.m)
		waitChange(t, c, r)
		if !errors.Is(r.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, r.err, tc.want)
		}
	}
	// Two at once: the second is refused while the first is under way.
	r1 := changeNow(c, l, asyncraft.RemoveMember(f))
	r2 := changeNow(c, l, asyncraft.AddLearner(asyncraft.Peer{ID: "n9", Addr: "n9"}))
	waitChange(t, c, r1)
	waitChange(t, c, r2)
	if r1.err != nil || !errors.Is(r2.err, asyncraft.ErrChangeInProgress) {
		t.Fatalf("two changes at once: %v and %v, want success then ErrChangeInProgress", r1.err, r2.err)
	}
	if got := voters(c.Node(l).Status().Configuration); len(got) != 2 {
		t.Fatalf("voters after the one change: %v", got)
	}
}

// New members join by install: a node started with the group's identity
// is added as a learner and catches up from a snapshot (the log was
// compacted past everything it lacks), is promoted to voter, and then a
// founding voter is replaced by another new node, which knows no member's
// address, in one joint change. Every member ends with the leader's
// configuration and state, and again after all of them restart.
func TestJoinPromoteReplace(t *testing.T) {
	c, l, sms := compactingGroupWith(t, func(o *asyncraft.NodeOptions) {
		o.SnapshotEntries, o.SnapshotTrailingEntries, o.MaxLogCacheBytes = 500, 10, 1<<10
	})
	commitAll(t, c, l, "a", 2000)
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Status().FirstIndex > 1 }, 10*time.Second) {
		t.Fatalf("the leader did not compact its log: %+v", c.Node(l).Status())
	}
	if err := c.Join("n4", c.IDs...); err != nil {
		t.Fatal(err)
	}
	if st := c.Node("n4").Status(); len(st.Configuration.Voters) != 0 || st.Role != asyncraft.Follower {
		t.Fatalf("a joining node before it is added: %v, configuration %v", st, st.Configuration)
	}
	mustChange(t, c, l, asyncraft.AddLearner(asyncraft.Peer{ID: "n4", Addr: "n4"}), "add learner n4")
	cur := l // the leader
	caughtUp := func(id string) bool {
		return c.Node(id).Status().Applied >= c.Node(cur).Status().Commit
	}
	if !c.Sim.RunUntil(func() bool { return caughtUp("n4") }, 20*time.Second) {
		t.Fatalf("n4 did not catch up: %s", c.Describe())
	}
	if n := c.Node("n4").Metrics().InstallsDone.Load(); n < 1 {
		t.Fatalf("n4 caught up with %d installs; the log was compacted, so it needed one: leader first %d snap %d, n4 first %d snap %d started %d", n, c.Node(l).Status().FirstIndex, c.Node(l).Status().SnapshotIndex, c.Node("n4").Status().FirstIndex, c.Node("n4").Status().SnapshotIndex, c.Node("n4").Metrics().InstallsStarted.Load())
	}
	mustChange(t, c, l, asyncraft.PromoteLearner("n4"), "promote n4")
	var old string
	for _, id := range c.IDs[:3] {
		if id != l {
			old = id
			break
		}
	}
	// n5 knows no member: it answers its leader at the address the
	// leader's requests give (and would drop them all otherwise).
	if err := c.Join("n5"); err != nil {
		t.Fatal(err)
	}
	mustChange(t, c, l, asyncraft.ReplaceVoter(old, asyncraft.Peer{ID: "n5", Addr: "n5"}), "replace %s by n5", old)
	commitAll(t, c, l, "b", 10)
	want := c.Node(l).Status()
	wantVoters := []string{}
	for _, id := range c.IDs {
		if id != old {
			wantVoters = append(wantVoters, id)
		}
	}
	if got := voters(want.Configuration); !slices.Equal(got, sorted(wantVoters)) {
		t.Fatalf("leader's voters %v, want %v", got, sorted(wantVoters))
	}
	for _, id := range wantVoters {
		if !c.Sim.RunUntil(func() bool { return caughtUp(id) }, 20*time.Second) {
			t.Fatalf("%s did not catch up: %s", id, c.Describe())
		}
		st := c.Node(id).Status()
		if st.Configuration.String() != want.Configuration.String() || st.ConfigurationIndex != want.ConfigurationIndex {
			t.Errorf("%s's configuration %v at %d, the leader's %v at %d", id, st.Configuration, st.ConfigurationIndex, want.Configuration, want.ConfigurationIndex)
		}
		if sms[id].sum != sms[l].sum {
			t.Errorf("%s's state %d, the leader's %d", id, sms[id].sum, sms[l].sum)
		}
	}
	// Restarted (each from the configuration in its snapshot and log,
	// which may be older than the leader's: a crash loses what was not
	// durable), the four elect a leader among themselves and all end with
	// the configuration they had. The replaced member, still running, is
	// not heard.
	for _, id := range wantVoters {
		c.Crash(id)
	}
	for _, id := range wantVoters {
		if err := c.Restart(id); err != nil {
			t.Fatalf("restart %s: %v", id, err)
		}
	}
	nl := waitLeaderAmong(t, c, wantVoters)
	cur = nl
	commitAll(t, c, nl, "c", 10)
	for _, id := range wantVoters {
		if !c.Sim.RunUntil(func() bool { return caughtUp(id) }, 20*time.Second) {
			t.Fatalf("%s did not catch up after the restart: %s", id, c.Describe())
		}
		st := c.Node(id).Status()
		if st.Configuration.String() != want.Configuration.String() || st.ConfigurationIndex != want.ConfigurationIndex {
			t.Errorf("%s after the restart: configuration %v at %d, want %v at %d", id, st.Configuration, st.ConfigurationIndex, want.Configuration, want.ConfigurationIndex)
		}
	}
	if st := c.Node(old).Status(); st.Role == asyncraft.Leader || st.Term > c.Node(nl).Status().Term {
		t.Fatalf("the replaced member %v disturbs the group (its leader %v)", st, c.Node(nl).Status())
	}
}

// waitLeaderAmong waits until ids all follow one of them, in one term,
// and returns it.
func waitLeaderAmong(t *testing.T, c *cluster.Cluster, ids []string) string {
	t.Helper()
	var leader string
	if !c.Sim.RunUntil(func() bool {
		leader = ""
		var term uint64
		for _, id := range ids {
			st := c.Node(id).Status()
			if st.Role == asyncraft.Leader {
				leader = id
			}
			if st.Leader == "" || (term != 0 && st.Term != term) {
				return false
			}
			term = st.Term
		}
		if leader == "" {
			return false
		}
		for _, id := range ids {
			if c.Node(id).Status().Leader != leader {
				return false
			}
		}
		return true
	}, 20*time.Second) {
		t.Fatalf("no leader among %v: %s", ids, c.Describe())
	}
	return leader
}

// A node votes whatever its own configuration says of it: it may be a
// voter of a candidate's newer configuration it has not received. Here a
// removed member, back as a learner, is made a voter by a joint change it
// never hears of (cut off): no quorum of the joint configuration can form
// without it, the
// leader steps down, and once the cut heals the others can only be
// elected with its vote — which a node that voted only as a voter of its
// own configuration would never give. (Found by the simulator's
// membership nemesis, seed 157 of -nemesis partition,crash,restart,membership.)
func TestVoterOutsideItsOwnConfiguration(t *testing.T) {
	c, l, f1, f2 := threeNodes(t, 5)
	mustChange(t, c, l, asyncraft.RemoveMember(l), "remove %s", l)
	rest := []string{f1, f2}
	l2 := waitLeaderAmong(t, c, rest)
	other := rest[0]
	if other == l2 {
		other = rest[1]
	}
	commitAll(t, c, l2, "b", 5)
	// Back as a learner, caught up, so that the change below goes
	// joint at once (a new voter that has not caught up would wait).
	mustChange(t, c, l2, asyncraft.AddLearner(asyncraft.Peer{ID: l, Addr: l}), "add %s back as a learner", l)
	if !c.Sim.RunUntil(func() bool {
		st := c.Node(l2).Status()
		return slices.ContainsFunc(st.Peers, func(p asyncraft.PeerStatus) bool { return p.Peer == l && p.Match >= st.Commit })
	}, 10*time.Second) {
		t.Fatalf("the leader does not see %s caught up as a learner: %v", l, c.Node(l2).Status().Peers)
	}
	c.Sim.Isolate(l)
	r := changeNow(c, l2, asyncraft.ReplaceVoter(l2, asyncraft.Peer{ID: l, Addr: l}))
	waitChange(t, c, r)
	if r.err == nil {
		t.Fatalf("the joint change completed without %s, whose vote and acks its new half needs", l)
	}
	if !strings.Contains(r.err.Error(), "stopped leading") {
		t.Fatalf("the change failed with %v, want the leader to step down (the joint configuration has no quorum without %s)", r.err, l)
	}
	if st := c.Node(l).Status(); st.Configuration.Joint() || slices.Contains(voters(st.Configuration), l) {
		t.Fatalf("%s heard of the change while cut off: %v", l, st.Configuration)
	}
	c.Sim.Heal()
	nl := waitLeaderAmong(t, c, []string{l, other})
	if !c.Sim.RunUntil(func() bool {
		st := c.Node(nl).Status()
		return !st.Configuration.Joint() && st.Commit >= st.ConfigurationIndex
	}, 20*time.Second) {
		t.Fatalf("the joint configuration was not left: %v", c.Node(nl).Status().Configuration)
	}
	if got := voters(c.Node(nl).Status().Configuration); !slices.Equal(got, sorted([]string{l, other})) {
		t.Fatalf("voters %v, want %s and %s", got, l, other)
	}
	commitAll(t, c, nl, "c", 5)
}

// A node answers a candidate its configuration does not list when the
// candidate's log is ahead of its own: the candidate may be a voter of a
// configuration this node has not received. Here a founding member is
// cut off while two new voters are added; then the two other founders
// crash, and the three left (a quorum of the five) can only elect one of
// the new voters — with the vote of the member that does not know them.
func TestVoteForCandidateOutsideOwnConfiguration(t *testing.T) {
	c, l, f, other := threeNodes(t, 5)
	c.Sim.Isolate(f)
	founders := slices.Clone(c.IDs)
	for _, id := range []string{"n4", "n5"} {
		if err := c.Join(id, founders...); err != nil {
			t.Fatal(err)
		}
		r := changeNow(c, l, asyncraft.AddVoter(asyncraft.Peer{ID: id, Addr: id}))
		waitChange(t, c, r)
		if r.err != nil {
			t.Fatalf("add %s: %v", id, r.err)
		}
	}
	commitAll(t, c, l, "b", 5)
	if got := voters(c.Node(f).Status().Configuration); slices.Contains(got, "n4") {
		t.Fatalf("%s heard of n4 while cut off: %v", f, got)
	}
	c.Crash(l)
	c.Crash(other)
	c.Sim.Heal()
	nl := waitLeaderAmong(t, c, []string{f, "n4", "n5"})
	if nl == f {
		t.Fatalf("%s, whose log is behind, was elected", f)
	}
	commitAll(t, c, nl, "c", 5)
	if got := voters(c.Node(f).Status().Configuration); len(got) != 5 {
		t.Fatalf("%s's voters after the election: %v, want all five", f, got)
	}
}

// configTrail runs the simulation until r is answered, recording every
// distinct configuration node id shows meanwhile (polled each
// millisecond of virtual time).
func configTrail(t *testing.T, c *cluster.Cluster, id string, r *changeResult) []asyncraft.Configuration {
	t.Helper()
	var trail []asyncraft.Configuration
	deadline := c.Sim.Now() + 60*time.Second
	for !r.done {
		if c.Sim.Now() > deadline {
			t.Fatalf("the change was not answered: %s", c.Describe())
		}
		cfg := c.Node(id).Status().Configuration
		if len(trail) == 0 || trail[len(trail)-1].String() != cfg.String() {
			trail = append(trail, cfg)
		}
		c.Sim.RunFor(time.Millisecond)
	}
	return trail
}

// A new voter catches up as a learner first: AddVoter on a node that joined
// shows it as a learner (while it is installed the compacted log) before
// the joint change makes it a voter; writes commit meanwhile without it.
// Without the stage the first configuration would name it a voter at once.
func TestNewVoterCatchesUpFirst(t *testing.T) {
	c, l, _ := compactingGroupWith(t, func(o *asyncraft.NodeOptions) {
		o.SnapshotEntries, o.SnapshotTrailingEntries, o.MaxLogCacheBytes = 500, 10, 1<<10
	})
	commitAll(t, c, l, "a", 2000)
	if err := c.Join("n4", c.IDs...); err != nil {
		t.Fatal(err)
	}
	o := cluster.NewOutcomes()
	r := changeNow(c, l, asyncraft.AddVoter(asyncraft.Peer{ID: "n4", Addr: "n4"}))
	c.Load(l, "b", 50, 2, o) // writes while it catches up
	trail := configTrail(t, c, l, r)
	if r.err != nil {
		t.Fatalf("add voter n4: %v", r.err)
	}
	isLearner := func(cfg asyncraft.Configuration) bool {
		return slices.ContainsFunc(cfg.Learners, func(p asyncraft.Peer) bool { return p.ID == "n4" }) &&
			!slices.Contains(voters(cfg), "n4") && !cfg.Joint()
	}
	if len(trail) < 3 || !isLearner(trail[1]) || !trail[2].Joint() || !slices.Contains(voters(trail[len(trail)-1]), "n4") {
		t.Fatalf("configurations on the leader: %v; want n4 a learner, then joint, then a voter", trail)
	}
	if n := c.Node("n4").Metrics().InstallsDone.Load(); n < 1 {
		t.Fatalf("n4 caught up with %d installs", n)
	}
	if !c.Sim.RunUntil(func() bool { return o.Completed() == 50 }, 20*time.Second) || o.ByCode[closure.OK] != 50 {
		t.Fatalf("writes during the catch-up: %v", o.ByCode)
	}
}

// A new voter that cannot catch up (cut off) fails the change with
// ETIMEDOUT after CatchUpTimeout; it stays a learner, the voters are
// unchanged and the group writes on. Then a learner marked for promotion
// (AddLearnerToPromote) becomes a voter by itself once it has caught up.
func TestCatchUpTimeoutAndAutoPromotion(t *testing.T) {
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		o.CatchUpTimeout = 3 * time.Second
	}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "a", 20)
	founders := slices.Clone(c.IDs)
	if err := c.Join("n4", founders...); err != nil {
		t.Fatal(err)
	}
	c.Sim.Isolate("n4")
	start := c.Sim.Now()
	r := changeNow(c, l, asyncraft.AddVoter(asyncraft.Peer{ID: "n4", Addr: "n4"}))
	waitChange(t, c, r)
	if closure.StatusOf(r.err).Code != closure.ETIMEDOUT {
		t.Fatalf("add a cut-off voter: %v, want ETIMEDOUT", r.err)
	}
	if d := c.Sim.Now() - start; d < 3*time.Second-10*time.Millisecond || d > 4*time.Second { // counted in 10 ms ticks
		t.Errorf("the change failed after %v; CatchUpTimeout is 3s", d)
	}
	cfg := c.Node(l).Status().Configuration
	if slices.Contains(voters(cfg), "n4") || !slices.ContainsFunc(cfg.Learners, func(p asyncraft.Peer) bool { return p.ID == "n4" }) {
		t.Fatalf("after the failed change: %v, want n4 a learner and not a voter", cfg)
	}
	commitAll(t, c, l, "b", 10)

	// Auto-promotion: mark it (remove, then add it back marked) and heal.
	mustChange(t, c, l, asyncraft.RemoveLearner("n4"), "remove learner n4")
	mustChange(t, c, l, asyncraft.AddLearnerToPromote(asyncraft.Peer{ID: "n4", Addr: "n4"}), "add n4 to promote")
	if got := c.Node(l).Status().Configuration.Promoting; !slices.Equal(got, []string{"n4"}) {
		t.Fatalf("Promoting %v, want [n4]", got)
	}
	c.Sim.Heal()
	if !c.Sim.RunUntil(func() bool {
		cfg := c.Node(l).Status().Configuration
		return slices.Contains(voters(cfg), "n4") && !cfg.Joint() && len(cfg.Promoting) == 0
	}, 20*time.Second) {
		t.Fatalf("n4 was not promoted: %v", c.Node(l).Status().Configuration)
	}
	commitAll(t, c, l, "c", 10)
}

// A learner serves linearizable reads through the follower path: its
// ReadIndex batch goes to the leader, which confirms its leadership with
// the voters, and the learner answers once it has applied the index —
// which covers every write acknowledged before the read began.
func TestLearnerReads(t *testing.T) {
	c, l, _, _ := threeNodes(t, 5)
	founders := slices.Clone(c.IDs)
	if err := c.Join("n4", founders...); err != nil {
		t.Fatal(err)
	}
	mustChange(t, c, l, asyncraft.AddLearner(asyncraft.Peer{ID: "n4", Addr: "n4"}), "add learner n4")
	for _, mode := range []asyncraft.ReadMode{asyncraft.ReadSafe, asyncraft.ReadLease} {
		commitAll(t, c, l, "w", 10)
		acked := c.Node(l).Status().Commit
		var st closure.Status
		var index uint64
		done := false
		c.Node("n4").Read(asyncraft.ReadRequest{Mode: mode, Done: func(s closure.Status, i uint64, _ []byte) { st, index, done = s, i, true }})
		if !c.Sim.RunUntil(func() bool { return done }, 10*time.Second) {
			t.Fatalf("mode %v: the learner's read was not answered", mode)
		}
		if !st.OK() || index < acked || c.Node("n4").Status().Applied < index {
			t.Fatalf("mode %v: the learner's read: %v at %d, applied %d; want OK at %d or later, applied", mode, st, index, c.Node("n4").Status().Applied, acked)
		}
	}
}

// addVoterOnSlowNet joins n4, slows the network to bandwidth bytes/s,
// adds n4 as a voter on leader l, fails unless the change succeeds, and
// returns how long it took.
func addVoterOnSlowNet(t *testing.T, c *cluster.Cluster, l string, bandwidth int64) time.Duration {
	t.Helper()
	if err := c.Join("n4", slices.Clone(c.IDs)...); err != nil {
		t.Fatal(err)
	}
	net := c.Sim.Net()
	net.Bandwidth = bandwidth
	c.Sim.SetNet(net)
	start := c.Sim.Now()
	r := changeNow(c, l, asyncraft.AddVoter(asyncraft.Peer{ID: "n4", Addr: "n4"}))
	if !c.Sim.RunUntil(func() bool { return r.done }, 60*time.Second) {
		t.Fatalf("the change was not answered: %s", c.Describe())
	}
	if r.err != nil {
		t.Fatalf("add n4 as a voter at %d bytes/s: %v", bandwidth, r.err)
	}
	return c.Sim.Now() - start
}

// A new voter that catches up slowly — here a network of 40 kB/s — but
// steadily is not timed out: CatchUpTimeout bounds the time without
// progress, not the whole catch-up (an install of a large state takes
// as long as it takes).
func TestSlowCatchUpIsNotTimedOut(t *testing.T) {
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
		o.CatchUpTimeout = time.Second
		o.CatchUpLag = 10
		// Appends of 4 KiB, one at a time: on a 40 kB/s link each
		// arrives within the replicator's resend timeout (two heartbeats).
		o.MaxBytesPerRPC, o.MaxInflightMsgs = 4<<10, 1
	}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "a", 10000)
	if d := addVoterOnSlowNet(t, c, l, 40_000); d < 2*time.Second {
		t.Fatalf("the catch-up took %v: too fast to show anything (CatchUpTimeout is 1s)", d)
	}
	if !slices.Contains(voters(c.Node(l).Status().Configuration), "n4") {
		t.Fatalf("n4 is not a voter: %v", c.Node(l).Status().Configuration)
	}
}

// A node that joined and is being installed its first snapshot has no
// configuration yet, so none that lists its leader; a linearizable read
// on it still gets the leader's answer (it used to be dropped as coming
// from a non-member, and the read timed out) and completes once the
// install is applied. The install is held back (its chunks dropped) while
// the read goes to the leader and back.
func TestReadOnJoiningNodeDuringInstall(t *testing.T) {
	var holdChunks atomic.Bool
	c := cluster.New(cluster.Options{Seed: testseed.For(t),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.SnapshotEntries, o.SnapshotTrailingEntries, o.MaxLogCacheBytes = 500, 10, 1<<10
			o.ReadTimeout = 20 * time.Second // the read waits for the install, however it retries
		},
		HostOptions:     func(_ string, o *asyncraft.HostOptions) { o.WALSegmentSize = 4 << 10 },
		NewStateMachine: func(id string, _ int) fsm.StateMachine { return &summer{sumAt: map[uint64]uint64{}} },
		Tamper: func(from, to actors.Ref, msg proto.Message) proto.Message {
			if e, ok := msg.(*raftpb.Envelope); ok && e.GetSnapshotChunk() != nil && holdChunks.Load() {
				e = proto.Clone(e).(*raftpb.Envelope)
				e.To = "nobody"
				return e
			}
			return msg
		}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "a", 1500)
	if err := c.Join("n4", slices.Clone(c.IDs)...); err != nil {
		t.Fatal(err)
	}
	holdChunks.Store(true)
	r := changeNow(c, l, asyncraft.AddLearner(asyncraft.Peer{ID: "n4", Addr: "n4"}))
	n4 := c.Node("n4")
	if !c.Sim.RunUntil(func() bool {
		st := n4.Status()
		return st.Leader == l && n4.Metrics().InstallsStarted.Load() > 0 && len(st.Configuration.Voters) == 0
	}, 10*time.Second) {
		t.Fatalf("n4 did not start an install knowing its leader and no configuration: %v", n4.Status())
	}
	acked := c.Node(l).Status().Commit
	var st closure.Status
	var index uint64
	done := false
	n4.Read(asyncraft.ReadRequest{Mode: asyncraft.ReadSafe, Done: func(s closure.Status, i uint64, _ []byte) { st, index, done = s, i, true }})
	c.Sim.RunFor(200 * time.Millisecond) // the read's round trip, the install held
	if len(n4.Status().Configuration.Voters) != 0 {
		t.Fatalf("n4 has a configuration before its install: the test shows nothing")
	}
	holdChunks.Store(false)
	if !c.Sim.RunUntil(func() bool { return done }, 30*time.Second) {
		t.Fatalf("the read on the joining node was not answered")
	}
	if !st.OK() || index < acked {
		t.Fatalf("the read on the joining node: %v at %d, want OK at %d or later", st, index, acked)
	}
	waitChange(t, c, r)
}

// A new voter whose catch-up is one long install — a 3 MiB snapshot on a
// 500 kB/s network, over six seconds, while CatchUpTimeout is one — is not
// timed out: an install under way is progress, though the voter
// acknowledges no entry until it ends.
func TestLongInstallIsNotTimedOut(t *testing.T) {
	c := cluster.New(cluster.Options{Seed: testseed.For(t),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.SnapshotTrailingEntries, o.MaxLogCacheBytes = 10, 1<<10
			o.CatchUpTimeout, o.CatchUpLag = time.Second, 10
		},
		HostOptions: func(_ string, o *asyncraft.HostOptions) { o.WALSegmentSize = 4 << 10 },
		NewStateMachine: func(id string, _ int) fsm.StateMachine {
			return &paddedSummer{summer{sumAt: map[uint64]uint64{}}}
		}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b"} { // the log keeps back to the snapshot before the newest
		commitAll(t, c, l, p, 1500)
		waitSnapshot(t, c, snapshotNow(t, c, l))
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Status().FirstIndex > 1 }, 10*time.Second) {
		t.Fatalf("the leader's log was not compacted: %v", c.Node(l).Status())
	}
	d := addVoterOnSlowNet(t, c, l, 500_000)
	if n := c.Node("n4").Metrics().InstallsDone.Load(); n == 0 {
		t.Fatalf("n4 caught up without an install: the test shows nothing")
	}
	if d < 3*time.Second {
		t.Fatalf("the change took %v: too fast to show anything (CatchUpTimeout is 1s)", d)
	}
}
