package logmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

const walDir = "/data/wal"

func openTestWAL(t *testing.T, fsys vfs.FS, segSize int64) *WAL {
	t.Helper()
	return openTestWALOpts(t, fsys, WALOptions{SegmentSize: segSize})
}

// openTestWALOpts opens the WAL in walDir with opts (and a quiet logger).
func openTestWALOpts(t *testing.T, fsys vfs.FS, opts WALOptions) *WAL {
	t.Helper()
	opts.Logger = quietLogger
	w, err := OpenWAL(fsys, walDir, opts)
	if err != nil {
		t.Fatalf("OpenWAL: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func mustModel(t *testing.T, s LogStorage, m logModel, exact bool) {
	t.Helper()
	if err := m.check(s, exact); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// walFiles lists the files in the WAL directory.
func walFiles(t *testing.T, fsys vfs.FS) []string {
	t.Helper()
	names, err := fsys.List(walDir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestLogStorageCompaction is the contract of TruncatePrefix and Reset,
// for every implementation.
func TestLogStorageCompaction(t *testing.T) {
	for _, k := range storageKinds() {
		t.Run(k.name, func(t *testing.T) {
			exact := !strings.HasPrefix(k.name, "wal")
			reopen := func(s LogStorage) LogStorage {
				if k.reopen == nil {
					return s
				}
				return k.reopen(t, s)
			}
			s := k.open(t)
			m := newModel()
			// Entries with some data, so that WAL segments roll.
			mk := func(lo, hi, term uint64) []*raftpb.Entry {
				es := ents(lo, hi, term)
				for _, e := range es {
					e.Data = append(e.Data, make([]byte, 300)...)
				}
				return es
			}
			es := mk(1, 61, 1)
			mustAppend(t, s, es)
			m = m.appended(es)
			must(t, s.TruncatePrefix(0))
			must(t, s.TruncatePrefix(1))
			mustModel(t, s, m, exact)
			must(t, s.TruncatePrefix(20))
			m = m.compacted(20)
			mustModel(t, s, m, exact)
			if first := s.FirstIndex(); first > 20 || (exact && first != 20) {
				t.Fatalf("FirstIndex after TruncatePrefix(20) = %d", first)
			}
			before := s.FirstIndex()
			must(t, s.TruncatePrefix(10)) // behind: no-op
			if got := s.FirstIndex(); got != before {
				t.Fatalf("TruncatePrefix(10) moved FirstIndex from %d to %d", before, got)
			}
			if err := s.TruncatePrefix(62); err == nil {
				t.Fatal("TruncatePrefix past LastIndex()+1 succeeded")
			}
			if err := s.TruncateSuffix(s.FirstIndex() - 1); err == nil {
				t.Fatalf("TruncateSuffix(%d) before FirstIndex %d succeeded", s.FirstIndex()-1, s.FirstIndex())
			}
			s = reopen(s)
			mustModel(t, s, m, exact)
			if got := s.FirstIndex(); got != before {
				t.Fatalf("FirstIndex after reopen = %d, was %d", got, before)
			}
			// Truncate back to the compaction point, append, compact all.
			must(t, s.TruncateSuffix(20))
			m = m.truncated(20)
			es = mk(20, 41, 2)
			mustAppend(t, s, es)
			m = m.appended(es)
			mustModel(t, s, m, exact)
			must(t, s.TruncatePrefix(41))
			m = m.compacted(41)
			mustModel(t, s, m, exact)
			s = reopen(s)
			mustModel(t, s, m, exact)
			// Reset ahead of the log, then behind it.
			for _, c := range []struct{ next, term uint64 }{{100, 7}, {50, 9}, {50, 10}, {1, 0}} {
				must(t, s.Reset(c.next, c.term))
				m = m.reset(c.next, c.term)
				mustModel(t, s, m, true)
				if err := s.Append(mk(c.next+1, c.next+2, c.term)); err == nil {
					t.Fatalf("Append after Reset(%d) at %d succeeded", c.next, c.next+1)
				}
				es = mk(c.next, c.next+15, c.term+1)
				mustAppend(t, s, es)
				m = m.appended(es)
				s = reopen(s)
				mustModel(t, s, m, exact)
			}
			if err := s.Reset(0, 1); err == nil {
				t.Fatal("Reset(0) succeeded")
			}
			must(t, s.Close())
			if err := s.TruncatePrefix(2); !errors.Is(err, ErrClosed) {
				t.Errorf("TruncatePrefix after Close: %v, want ErrClosed", err)
			}
			if err := s.Reset(2, 1); !errors.Is(err, ErrClosed) {
				t.Errorf("Reset after Close: %v, want ErrClosed", err)
			}
		})
	}
}

// TestStorageDifferentialCompaction drives every disk implementation and a
// MemoryStorage with the same random operations — appends, suffix and
// prefix truncations, resets, syncs, reopens — comparing them after every
// step, and both with the model. The WAL runs with 4 KiB segments (and
// batches bigger than that), so that segments roll, are superseded and
// are dropped all the time.
func TestStorageDifferentialCompaction(t *testing.T) {
	seed := testseed.For(t)
	for ki, k := range storageKinds() {
		if k.reopen == nil {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			steps := 1500
			if strings.HasSuffix(k.name, "-os") {
				steps = 200
			}
			r := rand.New(rand.NewPCG(seed, uint64(ki)))
			runDifferential(t, seed, r, k, steps)
		})
	}
}

func runDifferential(t *testing.T, seed uint64, r *rand.Rand, k storageKind, steps int) {
	exact := !strings.HasPrefix(k.name, "wal")
	s, mem := k.open(t), NewMemoryStorage()
	m := newModel()
	term := uint64(1)
	for step := range steps {
		var what string
		both := func(f func(LogStorage) error) {
			t.Helper()
			if err := f(mem); err != nil {
				t.Fatalf("seed %d step %d: %s on memory: %v", seed, step, what, err)
			}
			if err := f(s); err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
			}
		}
		last := m.last()
		// Truncations keep to what every implementation still holds.
		lowest := max(m.compact, m.start)
		switch n := r.IntN(100); {
		case n < 50:
			count := 1 + r.IntN(8)
			if r.IntN(20) == 0 {
				count = 20 + r.IntN(40) // bigger than a segment
			}
			es := randEnts(r, last+1, count, term)
			what = "append " + summary(es)
			both(func(s LogStorage) error { return s.Append(es) })
			m = m.appended(es)
		case n < 65 && lowest <= last:
			from := lowest + r.Uint64N(last-lowest+2)
			if r.IntN(3) == 0 { // often far back, across segments
				from = lowest + r.Uint64N(min(last-lowest+2, 5))
			}
			what = fmt.Sprint("truncate suffix from ", from)
			both(func(s LogStorage) error { return s.TruncateSuffix(from) })
			m = m.truncated(from)
			term++
		case n < 75:
			first := m.start + r.Uint64N(last-m.start+2)
			what = fmt.Sprint("truncate prefix to ", first)
			both(func(s LogStorage) error { return s.TruncatePrefix(first) })
			m = m.compacted(first)
		case n < 78:
			next := max(1, int64(last)+1+int64(r.IntN(60))-20)
			term++
			what = fmt.Sprint("reset to ", next)
			both(func(s LogStorage) error { return s.Reset(uint64(next), term) })
			m = m.reset(uint64(next), term)
		case n < 85:
			what = "bad append"
			if s.Append(randEnts(r, last+2+r.Uint64N(3), 1, term)) == nil {
				t.Fatalf("seed %d step %d: append past the end succeeded", seed, step)
			}
		case n < 93:
			what = "sync"
			both(func(s LogStorage) error { return s.Sync() })
		default:
			what = "reopen"
			s = k.reopen(t, s)
		}
		if err := m.check(mem, true); err != nil {
			t.Fatalf("seed %d step %d (%s): memory: %v", seed, step, what, err)
		}
		if err := m.check(s, exact); err != nil {
			t.Fatalf("seed %d step %d (%s): %v", seed, step, what, err)
		}
		if err := m.checkRange(r, s); err != nil {
			t.Fatalf("seed %d step %d (%s): %v", seed, step, what, err)
		}
	}
}

// TestWALSegments checks the files: names by first index, rolls, a batch
// bigger than a segment, a truncation across segments, prefix truncation
// and reset, and which freed files are kept for reuse (the biggest two)
// and reused.
func TestWALSegments(t *testing.T) {
	fsys := vfs.NewMem()
	w := openTestWAL(t, fsys, 4<<10)
	if got := walFiles(t, fsys); !slices.Equal(got, []string{"0000000000000001.wal"}) {
		t.Fatalf("new WAL: files %v", got)
	}
	big := func(lo, hi, term uint64, size int) []*raftpb.Entry {
		es := ents(lo, hi, term)
		for _, e := range es {
			e.Data = make([]byte, size)
		}
		return es
	}
	m := newModel()
	app := func(es []*raftpb.Entry) {
		t.Helper()
		mustAppend(t, w, es)
		m = m.appended(es)
	}
	for i := uint64(1); i <= 30; i += 3 {
		app(big(i, i+3, 1, 400)) // ~1.3 KiB per batch: 3 batches a segment
	}
	want := []string{"0000000000000001.wal", "000000000000000a.wal", "0000000000000013.wal", "000000000000001c.wal"}
	if got := walFiles(t, fsys); !slices.Equal(got, want) {
		t.Fatalf("after 30 entries: files %v, want %v", got, want)
	}
	app(big(31, 32, 1, 10000)) // its own segment, 12 KiB
	rep, err := InspectWAL(fsys, walDir, nil)
	must(t, err)
	if s := rep.Segments[len(rep.Segments)-1]; s.Name != "000000000000001f.wal" || s.Size != 12<<10 {
		t.Fatalf("big batch: last segment %+v", s)
	}
	app(big(32, 33, 1, 10))
	mustModel(t, w, m, true)
	// Truncate back into the second segment: the later ones go, the
	// biggest two kept for reuse (1c's 4 KiB and 1f's 12 KiB; 13's 4 KiB
	// was evicted by 1f's).
	must(t, w.TruncateSuffix(12))
	m = m.truncated(12)
	want = []string{"0000000000000001.wal", "000000000000000a.wal", "000000000000000c.wal", "recycle-1.wal.tmp", "recycle-2.wal.tmp"}
	if got := walFiles(t, fsys); !slices.Equal(got, want) {
		t.Fatalf("after truncating at 12: files %v, want %v", got, want)
	}
	// Truncate within the last segment: a record, no new file.
	app(big(12, 14, 2, 10))
	must(t, w.TruncateSuffix(13))
	m = m.truncated(13)
	if got := walFiles(t, fsys); !slices.Equal(got, want) {
		t.Fatalf("after truncating at 13: files %v, want %v", got, want)
	}
	mustModel(t, w, m, true)
	// Compact: the first segment (1..9) goes when first >= 10, removed:
	// the recycled files are at least as big.
	must(t, w.TruncatePrefix(9))
	if w.FirstIndex() != 1 {
		t.Fatalf("TruncatePrefix(9) dropped the first segment (FirstIndex %d)", w.FirstIndex())
	}
	must(t, w.TruncatePrefix(11))
	m = m.compacted(11)
	if w.FirstIndex() != 10 {
		t.Fatalf("FirstIndex after TruncatePrefix(11) = %d, want 10", w.FirstIndex())
	}
	mustModel(t, w, m, false)
	if got := walFiles(t, fsys); !slices.Equal(got, want[1:]) {
		t.Fatalf("after compaction: files %v, want %v", got, want[1:])
	}
	// Reset: one segment at next, in the smallest recycled file that
	// fits (recycle-1, 4 KiB); of the two it supersedes, a is kept and c
	// removed.
	if w.reuses != 0 {
		t.Fatalf("%d segments created in recycled files before the reset", w.reuses)
	}
	must(t, w.Reset(500, 3))
	m = m.reset(500, 3)
	if got, want := walFiles(t, fsys), []string{"00000000000001f4.wal", "recycle-2.wal.tmp", "recycle-3.wal.tmp"}; !slices.Equal(got, want) {
		t.Fatalf("after reset: files %v, want %v", got, want)
	}
	if w.reuses != 1 || w.active().size != 4<<10 {
		t.Fatalf("after reset: %d reuses, the segment of %d bytes", w.reuses, w.active().size)
	}
	mustModel(t, w, m, true)
	must(t, w.Sync())
	must(t, w.Close())
	w = openTestWAL(t, fsys, 4<<10)
	mustModel(t, w, m, true)
	if len(w.recycled) != 2 {
		t.Fatalf("reopened with %d recycled files, want 2", len(w.recycled))
	}
}

// TestWALDeadSegmentsRecovered fails the removal of the segments a
// truncation supersedes: the WAL fails, and on reopen they are dead (the
// new segment supersedes them), and removed.
func TestWALDeadSegmentsRecovered(t *testing.T) {
	for _, c := range []struct {
		op  vfs.Op
		nth int
	}{{vfs.OpRemove, 1}, {vfs.OpSyncDir, 1}, {vfs.OpSyncDir, 2}} {
		t.Run(fmt.Sprint(c.op, c.nth), func(t *testing.T) {
			fsys := vfs.NewMem()
			w := openTestWAL(t, fsys, 4<<10)
			m := newModel()
			for i := uint64(1); i <= 40; i += 4 {
				es := ents(i, i+4, 1)
				for _, e := range es {
					e.Data = make([]byte, 300)
				}
				mustAppend(t, w, es)
				m = m.appended(es)
			}
			must(t, w.Sync())
			seen := 0
			fsys.SetInjector(func(op vfs.Op, name string) error {
				if op == c.op {
					if seen++; seen == c.nth {
						fsys.Crash()
						return vfs.ErrnoError(op, name, syscall.EIO)
					}
				}
				return nil
			})
			if err := w.TruncateSuffix(5); err == nil {
				t.Fatal("TruncateSuffix succeeded through a crash")
			}
			fsys.SetInjector(nil)
			w.Close()
			w = openTestWAL(t, fsys, 4<<10)
			// A crash before the new segment's directory sync loses it.
			if matchState(w, []logModel{m, m.truncated(5)}) < 0 {
				t.Fatalf("recovered log %d..%d matches neither state", w.FirstIndex(), w.LastIndex())
			}
			rep, err := InspectWAL(fsys, walDir, nil)
			must(t, err)
			for _, s := range rep.Segments {
				if !s.Live {
					t.Errorf("dead segment %s left after open", s.Name)
				}
			}
		})
	}
}

// TestPosIndex compares the chunked index with a slice.
func TestPosIndex(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 0))
	var x posIndex
	var model []walPos
	next := uint32(0)
	for step := range 3000 {
		switch n := r.IntN(10); {
		case n < 6:
			ps := make([]walPos, r.IntN(3*walIndexChunk/2))
			for i := range ps {
				next++
				ps[i] = walPos{off: next, term: uint64(step)}
			}
			x.append(ps...)
			model = append(model, ps...)
		case n < 8 && len(model) > 0:
			k := r.IntN(len(model) + 1)
			x.truncate(k)
			model = model[:k]
		case len(model) > 0:
			k := r.IntN(len(model) + 1)
			x.dropFront(k)
			model = model[k:]
		}
		if x.len() != len(model) {
			t.Fatalf("seed %d step %d: len %d, want %d", seed, step, x.len(), len(model))
		}
		for _, i := range []int{0, len(model) / 2, len(model) - 1, r.IntN(len(model) + 1)} {
			if i >= 0 && i < len(model) && x.at(i) != model[i] {
				t.Fatalf("seed %d step %d: at(%d) = %v, want %v", seed, step, i, x.at(i), model[i])
			}
		}
		if len(x.chunks) > (x.start+x.n)/walIndexChunk+3 {
			t.Fatalf("seed %d step %d: %d chunks for %d entries", seed, step, len(x.chunks), x.n)
		}
	}
}

// TestWALBackgroundSpare: with background preparation, the spare is
// started once the writer is an eighth into the last segment, rolls take
// it, a Close while the preparer is pacing itself (or working) does not
// hang, recycled files take the spare's place (an unfinished spare is
// stopped, and none is started while a recycled file will do), and
// nothing but segments and recycled files is left behind.
func TestWALBackgroundSpare(t *testing.T) {
	for _, fsys := range []vfs.FS{vfs.OS, vfs.NewMem()} {
		dir := walDir
		if fsys == vfs.OS {
			dir = t.TempDir()
		}
		const size = 64 << 10
		open := func() *WAL {
			w, err := OpenWAL(fsys, dir, WALOptions{SegmentSize: size, Prepare: PrepareBackground, Logger: quietLogger})
			must(t, err)
			return w
		}
		w := open()
		m := newModel()
		app := func(n uint64) {
			t.Helper()
			for i := m.last() + 1; i <= n; i += 6 {
				es := ents(i, i+6, 1)
				for _, e := range es {
					e.Data = append(e.Data, make([]byte, 100)...)
				}
				mustAppend(t, w, es)
				m = m.appended(es)
				if i%60 == 1 {
					must(t, w.Sync())
				}
			}
		}
		app(6)
		if w.spare != nil {
			t.Fatal("a spare started before the writer is an eighth into the segment")
		}
		app(120) // ~13 KiB
		if w.spare == nil {
			t.Fatal("no spare being prepared an eighth into the segment")
		}
		must(t, w.Close()) // the preparer is waiting for progress
		w = open()
		app(600)
		if len(w.segs) < 2 || w.reuses != 0 {
			t.Fatalf("%d segments, %d reuses: the appends should have rolled, into spares", len(w.segs), w.reuses)
		}
		must(t, w.TruncateSuffix(300)) // back into the first segment
		m = m.truncated(300)
		if len(w.recycled) == 0 {
			t.Fatal("no segment file recycled")
		}
		sp := w.spare
		if sp != nil {
			select {
			case <-sp.done:
			default:
				t.Fatal("an unfinished spare kept while a recycled file will do")
			}
		}
		app(900) // through the next roll
		if w.spare != sp || w.reuses != 1 {
			t.Fatalf("spare %p (was %p), %d reuses: the roll should have taken a recycled file, and no spare started", w.spare, sp, w.reuses)
		}
		must(t, w.Sync())
		mustModel(t, w, m, true)
		must(t, w.Close())
		names, err := fsys.List(dir)
		must(t, err)
		segs := 0
		for _, n := range names {
			if _, ok := parseSegName(n); ok {
				segs++
			} else if _, ok := parseRecycleName(n); !ok {
				t.Errorf("%s left in the WAL directory after Close", n)
			}
		}
		if segs < 2 {
			t.Errorf("files %v: want the first segment and those from 300 on", names)
		}
		w = open()
		mustModel(t, w, m, true)
		must(t, w.Close())
	}
}

// TestWALReadsSpans: Entries reads a run of entries of one segment with
// one read, across the batch records between them; entries a truncation
// removed are skipped (a second read).
func TestWALReadsSpans(t *testing.T) {
	fsys := vfs.NewMem()
	w := openTestWAL(t, fsys, 64<<10)
	defer w.Close()
	m := newModel()
	for lo := uint64(1); lo < 40; lo += 10 {
		mustAppend(t, w, ents(lo, lo+10, 1))
		m = m.appended(ents(lo, lo+10, 1))
	}
	read := func(want int) {
		t.Helper()
		reads := 0
		fsys.SetObserver(func(op vfs.Op, name string, n int) {
			if op == vfs.OpRead {
				reads++
			}
		})
		es, err := w.Entries(1, m.last()+1, ^uint64(0))
		fsys.SetObserver(nil)
		must(t, err)
		if uint64(len(es)) != m.last() || reads != want {
			t.Fatalf("%d entries in %d reads, want %d in %d", len(es), reads, m.last(), want)
		}
	}
	read(1)
	must(t, w.TruncateSuffix(35))
	m = m.truncated(35)
	mustAppend(t, w, ents(35, 45, 2))
	m = m.appended(ents(35, 45, 2))
	if len(w.segs) != 1 {
		t.Fatalf("%d segments, want 1", len(w.segs))
	}
	read(2)
	mustModel(t, w, m, true)
}

// A small index holds a short chunk: an idle group's log of a few entries
// does not keep a whole chunk (walIndexChunk entries) in memory. The
// chunk grows, entries intact, as entries arrive.
func TestPosIndexStartsSmall(t *testing.T) {
	var x posIndex
	for i := range 20 {
		x.append(walPos{off: uint32(i) * 100, n: 10, term: 1})
	}
	if got := len(x.chunks[0]); got > walIndexFirst {
		t.Fatalf("20 entries hold a chunk of %d entries, want at most %d", got, walIndexFirst)
	}
	for i := 20; i < walIndexChunk+10; i++ {
		x.append(walPos{off: uint32(i) * 100, n: 10, term: 1})
	}
	if len(x.chunks) != 2 || len(x.chunks[0]) != walIndexChunk {
		t.Fatalf("%d entries: %d chunks, the first of %d entries", x.len(), len(x.chunks), len(x.chunks[0]))
	}
	for i := range x.len() {
		if p := x.at(i); p.off != uint32(i)*100 || p.n != 10 || p.term != 1 {
			t.Fatalf("entry %d: %+v", i, p)
		}
	}
}
