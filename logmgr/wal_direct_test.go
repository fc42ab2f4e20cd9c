package logmgr

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// TestWALDirectAppendIsDurable: with direct writes an append is durable
// when Append returns; buffered, it needs Sync (the crash loses it).
func TestWALDirectAppendIsDurable(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) {
			fsys := vfs.NewMem()
			opts := WALOptions{SegmentSize: 64 << 10, Buffered: buffered}
			w := openTestWALOpts(t, fsys, opts)
			synced := newModel().appended(ents(1, 11, 1))
			mustAppend(t, w, ents(1, 11, 1))
			must(t, w.Sync())
			mustAppend(t, w, ents(11, 14, 1))
			fsys.Crash()
			w.Close()
			w = openTestWALOpts(t, fsys, opts)
			want := synced.appended(ents(11, 14, 1))
			if buffered {
				want = synced
			}
			mustModel(t, w, want, true)
		})
	}
}

// noDirect is a MemFS whose OpenDirect fails as on a file system without
// O_DIRECT.
type noDirect struct{ *vfs.MemFS }

func (noDirect) OpenDirect(name string) (vfs.DirectFile, error) {
	return nil, fmt.Errorf("open %s: %w", name, vfs.ErrDirectUnsupported)
}

// TestWALDirectUnsupportedFallsBack: where the file system refuses direct
// writes, the WAL writes through the page cache and syncs in Sync.
func TestWALDirectUnsupportedFallsBack(t *testing.T) {
	mem := vfs.NewMem()
	fsys := noDirect{mem}
	w := openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10})
	m := newModel()
	for i := uint64(1); i <= 40; i += 4 { // several segments
		es := ents(i, i+4, 1)
		mustAppend(t, w, es)
		must(t, w.Sync())
		m = m.appended(es)
	}
	if w.direct {
		t.Fatal("the WAL still writes directly")
	}
	mustAppend(t, w, ents(41, 43, 1)) // not synced: lost below
	mem.Crash()
	w.Close()
	w = openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10})
	mustModel(t, w, m, true)
}

// TestWALDirectOS appends batches of random sizes with direct writes on
// the real disk (some fit the direct buffers, some do not), reopening now
// and then (so the tail block is read back from the file), truncating now
// and then, and checks every entry before and after a last reopen.
func TestWALDirectOS(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	opts := WALOptions{SegmentSize: 256 << 10, Logger: quietLogger}
	open := func() *WAL {
		w, err := OpenWAL(vfs.OS, dir, opts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return w
	}
	w := open()
	if !w.direct {
		t.Skip("this file system takes no direct writes")
	}
	m := newModel()
	term := uint64(1)
	for i := range 300 {
		switch n := r.IntN(20); {
		case n == 0:
			w.Close()
			w = open()
		case n == 1 && m.last() > 10:
			from := m.last() - uint64(r.IntN(5))
			term++
			must(t, w.TruncateSuffix(from))
			m = m.truncated(from)
		default:
			es := randEnts(r, m.last()+1, 1+r.IntN(40), term)
			for _, e := range es {
				e.Data = make([]byte, r.IntN(3000))
				for j := range e.Data {
					e.Data[j] = byte(r.Uint32())
				}
			}
			mustAppend(t, w, es)
			m = m.appended(es)
		}
		if i%50 == 0 {
			must(t, w.Sync())
		}
	}
	// Reads before the reopen use the positions the appends recorded.
	if err := m.check(w, true); err != nil {
		t.Fatalf("seed %d: before reopen: %v", seed, err)
	}
	w.Close()
	w = open()
	defer w.Close()
	if err := m.check(w, true); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}

// TestWALDirectRollWithShortTail: a batch encoded in place behind a tail
// shorter than a segment header, then rolled into a new segment, whose
// header becomes the tail in the same buffer, must be moved out of the
// way first.
func TestWALDirectRollWithShortTail(t *testing.T) {
	fsys := vfs.NewMem()
	opts := WALOptions{SegmentSize: 64 << 10}
	w := openTestWALOpts(t, fsys, opts)
	m := newModel()
	target := int64(opts.SegmentSize - 4096 + 20) // a tail of 20 bytes
	entry := func(size int) *raftpb.Entry {
		return &raftpb.Entry{Index: m.last() + 1, Term: 1, Data: make([]byte, size)}
	}
	for w.active().end < target {
		left := target - w.active().end
		size := 2000
		if left < 3000 {
			// The data length whose record fills exactly what is left.
			for size = 0; batchLen(t, entry(size)) != left; size++ {
				if size > 3000 {
					t.Fatalf("no record of %d bytes", left)
				}
			}
		}
		es := []*raftpb.Entry{entry(size)}
		for i := range es[0].Data {
			es[0].Data[i] = byte(i)
		}
		mustAppend(t, w, es)
		m = m.appended(es)
	}
	if w.dtail != 20 {
		t.Fatalf("tail of %d bytes, want 20", w.dtail)
	}
	es := []*raftpb.Entry{entry(5000)} // does not fit: a new segment
	for i := range es[0].Data {
		es[0].Data[i] = byte(i * 7)
	}
	segs := len(w.segs)
	mustAppend(t, w, es)
	m = m.appended(es)
	if len(w.segs) != segs+1 {
		t.Fatalf("%d segments, want %d", len(w.segs), segs+1)
	}
	mustModel(t, w, m, true)
	w.Close()
	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
}

// batchLen is the size of the batch record of e alone.
func batchLen(t *testing.T, e *raftpb.Entry) int64 {
	b, _, err := appendBatchRecords(nil, nil, []*raftpb.Entry{e}, e.Index, seqFrame(1))
	must(t, err)
	return int64(len(b))
}
