package logmgr

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// The encoder of format version 1, whose segments this build still reads:
// tests write such segments with it.

// appendEntryRecord appends the (version 1) entry record of e to buf. The
// bytes are those of appendRecord(buf, walRecEntry, e, recFrame{}) — proto's deterministic
// encoding of Entry's four fields, in field order, zero values omitted —
// produced without reflection, which makes an append of small entries
// several times cheaper. (Unknown fields an Entry might carry are not
// written.)
func appendEntryRecord(buf []byte, e *raftpb.Entry) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, walRecEntry)
	if e.Index != 0 {
		buf = protowire.AppendTag(buf, 1, protowire.VarintType)
		buf = protowire.AppendVarint(buf, e.Index)
	}
	if e.Term != 0 {
		buf = protowire.AppendTag(buf, 2, protowire.VarintType)
		buf = protowire.AppendVarint(buf, e.Term)
	}
	if e.Type != 0 {
		buf = protowire.AppendTag(buf, 3, protowire.VarintType)
		buf = protowire.AppendVarint(buf, uint64(int64(e.Type)))
	}
	if len(e.Data) > 0 {
		buf = protowire.AppendTag(buf, 4, protowire.BytesType)
		buf = protowire.AppendBytes(buf, e.Data)
	}
	return sealRecord(buf, start, walRecEntry, recFrame{})
}

// writeV1Segment writes a segment of format version 1 at first with
// sequence number seq, holding records, zero-filled to size.
func writeV1Segment(t *testing.T, fsys *vfs.MemFS, first, prevTerm, seq uint64, records []byte, size int) {
	t.Helper()
	writeSegment(t, fsys, 1, first, prevTerm, seq, records, size)
}

// writeSegment writes a segment of the given format version at first with
// sequence number seq, holding records, zero-filled to size.
func writeSegment(t *testing.T, fsys *vfs.MemFS, version uint32, first, prevTerm, seq uint64, records []byte, size int) {
	t.Helper()
	b := appendRawRecord(nil, walRecSegment, segHeader{first: first, prevTerm: prevTerm, seq: seq, version: version}.marshal())
	b = append(b, records...)
	b = append(b, make([]byte, size-len(b))...)
	must(t, fsys.MkdirAll(walDir, 0o755))
	must(t, fsys.WriteFile(walDir+"/"+segName(first), b))
	fsys.SyncAll()
}

// TestWALReadsVersion1: a log written in format version 1 (entry records)
// opens and reads; appends go to a new segment of the current version;
// the mixed log reopens.
func TestWALReadsVersion1(t *testing.T) {
	fsys := vfs.NewMem()
	m := newModel()
	var recs []byte
	for _, e := range ents(1, 21, 1) {
		recs = appendEntryRecord(recs, e)
	}
	m = m.appended(ents(1, 21, 1))
	tr, err := appendRecord(nil, walRecTruncate, &raftpb.IndexMark{Index: 18}, recFrame{})
	must(t, err)
	recs = append(recs, tr...)
	m = m.truncated(18)
	for _, e := range ents(18, 20, 2) {
		recs = appendEntryRecord(recs, e)
	}
	m = m.appended(ents(18, 20, 2))
	writeV1Segment(t, fsys, 1, 0, 1, recs, 8<<10)
	recs = nil
	for _, e := range ents(20, 26, 2) {
		recs = appendEntryRecord(recs, e)
	}
	m = m.appended(ents(20, 26, 2))
	writeV1Segment(t, fsys, 20, 2, 2, recs, 8<<10)

	opts := WALOptions{SegmentSize: 8 << 10}
	w := openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	segs := len(w.segs)
	es := ents(26, 30, 3)
	mustAppend(t, w, es)
	m = m.appended(es)
	if len(w.segs) != segs+1 || !w.active().frame.tagged {
		t.Fatalf("after an append: %d segments (want %d), the last of version 3: %v", len(w.segs), segs+1, w.active().frame.tagged)
	}
	mustAppend(t, w, ents(30, 32, 3))
	m = m.appended(ents(30, 32, 3))
	must(t, w.Sync())
	mustModel(t, w, m, true)
	w.Close()

	var types []string
	rep, err := InspectWAL(fsys, walDir, func(r WALRecord) { types = append(types, r.Type.String()) })
	must(t, err)
	if rep.LastIndex != 31 || !strings.Contains(strings.Join(types, " "), "entry entry") || !strings.Contains(strings.Join(types, " "), "batch batch") {
		t.Fatalf("InspectWAL: last %d, records %v", rep.LastIndex, types)
	}
	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	w.Close()
}

// TestWALRecordOfTheOtherVersion: a checksummed record of the kind the
// segment's version does not hold is an error naming the file and
// offset, not data.
func TestWALRecordOfTheOtherVersion(t *testing.T) {
	// A batch record in a version-1 segment.
	fsys := vfs.NewMem()
	b, _, err := appendBatchRecords(appendEntryRecord(nil, ent(1, 1)), nil, ents(2, 4, 1), 2, recFrame{})
	must(t, err)
	writeV1Segment(t, fsys, 1, 0, 1, b, 4<<10)
	if _, err := OpenWAL(fsys, walDir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger}); err == nil ||
		!strings.Contains(err.Error(), "batch record in a segment of format version 1") || !strings.Contains(err.Error(), segName(1)) {
		t.Fatalf("batch record in a version-1 segment: %v", err)
	}

	// An entry record in a version-2 segment, and one (with the tag) in
	// a version-3 segment.
	for _, v := range []uint32{2, 3} {
		fsys = vfs.NewMem()
		fr := recFrame{}
		if v == 3 {
			fr = seqFrame(1)
		}
		b, _, err := appendBatchRecords(nil, nil, ents(1, 3, 1), 1, fr)
		must(t, err)
		e, err := appendRecord(nil, walRecEntry, ent(3, 1), fr)
		must(t, err)
		writeSegment(t, fsys, v, 1, 0, 1, append(b, e...), 4<<10)
		if _, err := OpenWAL(fsys, walDir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger}); err == nil ||
			!strings.Contains(err.Error(), fmt.Sprintf("entry record in a segment of format version %d", v)) {
			t.Fatalf("entry record in a version-%d segment: %v", v, err)
		}
	}
}

// TestWALReadsVersion2: a log written in format version 2 (batch records,
// untagged) opens and reads, its zeros after the data are a clean end
// while other bytes there are a torn tail; appends go to a new segment of
// the current version, and the mixed log reopens.
func TestWALReadsVersion2(t *testing.T) {
	fsys := vfs.NewMem()
	m := newModel()
	b, _, err := appendBatchRecords(nil, nil, ents(1, 11, 1), 1, recFrame{})
	must(t, err)
	m = m.appended(ents(1, 11, 1))
	tr, err := appendRecord(nil, walRecTruncate, &raftpb.IndexMark{Index: 8}, recFrame{})
	must(t, err)
	m = m.truncated(8)
	b2, _, err := appendBatchRecords(nil, nil, ents(8, 12, 2), 8, recFrame{})
	must(t, err)
	m = m.appended(ents(8, 12, 2))
	recs := slices.Concat(b, tr, b2)
	writeSegment(t, fsys, 2, 1, 0, 1, recs, 8<<10)
	opts := WALOptions{SegmentSize: 8 << 10}
	w := openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	if w.Repaired() != 0 || w.active().frame.tagged {
		t.Fatalf("version 2 segment: repaired %d, tagged %v", w.Repaired(), w.active().frame.tagged)
	}
	es := ents(12, 15, 2)
	mustAppend(t, w, es)
	m = m.appended(es)
	if len(w.segs) != 2 || !w.active().frame.tagged {
		t.Fatalf("after an append: %d segments, the last tagged: %v", len(w.segs), w.active().frame.tagged)
	}
	must(t, w.Sync())
	w.Close()
	w = openTestWALOpts(t, fsys, opts)
	mustModel(t, w, m, true)
	w.Close()

	// A torn tail in a version 2 segment is the non-zero bytes after its
	// data, as that version was written.
	fsys = vfs.NewMem()
	torn := append(slices.Clone(recs), 0, 0, 7, 7)
	writeSegment(t, fsys, 2, 1, 0, 1, torn, 8<<10)
	w = openTestWALOpts(t, fsys, opts)
	if w.Repaired() != 4 {
		t.Fatalf("torn tail of a version 2 segment: repaired %d, want 4", w.Repaired())
	}
	mustModel(t, w, m.truncated(12), true)
}

// seqFrame is the framing of the records of a version 3 segment with
// sequence number seq.
func seqFrame(seq uint64) recFrame { return recFrame{tagged: true, tag: walSeqTag(seq)} }
