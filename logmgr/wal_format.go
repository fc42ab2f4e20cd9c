package logmgr

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// Record framing of the WAL (see the WAL's package
// documentation in wal.go for the diagram). Frozen: changing any of these
// changes the on-disk format.
const (
	// recHeader is the size of the frame of a segment header record, and
	// of every record in segments of format versions 1 and 2: length u32,
	// crc32c u32, type u8.
	recHeader = 9
	// recTaggedHeader is the size of the frame of the records after the
	// header in segments of format version 3: length u32, crc32c u32, tag
	// u32, type u8. The crc32c covers the tag, the type and the payload.
	recTaggedHeader = 13
	// recTagOff is where the tag is in a version 3 frame.
	recTagOff = 8
	// maxRecord bounds a record's payload; a larger length field is
	// damage, not data.
	maxRecord = 64 << 20
	// walTagMul is what walSeqTag multiplies the low 32 bits of a
	// segment's sequence number by: odd, so that the tags of any 2^32
	// consecutive sequence numbers differ.
	walTagMul = 0x9e3779b1
)

// walSeqTag is the tag that every record after the header carries in a
// segment of format version 3 with sequence number seq. A segment file
// reused for a new segment still holds the records of its earlier lives;
// they carry the tags of earlier sequence numbers, so that they read as the
// end of the data, never as entries. Multiplying by walTagMul spreads small
// sequence numbers over all four bytes, so that the tag is a rare pattern
// in zeros and in the bytes of small integers (a scan for it then has few
// candidates to check).
func walSeqTag(seq uint64) uint32 { return uint32(seq) * walTagMul }

// recFrame is how the records after the header of a segment are framed:
// untagged (format versions 1 and 2, and every segment's header record) or
// tagged with the segment's walSeqTag (version 3).
type recFrame struct {
	tagged bool
	tag    uint32
}

// frameOf is the framing of the records of a segment with header h.
func frameOf(h segHeader) recFrame {
	if h.tagged() {
		return recFrame{tagged: true, tag: walSeqTag(h.seq)}
	}
	return recFrame{}
}

// size is the size of the frame.
func (fr recFrame) size() int {
	if fr.tagged {
		return recTaggedHeader
	}
	return recHeader
}

// MaxEntryData is the most data one entry may carry in the WAL: a record's
// payload less the most its batch header and the entry's own header take.
// Append refuses an entry with more.
const MaxEntryData = maxRecord - batchEntryHeaderMax - binary.MaxVarintLen64

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WALFormatVersion is the version of the WAL's on-disk format, written in
// the header of every segment this build creates. Version 3 frames every
// record after the header with the segment's tag (see walSeqTag), so that
// a segment file can be reused; version 2 held batch records in the
// untagged frame; version 1 one entry record per entry. OpenWAL reads
// segments of all three versions (the first append after opening a log
// whose last segment is of an older version starts a new segment) and
// refuses any other.
const WALFormatVersion = 3

// walTaggedVersion is the first format version whose records carry the
// segment's tag.
const walTaggedVersion = 3

// walFirstVersion is the oldest format version this build reads.
const walFirstVersion = 1

// WAL record types.
const (
	// walRecEntry (version 1 segments only): payload is a marshalled
	// raftpb.Entry, the entry after the last one.
	walRecEntry byte = 1
	// walRecTruncate: payload is a marshalled raftpb.IndexMark; removes
	// every entry at or after Index (which is after the segment's first
	// index).
	walRecTruncate byte = 2
	// walRecSegment: the segment header, always the first record of a
	// segment and only there; payload is walSegHeaderLen bytes (see
	// segHeader).
	walRecSegment byte = 3
	// walRecBatch (version 2 and 3 segments): entries after the last one.
	// Payload: the index of the first as a uvarint, then for each entry
	// its term, its type and the length of its data as uvarints, and its
	// data; at least one entry.
	walRecBatch byte = 4
)

// Segment header payload layout (little endian), walSegHeaderLen bytes.
const (
	walMagic          = "asyncwal" // 8 bytes at offset 0
	walHdrVersionOff  = 8          // u32 format version
	walHdrFlagsOff    = 12         // u32 flags
	walHdrFirstOff    = 16         // u64 first index
	walHdrPrevTermOff = 24         // u64 term of entry first-1
	walHdrSeqOff      = 32         // u64 sequence number
	walSegHeaderLen   = 40

	// walFlagReset marks a segment written by Reset: it discards every
	// segment with a lower sequence number.
	walFlagReset = 1

	// walHeaderRecordLen is the size of the header record.
	walHeaderRecordLen = recHeader + walSegHeaderLen
)

// WALRecordType names a WAL record type for inspection.
type WALRecordType byte

// String returns "entry", "truncate", "segment" or "type(N)".
func (t WALRecordType) String() string {
	switch byte(t) {
	case walRecEntry:
		return "entry"
	case walRecTruncate:
		return "truncate"
	case walRecSegment:
		return "segment"
	case walRecBatch:
		return "batch"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// segHeader is the decoded payload of a segment header record.
type segHeader struct {
	first    uint64
	prevTerm uint64
	seq      uint64
	flags    uint32
	version  uint32 // 0 (marshal): WALFormatVersion
}

// batched says whether the segment holds batch records (version 2 or
// later) rather than entry records.
func (h segHeader) batched() bool { return h.version >= 2 }

// tagged says whether the segment's records carry its tag (version 3 or
// later).
func (h segHeader) tagged() bool { return h.version >= walTaggedVersion }

func (h segHeader) reset() bool { return h.flags&walFlagReset != 0 }

func (h segHeader) marshal() []byte {
	b := make([]byte, walSegHeaderLen)
	copy(b, walMagic)
	v := h.version
	if v == 0 {
		v = WALFormatVersion
	}
	binary.LittleEndian.PutUint32(b[walHdrVersionOff:], v)
	binary.LittleEndian.PutUint32(b[walHdrFlagsOff:], h.flags)
	binary.LittleEndian.PutUint64(b[walHdrFirstOff:], h.first)
	binary.LittleEndian.PutUint64(b[walHdrPrevTermOff:], h.prevTerm)
	binary.LittleEndian.PutUint64(b[walHdrSeqOff:], h.seq)
	return b
}

// parseSegHeader decodes a header payload; the error says what is wrong.
func parseSegHeader(p []byte) (segHeader, error) {
	if len(p) != walSegHeaderLen {
		return segHeader{}, fmt.Errorf("header payload of %d bytes, want %d", len(p), walSegHeaderLen)
	}
	if string(p[:len(walMagic)]) != walMagic {
		return segHeader{}, fmt.Errorf("bad magic %q", p[:len(walMagic)])
	}
	v := binary.LittleEndian.Uint32(p[walHdrVersionOff:])
	if v < walFirstVersion || v > WALFormatVersion {
		return segHeader{}, fmt.Errorf("format version %d, this build reads %d to %d", v, walFirstVersion, WALFormatVersion)
	}
	h := segHeader{
		version:  v,
		flags:    binary.LittleEndian.Uint32(p[walHdrFlagsOff:]),
		first:    binary.LittleEndian.Uint64(p[walHdrFirstOff:]),
		prevTerm: binary.LittleEndian.Uint64(p[walHdrPrevTermOff:]),
		seq:      binary.LittleEndian.Uint64(p[walHdrSeqOff:]),
	}
	if h.flags&^walFlagReset != 0 {
		return segHeader{}, fmt.Errorf("unknown flags %#x", h.flags)
	}
	if h.first == 0 || h.seq == 0 {
		return segHeader{}, fmt.Errorf("first index %d, sequence %d: both must be positive", h.first, h.seq)
	}
	return h, nil
}

// decodeRecord parses the untagged frame at the start of b (a segment
// header, or a record of a version 1 or 2 segment); ok is false if b does
// not start with a whole record whose crc32c checks out. It does not look
// at the type or the payload.
func decodeRecord(b []byte) (typ byte, payload []byte, ok bool) {
	if len(b) < recHeader {
		return 0, nil, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	if n > maxRecord || uint64(len(b)-recHeader) < uint64(n) {
		return 0, nil, false
	}
	sum := binary.LittleEndian.Uint32(b[4:8])
	body := b[8 : recHeader+int(n)]
	if crc32.Checksum(body, castagnoli) != sum {
		return 0, nil, false
	}
	return body[0], body[1:], true
}

// appendRecord appends the record of type typ holding m, framed by fr,
// to buf.
func appendRecord(buf []byte, typ byte, m proto.Message, fr recFrame) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, fr.size())...)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], err
	}
	return sealRecord(buf, start, typ, fr), nil
}

// appendRawRecord appends a record of type typ around payload, in the
// untagged frame (segment headers).
func appendRawRecord(buf []byte, typ byte, payload []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recHeader)...)
	buf = append(buf, payload...)
	return sealRecord(buf, start, typ, recFrame{})
}

// sealRecord fills in the frame fr of the record starting at buf[start],
// whose payload runs to the end of buf.
func sealRecord(buf []byte, start int, typ byte, fr recFrame) []byte {
	hl := fr.size()
	n := len(buf) - start - hl
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	if fr.tagged {
		binary.LittleEndian.PutUint32(buf[start+recTagOff:], fr.tag)
	}
	buf[start+hl-1] = typ
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], castagnoli))
	return buf
}

// resealRecords frames the records in b, which must be whole records as
// sealRecord wrote them in a frame of the same size, with fr instead: the
// tag and the checksum change. A batch encoded for the current segment is
// resealed when it goes to a new one.
func resealRecords(b []byte, fr recFrame) {
	hl := fr.size()
	for len(b) >= hl {
		n := int(binary.LittleEndian.Uint32(b))
		if fr.tagged {
			binary.LittleEndian.PutUint32(b[recTagOff:], fr.tag)
		}
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:hl+n], castagnoli))
		b = b[hl+n:]
	}
}

// batchEntrySize is the size of e in a batch record: its term, type and
// data length as varints, then its data.
func batchEntrySize(e *raftpb.Entry) int {
	return protowire.SizeVarint(e.Term) + protowire.SizeVarint(uint64(int64(e.Type))) +
		protowire.SizeVarint(uint64(len(e.Data))) + len(e.Data)
}

// appendBatchEntry appends e as a batch record holds it and returns its
// length. It puts the pieces in place rather than appending each (which
// costs noticeably more in a batch of small entries), and grows buf by
// no more than e needs.
func appendBatchEntry(buf []byte, e *raftpb.Entry) ([]byte, int) {
	room := batchEntryHeaderMax + len(e.Data)
	if cap(buf)-len(buf) < room {
		room = batchEntrySize(e)
		buf = slices.Grow(buf, room)
	}
	at := len(buf)
	b := buf[at : at+room]
	k := binary.PutUvarint(b, e.Term)
	k += binary.PutUvarint(b[k:], uint64(int64(e.Type)))
	k += binary.PutUvarint(b[k:], uint64(len(e.Data)))
	n := k + copy(b[k:], e.Data)
	return buf[:at+n], n
}

// batchEntryHeaderMax is the most bytes of an entry's header in a batch
// record.
const batchEntryHeaderMax = 3 * binary.MaxVarintLen64

// nextBatchEntry decodes the entry at the start of b, a batch record's
// payload after its first index; n < 0 if b does not start with one. The
// data aliases b.
func nextBatchEntry(b []byte) (term uint64, typ raftpb.EntryType, data []byte, n int) {
	term, n1 := protowire.ConsumeVarint(b)
	if n1 < 0 {
		return 0, 0, nil, -1
	}
	t, n2 := protowire.ConsumeVarint(b[n1:])
	if n2 < 0 || int64(int32(int64(t))) != int64(t) {
		return 0, 0, nil, -1
	}
	l, n3 := protowire.ConsumeVarint(b[n1+n2:])
	h := n1 + n2 + n3
	if n3 < 0 || l > uint64(len(b)-h) {
		return 0, 0, nil, -1
	}
	return term, raftpb.EntryType(int32(int64(t))), b[h : h+int(l)], h + int(l)
}

// batchEntry decodes the entry of a batch record at index from b, which
// must hold it exactly.
func batchEntry(b []byte, index uint64) (*raftpb.Entry, bool) {
	term, typ, data, n := nextBatchEntry(b)
	if n != len(b) {
		return nil, false
	}
	e := &raftpb.Entry{Index: index, Term: term, Type: typ}
	if len(data) > 0 {
		e.Data = append([]byte(nil), data...)
	}
	return e, true
}

// batchHead decodes the first index of a batch record's payload: the
// entries start at p[n:].
func batchHead(p []byte) (first uint64, n int) {
	first, n = protowire.ConsumeVarint(p)
	if n < 0 || first == 0 || n == len(p) {
		return 0, -1
	}
	return first, n
}

// batchSpan checks a batch record's payload and returns its first index,
// the number of entries and the term of the last. Walking it, it calls
// each (if not nil) with every entry's offset in p, length and term, even
// if a later entry turns out bad (ok false).
func batchSpan(p []byte, each func(at, n int, term uint64)) (first uint64, count int, term uint64, ok bool) {
	first, n := batchHead(p)
	if n < 0 {
		return 0, 0, 0, false
	}
	for b := p[n:]; len(b) > 0; count++ {
		var k int
		term, _, _, k = nextBatchEntry(b)
		if k < 0 {
			return 0, 0, 0, false
		}
		if each != nil {
			each(len(p)-len(b), k, term)
		}
		b = b[k:]
	}
	return first, count, term, true
}

// appendBatchRecords appends the batch records of entries, which must
// start at index next, framed by fr, to buf: one record, or more if their
// bytes exceed what a record holds. It appends to pos the position of each
// entry (its offset from the end of buf as it was, its length, its term).
func appendBatchRecords(buf []byte, pos []walPos, entries []*raftpb.Entry, next uint64, fr recFrame) ([]byte, []walPos, error) {
	hl := fr.size()
	base := len(buf)
	rec := -1 // start of the open record
	for i, e := range entries {
		if e.Index != next+uint64(i) {
			return buf[:base], pos, fmt.Errorf("logmgr: append of entry %d after %d in one batch", e.Index, next+uint64(i)-1)
		}
		// Refused before it is copied: it may be huge.
		if len(e.Data) > maxRecord-batchEntryHeaderMax-binary.MaxVarintLen64 {
			if n := batchEntrySize(e); n+binary.MaxVarintLen64 > maxRecord {
				return buf[:base], pos, fmt.Errorf("logmgr: entry %d: %d bytes, more than a record holds (%d)", e.Index, n, maxRecord)
			}
		}
		// The open record is full if e does not fit in it (sized
		// exactly only when it might not): e then starts the next.
		if used := len(buf) - rec - hl; rec >= 0 && used+batchEntryHeaderMax+len(e.Data) > maxRecord &&
			used+batchEntrySize(e) > maxRecord {
			buf = sealRecord(buf, rec, walRecBatch, fr)
			rec = -1
		}
		if rec < 0 {
			rec = len(buf)
			buf = appendBatchFrame(buf, e.Index, fr)
		}
		var n int
		buf, n = appendBatchEntry(buf, e)
		pos = append(pos, walPos{off: uint32(len(buf) - n - base), n: uint32(n), term: e.Term})
	}
	if rec >= 0 {
		buf = sealRecord(buf, rec, walRecBatch, fr)
	}
	return buf, pos, nil
}

// appendBatchFrame opens a batch record whose first entry has the given
// index: its frame fr, to be sealed, and the index.
func appendBatchFrame(buf []byte, index uint64, fr recFrame) []byte {
	if fr.tagged {
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, walRecBatch)
	} else {
		buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0, walRecBatch)
	}
	return binary.AppendUvarint(buf, index)
}

// walRec is a decoded WAL record: where it is and what it says.
type walRec struct {
	off   int64  // offset of the frame in its segment
	hl    int8   // size of the frame
	typ   byte   // walRec*
	n     uint32 // payload length
	index uint64 // entry: its index; batch: the first's; truncate: the first index removed
	term  uint64 // entry: its term; batch: the last entry's
	count int    // batch: the number of entries
	hdr   segHeader
}

// payloadOff is the offset of the record's payload.
func (r walRec) payloadOff() int64 { return r.off + int64(r.hl) }

// end is the offset just past the record.
func (r walRec) end() int64 { return r.payloadOff() + int64(r.n) }

// decodeWALRecord decodes the WAL record framed by fr at data[off:]: a
// whole frame (with fr's tag, if tagged) whose crc32c checks out, of a
// known type, whose payload decodes. It never panics, whatever the bytes.
func decodeWALRecord(data []byte, off int64, fr recFrame) (walRec, bool) {
	return decodeWALRecordEach(data, off, fr, nil)
}

// decodeWALRecordEach is decodeWALRecord that also calls each, if not nil,
// for the entries of a batch record as it checks them (see batchSpan), so
// that a scan walks them once.
func decodeWALRecordEach(data []byte, off int64, fr recFrame, each func(at, n int, term uint64)) (walRec, bool) {
	if off < 0 || off > int64(len(data)) {
		return walRec{}, false
	}
	b := data[off:]
	hl := fr.size()
	if len(b) < hl {
		return walRec{}, false
	}
	// Cheap checks before the checksum, the tag first (it rules out the
	// records of a reused file's earlier lives), then a plausible length
	// and a known type.
	if fr.tagged && binary.LittleEndian.Uint32(b[recTagOff:]) != fr.tag {
		return walRec{}, false
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	typ := b[hl-1]
	if n == 0 || n > maxRecord || uint64(len(b)-hl) < uint64(n) || typ < walRecEntry || typ > walRecBatch {
		return walRec{}, false
	}
	if crc32.Checksum(b[8:hl+int(n)], castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
		return walRec{}, false
	}
	payload := b[hl : hl+int(n)]
	r := walRec{off: off, hl: int8(hl), typ: typ, n: n}
	var ok bool
	switch typ {
	case walRecEntry:
		r.index, r.term, ok = entryIndexTerm(payload)
	case walRecBatch:
		r.index, r.count, r.term, ok = batchSpan(payload, each)
	case walRecTruncate:
		r.index, ok = markIndex(payload)
	case walRecSegment:
		var err error
		r.hdr, err = parseSegHeader(payload)
		ok = err == nil
	}
	return r, ok
}

// entryIndexTerm decodes the index and term of a marshalled raftpb.Entry
// without allocating. It accepts exactly the fields the WAL writes (index,
// term and type as varints, data as bytes), each at most once in any
// order, and requires a positive index.
func entryIndexTerm(b []byte) (index, term uint64, ok bool) {
	var seen uint8
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 4 || seen&(1<<num) != 0 {
			return 0, 0, false
		}
		seen |= 1 << num
		b = b[n:]
		if num == 4 {
			if typ != protowire.BytesType {
				return 0, 0, false
			}
			_, n = protowire.ConsumeBytes(b)
		} else {
			if typ != protowire.VarintType {
				return 0, 0, false
			}
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case 1:
				index = v
			case 2:
				term = v
			}
		}
		if n < 0 {
			return 0, 0, false
		}
		b = b[n:]
	}
	return index, term, index > 0
}

// markIndex decodes a marshalled raftpb.IndexMark holding a positive
// index (the only field, at most once).
func markIndex(b []byte) (uint64, bool) {
	var index uint64
	for seen := false; len(b) > 0; seen = true {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.VarintType || seen {
			return 0, false
		}
		b = b[n:]
		index, n = protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	return index, index > 0
}

// findValidRecord returns the offset of the first valid untagged WAL
// record (see decodeWALRecord) starting in [from, to), or -1. Offsets
// whose length field is zero are skipped without further work, so zeroed
// space costs little.
func findValidRecord(data []byte, from, to int64) int64 {
	to = min(to, int64(len(data))-recHeader)
	for off := max(from, 0); off < to; off++ {
		if data[off] == 0 && data[off+1] == 0 && data[off+2] == 0 && data[off+3] == 0 {
			continue
		}
		if _, ok := decodeWALRecord(data, off, recFrame{}); ok {
			return off
		}
	}
	return -1
}

// scanTagged looks at what follows the valid records of a segment of
// format version 3, which end at end, for records of the segment (framed
// by fr) that are not valid: damage. Candidates are the offsets at or
// after end whose tag field holds fr's tag — found with a byte search for
// the tag, so that the stale records of a reused file and zeros cost no
// more than a pass over them — and end itself if its frame checks out with
// fr's tag in place of the one it holds (a record of the segment with a
// damaged tag). It returns the offset of the first candidate that is a
// valid record (-1 if none: then the damage is at most a torn tail), and
// the end of the frame of the last candidate (end if there is none: the
// data ended cleanly).
func scanTagged(data []byte, end int64, fr recFrame) (valid, damageEnd int64) {
	damageEnd = end
	if damagedTag(data, end, fr) {
		damageEnd = min(end+recTaggedHeader, int64(len(data)))
	}
	var tag [4]byte
	binary.LittleEndian.PutUint32(tag[:], fr.tag)
	for from := end + recTagOff; from+4 <= int64(len(data)); {
		i := bytes.Index(data[from:], tag[:])
		if i < 0 {
			break
		}
		off := from + int64(i) - recTagOff
		if _, ok := decodeWALRecord(data, off, fr); ok && off > end {
			return off, damageEnd
		}
		damageEnd = min(off+recTaggedHeader, int64(len(data)))
		from += int64(i) + 1
	}
	return -1, damageEnd
}

// damagedTag says whether the tagged frame at data[off:] would check out
// with fr's tag in place of the one it holds (which is not fr's): a
// record of the segment whose tag was damaged. The stale bytes after the
// end of a reused segment's data pass only by chance (about 1 in 2^32).
func damagedTag(data []byte, off int64, fr recFrame) bool {
	if off < 0 || int64(len(data))-off < recTaggedHeader {
		return false
	}
	b := data[off:]
	n := binary.LittleEndian.Uint32(b[0:4])
	typ := b[recTaggedHeader-1]
	if n == 0 || n > maxRecord || uint64(len(b)-recTaggedHeader) < uint64(n) || typ < walRecEntry || typ > walRecBatch ||
		binary.LittleEndian.Uint32(b[recTagOff:]) == fr.tag {
		return false
	}
	var tag [4]byte
	binary.LittleEndian.PutUint32(tag[:], fr.tag)
	sum := crc32.Update(crc32.Checksum(tag[:], castagnoli), castagnoli, b[recTaggedHeader-1:recTaggedHeader+int(n)])
	return sum == binary.LittleEndian.Uint32(b[4:8])
}

// lastNonZero returns the offset of the last non-zero byte of data at or
// after from, or -1 if there is none. It reads a word at a time.
func lastNonZero(data []byte, from int64) int64 {
	i := int64(len(data)) // data[i:] is zero
	for i > from && i%8 != 0 {
		if i--; data[i] != 0 {
			return i
		}
	}
	for i-8 >= from && binary.LittleEndian.Uint64(data[i-8:i]) == 0 {
		i -= 8
	}
	for i > from {
		if i--; data[i] != 0 {
			return i
		}
	}
	return -1
}
