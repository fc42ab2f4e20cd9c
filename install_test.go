package asyncraft_test

import (
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/vfs"
)

// A follower cut off while the leader compacts its log past what the
// follower holds catches up by a snapshot install: it loads the leader's
// snapshot, its log restarts after it, and it agrees with the others.
func TestInstallSnapshotToALaggingFollower(t *testing.T) {
	c, l, sms := compactingGroup(t, 50)
	runLoad(t, c, l, "a", 300)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	f := c.Up()[0]
	if f == l {
		f = c.Up()[1]
	}
	lagged := c.Node(f).Status().LastIndex
	c.Sim.Isolate(f)
	for i, p := range []string{"b", "c"} {
		runLoad(t, c, l, p, 2000)
		r := snapshotNow(t, c, l)
		waitSnapshot(t, c, r)
		if r.err != nil {
			t.Fatalf("snapshot %d on the leader: %v", i, r.err)
		}
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Status().FirstIndex > lagged+1 }, 5*time.Second) {
		t.Fatalf("the leader's log starts at %d: not compacted past the follower's last index %d", c.Node(l).Status().FirstIndex, lagged)
	}
	c.Sim.Heal()
	// Status shows the install while it runs: the leader's view of the
	// follower, and the follower's progress.
	var sawPeer, sawProgress bool
	c.Sim.RunUntil(func() bool {
		for _, p := range c.Node(l).Status().Peers {
			if p.Peer == f && p.State == "snapshot" {
				sawPeer = true
			}
		}
		if p := c.Node(f).Status().Installing; p != nil && p.Leader == l && p.Total > 0 {
			sawProgress = true
		}
		return c.Node(f).Metrics().InstallsDone.Load() > 0
	}, 20*time.Second)
	if !sawPeer || !sawProgress {
		t.Fatalf("during the install: the leader showed the peer in snapshot state: %v; the follower showed its progress: %v", sawPeer, sawProgress)
	}
	commit := c.Node(l).Status().Commit
	waitApplied(t, c, commit, 20*time.Second)
	// The leader counts the install once the follower has answered.
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Metrics().SnapshotsSent.Load() > 0 }, 5*time.Second) {
		t.Fatalf("the leader reports no install")
	}
	if n := c.Node(f).Metrics().InstallsDone.Load(); n != 1 {
		t.Fatalf("%s installed %d snapshots, want 1 (started %d, fetches %d, leader chunks %d, first %d, %s first %d)", f, n, c.Node(f).Metrics().InstallsStarted.Load(), c.Node(f).SnapshotStats().Fetches.Load(), c.Node(l).SnapshotStats().ChunksSent.Load(), c.Node(l).Status().FirstIndex, f, c.Node(f).Status().FirstIndex)
	}
	if n := c.Node(l).Metrics().SnapshotsSent.Load(); n != 1 {
		t.Fatalf("leader %s reports %d installs, want 1", l, n)
	}
	if sms[f].loads != 1 {
		t.Fatalf("%s loaded %d snapshots, want 1", f, sms[f].loads)
	}
	if st := c.Node(f).Status(); st.FirstIndex <= lagged+1 || st.SnapshotIndex == 0 {
		t.Fatalf("%s after the install: first index %d, snapshot %d", f, st.FirstIndex, st.SnapshotIndex)
	}
	runLoad(t, c, l, "d", 200)
	last := c.Node(l).Status().Commit
	waitApplied(t, c, last, 10*time.Second)
	for _, id := range c.Up() {
		if sms[id].sumAt[last] != sms[l].sumAt[last] {
			t.Fatalf("at %d %s sums %d, the leader %d", last, id, sms[id].sumAt[last], sms[l].sumAt[last])
		}
	}
}

// A member whose data directory is wiped rejoins under its old id with
// RejoinTerm: it starts in that term as if it had voted there, catches up
// by a snapshot install, and agrees with the others. Without RejoinTerm
// the host would take it for a first start; with it on a node that still
// has data, StartNode refuses.
func TestRejoinAfterWipe(t *testing.T) {
	var rejoin uint64
	c, l, sms := compactingGroupWith(t, func(o *asyncraft.NodeOptions) {
		o.SnapshotTrailingEntries = 50
		o.RejoinTerm = rejoin
	})
	runLoad(t, c, l, "a", 1000)
	waitSnapshot(t, c, snapshotNow(t, c, l))
	runLoad(t, c, l, "b", 1000)
	waitSnapshot(t, c, snapshotNow(t, c, l))
	w := c.Up()[0]
	if w == l {
		w = c.Up()[1]
	}
	c.Crash(w)
	removeAll(t, c.Sim.Host(w).Disk(), "/data/g/"+w)

	// The procedure: every other member holds what is committed, and the
	// highest term among them is the rejoin term.
	st := c.Node(l).Status()
	for _, p := range st.Peers {
		if p.Peer != w && p.Match < st.Commit {
			t.Fatalf("%s matches %d of %d committed", p.Peer, p.Match, st.Commit)
		}
	}
	for _, id := range c.Up() {
		rejoin = max(rejoin, c.Node(id).Status().Term)
	}
	if err := c.Restart(w); err != nil {
		t.Fatal(err)
	}
	c.Sim.RunFor(time.Millisecond)
	if got := c.Node(w).Status(); got.Term != rejoin {
		t.Fatalf("rejoined %s: term %d, want %d", w, got.Term, rejoin)
	}
	commit := c.Node(l).Status().Commit
	waitApplied(t, c, commit, 20*time.Second)
	if !c.Sim.RunUntil(func() bool { return c.Node(w).Metrics().InstallsDone.Load() > 0 }, 5*time.Second) {
		t.Fatalf("%s installed no snapshot", w)
	}
	if sms[w].sumAt[commit] != sms[l].sumAt[commit] {
		t.Fatalf("at %d the rejoined %s sums %d, the leader %d", commit, w, sms[w].sumAt[commit], sms[l].sumAt[commit])
	}

	// A later start with RejoinTerm still set is refused: the node has
	// data now.
	if err := c.Shutdown(w, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Crash(w)
	if err := c.Restart(w); err == nil || !strings.Contains(err.Error(), "RejoinTerm") {
		t.Fatalf("restart with RejoinTerm on a node with data: %v, want a refusal naming RejoinTerm", err)
	}
	rejoin = 0
	c.Crash(w)
	if err := c.Restart(w); err != nil {
		t.Fatal(err)
	}
}

func removeAll(t *testing.T, disk *vfs.MemFS, dir string) {
	t.Helper()
	names, err := disk.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		p := dir + "/" + n
		if fi, err := disk.Stat(p); err == nil && fi.IsDir() {
			removeAll(t, disk, p)
		}
		if err := disk.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// paddedSummer is a summer whose snapshots carry 3 MiB of zeros after the
// sum: several chunks, which a low snapshot rate spreads over seconds.
type paddedSummer struct{ summer }

type paddedPersister uint64

func (p paddedPersister) Persist(sink fsm.SnapshotSink) error {
	if err := sumPersister(p).Persist(sink); err != nil {
		return err
	}
	_, err := sink.Write(make([]byte, 3<<20))
	return err
}
func (paddedPersister) Release() {}

func (s *paddedSummer) OnSnapshotSave(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	return paddedPersister(s.sum), nil
}

func (s *paddedSummer) OnSnapshotLoad(src fsm.SnapshotSource) error {
	var b [8]byte
	if _, err := io.ReadFull(src, b[:]); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, src); err != nil {
		return err
	}
	s.sum = binary.BigEndian.Uint64(b[:])
	s.loads++
	clear(s.sumAt)
	s.sumAt[src.Meta().Index] = s.sum
	return nil
}

// paddedGroup is a group of paddedSummers whose leader has compacted its
// log past a follower cut off meanwhile: it starts the group (4 KiB WAL
// segments, 10 trailing entries, a tiny log cache so that what a
// follower needs is read from the storage, where compaction shows; host
// options tuned by hostOpts), writes 200 entries, isolates a follower,
// writes 3,000 more with a snapshot after each 1,500 (the log keeps what
// follows the snapshot before the newest) and waits for the leader's log
// to start past the follower's. The follower is still isolated.
func paddedGroup(t *testing.T, hostOpts func(*asyncraft.HostOptions)) (c *cluster.Cluster, l, f string, sms map[string]*paddedSummer) {
	t.Helper()
	sms = map[string]*paddedSummer{}
	c = cluster.New(cluster.Options{Seed: testseed.For(t),
		Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
			o.SnapshotTrailingEntries, o.MaxLogCacheBytes = 10, 1<<10
		},
		HostOptions: func(_ string, o *asyncraft.HostOptions) {
			o.WALSegmentSize = 4 << 10
			hostOpts(o)
		},
		NewStateMachine: func(id string, _ int) fsm.StateMachine {
			sms[id] = &paddedSummer{summer{sumAt: map[uint64]uint64{}}}
			return sms[id]
		}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	runLoad(t, c, l, "a", 200)
	f = c.Up()[0]
	if f == l {
		f = c.Up()[1]
	}
	lagged := c.Node(f).Status().LastIndex
	c.Sim.Isolate(f)
	for _, p := range []string{"b", "c"} {
		runLoad(t, c, l, p, 1500)
		waitSnapshot(t, c, snapshotNow(t, c, l))
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(l).Status().FirstIndex > lagged+1 }, 5*time.Second) {
		t.Fatal("the leader's log was not compacted past the follower")
	}
	return c, l, f, sms
}

// Snapshots taken on the leader while it installs one on a follower do not
// compact away the entries right after the one being installed: the
// follower goes on from the log after its install, instead of needing
// another.
func TestCompactionWaitsForAnInstall(t *testing.T) {
	c, l, f, sms := paddedGroup(t, func(o *asyncraft.HostOptions) { o.SnapshotBytesPerSecond = 1 << 20 })
	c.Sim.Heal()
	if !c.Sim.RunUntil(func() bool { return c.Node(f).Status().Installing != nil }, 10*time.Second) {
		t.Fatal("no install began")
	}
	// Two more snapshots while the follower fetches (about 3 s at 1 MiB/s).
	for _, p := range []string{"d", "e"} {
		runLoad(t, c, l, p, 1500)
		waitSnapshot(t, c, snapshotNow(t, c, l))
	}
	commit := c.Node(l).Status().Commit
	waitApplied(t, c, commit, 30*time.Second)
	if n := c.Node(f).Metrics().InstallsStarted.Load(); n != 1 {
		t.Fatalf("%s began %d installs, want 1: compaction chased the install", f, n)
	}
	if sms[f].sumAt[commit] != sms[l].sumAt[commit] {
		t.Fatalf("at %d %s sums %d, the leader %d", commit, f, sms[f].sumAt[commit], sms[l].sumAt[commit])
	}
}

// HostOptions.SnapshotChunkBytes sets the size of the chunks an install
// asks for: a 3 MiB snapshot goes in chunks of at most 64 KiB, not in the
// default 256 KiB ones.
func TestInstallChunkSize(t *testing.T) {
	const chunk = 64 << 10
	c, l, f, _ := paddedGroup(t, func(o *asyncraft.HostOptions) { o.SnapshotChunkBytes = chunk })
	c.Sim.Heal()
	if !c.Sim.RunUntil(func() bool { return c.Node(f).Metrics().InstallsDone.Load() > 0 }, 30*time.Second) {
		t.Fatalf("%s installed no snapshot (started %d)", f, c.Node(f).Metrics().InstallsStarted.Load())
	}
	waitApplied(t, c, c.Node(l).Status().Commit, 30*time.Second)
	st := c.Node(l).SnapshotStats()
	chunks, bytes := st.ChunksSent.Load(), st.BytesSent.Load()
	if bytes < 3<<20 || chunks < bytes/chunk || bytes > chunks*chunk {
		t.Fatalf("the leader sent %d bytes in %d chunks: want 3 MiB or more in chunks of at most %d bytes", bytes, chunks, chunk)
	}
}
