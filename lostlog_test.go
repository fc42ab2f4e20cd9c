package asyncraft_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
)

// wipe removes the files of node id's data directory on its (crashed)
// host's disk whose names satisfy match, durably.
func wipe(t *testing.T, c *cluster.Cluster, id string, match func(name string) bool) int {
	t.Helper()
	disk := c.Sim.Host(id).Disk()
	n := 0
	for _, p := range disk.Paths() {
		if name, ok := strings.CutPrefix(p, "/data/g/"+id+"/"); ok && match(name) {
			if err := disk.Remove(p); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	disk.SyncAll()
	if n == 0 {
		t.Fatalf("nothing to wipe in %s's data directory: %v", id, disk.Paths())
	}
	return n
}

// TestWipedFollowerCatchesUp: a follower whose data directory was wiped
// (restarted with RejoinTerm) (or only its log, the repair of a corrupt log that keeps the term and
// vote) restarts at index 0, under the same leader, which had recorded a
// match for it. The leader must notice that the follower holds less than
// it acknowledged — from the last index in its heartbeat replies, with no
// write to provoke a rejection — report it (a metric, Status, a log line
// naming the peer) and send it the log again, within a few heartbeats. It
// used to keep the match, probe at match+1 and be refused there forever.
func TestWipedFollowerCatchesUp(t *testing.T) {
	for _, c := range []struct {
		name string
		wipe func(name string) bool
	}{
		{"data directory", func(string) bool { return true }},
		{"log only", func(name string) bool { return strings.HasSuffix(name, ".wal") }},
	} {
		t.Run(c.name, func(t *testing.T) { testWipedFollowerCatchesUp(t, c.wipe) })
	}
}

func testWipedFollowerCatchesUp(t *testing.T, wiped func(string) bool) {
	var logs bytes.Buffer
	c := cluster.New(cluster.Options{Seed: testseed.For(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 300)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	leader := c.Node(l)
	term, commit := leader.Status().Term, leader.Status().Commit
	f := followerOf(c, l)
	if wiped("meta") {
		// The whole data directory: without RejoinTerm the node would be
		// refused as a voter back on wiped data (TestWipedVoter).
		c.Wipe(f, term)
	} else {
		c.Crash(f)
		wipe(t, c, f, wiped)
	}
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	if last := c.Node(f).Status().LastIndex; last != 0 {
		t.Fatalf("%s restarted with last index %d, want 0", f, last)
	}
	// The leader reports the loss while the follower catches up.
	var seen error
	start := c.Sim.Now()
	caughtUp := c.Sim.RunUntil(func() bool {
		if err := leader.Status().PeerLogLoss; err != nil && seen == nil {
			seen = err
		}
		return c.Node(f).Status().Applied >= commit
	}, 10*time.Second)
	if !caughtUp {
		t.Fatalf("%s did not catch up to %d within 10s:%s", f, commit, c.Describe())
	}
	took := c.Sim.Now() - start
	t.Logf("%s caught up %v after its restart", f, took)
	if took > 3*time.Second { // the restart's quiet period, then a few heartbeats
		t.Fatalf("%s took %v to catch up", f, took)
	}
	if s := leader.Status(); s.Role != asyncraft.Leader || s.Term != term {
		t.Fatalf("leadership changed: %v (was %s in term %d)", s, l, term)
	}
	if got := leader.Metrics().PeerLogLosses.Load(); got != 1 {
		t.Fatalf("PeerLogLosses %d, want 1", got)
	}
	if seen == nil || !errors.Is(seen, asyncraft.ErrPeerLogLost) || !strings.Contains(seen.Error(), f) {
		t.Fatalf("Status.PeerLogLoss while catching up: %v; want one naming %s", seen, f)
	}
	t.Logf("status while catching up: %v", seen)
	if !c.Sim.RunUntil(func() bool { return leader.Status().PeerLogLoss == nil }, time.Second) {
		t.Fatalf("Status.PeerLogLoss not cleared once %s caught up: %v", f, leader.Status().PeerLogLoss)
	}
	lines := logLines(&logs, "lost entries it had acknowledged", "peer="+f)
	if len(lines) != 1 {
		t.Fatalf("%d log lines about the loss, want 1:\n%s", len(lines), logs.String())
	}
	t.Logf("logged: %s", lines[0])
	runLoad(t, c, l, "b", 100)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	noPanics(t, c)
}
