package asyncraft_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// overridable starts a simulated group whose nodes' options a test may
// change before a (re)start by setting *mod.
func overridable(t *testing.T, opts cluster.Options) (*cluster.Cluster, *func(o *asyncraft.NodeOptions)) {
	t.Helper()
	mod := new(func(o *asyncraft.NodeOptions))
	inner := opts.Node
	opts.Seed = testseed.For(t)
	opts.Node = func(o *asyncraft.NodeOptions, h *sim.Host) {
		if inner != nil {
			inner(o, h)
		}
		if *mod != nil {
			(*mod)(o)
		}
	}
	return cluster.New(opts), mod
}

func followerOf(c *cluster.Cluster, leader string) string {
	for _, id := range c.IDs {
		if id != leader {
			return id
		}
	}
	return ""
}

// restartRefused restarts id, expects StartNode to fail with
// ErrBootstrapMismatch, and leaves id down (its host crashed again, which
// releases the data directory's lock).
func restartRefused(t *testing.T, c *cluster.Cluster, id string, want ...string) {
	t.Helper()
	err := c.Restart(id)
	c.Crash(id)
	if !errors.Is(err, asyncraft.ErrBootstrapMismatch) {
		t.Fatalf("restart of %s: err %v, want ErrBootstrapMismatch", id, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("restart of %s: error %q does not mention %q", id, err, w)
		}
	}
	t.Logf("refused: %v", err)
}

// TestRestartWithOtherPeersRefused: a follower restarted with Peers naming
// only itself would be a group of one, elect itself and acknowledge writes
// alone (then, restarted with the right list, win an election with its
// higher last term and overwrite what the group committed). Its data
// remembers the voters it was bootstrapped with, so the start is refused,
// naming both lists; restarted with the right list it catches up.
func TestRestartWithOtherPeersRefused(t *testing.T) {
	c, mod := overridable(t, cluster.Options{})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 100)
	f := followerOf(c, l)
	c.Crash(f)
	*mod = func(o *asyncraft.NodeOptions) {
		if o.ID == f {
			o.Peers = []asyncraft.Peer{{ID: f, Addr: f}}
		}
	}
	restartRefused(t, c, f, "voters were [n1 n2 n3], not ["+f+"]", "cluster \"\" node g/"+f)
	// A different list with as many voters is refused too: ids count.
	*mod = func(o *asyncraft.NodeOptions) {
		if o.ID == f {
			o.Peers = []asyncraft.Peer{{ID: f, Addr: f}, {ID: l, Addr: l}, {ID: "n9", Addr: "n9"}}
		}
	}
	restartRefused(t, c, f, "n9")
	// Addresses are not part of the identity.
	*mod = func(o *asyncraft.NodeOptions) {
		if o.ID == f {
			o.Peers = append([]asyncraft.Peer(nil), o.Peers...)
			for i := range o.Peers {
				if o.Peers[i].ID != f {
					o.Peers[i].Addr = "proxy-of-" + o.Peers[i].ID
				}
			}
		}
	}
	if err := c.Restart(f); err != nil {
		t.Fatalf("restart with other addresses: %v", err)
	}
	c.Crash(f)
	*mod = nil
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "b", 100)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	noPanics(t, c)
}

// TestDataOfAnotherClusterOrNodeRefused: a node restarted on data
// bootstrapped for another cluster id, or on a copy of another node's data
// directory, is refused.
func TestDataOfAnotherClusterOrNodeRefused(t *testing.T) {
	c, mod := overridable(t, cluster.Options{Node: func(o *asyncraft.NodeOptions, _ *sim.Host) { o.ClusterID = "blue" }})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 50)
	f := followerOf(c, l)
	c.Crash(f)
	*mod = func(o *asyncraft.NodeOptions) {
		if o.ID == f {
			o.ClusterID = "green"
		}
	}
	restartRefused(t, c, f, `belongs to cluster "blue", not "green"`)
	*mod = nil
	// Replace f's data with a copy of the leader's.
	src, dst := c.Sim.Host(l).Disk(), c.Sim.Host(f).Disk()
	for _, p := range dst.Paths() {
		if strings.HasPrefix(p, "/data/g/"+f+"/") {
			if err := dst.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range src.Paths() {
		if rest, ok := strings.CutPrefix(p, "/data/g/"+l+"/"); ok {
			b, err := src.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := dst.WriteFile("/data/g/"+f+"/"+rest, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst.SyncAll()
	restartRefused(t, c, f, "belongs to node g/"+l+", not g/"+f)
	noPanics(t, c)
}

// TestDataWithoutBootstrapRecordAdopted: data written before the record
// existed (a hard state without it) starts, with a warning, and records
// the configuration of that start: a later start with other peers is
// refused.
func TestDataWithoutBootstrapRecordAdopted(t *testing.T) {
	var logs bytes.Buffer
	c, mod := overridable(t, cluster.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 10) // the follower's term is durable once it acknowledged entries
	f := followerOf(c, l)
	c.Crash(f)
	disk := c.Sim.Host(f).Disk()
	meta, err := logmgr.OpenFileMeta(disk, "/data/g/"+f)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := meta.Load()
	if err != nil || hs.Bootstrap == nil || hs.Term == 0 {
		t.Fatalf("stored hard state %v (%v): want a term and a bootstrap record", hs, err)
	}
	if err := meta.Save(&raftpb.HardState{Term: hs.Term, Vote: hs.Vote}); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(f); err != nil {
		t.Fatalf("restart on data without a record: %v", err)
	}
	if !strings.Contains(logs.String(), "no bootstrap record") {
		t.Fatalf("no warning about the missing record:\n%s", logs.String())
	}
	c.Crash(f)
	*mod = func(o *asyncraft.NodeOptions) {
		if o.ID == f {
			o.Peers = []asyncraft.Peer{{ID: f, Addr: f}}
		}
	}
	restartRefused(t, c, f, "voters were [n1 n2 n3]")
	noPanics(t, c)
}

// TestIncarnationStoredWithTheData: a node's bootstrap record holds the
// incarnation drawn at its data's first start, kept across restarts; a
// record of an earlier version, without one, gets one at the next start.
// A node keeps the incarnations of the voters it heard from in its hard
// state.
func TestIncarnationStoredWithTheData(t *testing.T) {
	c, _ := overridable(t, cluster.Options{})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 10)
	f := followerOf(c, l)
	load := func(id string) *raftpb.HardState {
		t.Helper()
		meta, err := logmgr.OpenFileMeta(c.Sim.Host(id).Disk(), "/data/g/"+id)
		if err != nil {
			t.Fatal(err)
		}
		hs, err := meta.Load()
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	c.Crash(f)
	hs := load(f)
	first := hs.GetBootstrap().GetIncarnation()
	if first == 0 {
		t.Fatalf("%s's bootstrap record has no incarnation: %v", f, hs)
	}
	heard := map[string]uint64{}
	for _, p := range hs.Peers {
		heard[p.Id] = p.Incarnation
	}
	if heard[l] == 0 {
		t.Errorf("%s's hard state does not keep its leader %s's incarnation: %v", f, l, hs.Peers)
	}
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	c.Crash(f)
	if got := load(f).GetBootstrap().GetIncarnation(); got != first {
		t.Fatalf("the incarnation changed across a restart: %016x, then %016x", first, got)
	}

	// A record of an earlier version: no incarnation.
	hs = load(f)
	hs.Bootstrap.Incarnation = 0
	meta, err := logmgr.OpenFileMeta(c.Sim.Host(f).Disk(), "/data/g/"+f)
	if err != nil {
		t.Fatal(err)
	}
	if err := meta.Save(hs); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(f); err != nil {
		t.Fatalf("restart on a record without an incarnation: %v", err)
	}
	c.Crash(f)
	if got := load(f).GetBootstrap().GetIncarnation(); got == 0 || got == first {
		t.Fatalf("after a start on a record without one, the incarnation is %016x (was %016x): want a new one", got, first)
	}
	noPanics(t, c)
}
