package logmgr

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// sameSize is a batch of one entry whose record has the same size for any
// index below 128 and term below 128, so that the records of a segment
// file's two lives line up.
func sameSize(index, term uint64) []*raftpb.Entry {
	return []*raftpb.Entry{{Index: index, Term: term, Data: bytes.Repeat([]byte{byte(index)}, 200)}}
}

// TestWALReusedSegmentHidesOldRecords reuses a segment's file for a new
// segment at the same first index, writes fewer entries than it held,
// with records of the same sizes, so that the old record of the next
// entry follows the new data exactly: after a reopen the log holds the
// new entries only, and carries on.
func TestWALReusedSegmentHidesOldRecords(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) {
			fsys := vfs.NewMem()
			opts := WALOptions{SegmentSize: 16 << 10, Buffered: buffered}
			w := openTestWALOpts(t, fsys, opts)
			m := newModel()
			for i := uint64(1); len(w.segs) < 2; i++ {
				mustAppend(t, w, sameSize(i, 1))
				m = m.appended(sameSize(i, 1))
			}
			if held := w.segs[1].first - 1; held < 10 {
				t.Fatalf("the first segment held %d entries", held)
			}
			must(t, w.TruncatePrefix(w.segs[1].first))
			// Reset to 1: the new segment goes into the first one's file.
			must(t, w.Reset(1, 1))
			m = m.reset(1, 1)
			if w.reuses != 1 || w.active().first != 1 {
				t.Fatalf("%d reuses, last segment at %d", w.reuses, w.active().first)
			}
			for i := uint64(1); i <= 3; i++ {
				mustAppend(t, w, sameSize(i, 2))
				m = m.appended(sameSize(i, 2))
			}
			end, name := w.active().end, w.active().path
			must(t, w.Sync())
			must(t, w.Close())
			data, err := fsys.ReadFile(name)
			must(t, err)
			if buffered {
				// The old record of entry 4 is right there, whole.
				if r, ok := decodeWALRecord(data, end, seqFrame(1)); !ok || r.index != 4 {
					t.Fatalf("no old record of entry 4 at the end of the data: %+v, %v", r, ok)
				}
			}
			w = openTestWALOpts(t, fsys, opts)
			if w.Repaired() != 0 {
				t.Errorf("reopen repaired %d bytes", w.Repaired())
			}
			mustModel(t, w, m, true)
			rep, err := InspectWAL(fsys, walDir, nil)
			must(t, err)
			if s := rep.Segments[0]; s.DataBytes != end || s.LastEntry != 3 {
				t.Errorf("InspectWAL: %+v, want %d bytes of data, entries up to 3", s, end)
			}
			mustAppend(t, w, sameSize(4, 3))
			m = m.appended(sameSize(4, 3))
			must(t, w.Sync())
			must(t, w.Close())
			w = openTestWALOpts(t, fsys, opts)
			mustModel(t, w, m, true)
		})
	}
}

// TestWALReuseWaitsForReaders: a reader that pinned a segment before
// TruncatePrefix dropped it reads its entries after the next roll, which
// must not take that file; once the reader lets go, a roll reuses it.
func TestWALReuseWaitsForReaders(t *testing.T) {
	fsys := vfs.NewMem()
	w := openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10, Buffered: true})
	var all []*raftpb.Entry
	next := uint64(1)
	roll := func() {
		t.Helper()
		for segs := len(w.segs); len(w.segs) == segs; next++ {
			mustAppend(t, w, sameSize(next, 1))
			all = append(all, sameSize(next, 1)...)
		}
	}
	roll()
	end := w.segs[1].first
	spans, err := w.pin(1, end, ^uint64(0))
	must(t, err)
	must(t, w.TruncatePrefix(end))
	if len(w.recycled) != 1 {
		t.Fatalf("%d recycled files, want the first segment's", len(w.recycled))
	}
	roll()
	roll()
	got, err := w.readSpans(spans, ^uint64(0))
	unpin(spans)
	if err != nil {
		t.Fatalf("reading the pinned segment: %v", err)
	}
	if err := diffEntries(got, all[:end-1]); err != nil {
		t.Fatalf("reading the pinned segment: %v", err)
	}
	if w.reuses != 0 {
		t.Fatalf("a roll reused the file of a segment a reader holds")
	}
	roll()
	if w.reuses != 1 {
		t.Fatalf("%d reuses once the reader is done, want 1", w.reuses)
	}
}

// TestWALRecycledFilesOnOpen: OpenWAL keeps the recycled files it finds
// (the biggest walMaxRecycled), whatever they hold — here one whose header
// a crash left rewritten for a segment that never got its name — recycles
// dead segments, and the next rolls reuse the files.
func TestWALRecycledFilesOnOpen(t *testing.T) {
	fsys := vfs.NewMem()
	opts := WALOptions{SegmentSize: 4 << 10, Buffered: true}
	w := openTestWALOpts(t, fsys, opts)
	m := newModel()
	for i := uint64(1); i <= 60; i++ {
		mustAppend(t, w, sameSize(i, 1))
		m = m.appended(sameSize(i, 1))
	}
	must(t, w.Sync())
	segs := slices.Clone(w.segs)
	must(t, w.Close())
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	// A crash while a TruncateSuffix far back superseded the last two
	// segments: they are dead on open.
	cut := segs[len(segs)-2].first
	hdr := appendRawRecord(nil, walRecSegment, segHeader{first: cut, prevTerm: 1, seq: 99, version: WALFormatVersion}.marshal())
	must(t, fsys.WriteFile(walDir+"/"+segName(cut), append(hdr, make([]byte, 4<<10-len(hdr))...)))
	m = m.truncated(cut)
	// Leftover recycled files: one with the header of a segment whose
	// creation crashed before its rename (a higher seq than any segment),
	// one small, one big.
	old, err := fsys.ReadFile(segs[0].path)
	must(t, err)
	crashed := slices.Clone(old)
	copy(crashed, appendRawRecord(nil, walRecSegment, segHeader{first: 500, prevTerm: 1, seq: 1000, version: WALFormatVersion}.marshal()))
	must(t, fsys.WriteFile(walDir+"/"+recycleName(7), crashed))
	must(t, fsys.WriteFile(walDir+"/"+recycleName(3), make([]byte, 1<<10)))
	must(t, fsys.WriteFile(walDir+"/"+recycleName(12), bytes.Repeat([]byte{0xa5}, 8<<10)))
	fsys.SyncAll()

	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	var sizes []int64
	for _, rc := range w.recycled {
		sizes = append(sizes, rc.size)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int64{4 << 10, 8 << 10}) || w.recycleNext != 13 {
		t.Fatalf("recycled files of %v bytes, next number %d; want the two biggest, 13", sizes, w.recycleNext)
	}
	rep, err := InspectWAL(fsys, walDir, nil)
	must(t, err)
	for _, s := range rep.Segments {
		if !s.Live {
			t.Errorf("dead segment %s left after open", s.Name)
		}
	}
	if len(rep.Recycled) != 2 {
		t.Errorf("InspectWAL: recycled %v", rep.Recycled)
	}
	// Roll through both: the 4 KiB one first (the smallest that fits),
	// then the 8 KiB one.
	for i := m.last() + 1; w.reuses < 2; i++ {
		mustAppend(t, w, sameSize(i, 2))
		m = m.appended(sameSize(i, 2))
	}
	if s := w.active(); s.size != 8<<10 {
		t.Fatalf("the last segment has %d bytes, want the 8 KiB recycled file", s.size)
	}
	must(t, w.Sync())
	must(t, w.Close())
	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
}

// TestWALRecycleErrors: a failed rename of a freed segment to its recycle
// name fails the WAL (the removal it replaces did too); a recycled file
// that cannot be opened for reuse fails the append that needed it, and
// the WAL stays usable.
func TestWALRecycleErrors(t *testing.T) {
	fill := func(fsys *vfs.MemFS) (*WAL, logModel) {
		w := openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10, Buffered: true})
		m := newModel()
		for i := uint64(1); len(w.segs) < 3; i++ {
			mustAppend(t, w, sameSize(i, 1))
			m = m.appended(sameSize(i, 1))
		}
		return w, m
	}
	fsys := vfs.NewMem()
	w, m := fill(fsys)
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpRename {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	if err := w.TruncatePrefix(w.segs[2].first); !errors.Is(err, syscall.EIO) {
		t.Fatalf("TruncatePrefix with a failing rename: %v", err)
	}
	fsys.SetInjector(nil)
	if err := w.Append(sameSize(m.last()+1, 1)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after the failure: %v, want it to wrap EIO", err)
	}
	w.Close()
	w = openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10})
	mustModel(t, w, m, false)
	w.Close()

	fsys = vfs.NewMem()
	w, m = fill(fsys)
	must(t, w.TruncatePrefix(w.segs[2].first))
	m = m.compacted(w.FirstIndex())
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpOpen && strings.Contains(name, walRecyclePrefix) {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	var err error
	for i := m.last() + 1; err == nil; i++ {
		if err = w.Append(sameSize(i, 1)); err == nil {
			m = m.appended(sameSize(i, 1))
		}
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append needing a recycled file that fails to open: %v", err)
	}
	fsys.SetInjector(nil)
	mustAppend(t, w, sameSize(m.last()+1, 1))
	m = m.appended(sameSize(m.last()+1, 1))
	must(t, w.Sync())
	mustModel(t, w, m, true)
}
