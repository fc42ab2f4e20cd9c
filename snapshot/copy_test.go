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
	id     string
	h      *sim.Host
	store  *Store
	stats  *Stats
	exec   actors.Ref
	copy   actors.Ref
	copier *Copier
	rec    *recorder // the node (follower) or the replicator (leader)
	recAt  actors.Ref
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
	m.copier = c
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

// mangler stands between the leader and the follower's copy actor: it
// flips one byte of the first chunk of file it sees, and forwards
// everything.
type mangler struct {
	to      actors.Ref
	file    string
	mangled bool
}

func (m *mangler) Receive(env actors.Env, msg any) {
	e, ok := msg.(*raftpb.Envelope)
	if !ok {
		return
	}
	if ch := e.GetSnapshotChunk(); ch != nil && !m.mangled && ch.File == m.file && len(ch.Data) > 10 {
		ch.Data[10] ^= 0x40
		m.mangled = true
	}
	env.Send(m.to, e)
}

// Bytes that do not match the manifest — flipped in the leader's file or
// on the way — fail the fetch with ErrCorrupt; nothing replaces the
// follower's newest snapshot, and the download is removed.
func TestCopyCorruptChunk(t *testing.T) {
	for _, where := range []string{"leader's data", "in transit"} {
		t.Run(where, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 5))
			w := newCopyWorld(t, 5, nil)
			l := w.start(w.host("l"), "n1", 2)
			f := w.start(w.host("f"), "n2", 2)
			old := bigContent(50, 2, 1000, r)
			mustWrite(t, f.store, old)
			c := bigContent(100, 3, 1<<20, r)
			mustWrite(t, l.store, c)
			to := f.copy
			if where == "in transit" {
				to, _ = f.h.Spawn("mangler", &mangler{to: f.copy, file: "sst-000002"})
			} else {
				flip(t, l.h.Disk(), path.Join("/data/g/n1/snaps", ID{100, 3}.dirName(), dataName), 300_000)
			}
			l.h.Send(l.copy, Offer{Peer: f.id, To: to, Reply: l.recAt, Term: 7})
			w.runUntil("offered", func() bool { return l.rec.count() > 0 }, time.Second)
			meta := l.rec.msgs[0].(Offered).Meta
			w.fetch(f, l, meta)
			wantFailed(t, w.report(f, 1, time.Minute), ErrCorrupt)
			wantList(t, f.store, ID{50, 2})
			check(t, f.store, old)
			noPartials(t, f.store)
			if f.stats.Corrupt.Load() != 1 {
				t.Fatalf("Corrupt = %d", f.stats.Corrupt.Load())
			}
		})
	}
}

// The leader stops serving mid-transfer (Withdraw): its answers say the
// snapshot is missing, the fetch fails with ErrSourceGone and keeps its
// download, and a fetch after a new offer resumes it.
func TestCopyMissing(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	w := newCopyWorld(t, 6, nil)
	l := w.start(w.host("l"), "n1", 2)
	f := w.start(w.host("f"), "n2", 2)
	c := bigContent(100, 3, 2<<20, r)
	mustWrite(t, l.store, c)
	meta := w.offer(l, f)
	w.fetch(f, l, meta)
	w.progressAt(f, 0.5)
	l.h.Send(l.copy, Withdraw{Peer: f.id})
	wantFailed(t, w.report(f, 1, time.Minute), ErrSourceGone)
	if ids, _ := f.store.partials(); !slices.Equal(ids, []ID{{100, 3}}) {
		t.Fatalf("partials %v after ErrSourceGone, want the download kept", ids)
	}
	if l.stats.MissingSent.Load() == 0 {
		t.Fatal("no missing answer counted")
	}
	w.offer(l, f)
	w.fetch(f, l, meta)
	wantFetched(t, w.report(f, 2, time.Minute), c)
	check(t, f.store, c)
	if f.stats.BytesResumed.Load() == 0 {
		t.Fatal("the second fetch did not resume")
	}
}

// An Offer with no snapshot in the store fails with ErrNotFound.
func TestCopyOfferNothing(t *testing.T) {
	w := newCopyWorld(t, 7, nil)
	l := w.start(w.host("l"), "n1", 2)
	f := w.start(w.host("f"), "n2", 2)
	l.h.Send(l.copy, Offer{Peer: f.id, To: f.copy, Reply: l.recAt, Term: 7})
	w.runUntil("answered", func() bool { return l.rec.count() > 0 }, time.Second)
	if o, ok := l.rec.msgs[0].(OfferFailed); !ok || !errors.Is(o.Err, ErrNotFound) || o.Peer != f.id {
		t.Fatalf("the leader answered %+v, want OfferFailed with ErrNotFound", l.rec.msgs[0])
	}
}

// A session pins its snapshot until Withdraw or the idle timeout; then
// pruning removes it, and later fetches are answered missing.
func TestCopySessionUnpins(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	w := newCopyWorld(t, 8, func(c *CopyConfig) { c.ServeIdleTimeout = time.Second })
	l := w.start(w.host("l"), "n1", 1)
	f := w.start(w.host("f"), "n2", 1)
	c1, c2, c3 := bigContent(10, 1, 1000, r), bigContent(20, 1, 1000, r), bigContent(30, 1, 1000, r)

	mustWrite(t, l.store, c1)
	w.offer(l, f)
	mustWrite(t, l.store, c2)
	wantList(t, l.store, ID{20, 1}, ID{10, 1}) // pinned
	l.h.Send(l.copy, Withdraw{Peer: f.id})
	w.s.RunFor(time.Millisecond)
	if err := l.store.Prune(); err != nil {
		t.Fatal(err)
	}
	wantList(t, l.store, ID{20, 1})

	meta := w.offer(l, f)
	mustWrite(t, l.store, c3)
	w.s.RunFor(500 * time.Millisecond)
	if l.stats.SessionsExpired.Load() != 0 {
		t.Fatal("the session expired early")
	}
	wantList(t, l.store, ID{30, 1}, ID{20, 1})
	w.s.RunFor(time.Second)
	if l.stats.SessionsExpired.Load() != 1 {
		t.Fatalf("SessionsExpired = %d after the idle timeout", l.stats.SessionsExpired.Load())
	}
	if err := l.store.Prune(); err != nil {
		t.Fatal(err)
	}
	wantList(t, l.store, ID{30, 1})
	w.fetch(f, l, meta)
	wantFailed(t, w.report(f, 1, time.Second), ErrSourceGone)
}

// Fetches keep a session alive past the idle timeout.
func TestCopySessionKeptAliveByFetches(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	w := newCopyWorld(t, 9, func(c *CopyConfig) {
		c.ServeIdleTimeout = 100 * time.Millisecond
		c.Throttle, _ = NewThrottle(1<<20, 64<<10) // about 1.3 s for this snapshot
	})
	l := w.start(w.host("l"), "n1", 1)
	f := w.start(w.host("f"), "n2", 1)
	c := bigContent(10, 1, 1<<20, r)
	mustWrite(t, l.store, c)
	w.fetch(f, l, w.offer(l, f))
	wantFetched(t, w.report(f, 1, time.Minute), c)
	if w.s.Now() < time.Second || l.stats.SessionsExpired.Load() != 0 {
		t.Fatalf("at %v, %d sessions expired", w.s.Now(), l.stats.SessionsExpired.Load())
	}
	// Once the fetches stop, the session expires (its timer re-armed).
	w.s.RunFor(200 * time.Millisecond)
	if l.stats.SessionsExpired.Load() != 1 {
		t.Fatalf("%d sessions expired after the fetches stopped", l.stats.SessionsExpired.Load())
	}
}

// randFor returns a random source for a test whose seed is fixed.
func randFor(_ *testing.T, seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

// A Fetch answered at once — of a snapshot held, or older than the
// newest held — leaves a running fetch alone.
func TestCopyQuickAnswersLeaveRunningFetch(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 14))
	w := newCopyWorld(t, 14, nil)
	l := w.start(w.host("l"), "n1", 3)
	f := w.start(w.host("f"), "n2", 3)
	held := bigContent(50, 2, 1000, r)
	mustWrite(t, f.store, held)
	c := bigContent(100, 3, 2<<20, r)
	mustWrite(t, l.store, c)
	w.fetch(f, l, w.offer(l, f))
	w.progressAt(f, 0.3)
	w.fetch(f, l, metaFor(bigContent(40, 2, 1000, r)))
	wantFailed(t, w.report(f, 1, time.Second), ErrStale)
	w.fetch(f, l, metaFor(held))
	wantFetched(t, w.report(f, 2, time.Second), held)
	wantFetched(t, w.report(f, 3, time.Minute), c)
	check(t, f.store, c)
	if f.stats.Fetches.Load() != 1 {
		t.Fatalf("%d fetches started", f.stats.Fetches.Load())
	}
}
