package logmgr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder and the
// scanning helpers, in both framings: they never panic, whatever the
// decoder accepts is what proto.Unmarshal (used by reads) makes of it, and
// the scan of a version 3 segment's tail agrees with a plain one. The
// tagged framing uses the tag the bytes hold at the tag's place, so that
// the untagged seeds exercise it too.
// The seed corpus is in testdata/fuzz/FuzzDecodeRecord.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, ok := decodeWALRecord(data, 0, recFrame{}); ok {
			checkDecoded(t, data, r)
		}
		if v := findValidRecord(data, 0, int64(len(data))); v >= 0 {
			if _, ok := decodeWALRecord(data, v, recFrame{}); !ok {
				t.Fatalf("findValidRecord returned %d, which does not decode", v)
			}
		}
		fr := recFrame{tagged: true}
		if len(data) >= recTagOff+4 {
			fr.tag = binary.LittleEndian.Uint32(data[recTagOff:])
		}
		if r, ok := decodeWALRecord(data, 0, fr); ok {
			checkDecoded(t, data, r)
		}
		for _, end := range []int64{0, 1, int64(len(data)) / 2} {
			valid, damageEnd := scanTagged(data, end, fr)
			wantValid, wantEnd := scanTaggedOracle(data, end, fr)
			if valid != wantValid || (valid < 0 && damageEnd != wantEnd) {
				t.Fatalf("scanTagged(%d) = %d, %d; the plain scan %d, %d", end, valid, damageEnd, wantValid, wantEnd)
			}
		}
		want := int64(-1)
		for i := len(data) - 1; i >= 0; i-- {
			if data[i] != 0 {
				want = int64(i)
				break
			}
		}
		if got := lastNonZero(data, 0); got != want {
			t.Fatalf("lastNonZero = %d, want %d", got, want)
		}
	})
}

// scanTaggedOracle is scanTagged done plainly: every offset from end on,
// its tag compared field by field, the damaged-tag check by rewriting the
// tag and decoding.
func scanTaggedOracle(data []byte, end int64, fr recFrame) (valid, damageEnd int64) {
	damageEnd = end
	if end+recTaggedHeader <= int64(len(data)) && binary.LittleEndian.Uint32(data[end+recTagOff:]) != fr.tag {
		b := slices.Clone(data[end:])
		binary.LittleEndian.PutUint32(b[recTagOff:], fr.tag)
		n := binary.LittleEndian.Uint32(b)
		if n > 0 && uint64(n) <= uint64(len(b)-recTaggedHeader) && n <= maxRecord && b[recTaggedHeader-1] >= walRecEntry && b[recTaggedHeader-1] <= walRecBatch &&
			crc32.Checksum(b[8:recTaggedHeader+int(n)], castagnoli) == binary.LittleEndian.Uint32(b[4:]) {
			damageEnd = end + recTaggedHeader
		}
	}
	for off := end; off+recTagOff+4 <= int64(len(data)); off++ {
		if binary.LittleEndian.Uint32(data[off+recTagOff:]) != fr.tag {
			continue
		}
		if _, ok := decodeWALRecord(data, off, fr); ok && off > end {
			return off, damageEnd
		}
		damageEnd = min(off+recTaggedHeader, int64(len(data)))
	}
	return -1, damageEnd
}

// checkDecoded checks a record the decoder accepted.
func checkDecoded(t *testing.T, data []byte, r walRec) {
	t.Helper()
	if r.end() > int64(len(data)) || r.n == 0 {
		t.Fatalf("record %+v extends past the %d bytes", r, len(data))
	}
	payload := data[r.payloadOff():r.end()]
	switch r.typ {
	case walRecEntry:
		var e raftpb.Entry
		if err := proto.Unmarshal(payload, &e); err != nil || e.Index != r.index || e.Term != r.term {
			t.Fatalf("entry record decoded as %d/%d; proto.Unmarshal: %v, %d/%d", r.index, r.term, err, e.Index, e.Term)
		}
	case walRecBatch:
		// Walk the entries independently of batchSpan.
		first, k := protowire.ConsumeVarint(payload)
		if k < 0 || first != r.index || first == 0 {
			t.Fatalf("batch record decoded as first %d; the payload starts with %d (%d bytes)", r.index, first, k)
		}
		var count int
		var term uint64
		for b := payload[k:]; len(b) > 0; count++ {
			var n int
			term, _, _, n = nextBatchEntry(b)
			if n <= 0 {
				t.Fatalf("batch record accepted with a bad entry %d", count)
			}
			e, ok := batchEntry(b[:n], first+uint64(count))
			if !ok || e.Term != term || e.Index != first+uint64(count) {
				t.Fatalf("entry %d of a batch record does not decode alone: %v %v", count, e, ok)
			}
			b = b[n:]
		}
		if count == 0 || count != r.count || term != r.term {
			t.Fatalf("batch record decoded as %d entries, last term %d; walked %d, %d", r.count, r.term, count, term)
		}
	case walRecTruncate:
		var m raftpb.IndexMark
		if err := proto.Unmarshal(payload, &m); err != nil || m.Index != r.index {
			t.Fatalf("truncate record decoded as %d; proto.Unmarshal: %v, %d", r.index, err, m.Index)
		}
	case walRecSegment:
		if !bytes.Equal(r.hdr.marshal(), payload) {
			t.Fatalf("segment header %+v does not marshal back to its payload", r.hdr)
		}
	default:
		t.Fatalf("decoded a record of unknown type %d", r.typ)
	}
}

// FuzzInspectWAL writes a segment holding a valid header of format
// version 1, 2 or 3 (by v) followed by arbitrary bytes and opens it:
// InspectWAL and OpenWAL never panic, they agree, a log OpenWAL accepts
// can be read back whole and takes an append, and reopens cleanly with
// that append.
// The seed corpus is in testdata/fuzz/FuzzInspectWAL.
func FuzzInspectWAL(f *testing.F) {
	f.Fuzz(func(t *testing.T, v byte, body []byte) {
		fsys := vfs.NewMem()
		if err := fsys.MkdirAll(walDir, 0o755); err != nil {
			t.Fatal(err)
		}
		version := 1 + uint32(v)%3
		hdr := appendRawRecord(nil, walRecSegment, segHeader{first: 1, seq: 1, version: version}.marshal())
		if err := fsys.WriteFile(walDir+"/"+segName(1), append(hdr, body...)); err != nil {
			t.Fatal(err)
		}
		fsys.SyncAll()
		rep, ierr := InspectWAL(fsys, walDir, nil)
		w, err := OpenWAL(fsys, walDir, WALOptions{SegmentSize: MinSegmentSize, Logger: quietLogger})
		if (err == nil) != (ierr == nil) {
			t.Fatalf("InspectWAL: %v; OpenWAL: %v", ierr, err)
		}
		var ce *WALCorruptError
		if err != nil {
			if errors.As(err, &ce) != errors.As(ierr, &ce) {
				t.Fatalf("InspectWAL: %v; OpenWAL: %v", ierr, err)
			}
			return
		}
		defer w.Close()
		if w.FirstIndex() != rep.FirstIndex || w.LastIndex() != rep.LastIndex {
			t.Fatalf("OpenWAL: log [%d, %d], InspectWAL [%d, %d]", w.FirstIndex(), w.LastIndex(), rep.FirstIndex, rep.LastIndex)
		}
		if rep.Torn != nil && w.Repaired() != rep.Torn.Bytes {
			t.Fatalf("Repaired = %d, InspectWAL: %+v", w.Repaired(), rep.Torn)
		}
		es, err := w.Entries(w.FirstIndex(), w.LastIndex()+1, ^uint64(0))
		if err != nil || uint64(len(es)) != w.LastIndex()+1-w.FirstIndex() {
			t.Fatalf("reading the log [%d, %d] back: %d entries, %v", w.FirstIndex(), w.LastIndex(), len(es), err)
		}
		// It carries on, and reopens cleanly: whatever the body left
		// after the data reads as its end.
		last := w.LastIndex() + 1
		if err := w.Append([]*raftpb.Entry{{Index: last, Term: 1}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		w, err = OpenWAL(fsys, walDir, WALOptions{SegmentSize: MinSegmentSize, Logger: quietLogger})
		if err != nil {
			t.Fatalf("reopen after an append: %v", err)
		}
		defer w.Close()
		if w.Repaired() != 0 || w.FirstIndex() != rep.FirstIndex || w.LastIndex() != last {
			t.Fatalf("reopen after an append at %d: log [%d, %d], repaired %d", last, w.FirstIndex(), w.LastIndex(), w.Repaired())
		}
	})
}

// TestBatchRecordEncoding: entries with extreme values go through a batch
// record unchanged.
func TestBatchRecordEncoding(t *testing.T) {
	es := []*raftpb.Entry{
		{Index: 1 << 63},
		{Index: 1<<63 + 1, Term: 1<<64 - 1, Type: raftpb.EntryType(-1), Data: []byte{0}},
		{Index: 1<<63 + 2, Term: 0, Type: 2, Data: []byte{}},
		{Index: 1<<63 + 3, Term: 7, Type: 1, Data: bytes.Repeat([]byte("x"), 70000)},
	}
	b, pos, err := appendBatchRecords([]byte("prefix"), nil, es, es[0].Index, seqFrame(7))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := decodeWALRecord(b, int64(len("prefix")), seqFrame(7))
	if !ok || r.typ != walRecBatch || r.index != es[0].Index || r.count != len(es) || r.end() != int64(len(b)) {
		t.Fatalf("decoded %+v, %v", r, ok)
	}
	for i, e := range es {
		p := pos[i]
		got, ok := batchEntry(b[len("prefix")+int(p.off):][:p.n], e.Index)
		if !ok || p.term != e.Term || !proto.Equal(got, e) {
			t.Errorf("entry %d: decoded %v (%v), term in position %d", i, got, ok, p.term)
		}
	}
}

// TestBatchRecordSplits: a batch whose bytes exceed what a record holds
// is written as several records, each as full as it can be, the entries
// in order; an entry that no record can hold is refused, buf as it was.
func TestBatchRecordSplits(t *testing.T) {
	big := make([]byte, maxRecord)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	for _, c := range []struct {
		sizes []int // of the entries' data
		want  []int // entries per record
	}{
		{[]int{20 << 20, 20 << 20, 20 << 20, 20 << 20, 20 << 20}, []int{3, 2}},
		{[]int{100, 21 << 20, 21 << 20, 21 << 20, 1 << 20, 100}, []int{4, 2}},
		{[]int{maxRecord - 64, 10, maxRecord - 64}, []int{2, 1}},
		// The record's payload: 1 byte of first index, 13 of the
		// first entry, 6 of the second's header, then its data.
		{[]int{10, maxRecord - 20}, []int{2}},
		{[]int{10, maxRecord - 19}, []int{1, 1}},
	} {
		var es []*raftpb.Entry
		for i, n := range c.sizes {
			data := big[i:][:n] // a different slice of big for each
			es = append(es, &raftpb.Entry{Index: uint64(10 + i), Term: uint64(1 + i/2), Data: data})
		}
		b, pos, err := appendBatchRecords([]byte("prefix"), nil, es, 10, seqFrame(7))
		if err != nil {
			t.Fatal(err)
		}
		var counts []int
		for off := int64(len("prefix")); off < int64(len(b)); {
			r, ok := decodeWALRecord(b, off, seqFrame(7))
			if !ok || r.typ != walRecBatch || r.index != uint64(10+sum(counts)) {
				t.Fatalf("sizes %v: record at %d: %+v, %v", c.sizes, off, r, ok)
			}
			counts = append(counts, r.count)
			off = r.end()
		}
		if !slices.Equal(counts, c.want) {
			t.Errorf("sizes %v: records of %v entries, want %v", c.sizes, counts, c.want)
		}
		for i, e := range es {
			p := pos[i]
			got, ok := batchEntry(b[len("prefix")+int(p.off):][:p.n], e.Index)
			if !ok || p.term != e.Term || !proto.Equal(got, e) {
				t.Errorf("sizes %v: entry %d does not decode from its position", c.sizes, i)
			}
		}
	}
	huge := &raftpb.Entry{Index: 10, Data: big}
	b, pos, err := appendBatchRecords([]byte("prefix"), nil, []*raftpb.Entry{{Index: 9}, huge}, 9, seqFrame(7))
	if err == nil || string(b) != "prefix" || len(pos) != 1 {
		t.Errorf("an entry of %d bytes: err %v, %d bytes, %d positions", maxRecord, err, len(b), len(pos))
	}
	if cap(b) >= maxRecord {
		t.Errorf("an entry of %d bytes was copied before it was refused (buffer of %d bytes)", maxRecord, cap(b))
	}
}

func sum(xs []int) (s int) {
	for _, x := range xs {
		s += x
	}
	return s
}

// TestEntryRecordEncoding: the hand-written entry encoder (of format
// version 1) writes exactly what proto would.
func TestEntryRecordEncoding(t *testing.T) {
	for _, e := range []*raftpb.Entry{
		{Index: 1},
		{Index: 1 << 63, Term: 1<<64 - 1, Type: raftpb.EntryType(-1), Data: []byte{0}},
		{Index: 5, Term: 0, Type: 2, Data: []byte{}},
		{Index: 300, Term: 7, Type: 1, Data: bytes.Repeat([]byte("x"), 70000)},
	} {
		want, err := appendRecord([]byte("prefix"), walRecEntry, e, recFrame{})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEntryRecord([]byte("prefix"), e); !bytes.Equal(got, want) {
			t.Errorf("entry %v: encoded %x, proto %x", e, got[:min(len(got), 40)], want[:min(len(want), 40)])
		}
	}
}
