package snapshot

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/raftpb"
)

// The copy actors in the simulator: a leader host and a follower host
// (more when a test needs them), each with a store on its own disk and an
// executor whose child is the copy actor. A recorder stands in for the
// leader's replicator (Offered, OfferFailed) and one for the follower's
// node (Fetched, FetchFailed).

const (
	testGroup   = "g"
	testCluster = 0xc1
	storeDir    = "/data/g/snaps"
)

type recorder struct{ msgs []any }

func (r *recorder) Receive(_ actors.Env, msg any) {
	switch msg.(type) {
	case Offered, OfferFailed, Fetched, FetchFailed, *raftpb.Envelope:
		r.msgs = append(r.msgs, msg)
	}
}

func (r *recorder) count() int { return len(r.msgs) }

// member is one node's copy actor, store and recorder on a host.
type member struct {
	id    string
	h     *sim.Host
	store *Store
	stats *Stats
	exec  actors.Ref
	copy  actors.Ref
	rec   *recorder // the node (follower) or the replicator (leader)
	recAt actors.Ref
}

type copyWorld struct {
	t    *testing.T
	s    *sim.Sim
	tune func(*CopyConfig)
}

func newCopyWorld(t *testing.T, seed uint64, tune func(*CopyConfig)) *copyWorld {
	return &copyWorld{t: t, s: sim.New(sim.Config{Seed: seed}), tune: tune}
}

// start opens the store of node id on host h (adding the host if new) and
// spawns its executor, copy actor and recorder.
func (w *copyWorld) start(h *sim.Host, id string, keep int) *member {
	w.t.Helper()
	st, err := Open(h.Disk(), storeDir, Options{Keep: keep})
	if err != nil {
		w.t.Fatalf("Open on %s: %v", h.Name(), err)
	}
	m := &member{id: id, h: h, store: st, stats: &Stats{}, rec: &recorder{}}
	m.recAt, _ = h.Spawn(testGroup+"/"+id+"/rec", m.rec)
	cfg := CopyConfig{Store: st, Node: m.recAt, Group: testGroup, ID: id, Cluster: testCluster, Stats: m.stats,
		ChunkSize: 64 << 10, MaxChunkSize: 128 << 10, FetchTimeout: 50 * time.Millisecond, StallTimeout: 5 * time.Second,
		SyncBytes: 256 << 10}
	if w.tune != nil {
		w.tune(&cfg)
	}
	c, err := NewCopier(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	m.exec, err = h.Spawn(testGroup+"/"+id+"/snap", NewExecutor(ExecutorConfig{Store: st, Node: m.recAt, Copier: c}), actors.Blocking())
	if err != nil {
		w.t.Fatal(err)
	}
	m.copy = actors.Ref{Host: h.Name(), Name: CopyName(m.exec.Name)}
	return m
}

func (w *copyWorld) host(name string) *sim.Host {
	if h := w.s.Host(name); h != nil {
		return h
	}
	return w.s.AddHost(name, sim.HostConfig{})
}

// runUntil steps until cond holds, failing after limit of virtual time.
func (w *copyWorld) runUntil(what string, cond func() bool, limit time.Duration) {
	w.t.Helper()
	if !w.s.RunUntil(cond, limit) {
		w.t.Fatalf("seed %d: %s: not after %v of virtual time", w.s.Seed(), what, limit)
	}
}

// offer has the leader offer its newest snapshot to peer and returns the
// meta offered.
func (w *copyWorld) offer(leader, peer *member) *raftpb.SnapshotMeta {
	w.t.Helper()
	n := leader.rec.count()
	leader.h.Send(leader.copy, Offer{Peer: peer.id, To: peer.copy, Reply: leader.recAt, Term: 7})
	w.runUntil("offered", func() bool { return leader.rec.count() > n }, time.Second)
	o, ok := leader.rec.msgs[n].(Offered)
	if !ok {
		w.t.Fatalf("the leader answered %+v", leader.rec.msgs[n])
	}
	return o.Meta
}

// fetch has follower fetch meta from leader.
func (w *copyWorld) fetch(follower, leader *member, meta *raftpb.SnapshotMeta) {
	follower.h.Send(follower.copy, Fetch{Meta: meta, Leader: leader.id, From: leader.copy, Term: 7})
}

// report runs until the follower's node has its n-th report and returns
// it.
func (w *copyWorld) report(follower *member, n int, limit time.Duration) any {
	w.t.Helper()
	w.runUntil("a fetch report", func() bool { return follower.rec.count() >= n }, limit)
	return follower.rec.msgs[n-1]
}

// bigContent is a snapshot of index and term: size bytes of data and
// three extra files, one of them empty.
func bigContent(index, term uint64, size int, r *rand.Rand) content {
	c := content{index: index, term: term, conf: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "n1", Addr: "l"}, {Id: "n2", Addr: "f"}}}}
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	c.chunks = [][]byte{fill(size / 3), fill(size / 3), fill(size - 2*(size/3))} // write adds the files before the third
	c.files = []namedBytes{{"sst-000001", fill(size/4 + 17)}, {"EMPTY", nil}, {"sst-000002", fill(70_001)}}
	return c
}

func (c content) total() uint64 {
	n := uint64(len(c.data()))
	for _, f := range c.files {
		n += uint64(len(f.data))
	}
	return n
}

func wantFetched(t *testing.T, got any, c content) {
	t.Helper()
	f, ok := got.(Fetched)
	if !ok {
		t.Fatalf("the node got %+v, want Fetched", got)
	}
	if f.Meta.LastIndex != c.index || f.Meta.LastTerm != c.term {
		t.Fatalf("Fetched %v, want (%d, %d)", f.Meta, c.index, c.term)
	}
}

func wantFailed(t *testing.T, got any, target error) FetchFailed {
	t.Helper()
	f, ok := got.(FetchFailed)
	if !ok || !errors.Is(f.Err, target) {
		t.Fatalf("the node got %+v, want FetchFailed wrapping %v", got, target)
	}
	return f
}

// noPartials checks that the store's directory holds no partial download.
func noPartials(t *testing.T, st *Store) {
	t.Helper()
	if ids, err := st.partials(); err != nil || len(ids) != 0 {
		t.Fatalf("partial downloads left: %v (%v)", ids, err)
	}
}

// A whole transfer: a multi-MiB snapshot with extra files (one empty)
// arrives byte for byte, is committed as a snapshot the store verifies,
// and nothing of the download is left.
func TestCopyWholeTransfer(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w := newCopyWorld(t, 1, nil)
	l := w.start(w.host("l"), "n1", 2)
	f := w.start(w.host("f"), "n2", 2)
	c := bigContent(100, 3, 3<<20+12345, r)
	mustWrite(t, l.store, c)

	meta := w.offer(l, f)
	w.fetch(f, l, meta)
	wantFetched(t, w.report(f, 1, time.Minute), c)
	check(t, f.store, c)
	noPartials(t, f.store)
	if got := f.stats.BytesReceived.Load(); got != c.total() {
		t.Fatalf("received %d bytes, the snapshot has %d", got, c.total())
	}
	if got := l.stats.BytesSent.Load(); got != c.total() {
		t.Fatalf("sent %d bytes, the snapshot has %d", got, c.total())
	}
	if f.stats.Installed.Load() != 1 || f.stats.ChunksRefetched.Load() != 0 || f.stats.Dropped.Load() != 0 || l.stats.Dropped.Load() != 0 {
		t.Fatalf("stats: installed %d, refetched %d, dropped %d/%d", f.stats.Installed.Load(), f.stats.ChunksRefetched.Load(),
			f.stats.Dropped.Load(), l.stats.Dropped.Load())
	}
	if _, ok := f.stats.Progress(); ok {
		t.Fatal("progress still published after the fetch")
	}
	// A second Fetch of it is answered at once.
	w.fetch(f, l, meta)
	wantFetched(t, w.report(f, 2, time.Second), c)
}
