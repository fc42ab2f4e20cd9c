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

// corruptRig is a synced, closed WAL of 40 entries over several 4 KiB
// segments, and where every record is.
type corruptRig struct {
	fs      *vfs.MemFS
	model   logModel
	records []WALRecord // in log order
	segs    []string    // live segment names
	seqs    []uint64    // their sequence numbers
}

func newCorruptRig(t *testing.T) *corruptRig {
	t.Helper()
	c := &corruptRig{fs: vfs.NewMem(), model: newModel()}
	w, err := OpenWAL(c.fs, walDir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger})
	must(t, err)
	for i := uint64(1); i <= 40; i++ {
		e := ent(i, 1)
		e.Data = append(e.Data, bytes.Repeat([]byte{'x'}, 290)...)
		mustAppend(t, w, []*raftpb.Entry{e})
		c.model = c.model.appended([]*raftpb.Entry{e})
	}
	must(t, w.Sync())
	must(t, w.Close())
	rep, err := InspectWAL(c.fs, walDir, func(r WALRecord) { c.records = append(c.records, r) })
	must(t, err)
	for _, s := range rep.Segments {
		c.segs = append(c.segs, s.Name)
		c.seqs = append(c.seqs, s.Seq)
	}
	if len(c.segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v", c.segs)
	}
	return c
}

// entryRecord returns the record of entry index (the rig appends one
// entry per batch, so each batch record holds one).
func (c *corruptRig) entryRecord(t *testing.T, index uint64) WALRecord {
	for _, r := range c.records {
		if r.Type == WALRecordType(walRecBatch) && r.Index == index {
			if r.Entries != 1 {
				t.Fatalf("the record of entry %d holds %d entries", index, r.Entries)
			}
			return r
		}
	}
	t.Fatalf("no record for entry %d", index)
	return WALRecord{}
}

// lastIn returns the index of the last entry of segment name.
func (c *corruptRig) lastIn(name string) uint64 {
	var last uint64
	for _, r := range c.records {
		if r.Segment == name && r.Type == WALRecordType(walRecBatch) {
			last = r.Index + uint64(r.Entries) - 1
		}
	}
	return last
}

// flip XORs the byte at off of segment name with 0x40.
func (c *corruptRig) flip(t *testing.T, name string, off int64) {
	t.Helper()
	p := walDir + "/" + name
	b, err := c.fs.ReadFile(p)
	must(t, err)
	b[off] ^= 0x40
	must(t, c.fs.WriteFile(p, b))
	c.fs.SyncAll()
}

func (c *corruptRig) open() (*WAL, error) {
	return OpenWAL(c.fs, walDir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger})
}

// TestWALMidLogCorruption flips one byte of a record followed by valid
// ones — within its segment or in a later one — at each part of the
// record: OpenWAL and InspectWAL fail with the file and offset.
func TestWALMidLogCorruption(t *testing.T) {
	parts := []struct {
		name string
		at   func(r WALRecord) int64
	}{
		{"length", func(WALRecord) int64 { return 1 }},
		{"crc", func(WALRecord) int64 { return 5 }},
		{"tag", func(WALRecord) int64 { return recTagOff + 2 }},
		{"type", func(WALRecord) int64 { return recTaggedHeader - 1 }},
		{"payload", func(r WALRecord) int64 { return recTaggedHeader + int64(r.Len)/2 }},
		{"payload-last-byte", func(r WALRecord) int64 { return recTaggedHeader + int64(r.Len) - 1 }},
	}
	for _, where := range []string{"mid-segment", "end-of-earlier-segment", "mid-last-segment"} {
		for _, part := range parts {
			t.Run(where+"/"+part.name, func(t *testing.T) {
				c := newCorruptRig(t)
				var index uint64
				switch where {
				case "mid-segment":
					index = c.lastIn(c.segs[0]) - 2
				case "end-of-earlier-segment":
					index = c.lastIn(c.segs[1])
				case "mid-last-segment":
					index = c.model.last() - 1
				}
				r := c.entryRecord(t, index)
				c.flip(t, r.Segment, r.Offset+part.at(r))
				before := slices.Clone(c.fs.Paths())
				_, ierr := InspectWAL(c.fs, walDir, nil)
				w, err := c.open()
				if err == nil {
					w.Close()
					t.Fatalf("OpenWAL succeeded after damaging entry %d", index)
				}
				for _, err := range []error{err, ierr} {
					var ce *WALCorruptError
					if !errors.As(err, &ce) {
						t.Fatalf("error %v is not a *WALCorruptError", err)
					}
					if ce.Segment != walDir+"/"+r.Segment || ce.Offset != r.Offset {
						t.Errorf("error names %s at %d, want %s at %d", ce.Segment, ce.Offset, r.Segment, r.Offset)
					}
					if !strings.Contains(err.Error(), r.Segment) {
						t.Errorf("error %q does not name the file", err)
					}
					next := r.Offset + recTaggedHeader + int64(r.Len)
					if ce.ValidSegment == ce.Segment && (ce.ValidOffset <= r.Offset || ce.ValidOffset > next) {
						t.Errorf("valid record found at %d, want in (%d, %d]", ce.ValidOffset, r.Offset, next)
					}
				}
				if !slices.Equal(c.fs.Paths(), before) {
					t.Errorf("a failed open changed the files: %v, was %v", c.fs.Paths(), before)
				}
			})
		}
	}
}

// TestWALTailCorruption flips a byte in the last record (the tail): the
// record is cut and reported, and the WAL carries on. InspectWAL reports
// the torn tail without changing anything.
func TestWALTailCorruption(t *testing.T) {
	for _, at := range []int64{1, 5, recTagOff, recTaggedHeader - 1, 20, 200} {
		c := newCorruptRig(t)
		last := c.model.last()
		r := c.entryRecord(t, last)
		c.flip(t, r.Segment, r.Offset+at)
		p := walDir + "/" + r.Segment
		raw, _ := c.fs.ReadFile(p)
		rep, err := InspectWAL(c.fs, walDir, nil)
		if err != nil {
			t.Fatalf("flip at %d: InspectWAL: %v", at, err)
		}
		if rep.Torn == nil || rep.Torn.Segment != p || rep.Torn.Offset != r.Offset {
			t.Fatalf("flip at %d: report of the torn tail: %+v", at, rep.Torn)
		}
		if after, _ := c.fs.ReadFile(p); !bytes.Equal(after, raw) {
			t.Fatalf("flip at %d: InspectWAL modified %s", at, p)
		}
		w, err := c.open()
		if err != nil {
			t.Fatalf("flip at %d: %v", at, err)
		}
		if w.Repaired() != rep.Torn.Bytes || w.Repaired() == 0 {
			t.Errorf("flip at %d: Repaired = %d, InspectWAL said %d", at, w.Repaired(), rep.Torn.Bytes)
		}
		m := c.model.truncated(last)
		mustModel(t, w, m, true)
		es := ents(last, last+3, 2)
		mustAppend(t, w, es)
		must(t, w.Sync())
		w.Close()
		w, err = c.open()
		must(t, err)
		if w.Repaired() != 0 {
			t.Errorf("second open repaired %d bytes", w.Repaired())
		}
		mustModel(t, w, m.appended(es), true)
		w.Close()
	}
}

// TestWALDamageAfterZeros: bytes after the end of the data of a version
// 3 segment. Bytes without the segment's tag are not its records (a reused
// file holds such bytes): the data ended cleanly and nothing is repaired.
// A frame with the tag that does not check out, after a run of zeros, is a
// torn tail: its frame is zeroed. A valid record with the tag after zeros
// (a write whose first sectors were lost) is corruption.
func TestWALDamageAfterZeros(t *testing.T) {
	c := newCorruptRig(t)
	last := c.segs[len(c.segs)-1]
	fr := seqFrame(c.seqs[len(c.seqs)-1])
	p := walDir + "/" + last
	b, _ := c.fs.ReadFile(p)
	end := c.records[len(c.records)-1].Offset + recTaggedHeader + int64(c.records[len(c.records)-1].Len)
	put := func(data []byte) {
		t.Helper()
		must(t, c.fs.WriteFile(p, data))
		c.fs.SyncAll()
	}
	reopen := func(what string, repaired int64) {
		t.Helper()
		for i, want := range []int64{repaired, 0} { // the second open finds nothing to repair
			w, err := c.open()
			if err != nil {
				t.Fatalf("%s, open %d: %v", what, i, err)
			}
			if w.Repaired() != want {
				t.Errorf("%s, open %d: Repaired = %d, want %d", what, i, w.Repaired(), want)
			}
			mustModel(t, w, c.model, true)
			w.Close()
		}
	}

	garbage := slices.Clone(b)
	copy(garbage[end+100:], bytes.Repeat([]byte{0xff}, 50))
	other, _, err := appendBatchRecords(nil, nil, ents(c.model.last()+1, c.model.last()+3, 1), c.model.last()+1, seqFrame(c.seqs[0]))
	must(t, err)
	copy(garbage[end+300:], other) // a valid record of another segment
	put(garbage)
	reopen("untagged bytes after zeros", 0)

	rec, _, err := appendBatchRecords(nil, nil, ents(c.model.last()+2, c.model.last()+3, 1), c.model.last()+2, fr)
	must(t, err)
	torn := slices.Clone(b)
	copy(torn[end+100:], rec[:len(rec)-3]) // cut short: not valid
	put(torn)
	reopen("a torn record with the tag after zeros", 100+recTaggedHeader)
	if after, _ := c.fs.ReadFile(p); !bytes.Equal(after[end+100+recTaggedHeader:end+100+int64(len(rec))-3], rec[recTaggedHeader:len(rec)-3]) ||
		lastNonZero(after[:end+100+recTaggedHeader], end) >= 0 {
		t.Errorf("the repair zeroed other bytes than those up to the end of the torn record's frame")
	}

	valid := slices.Clone(b)
	copy(valid[end+512:], rec)
	put(valid)
	var ce *WALCorruptError
	if _, err := c.open(); !errors.As(err, &ce) || ce.Offset != end || ce.ValidOffset != end+512 {
		t.Fatalf("valid record after zeros: err %v, want corruption at %d, valid at %d", err, end, end+512)
	}
}

// TestWALBadHeaders: a damaged header, a header that does not match the
// file name, and inconsistent segments are errors naming the file.
func TestWALBadHeaders(t *testing.T) {
	c := newCorruptRig(t)
	c.flip(t, c.segs[1], 20)
	if _, err := c.open(); err == nil || !strings.Contains(err.Error(), c.segs[1]) || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("damaged header: err %v", err)
	}

	c = newCorruptRig(t)
	b, _ := c.fs.ReadFile(walDir + "/" + c.segs[2])
	must(t, c.fs.WriteFile(walDir+"/"+segName(1000), b))
	c.fs.SyncAll()
	if _, err := c.open(); err == nil || !strings.Contains(err.Error(), "header says first index") {
		t.Fatalf("header/name mismatch: err %v", err)
	}

	// A missing segment in the middle is a gap.
	c = newCorruptRig(t)
	must(t, c.fs.Remove(walDir+"/"+c.segs[1]))
	c.fs.SyncAll()
	if _, err := c.open(); err == nil || !strings.Contains(err.Error(), c.segs[2]) || !strings.Contains(err.Error(), "segment starts at index") {
		t.Fatalf("missing segment: err %v", err)
	}

	// A header from a newer format.
	c = newCorruptRig(t)
	p := walDir + "/" + c.segs[0]
	b, _ = c.fs.ReadFile(p)
	h, err := parseSegHeader(b[recHeader:walHeaderRecordLen])
	must(t, err)
	payload := h.marshal()
	payload[walHdrVersionOff] = WALFormatVersion + 1
	copy(b, appendRawRecord(nil, walRecSegment, payload))
	must(t, c.fs.WriteFile(p, b))
	c.fs.SyncAll()
	if _, err := c.open(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("format version %d", WALFormatVersion+1)) {
		t.Fatalf("newer format: err %v", err)
	}
}

// injectOn makes the n-th (from 1) operation op on a WAL file fail with
// errno, and counts the later ones.
type injectOn struct {
	op    vfs.Op
	n     int
	errno syscall.Errno
	seen  int
	after int // operations op after the failure
}

func (in *injectOn) install(fsys *vfs.MemFS) {
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op != in.op || !strings.Contains(name, walSegmentExt) {
			return nil
		}
		in.seen++
		switch {
		case in.seen == in.n:
			return vfs.ErrnoError(op, name, in.errno)
		case in.seen > in.n:
			in.after++
		}
		return nil
	})
}

// TestWALWriteAndSyncErrors: a failed write or fdatasync is returned,
// acknowledges nothing, never panics, and makes every later mutation fail
// — without another fdatasync being tried. With direct writes, a failed
// sync is the failure of the write that Append makes.
func TestWALWriteAndSyncErrors(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) { testWALWriteAndSyncErrors(t, buffered) })
	}
}

func testWALWriteAndSyncErrors(t *testing.T, buffered bool) {
	for _, c := range []struct {
		name  string
		op    vfs.Op
		errno syscall.Errno
	}{
		{"eio-write", vfs.OpWrite, syscall.EIO},
		{"enospc-write", vfs.OpWrite, syscall.ENOSPC},
		{"eio-fsync", vfs.OpSync, syscall.EIO},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			opts := WALOptions{SegmentSize: 4 << 10, Buffered: buffered}
			w := openTestWALOpts(t, fsys, opts)
			m := newModel()
			es := ents(1, 6, 1)
			mustAppend(t, w, es)
			must(t, w.Sync())
			m = m.appended(es)
			in := &injectOn{op: c.op, n: 1, errno: c.errno}
			in.install(fsys)
			err := w.Append(ents(6, 9, 1))
			if c.op == vfs.OpSync && buffered {
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				err = w.Sync()
			} else if w.LastIndex() != 5 {
				t.Fatalf("failed Append acknowledged: LastIndex %d", w.LastIndex())
			}
			if !errors.Is(err, c.errno) {
				t.Fatalf("err %v, want %v", err, c.errno)
			}
			fsys.SetInjector(nil)
			in.install(fsys) // count what follows
			for what, f := range map[string]func() error{
				"Append":         func() error { return w.Append(ents(w.LastIndex()+1, w.LastIndex()+2, 1)) },
				"Sync":           w.Sync,
				"TruncateSuffix": func() error { return w.TruncateSuffix(3) },
				"TruncatePrefix": func() error { return w.TruncatePrefix(3) },
				"Reset":          func() error { return w.Reset(100, 2) },
			} {
				if err := f(); !errors.Is(err, c.errno) {
					t.Errorf("%s after the failure: err %v, want it to wrap %v", what, err, c.errno)
				}
			}
			if in.after != 0 {
				t.Errorf("%d more %v operations after the failure", in.after, c.op)
			}
			if _, err := w.Entries(1, 6, ^uint64(0)); err != nil {
				t.Errorf("reads after the failure: %v", err)
			}
			fsys.SetInjector(nil)
			must(t, w.Close())
			w = openTestWALOpts(t, fsys, opts)
			if matchState(w, []logModel{m, m.appended(ents(6, 9, 1))}) < 0 {
				t.Fatalf("reopened: first %d last %d", w.FirstIndex(), w.LastIndex())
			}
		})
	}
}

// TestWALSegmentCreationErrors: failing to prepare the next segment
// (ENOSPC from fallocate, a failed write or fdatasync of the temporary
// file, a failed rename) fails the append that needed it, leaves no
// temporary file and leaves the WAL usable; a failed directory sync after
// the rename makes it unusable.
func TestWALSegmentCreationErrors(t *testing.T) {
	for _, buffered := range []bool{true, false} {
		t.Run(fmt.Sprintf("buffered=%v", buffered), func(t *testing.T) { testWALSegmentCreationErrors(t, buffered) })
	}
}

func testWALSegmentCreationErrors(t *testing.T, buffered bool) {
	const (
		segFiles = iota // the segments and their temporary files
		tmpFiles        // the temporary files only
		anyFile
	)
	for _, c := range []struct {
		name   string
		op     vfs.Op
		errno  syscall.Errno
		usable bool
		files  int
	}{
		{"enospc-preallocate", vfs.OpPreallocate, syscall.ENOSPC, true, segFiles},
		{"eio-write-tmp", vfs.OpWrite, syscall.EIO, true, tmpFiles},
		{"eio-sync-tmp", vfs.OpSync, syscall.EIO, true, tmpFiles},
		{"eio-rename", vfs.OpRename, syscall.EIO, true, segFiles},
		{"eio-syncdir", vfs.OpSyncDir, syscall.EIO, false, anyFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			opts := WALOptions{SegmentSize: 4 << 10, Buffered: buffered}
			w := openTestWALOpts(t, fsys, opts)
			m := newModel()
			for i := uint64(1); i <= 10; i++ { // just under a segment
				e := ent(i, 1)
				e.Data = append(e.Data, make([]byte, 350)...)
				mustAppend(t, w, []*raftpb.Entry{e})
				m = m.appended([]*raftpb.Entry{e})
			}
			failed := false
			fsys.SetInjector(func(op vfs.Op, name string) error {
				match := c.files == anyFile || c.files == segFiles && strings.Contains(name, walSegmentExt) ||
					c.files == tmpFiles && strings.HasSuffix(name, walTmpExt)
				if op == c.op && match && !failed {
					failed = true
					return vfs.ErrnoError(op, name, c.errno)
				}
				return nil
			})
			big := ents(11, 12, 1)
			big[0].Data = make([]byte, 2000)
			err := w.Append(big)
			if !errors.Is(err, c.errno) {
				t.Fatalf("Append needing a new segment: err %v, want %v", err, c.errno)
			}
			fsys.SetInjector(nil)
			mustModel(t, w, m, true)
			for _, p := range fsys.Paths() {
				if strings.HasSuffix(p, ".tmp") && c.usable {
					t.Errorf("temporary file %s left behind", p)
				}
			}
			err = w.Append(big)
			if c.usable != (err == nil) {
				t.Fatalf("Append after the failure: err %v, want usable=%v", err, c.usable)
			}
			if err == nil {
				m = m.appended(big)
				must(t, w.Sync())
			}
			must(t, w.Close())
			w = openTestWALOpts(t, fsys, opts)
			mustModel(t, w, m, true)
		})
	}
}

// TestWALOpenNoSpace: ENOSPC while creating the first segment fails
// OpenWAL; a later open succeeds.
func TestWALOpenNoSpace(t *testing.T) {
	fsys := vfs.NewMem()
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpPreallocate {
			return vfs.ErrnoError(op, name, syscall.ENOSPC)
		}
		return nil
	})
	if _, err := OpenWAL(fsys, walDir, WALOptions{}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("OpenWAL with a full disk: err %v, want ENOSPC", err)
	}
	fsys.SetInjector(nil)
	w := openTestWAL(t, fsys, 0)
	mustModel(t, w, newModel(), true)
	if got := walFiles(t, fsys); !slices.Equal(got, []string{"0000000000000001.wal"}) {
		t.Fatalf("files %v", got)
	}
}
