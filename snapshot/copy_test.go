package snapshot

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
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

// start opens the store of node id of testGroup on host h and spawns its
// executor, copy actor and recorder.
func (w *copyWorld) start(h *sim.Host, id string, keep int) *member {
	w.t.Helper()
	return w.startIn(h, testGroup, id, keep)
}

// startIn is start for a node of group.
func (w *copyWorld) startIn(h *sim.Host, group, id string, keep int) *member {
	w.t.Helper()
	st, err := Open(h.Disk(), path.Join("/data", group, id, "snaps"), Options{Keep: keep})
	if err != nil {
		w.t.Fatalf("Open on %s: %v", h.Name(), err)
	}
	m := &member{id: id, h: h, store: st, stats: &Stats{}, rec: &recorder{}}
	m.recAt, _ = h.Spawn(group+"/"+id+"/rec", m.rec)
	cfg := CopyConfig{Store: st, Node: m.recAt, Group: group, ID: id, Cluster: testCluster, Stats: m.stats,
		ChunkSize: 64 << 10, MaxChunkSize: 128 << 10, FetchTimeout: 50 * time.Millisecond, StallTimeout: 5 * time.Second,
		SyncBytes: 256 << 10}
	if w.tune != nil {
		w.tune(&cfg)
	}
	c, err := NewCopier(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	m.exec, err = h.Spawn(group+"/"+id+"/snap", NewExecutor(ExecutorConfig{Store: st, Node: m.recAt, Copier: c}), actors.Blocking())
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

// Chunks and fetches lost, duplicated and reordered on the network: the
// snapshot still arrives byte for byte, lost pieces are asked again, and
// the memory held never exceeds the window.
func TestCopyNetworkFaults(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 1))
	w := newCopyWorld(t, seed, nil)
	l := w.start(w.host("l"), "n1", 2)
	f := w.start(w.host("f"), "n2", 2)
	c := bigContent(100, 3, 2<<20+999, r)
	mustWrite(t, l.store, c)
	meta := w.offer(l, f)

	w.s.SetNet(sim.NetConfig{MinLatency: 100 * time.Microsecond, MaxLatency: time.Millisecond,
		Drop: 0.1, Duplicate: 0.2, Reorder: 0.3, ReorderDelay: 20 * time.Millisecond})
	w.fetch(f, l, meta)
	wantFetched(t, w.report(f, 1, 10*time.Minute), c)
	check(t, f.store, c)
	noPartials(t, f.store)
	st := f.stats
	t.Logf("received %d bytes (snapshot %d), refetched %d, duplicates %d, max buffered %d, network drops %d",
		st.BytesReceived.Load(), c.total(), st.ChunksRefetched.Load(), st.ChunksDuplicate.Load(), st.MaxBuffered.Load(), w.s.Dropped())
	if st.ChunksRefetched.Load() == 0 || st.ChunksDuplicate.Load() == 0 {
		t.Fatalf("seed %d: the faults did not show: refetched %d, duplicates %d", seed, st.ChunksRefetched.Load(), st.ChunksDuplicate.Load())
	}
	if st.BytesReceived.Load() != c.total() {
		t.Fatalf("seed %d: %d bytes accepted, the snapshot has %d: a duplicate was taken", seed, st.BytesReceived.Load(), c.total())
	}
	if limit := uint64(DefaultWindow * 64 << 10); st.MaxBuffered.Load() > limit {
		t.Fatalf("seed %d: %d bytes buffered at most, over the window's %d", seed, st.MaxBuffered.Load(), limit)
	} else if st.MaxBuffered.Load() <= 64<<10 {
		t.Fatalf("seed %d: at most %d bytes buffered: nothing waited for a lost piece", seed, st.MaxBuffered.Load())
	}
}

// progressAt runs until the follower's current fetch has written at least
// frac of its bytes.
func (w *copyWorld) progressAt(f *member, frac float64) {
	w.t.Helper()
	w.runUntil(fmt.Sprintf("%.0f%% fetched", frac*100), func() bool {
		p, ok := f.stats.Progress()
		return ok && float64(p.Done) >= frac*float64(p.Total)
	}, time.Minute)
}

// A receiver that crashes mid-transfer resumes, once restarted, from what
// its download had made durable: it fetches fewer bytes the second time,
// and the snapshot is whole. With a torn crash too.
func TestCopyResumesAfterReceiverCrash(t *testing.T) {
	for _, torn := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", torn), func(t *testing.T) {
			seed := testseed.For(t)
			r := rand.New(rand.NewPCG(seed, 2))
			w := newCopyWorld(t, seed, nil)
			l := w.start(w.host("l"), "n1", 2)
			fh := w.s.AddHost("f", sim.HostConfig{TornCrash: torn})
			f := w.start(fh, "n2", 2)
			c := bigContent(100, 3, 3<<20, r)
			mustWrite(t, l.store, c)
			meta := w.offer(l, f)
			w.fetch(f, l, meta)
			w.progressAt(f, 0.5+r.Float64()*0.3)
			before := f.stats.BytesReceived.Load()

			fh.Crash()
			fh.Restart()
			f = w.start(fh, "n2", 2)
			if ids, err := f.store.partials(); err != nil || !slices.Equal(ids, []ID{{100, 3}}) {
				t.Fatalf("seed %d: after the crash the store holds partials %v (%v), want the download", seed, ids, err)
			}
			w.fetch(f, l, meta)
			wantFetched(t, w.report(f, 1, time.Minute), c)
			check(t, f.store, c)
			noPartials(t, f.store)
			resumed, again := f.stats.BytesResumed.Load(), f.stats.BytesReceived.Load()
			t.Logf("received %d bytes before the crash, %d found durable, %d fetched again, of %d", before, resumed, again, c.total())
			if resumed == 0 || resumed+again != c.total() || again >= c.total() {
				t.Fatalf("seed %d: resumed at %d, then fetched %d bytes, of %d", seed, resumed, again, c.total())
			}
			if resumed+uint64(256<<10)+uint64(DefaultWindow*64<<10) < before {
				t.Fatalf("seed %d: resumed at %d, though %d were received and checkpoints come every 256 KiB", seed, resumed, before)
			}
		})
	}
}

// A new leader holding the same snapshot takes over a fetch: joined while
// it runs (the pieces asked of the old leader are asked of the new), or
// after the fetch was canceled (it resumes from the durable download).
func TestCopyChangeOfSender(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel=%v", cancel), func(t *testing.T) {
			seed := testseed.For(t)
			r := rand.New(rand.NewPCG(seed, 3))
			w := newCopyWorld(t, seed, nil)
			l1 := w.start(w.host("l1"), "n1", 2)
			l3 := w.start(w.host("l3"), "n3", 2)
			f := w.start(w.host("f"), "n2", 2)
			c := bigContent(100, 3, 2<<20, r)
			mustWrite(t, l1.store, c)
			mustWrite(t, l3.store, c)
			meta := w.offer(l1, f)
			w.fetch(f, l1, meta)
			w.progressAt(f, 0.4)
			w.s.Isolate("l1") // the old leader is gone
			reports := 0
			if cancel {
				f.h.Send(f.copy, CancelFetch{})
				wantFailed(t, w.report(f, 1, time.Second), ErrCanceled)
				reports = 1
			}
			if w.offer(l3, f).DataCrc32C != meta.DataCrc32C {
				t.Fatal("the two leaders hold different snapshots")
			}
			w.fetch(f, l3, meta)
			wantFetched(t, w.report(f, reports+1, time.Minute), c)
			check(t, f.store, c)
			st := f.stats
			t.Logf("fetches %d, resumed %d, received %d (l1 sent %d, l3 sent %d) of %d", st.Fetches.Load(), st.BytesResumed.Load(),
				st.BytesReceived.Load(), l1.stats.BytesSent.Load(), l3.stats.BytesSent.Load(), c.total())
			if l3.stats.BytesSent.Load() >= c.total() || l3.stats.BytesSent.Load() == 0 {
				t.Fatalf("the new leader sent %d bytes of %d", l3.stats.BytesSent.Load(), c.total())
			}
			if cancel && (st.Fetches.Load() != 2 || st.BytesResumed.Load() == 0) {
				t.Fatalf("after the cancel: %d fetches, %d bytes resumed", st.Fetches.Load(), st.BytesResumed.Load())
			}
			if !cancel && (st.Fetches.Load() != 1 || st.BytesReceived.Load() != c.total()) {
				t.Fatalf("joined: %d fetches, %d bytes received of %d", st.Fetches.Load(), st.BytesReceived.Load(), c.total())
			}
		})
	}
}

// A Fetch of a newer snapshot ends the running one (FetchFailed,
// ErrCanceled) and removes its download; the newer one is installed.
func TestCopyNewerFetchSupersedes(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	w := newCopyWorld(t, 4, nil)
	l := w.start(w.host("l"), "n1", 3)
	f := w.start(w.host("f"), "n2", 3)
	c1, c2 := bigContent(100, 3, 2<<20, r), bigContent(200, 4, 1<<20, r)
	mustWrite(t, l.store, c1)
	meta1 := w.offer(l, f)
	w.fetch(f, l, meta1)
	w.progressAt(f, 0.3)
	mustWrite(t, l.store, c2)
	meta2 := w.offer(l, f) // replaces the session: the first snapshot is unpinned
	w.fetch(f, l, meta2)
	failed := wantFailed(t, w.report(f, 1, time.Second), ErrCanceled)
	if failed.Meta.LastIndex != 100 {
		t.Fatalf("the report is about %v, want the first snapshot", failed.Meta)
	}
	if ids, _ := f.store.partials(); !slices.Equal(ids, []ID{{200, 4}}) {
		t.Fatalf("partials %v, want only the newer download", ids)
	}
	wantFetched(t, w.report(f, 2, time.Minute), c2)
	check(t, f.store, c2)
	noPartials(t, f.store)
	wantList(t, f.store, ID{200, 4})

	// An older snapshot than the newest held is refused at once.
	w.fetch(f, l, meta1)
	wantFailed(t, w.report(f, 3, time.Second), ErrStale)
	noPartials(t, f.store)
}
