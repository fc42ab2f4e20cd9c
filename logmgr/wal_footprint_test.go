package logmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// batchOf is a batch of n entries from index lo, each with size bytes of
// data.
func batchOf(lo uint64, n, size int, term uint64) []*raftpb.Entry {
	es := ents(lo, lo+uint64(n), term)
	for _, e := range es {
		e.Data = append(e.Data, make([]byte, size)...)
	}
	return es
}

// TestWALSegmentsGrow: the first segment has InitialSegmentSize, each roll
// doubles the size up to SegmentSize, a truncation or a reset keeps the
// last size; sizes survive a reopen; the options are checked.
func TestWALSegmentsGrow(t *testing.T) {
	fsys := vfs.NewMem()
	opts := WALOptions{SegmentSize: 64 << 10, InitialSegmentSize: 4 << 10}
	w := openTestWALOpts(t, fsys, opts)
	m := newModel()
	var sizes []int64
	for len(w.segs) < 7 {
		if n := len(w.segs); len(sizes) < n {
			sizes = append(sizes, w.segs[n-1].size)
		}
		es := batchOf(m.last()+1, 4, 200, 1)
		mustAppend(t, w, es)
		m = m.appended(es)
	}
	sizes = append(sizes, w.active().size)
	if want := []int64{4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10, 64 << 10, 64 << 10}; !slices.Equal(sizes, want) {
		t.Fatalf("segment sizes %v, want %v", sizes, want)
	}
	must(t, w.TruncateSuffix(w.segs[2].first+1))
	m = m.truncated(w.segs[2].first + 1)
	if s := w.active(); s.size != 64<<10 || len(w.segs) != 4 {
		t.Fatalf("after a truncation: %d segments, the last of %d bytes", len(w.segs), s.size)
	}
	must(t, w.Reset(1000, 3))
	m = m.reset(1000, 3)
	if s := w.active(); s.size != 64<<10 {
		t.Fatalf("after a reset: the last segment of %d bytes", s.size)
	}
	es := batchOf(1000, 3, 10, 3)
	mustAppend(t, w, es)
	m = m.appended(es)
	must(t, w.Close())
	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	if s := w.active(); s.size != 64<<10 {
		t.Fatalf("reopened: the last segment of %d bytes", s.size)
	}

	for _, c := range []struct {
		opts WALOptions
		want int64 // initial size, 0: refused
	}{
		{WALOptions{}, DefaultInitialSegmentSize},
		{WALOptions{SegmentSize: 4 << 10}, 4 << 10},
		{WALOptions{SegmentSize: 4 << 10, InitialSegmentSize: 8 << 10}, 0},
		{WALOptions{InitialSegmentSize: MinSegmentSize - 1}, 0},
		{WALOptions{InitialSegmentSize: MinSegmentSize}, MinSegmentSize},
	} {
		c.opts.Logger = quietLogger
		w, err := OpenWAL(vfs.NewMem(), walDir, c.opts)
		if c.want == 0 {
			if err == nil {
				w.Close()
				t.Errorf("options %+v accepted", c.opts)
			}
			continue
		}
		if err != nil {
			t.Errorf("options %+v: %v", c.opts, err)
			continue
		}
		if w.active().size != c.want {
			t.Errorf("options %+v: first segment of %d bytes, want %d", c.opts, w.active().size, c.want)
		}
		w.Close()
	}
}

// TestWALIdleFootprint: a WAL that holds a few entries takes its first
// segment's size of disk (InitialSegmentSize, 1 MiB by default) and no
// spare, with either preparation.
func TestWALIdleFootprint(t *testing.T) {
	for _, prep := range []PrepareMode{PrepareInline, PrepareBackground} {
		fsys := newSmallFS(64 << 20)
		w, err := OpenWAL(fsys, walDir, WALOptions{Prepare: prep, Logger: quietLogger})
		must(t, err)
		for i := uint64(1); i <= 20; i += 4 {
			mustAppend(t, w, batchOf(i, 4, 100, 1))
		}
		must(t, w.Sync())
		if used := fsys.usedBytes(); used != DefaultInitialSegmentSize {
			t.Errorf("prepare %d: %d bytes of disk, want %d", prep, used, DefaultInitialSegmentSize)
		}
		if w.spare != nil {
			t.Errorf("prepare %d: a spare for an idle log", prep)
		}
		must(t, w.Close())
	}
}

// TestWALSmallVolume runs a WAL with the default options on an 8 MiB
// volume: it opens, and with the log compacted as it grows (the newest
// two segments kept) it writes 20 MiB of log through it, its segments
// growing only as far as the volume allows; without compaction it fails
// cleanly (ENOSPC) when the volume is full, and carries on once compacted.
func TestWALSmallVolume(t *testing.T) {
	for _, prep := range []PrepareMode{PrepareInline, PrepareBackground} {
		t.Run(fmt.Sprint("prepare=", prep), func(t *testing.T) {
			fsys := newSmallFS(8 << 20)
			opts := WALOptions{Prepare: prep, Logger: quietLogger}
			w, err := OpenWAL(fsys, walDir, opts)
			must(t, err)
			defer func() { w.Close() }()
			m := newModel()
			written, biggest := 0, int64(0)
			for written < 20<<20 {
				es := batchOf(m.last()+1, 64, 200, 1)
				mustAppend(t, w, es)
				m = m.appended(es)
				written += 64 * 200
				if n := len(w.segs); n > 2 {
					must(t, w.TruncatePrefix(w.segs[n-2].first))
					m = m.compacted(w.FirstIndex())
				}
				biggest = max(biggest, w.active().size)
			}
			must(t, w.Sync())
			mustModel(t, w, m, false)
			t.Logf("biggest segment %d bytes; %d segments reused; %d bytes in use", biggest, w.reuses, fsys.usedBytes())
			if biggest < 2<<20 || w.reuses == 0 {
				t.Errorf("segments up to %d bytes, %d reused: the log should have grown and reused files", biggest, w.reuses)
			}
			must(t, w.Close())
			w, err = OpenWAL(fsys, walDir, opts)
			must(t, err)
			mustModel(t, w, m, false)

			// Without compaction the volume fills: ENOSPC, the WAL
			// usable.
			for err == nil {
				es := batchOf(m.last()+1, 64, 200, 1)
				if err = w.Append(es); err == nil {
					m = m.appended(es)
				}
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("append on a full volume: %v, want ENOSPC", err)
			}
			must(t, w.TruncatePrefix(w.active().first))
			m = m.compacted(w.FirstIndex())
			es := batchOf(m.last()+1, 64, 200, 1)
			mustAppend(t, w, es)
			m = m.appended(es)
			must(t, w.Sync())
			mustModel(t, w, m, false)
		})
	}
}

// TestWALOpenFilesBounded: a log of hundreds of segments, read all over,
// keeps at most walReadHandles segment files open besides the last one's
// two handles, while no reader holds more; segments that readers hold
// stay open until released; OpenWAL has a few files open at once; Close
// leaves none.
func TestWALOpenFilesBounded(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 0))
	fsys := &countingFS{MemFS: vfs.NewMem()}
	opts := WALOptions{SegmentSize: 4 << 10, Logger: quietLogger}
	w, err := OpenWAL(fsys, walDir, opts)
	must(t, err)
	m := newModel()
	for len(w.segs) < 300 {
		es := batchOf(m.last()+1, 4, 300, 1)
		mustAppend(t, w, es)
		m = m.appended(es)
	}
	must(t, w.Sync())
	const bound = 2 + walReadHandles
	check := func(what string, limit int) {
		t.Helper()
		if n := fsys.openNow(); n > limit {
			t.Fatalf("seed %d: %s: %d files open, want at most %d", seed, what, n, limit)
		}
	}
	check("after the appends", bound) // the segments just left stay open a while
	for range 500 {
		lo := w.FirstIndex() + r.Uint64N(m.last()-w.FirstIndex()+1)
		hi := min(m.last()+1, lo+1+r.Uint64N(40))
		es, err := w.Entries(lo, hi, ^uint64(0))
		must(t, err)
		if err := diffEntries(es, m.ents[lo-m.start:hi-m.start]); err != nil {
			t.Fatalf("seed %d: Entries(%d, %d): %v", seed, lo, hi, err)
		}
		check("reading", bound)
	}
	// Readers holding ten segments keep them open, whatever the bound;
	// half of them have read already. Half of them leave the log (two of
	// those read already, three not): they stay readable.
	var pinned [][]readSpan
	for i := range 10 {
		s := w.segs[20*i]
		spans, err := w.pin(s.first, s.first+1, ^uint64(0))
		must(t, err)
		if i%2 == 0 {
			_, err = w.readSpans(spans, ^uint64(0))
			must(t, err)
		}
		pinned = append(pinned, spans)
	}
	if n := fsys.openNow(); n < 5 {
		t.Fatalf("%d files open while readers hold 10 segments, 5 read", n)
	}
	must(t, w.TruncatePrefix(w.segs[100].first))
	for _, spans := range pinned {
		es, err := w.readSpans(spans, ^uint64(0))
		must(t, err)
		if err := diffEntries(es, m.ents[spans[0].index-m.start:][:1]); err != nil {
			t.Fatalf("a held segment: %v", err)
		}
		unpin(spans)
	}
	m = m.compacted(w.FirstIndex())
	_, err = w.Entries(m.last(), m.last()+1, ^uint64(0))
	must(t, err)
	es, err := w.Entries(w.FirstIndex(), w.FirstIndex()+1, ^uint64(0))
	must(t, err)
	if len(es) != 1 {
		t.Fatal("no entry")
	}
	check("after the readers let go", bound)
	must(t, w.Close())
	check("after Close", 0)

	fsys.resetMax()
	w, err = OpenWAL(fsys, walDir, opts)
	must(t, err)
	if n := fsys.maxOpen(); n > 2 {
		t.Errorf("OpenWAL of %d segments had %d files open at once", len(w.segs), n)
	}
	mustModel(t, w, m, false)
	check("reopened and read", bound)
	must(t, w.Close())
	check("after Close", 0)
}

// TestWALReplacedSegmentStaysReadable: a reader holds a segment whose
// file is closed (not read since it was left) when a truncation writes a
// new segment of the same name, which replaces the file: the reader still
// reads the entries it asked for.
func TestWALReplacedSegmentStaysReadable(t *testing.T) {
	fsys := &countingFS{MemFS: vfs.NewMem()}
	w := openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10})
	m := newModel()
	for len(w.segs) < 3+walReadHandles {
		es := batchOf(m.last()+1, 4, 300, 1)
		mustAppend(t, w, es)
		m = m.appended(es)
	}
	s := w.segs[1]
	s.fmu.Lock()
	closed := s.f == nil
	s.fmu.Unlock()
	if !closed {
		t.Fatalf("segment %s is open; want one whose file was closed", s.name)
	}
	spans, err := w.pin(s.first, s.first+3, ^uint64(0))
	must(t, err)
	must(t, w.TruncateSuffix(s.first))
	if w.active().name != s.name {
		t.Fatalf("the new segment is %s, want %s", w.active().name, s.name)
	}
	es, err := w.readSpans(spans, ^uint64(0))
	unpin(spans)
	must(t, err)
	if err := diffEntries(es, m.ents[s.first-1:s.first+2]); err != nil {
		t.Fatalf("the replaced segment: %v", err)
	}
}
