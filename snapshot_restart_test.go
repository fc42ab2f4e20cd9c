package asyncraft_test

import (
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/vfs"
)

// compactingGroup is a summer group whose nodes compact their logs (small
// WAL segments, few trailing entries).
func compactingGroup(t *testing.T, trailing uint64) (*cluster.Cluster, string, map[string]*summer) {
	t.Helper()
	return compactingGroupWith(t, func(o *asyncraft.NodeOptions) { o.SnapshotTrailingEntries = trailing })
}

// compactingGroupWith is a summer group on 4 KiB WAL segments (so that
// compaction drops some of a few thousand entries), node adjusting each
// node's options before each start.
func compactingGroupWith(t *testing.T, node func(*asyncraft.NodeOptions)) (*cluster.Cluster, string, map[string]*summer) {
	t.Helper()
	sms := map[string]*summer{}
	c := cluster.New(cluster.Options{Seed: testseed.For(t),
		Node:        func(o *asyncraft.NodeOptions, _ *sim.Host) { node(o) },
		HostOptions: func(_ string, o *asyncraft.HostOptions) { o.WALSegmentSize = 4 << 10 },
		NewStateMachine: func(id string, _ int) fsm.StateMachine {
			sms[id] = &summer{sumAt: map[uint64]uint64{}}
			return sms[id]
		}})
	l, err := c.WaitLeader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c, l, sms
}

// snapshotAll takes a snapshot on every running member and waits for them.
func snapshotAll(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	var rs []*snapResult
	for _, id := range c.Up() {
		rs = append(rs, snapshotNow(t, c, id))
	}
	waitSnapshot(t, c, rs...)
	for _, r := range rs {
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
}

// After two snapshots a member's log starts after the older one (whole
// segments dropped), and a member restarted after a clean shutdown loads
// the newest snapshot, replays only the entries after it — at once, with
// no leader, up to the commit index it saved at shutdown — and agrees with
// the others.
func TestRestartFromSnapshot(t *testing.T) {
	c, l, sms := compactingGroup(t, 50)
	runLoad(t, c, l, "a", 1500)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	snapshotAll(t, c)
	runLoad(t, c, l, "b", 1500)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	snapshotAll(t, c)
	f := c.Up()[0]
	if f == l {
		f = c.Up()[1]
	}
	waitCompacted(t, c, f)
	runLoad(t, c, l, "b2", 500) // entries after the snapshot
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	st := c.Node(f).Status()
	snapIndex, before := st.SnapshotIndex, st.Applied
	if before <= snapIndex {
		t.Fatalf("%s applied %d, not beyond its snapshot %d", f, before, snapIndex)
	}

	// Cut the follower off, so that whatever it applies at restart comes
	// from its own disk, then stop and restart it.
	if err := c.Shutdown(f, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Crash(f)
	c.Sim.Isolate(f)
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	sm := sms[f]
	if sm.loads != 1 {
		t.Fatalf("restarted %s loaded %d snapshots, want 1", f, sm.loads)
	}
	if got := c.Node(f).Status(); got.Applied < snapIndex || got.SnapshotIndex != snapIndex {
		t.Fatalf("restarted %s starts at applied %d, snapshot %d; its snapshot is %d", f, got.Applied, got.SnapshotIndex, snapIndex)
	}
	// The entries after the snapshot up to the saved commit index replay
	// without a leader.
	if !c.Sim.RunUntil(func() bool { return c.Node(f).Status().Applied >= before }, 5*time.Second) {
		t.Fatalf("isolated %s applied %d after restart, want the %d it had applied (its saved commit)", f, c.Node(f).Status().Applied, before)
	}
	if sm.sumAt[before] != sms[l].sumAt[before] {
		t.Fatalf("at %d the restarted %s sums %d, the leader %d", before, f, sm.sumAt[before], sms[l].sumAt[before])
	}
	c.Sim.Heal()
	runLoad(t, c, c.Leader(), "c", 300)
	last := c.Node(c.Leader()).Status().Commit
	waitApplied(t, c, last, 10*time.Second)
	for _, id := range c.Up() {
		if sms[id].sumAt[last] != sms[l].sumAt[last] {
			t.Fatalf("at %d %s sums %d, %s %d", last, id, sms[id].sumAt[last], l, sms[l].sumAt[last])
		}
	}
}

// A newest snapshot whose data is damaged is skipped at restart: the node
// loads the one before it and replays the log from there.
func TestRestartFallsBackFromADamagedSnapshot(t *testing.T) {
	c, l, sms := compactingGroup(t, 50)
	runLoad(t, c, l, "a", 1500)
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	snapshotAll(t, c)
	runLoad(t, c, l, "b", 4500) // far more than a segment holds: without the older snapshot's tail, the log would start after it
	waitApplied(t, c, c.Node(l).Status().Commit, 10*time.Second)
	snapshotAll(t, c)
	f := c.Up()[0]
	if f == l {
		f = c.Up()[1]
	}
	waitCompacted(t, c, f)
	before := c.Node(f).Status()
	newest := storeOf(t, c, f).Newest()
	c.Crash(f)
	// Flip a byte of the newest snapshot's data: same size, bad checksum.
	disk := c.Sim.Host(f).Disk()
	p := "/data/g/" + f + "/snapshots/" + snapDirName(newest.LastTerm, newest.LastIndex) + "/data"
	flipByte(t, disk, p)
	if err := c.Restart(f); err != nil {
		t.Fatal(err)
	}
	if sms[f].loads != 1 {
		t.Fatalf("%s loaded %d snapshots, want 1 (the older)", f, sms[f].loads)
	}
	if got := c.Node(f).Status().Applied; got >= newest.LastIndex {
		t.Fatalf("%s starts at applied %d, from the damaged snapshot %d", f, got, newest.LastIndex)
	}
	if !c.Sim.RunUntil(func() bool { return c.Node(f).Status().Applied >= before.Applied }, 5*time.Second) {
		t.Fatalf("%s did not replay from the older snapshot to %d: %+v", f, before.Applied, c.Node(f).Status())
	}
	if sms[f].sumAt[before.Applied] != sms[l].sumAt[before.Applied] {
		t.Fatalf("at %d %s sums %d, the leader %d", before.Applied, f, sms[f].sumAt[before.Applied], sms[l].sumAt[before.Applied])
	}
}

// waitCompacted waits until id's log starts after its first entry.
func waitCompacted(t *testing.T, c *cluster.Cluster, id string) {
	t.Helper()
	if !c.Sim.RunUntil(func() bool { return c.Node(id).Status().FirstIndex > 1 }, 5*time.Second) {
		st := c.Node(id).Status()
		t.Fatalf("%s: first index %d, snapshot %d: the log was not compacted", id, st.FirstIndex, st.SnapshotIndex)
	}
}

func snapDirName(term, index uint64) string {
	return "snap-" + hex16(term) + "-" + hex16(index)
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b[:])
}

func flipByte(t *testing.T, disk *vfs.MemFS, p string) {
	t.Helper()
	f, err := disk.OpenReadWrite(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}
