package asyncraft_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
)

// The recovery from the loss of a majority: two of three members are gone
// for good; the survivor, stopped, is reset to a configuration of itself
// alone, elects itself on its restart, keeps what it had applied, commits
// again, and the group grows back with a new node added by catch-up.
// Refusals: the node not among the voters, no voters, no data.
func TestResetPeersAfterMajorityLoss(t *testing.T) {
	c := cluster.New(cluster.Options{Seed: testseed.For(t)})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	commitAll(t, c, l, "a", 20)
	survivor := l
	applied := c.Node(survivor).Status().Applied
	for _, id := range c.IDs {
		c.Crash(id)
	}
	disk := c.Sim.Host(survivor).Disk()
	me := asyncraft.Peer{ID: survivor, Addr: survivor}
	for _, tc := range []struct {
		name   string
		dir    string
		voters []asyncraft.Peer
	}{
		{"not among the voters", "/data", []asyncraft.Peer{{ID: "n9", Addr: "n9"}}},
		{"no voters", "/data", nil},
		{"no data", "/nowhere", []asyncraft.Peer{me}},
	} {
		if _, err := asyncraft.ResetPeers(disk, tc.dir, "g", survivor, tc.voters); err == nil {
			t.Errorf("%s: reset accepted", tc.name)
		}
	}
	if _, err := asyncraft.ResetPeers(disk, "/data", "g", survivor, nil); !errors.Is(err, asyncraft.ErrInvalidConfiguration) {
		t.Errorf("no voters: %v, want ErrInvalidConfiguration", err)
	}
	index, err := asyncraft.ResetPeers(disk, "/data", "g", survivor, []asyncraft.Peer{me})
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	if err := c.Restart(survivor); err != nil {
		t.Fatal(err)
	}
	if st := c.Node(survivor).Status(); !slices.Equal(voters(st.Configuration), []string{survivor}) || st.ConfigurationIndex != index {
		t.Fatalf("restarted with %v at %d, want itself alone at %d", st.Configuration, st.ConfigurationIndex, index)
	}
	nl := waitLeaderAmong(t, c, []string{survivor})
	commitAll(t, c, nl, "b", 10)
	if st := c.Node(survivor).Status(); st.Applied < applied+10 || st.Commit < index {
		t.Fatalf("after the reset: applied %d, commit %d; want past %d and %d", st.Applied, st.Commit, applied, index)
	}
	if err := c.Join("n4", survivor); err != nil {
		t.Fatal(err)
	}
	r := changeNow(c, survivor, asyncraft.AddVoter(asyncraft.Peer{ID: "n4", Addr: "n4"}))
	waitChange(t, c, r)
	if r.err != nil {
		t.Fatalf("grow back with n4: %v", r.err)
	}
	commitAll(t, c, survivor, "c", 10)
	if got := voters(c.Node("n4").Status().Configuration); !slices.Equal(got, sorted([]string{survivor, "n4"})) {
		t.Fatalf("n4's voters %v", got)
	}
}
