package logmgr

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

const mgrDir, mgrLog = "/var/raft", "/var/raft/log"

// probe stands in for the node: it records what the manager sends it.
type probe struct{ msgs []any }

func (p *probe) Receive(_ actors.Env, msg any) {
	switch msg.(type) {
	case actors.Started, actors.Stopped:
	default:
		p.msgs = append(p.msgs, msg)
	}
}

// mgrRig is one simulated host running a probe node and a Manager over
// a WAL (or another LogStorage: see newMgrRigOn) and FileMeta on the
// host's disk.
type mgrRig struct {
	t     *testing.T
	seed  uint64
	s     *sim.Sim
	h     *sim.Host
	probe *probe
	node  actors.Ref
	mgr   actors.Ref
	stats *Stats
	log   LogStorage
	meta  *FileMeta
	open  diskOpener
	// repaired is what the last crashAndReopen's open repaired.
	repaired int64
}

// mgrStorages are the log storages the manager's disk tests run over.
var mgrStorages = []struct {
	name string
	open diskOpener
}{
	{"wal", openWALSized(4<<10, false)},
	{"wal-buffered", openWALSized(4<<10, true)},
}

// isLogFile reports whether name is a file of the log storage (and not the
// hard state's).
func isLogFile(name string) bool { return name == mgrLog || strings.Contains(name, walSegmentExt) }

func newMgrRig(t *testing.T, seed uint64, hc sim.HostConfig, tune func(*Config)) *mgrRig {
	return newMgrRigOn(t, seed, hc, openWALSized(1<<20, false), tune)
}

func newMgrRigOn(t *testing.T, seed uint64, hc sim.HostConfig, open diskOpener, tune func(*Config)) *mgrRig {
	t.Helper()
	r := &mgrRig{t: t, seed: seed, s: sim.New(sim.Config{Seed: seed}), probe: &probe{}, stats: &Stats{}, open: open}
	r.h = r.s.AddHost("h1", hc)
	var err error
	if r.log, _, err = open(r.h.Disk(), mgrDir); err != nil {
		t.Fatal(err)
	}
	if r.meta, err = OpenFileMeta(r.h.Disk(), mgrDir); err != nil {
		t.Fatal(err)
	}
	if r.node, err = r.h.Spawn("node", r.probe); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Storage: r.log, Meta: r.meta, Node: r.node, Stats: r.stats, Logger: slog.New(slog.DiscardHandler)}
	if tune != nil {
		tune(&cfg)
	}
	if r.mgr, err = r.h.Spawn("logmgr", NewManager(cfg)); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *mgrRig) send(msg any) { r.h.Send(r.mgr, msg) }

// runUntil runs the simulation until cond holds (within a minute of
// virtual time).
func (r *mgrRig) runUntil(what string, cond func() bool) {
	r.t.Helper()
	if !r.s.RunUntil(cond, time.Minute) {
		r.t.Fatalf("seed %d: %s did not happen; the node got %s", r.seed, what, r.describe())
	}
}

// settle runs until nothing is left to do.
func (r *mgrRig) settle() { r.s.RunFor(10 * time.Second) }

func (r *mgrRig) describe() string {
	n := len(r.probe.msgs)
	from := max(0, n-6)
	return fmt.Sprintf("%d messages, last %v", n, r.probe.msgs[from:])
}

func (r *mgrRig) stables() []Stable {
	var out []Stable
	for _, m := range r.probe.msgs {
		if s, ok := m.(Stable); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r *mgrRig) count(match func(any) bool) int {
	n := 0
	for _, m := range r.probe.msgs {
		if match(m) {
			n++
		}
	}
	return n
}

func (r *mgrRig) lastStableIs(index, term uint64) func() bool {
	return func() bool {
		st := r.stables()
		return len(st) > 0 && st[len(st)-1] == Stable{Index: index, Term: term}
	}
}

func (r *mgrRig) got(match func(any) bool) func() bool {
	return func() bool { return r.count(match) > 0 }
}

func isClosed(m any) bool { _, ok := m.(Closed); return ok }
func isFailed(m any) bool { _, ok := m.(Failed); return ok }

// crashAndReopen crashes the host and opens its storage again.
func (r *mgrRig) crashAndReopen() (LogStorage, *raftpb.HardState) {
	r.t.Helper()
	r.h.Crash()
	r.h.Restart()
	s, repaired, err := r.open(r.h.Disk(), mgrDir)
	r.repaired = repaired
	if err != nil {
		r.t.Fatalf("seed %d: reopen log: %v", r.seed, err)
	}
	r.t.Cleanup(func() { s.Close() })
	m, err := OpenFileMeta(r.h.Disk(), mgrDir)
	if err != nil {
		r.t.Fatal(err)
	}
	hs, err := m.Load()
	if err != nil {
		r.t.Fatalf("seed %d: reload meta: %v", r.seed, err)
	}
	return s, hs
}

func checkMonotonic(t *testing.T, seed uint64, st []Stable) {
	t.Helper()
	for i := 1; i < len(st); i++ {
		if st[i].Index < st[i-1].Index || st[i].Term < st[i-1].Term {
			t.Fatalf("seed %d: Stable reports go back: %v then %v", seed, st[i-1], st[i])
		}
	}
}

func TestManagerGroupCommit(t *testing.T) {
	seed := testseed.For(t)
	r := newMgrRig(t, seed, sim.HostConfig{}, nil)
	for i := uint64(1); i <= 1000; i++ {
		r.send(Append{Entries: []*raftpb.Entry{ent(i, 3)}})
	}
	r.runUntil("Stable(1000, 3)", r.lastStableIs(1000, 3))
	r.settle()
	st := r.stables()
	checkMonotonic(t, seed, st)
	if last := st[len(st)-1]; last != (Stable{Index: 1000, Term: 3}) {
		t.Fatalf("seed %d: last Stable %v, want (1000, 3)", seed, last)
	}
	writes := r.stats.Writes.Load()
	if writes > 10 || int(writes) != len(st) {
		t.Fatalf("seed %d: %d writes (%d Stable reports) for 1000 appends sent at once; group commit should need a few", seed, writes, len(st))
	}
	if got := r.stats.Entries.Load(); got != 1000 {
		t.Fatalf("seed %d: Stats.Entries = %d, want 1000", seed, got)
	}
	s, _ := r.crashAndReopen()
	mustCheck(t, s, ents(1, 1001, 3))
}

// TestManagerGroupCommitSpread sends appends at random moments while
// writes are in flight: each Stable covers everything sent before it
// arrived, and writes stay far fewer than appends.
func TestManagerGroupCommitSpread(t *testing.T) {
	seed := testseed.For(t)
	r := newMgrRig(t, seed, sim.HostConfig{}, nil)
	rng := rand.New(rand.NewPCG(seed, 0))
	at := time.Duration(0)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		// Syncs take 200µs to 1ms; appends come every 0 to 100µs.
		at += time.Duration(rng.IntN(100)) * time.Microsecond
		r.s.At(at, func() { r.send(Append{Entries: []*raftpb.Entry{ent(i, 1)}}) })
	}
	r.runUntil("Stable(n, 1)", r.lastStableIs(n, 1))
	st := r.stables()
	checkMonotonic(t, seed, st)
	if w := r.stats.Writes.Load(); w*5 > n {
		t.Fatalf("seed %d: %d writes for %d appends", seed, w, n)
	}
	if r.stats.MaxBatch.Load() < 2 {
		t.Fatalf("seed %d: no batch held more than one entry", seed)
	}
}

func TestManagerBatchCaps(t *testing.T) {
	seed := testseed.For(t)
	t.Run("entries", func(t *testing.T) {
		r := newMgrRig(t, seed, sim.HostConfig{}, func(c *Config) { c.MaxBatchEntries = 10 })
		for i := uint64(1); i <= 1000; i++ {
			r.send(Append{Entries: []*raftpb.Entry{ent(i, 1)}})
		}
		r.runUntil("Stable(1000, 1)", r.lastStableIs(1000, 1))
		if got := r.stats.MaxBatch.Load(); got != 10 {
			t.Fatalf("seed %d: MaxBatch = %d, want 10", seed, got)
		}
		if w := r.stats.Writes.Load(); w < 100 {
			t.Fatalf("seed %d: %d writes for 1000 entries in batches of at most 10", seed, w)
		}
		checkMonotonic(t, seed, r.stables())
	})
	t.Run("split-append", func(t *testing.T) {
		// One Append of 25 entries is split across batches of 10.
		r := newMgrRig(t, seed, sim.HostConfig{}, func(c *Config) { c.MaxBatchEntries = 10 })
		r.send(Append{Entries: ents(1, 26, 1)})
		r.send(TruncateSuffix{From: 20})
		r.send(Append{Entries: ents(20, 23, 2)})
		r.runUntil("Stable(22, 2)", r.lastStableIs(22, 2))
		r.settle()
		// The last 5 entries of the split append share a batch with the
		// truncation and the new append, so (25, 1) is never reported.
		want := []Stable{{10, 1}, {20, 1}, {22, 2}}
		if got := r.stables(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: Stable reports %v, want %v", seed, got, want)
		}
		s, _ := r.crashAndReopen()
		mustCheck(t, s, oracle(ents(1, 20, 1)).append(ents(20, 23, 2)))
	})
	t.Run("bytes", func(t *testing.T) {
		// Entries of 100 bytes of data count 124; 1000 bytes hold 8.
		r := newMgrRig(t, seed, sim.HostConfig{}, func(c *Config) { c.MaxBatchBytes = 1000 })
		var want oracle
		for i := uint64(1); i <= 200; i++ {
			e := &raftpb.Entry{Index: i, Term: 1, Data: make([]byte, 100)}
			if i == 50 {
				e.Data = make([]byte, 5000) // larger than a batch: goes alone
			}
			want = append(want, e)
			r.send(Append{Entries: []*raftpb.Entry{e}})
		}
		r.runUntil("Stable(200, 1)", r.lastStableIs(200, 1))
		if got := r.stats.MaxBatch.Load(); got != 8 {
			t.Fatalf("seed %d: MaxBatch = %d, want 8", seed, got)
		}
		s, _ := r.crashAndReopen()
		mustCheck(t, s, want)
	})
}

func TestManagerOrdering(t *testing.T) {
	seed := testseed.For(t)
	for _, oneBatch := range []bool{true, false} {
		t.Run(fmt.Sprintf("one-batch=%v", oneBatch), func(t *testing.T) {
			r := newMgrRig(t, seed, sim.HostConfig{}, nil)
			step := func(what string, msg any, cond func() bool) {
				r.send(msg)
				if !oneBatch {
					r.runUntil(what, cond)
				}
			}
			step("Stable(5, 1)", Append{Entries: ents(1, 6, 1)}, r.lastStableIs(5, 1))
			step("Stable(2, 1)", TruncateSuffix{From: 3}, r.lastStableIs(2, 1))
			step("Stable(4, 2)", Append{Entries: ents(3, 5, 2)}, r.lastStableIs(4, 2))
			r.runUntil("Stable(4, 2)", r.lastStableIs(4, 2))
			r.settle()
			if st := r.stables(); st[len(st)-1] != (Stable{Index: 4, Term: 2}) {
				t.Fatalf("seed %d: final Stable %v, want (4, 2)", seed, st[len(st)-1])
			}
			s, _ := r.crashAndReopen()
			mustCheck(t, s, oracle(ents(1, 3, 1)).append(ents(3, 5, 2)))
		})
	}
}

// TestManagerTruncatePrefix: a TruncatePrefix is performed in order with
// the appends around it (sent in one batch or one at a time), and what it
// dropped stays dropped after a crash while what follows it survives.
func TestManagerTruncatePrefix(t *testing.T) {
	seed := testseed.For(t)
	for _, st := range mgrStorages {
		for _, oneBatch := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/one-batch=%v", st.name, oneBatch), func(t *testing.T) {
				// Batches of at most 10 entries: the writer merges appends.
				r := newMgrRigOn(t, seed, sim.HostConfig{}, st.open, func(c *Config) { c.MaxBatchEntries = 10 })
				step := func(what string, msg any, cond func() bool) {
					r.send(msg)
					if !oneBatch {
						r.runUntil(what, cond)
					}
				}
				// 4 KiB segments hold a few dozen entries each: 400
				// entries appended 10 at a time span several, so whole
				// segments can go.
				appendRange := func(lo, hi uint64) {
					for i := lo; i < hi; i += 10 {
						es := ents(i, i+10, 1)
						for _, e := range es {
							e.Data = append(e.Data, make([]byte, 100)...)
						}
						r.send(Append{Entries: es})
					}
				}
				appendRange(1, 301)
				if !oneBatch {
					r.runUntil("Stable(300, 1)", r.lastStableIs(300, 1))
				}
				step("compaction", TruncatePrefix{First: 250}, func() bool { return r.log.FirstIndex() > 1 })
				appendRange(301, 401)
				r.runUntil("Stable(400, 1)", r.lastStableIs(400, 1))
				r.settle()
				first := r.log.FirstIndex()
				if first <= 1 || first > 250 {
					t.Fatalf("seed %d: first index %d after TruncatePrefix(250), want in (1, 250]", seed, first)
				}
				s, _ := r.crashAndReopen()
				if got := s.FirstIndex(); got != first {
					t.Fatalf("seed %d: first index %d after a crash, %d before", seed, got, first)
				}
				if _, err := s.Entries(first-1, first, 1<<20); !errors.Is(err, ErrCompacted) {
					t.Fatalf("seed %d: entry %d read after compaction: err %v, want ErrCompacted", seed, first-1, err)
				}
				got, err := s.Entries(first, 401, 1<<30)
				if err != nil || uint64(len(got)) != 401-first || got[len(got)-1].Index != 400 {
					t.Fatalf("seed %d: entries [%d, 401) after a crash: %d, err %v", seed, first, len(got), err)
				}
			})
		}
	}
}

func TestManagerHardState(t *testing.T) {
	seed := testseed.For(t)
	r := newMgrRig(t, seed, sim.HostConfig{TornCrash: true}, nil)
	isSaved := func(want *raftpb.HardState) func(any) bool {
		return func(m any) bool {
			hs, ok := m.(HardStateSaved)
			return ok && proto.Equal(hs.HardState, want)
		}
	}
	r.send(SaveHardState{HardState: hs1})
	r.runUntil("HardStateSaved(hs1)", r.got(isSaved(hs1)))
	// Saves and appends mixed in one batch: the last save is reported.
	r.send(Append{Entries: ents(1, 4, 4)})
	r.send(SaveHardState{HardState: hs2})
	r.send(Append{Entries: ents(4, 6, 4)})
	r.send(SaveHardState{HardState: hs3})
	r.runUntil("HardStateSaved(hs3)", r.got(isSaved(hs3)))
	r.runUntil("Stable(5, 4)", r.lastStableIs(5, 4))
	r.settle()
	s, hs := r.crashAndReopen()
	if !proto.Equal(hs, hs3) {
		t.Fatalf("seed %d: after crash the meta holds %v, want %v", seed, hs, hs3)
	}
	mustCheck(t, s, ents(1, 6, 4))
}

func TestManagerSyncFailure(t *testing.T) {
	seed := testseed.For(t)
	for _, st := range mgrStorages {
		t.Run(st.name, func(t *testing.T) { runManagerSyncFailure(t, seed, st.open) })
	}
}

func runManagerSyncFailure(t *testing.T, seed uint64, open diskOpener) {
	r := newMgrRigOn(t, seed, sim.HostConfig{}, open, nil)
	r.send(Append{Entries: ents(1, 3, 1)})
	r.runUntil("Stable(2, 1)", r.lastStableIs(2, 1))
	r.h.Disk().SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && isLogFile(name) {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	// A batch in flight and more queued behind it when it fails.
	for i := uint64(3); i <= 50; i++ {
		r.send(Append{Entries: []*raftpb.Entry{ent(i, 1)}})
	}
	r.send(SaveHardState{HardState: hs1})
	r.runUntil("Failed", r.got(isFailed))
	before := len(r.probe.msgs)
	// Later operations are ignored, even once the disk is healthy again.
	r.h.Disk().SetInjector(nil)
	r.send(Append{Entries: ents(51, 53, 1)})
	r.send(TruncateSuffix{From: 2})
	r.send(SaveHardState{HardState: hs2})
	r.settle()
	if len(r.probe.msgs) != before {
		t.Fatalf("seed %d: the failed manager kept answering: %v", seed, r.probe.msgs[before:])
	}
	r.send(Close{})
	r.runUntil("Closed", r.got(isClosed))
	r.send(Close{}) // a second Close gets nothing more
	r.settle()
	if n := r.count(isFailed); n != 1 {
		t.Fatalf("seed %d: %d Failed messages, want 1", seed, n)
	}
	if n := r.count(isClosed); n != 1 {
		t.Fatalf("seed %d: %d Closed messages, want 1", seed, n)
	}
	var failed Failed
	for _, m := range r.probe.msgs {
		if f, ok := m.(Failed); ok {
			failed = f
		}
	}
	if !errors.Is(failed.Err, syscall.EIO) {
		t.Fatalf("seed %d: Failed.Err = %v, want EIO", seed, failed.Err)
	}
	if st := r.stables(); st[len(st)-1] != (Stable{Index: 2, Term: 1}) {
		t.Fatalf("seed %d: Stable %v after the failure", seed, st[len(st)-1])
	}
	if _, err := r.log.Term(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("seed %d: storage not closed after Closed: Term err %v", seed, err)
	}
	// What was reported durable is.
	s, hs := r.crashAndReopen()
	if s.LastIndex() < 2 {
		t.Fatalf("seed %d: reported durable up to 2, disk holds %d", seed, s.LastIndex())
	}
	if !proto.Equal(hs, &raftpb.HardState{}) {
		t.Fatalf("seed %d: hard state %v saved though its batch never ran", seed, hs)
	}
}

// TestManagerCloseWhileFailing sends Close while the failing batch is
// still in flight: the Failed report comes first, then Closed.
func TestManagerCloseWhileFailing(t *testing.T) {
	seed := testseed.For(t)
	r := newMgrRig(t, seed, sim.HostConfig{}, nil)
	r.h.Disk().SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && isLogFile(name) {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	r.send(Append{Entries: ents(1, 3, 1)})
	r.send(Append{Entries: ents(3, 4, 1)})
	r.send(Close{})
	r.runUntil("Closed", r.got(isClosed))
	r.settle()
	if len(r.probe.msgs) != 2 || !isFailed(r.probe.msgs[0]) || !isClosed(r.probe.msgs[1]) {
		t.Fatalf("seed %d: got %v, want Failed then Closed", seed, r.probe.msgs)
	}
}

func TestManagerNoSpace(t *testing.T) {
	seed := testseed.For(t)
	for _, st := range mgrStorages {
		t.Run(st.name, func(t *testing.T) { runManagerNoSpace(t, seed, st.open) })
	}
}

func runManagerNoSpace(t *testing.T, seed uint64, open diskOpener) {
	r := newMgrRigOn(t, seed, sim.HostConfig{}, open, nil)
	r.h.Disk().SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpWrite && isLogFile(name) {
			return vfs.ErrnoError(op, name, syscall.ENOSPC)
		}
		return nil
	})
	r.send(SaveHardState{HardState: hs1}) // the meta file still has room
	r.send(Append{Entries: ents(1, 3, 1)})
	r.runUntil("Failed", r.got(isFailed))
	r.settle()
	for _, m := range r.probe.msgs {
		if f, ok := m.(Failed); ok && !errors.Is(f.Err, syscall.ENOSPC) {
			t.Fatalf("seed %d: Failed.Err = %v, want ENOSPC", seed, f.Err)
		}
	}
	if n := r.count(isFailed); n != 1 {
		t.Fatalf("seed %d: %d Failed messages, want 1", seed, n)
	}
	for _, st := range r.stables() {
		if st.Index != 0 {
			t.Fatalf("seed %d: %v reported though nothing could be written", seed, st)
		}
	}
}

func TestManagerCloseFlushes(t *testing.T) {
	seed := testseed.For(t)
	r := newMgrRig(t, seed, sim.HostConfig{TornCrash: true}, func(c *Config) { c.MaxBatchEntries = 7 })
	for i := uint64(1); i <= 100; i++ {
		r.send(Append{Entries: []*raftpb.Entry{ent(i, 2)}})
	}
	r.send(SaveHardState{HardState: hs2})
	r.send(Close{})
	r.send(Append{Entries: ents(101, 103, 2)}) // after Close: ignored
	r.runUntil("Closed", r.got(isClosed))
	r.settle()
	msgs := r.probe.msgs
	if !isClosed(msgs[len(msgs)-1]) || r.count(isClosed) != 1 {
		t.Fatalf("seed %d: Closed is not the single last message: %s", seed, r.describe())
	}
	if st := r.stables(); st[len(st)-1] != (Stable{Index: 100, Term: 2}) {
		t.Fatalf("seed %d: last Stable %v before Closed, want (100, 2)", seed, st[len(st)-1])
	}
	if r.count(func(m any) bool { _, ok := m.(HardStateSaved); return ok }) != 1 {
		t.Fatalf("seed %d: HardStateSaved missing before Closed", seed)
	}
	if _, err := r.log.Entries(1, 2, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("seed %d: storage still open after Closed: %v", seed, err)
	}
	s, hs := r.crashAndReopen()
	mustCheck(t, s, ents(1, 101, 2))
	if !proto.Equal(hs, hs2) {
		t.Fatalf("seed %d: meta %v after Close and crash, want %v", seed, hs, hs2)
	}
}
