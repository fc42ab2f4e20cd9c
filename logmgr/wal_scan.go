package logmgr

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/asyncraft/asyncraft/vfs"
)

// WALCorruptError is the error OpenWAL and InspectWAL return for damage
// before the tail of the log: bytes at Offset of Segment that are not a
// valid record, followed by a valid record at ValidOffset of ValidSegment
// (the same segment or a later one).
type WALCorruptError struct {
	Segment      string // path of the damaged segment
	Offset       int64
	ValidSegment string // path of the segment holding the valid record
	ValidOffset  int64
}

func (e *WALCorruptError) Error() string {
	return fmt.Sprintf("logmgr: WAL corrupt: %s at offset %d is not a valid record, but a valid record follows (%s at offset %d); refusing to drop the entries after the damage",
		e.Segment, e.Offset, e.ValidSegment, e.ValidOffset)
}

// WALDamage is a torn tail: Bytes bytes from Offset of Segment (a path)
// that OpenWAL zeroes.
type WALDamage struct {
	Segment string
	Offset  int64
	Bytes   int64
}

// WALSegment describes one segment file.
type WALSegment struct {
	Name     string // base name
	First    uint64 // first index, from the header
	PrevTerm uint64 // term of entry First-1, from the header
	Seq      uint64 // sequence number, from the header
	Version  uint32 // format version, from the header
	Reset    bool   // written by Reset
	Live     bool   // false: superseded by a later segment, to be recycled or removed
	Size     int64  // file size
	// The rest is known for live segments only.
	DataBytes int64 // bytes of valid records, header included
	Records   int   // valid records, header included
	// Entries [FirstEntry, LastEntry] of the log are in this segment
	// (none if LastEntry < FirstEntry).
	FirstEntry, LastEntry uint64
}

// WALRecord describes one record, for inspection.
type WALRecord struct {
	Segment string // base name of the segment
	Offset  int64
	Type    WALRecordType
	Len     int    // payload bytes
	Index   uint64 // entry: its index; batch: the first's; truncate: first index removed; segment: first index
	Term    uint64 // entry: its term; batch: the last entry's; segment: term of the entry before the first
	Entries int    // batch: the number of entries
	Seq     uint64 // segment: sequence number
	Reset   bool   // segment: written by Reset
}

// WALReport is what InspectWAL found.
type WALReport struct {
	Dir       string
	Segments  []WALSegment // every segment file, in name order
	Temporary []string     // leftover temporary files (removed on open)
	Recycled  []string     // recycled files, kept for reuse as later segments
	// The log: entries [FirstIndex, LastIndex]; PrevTerm is the term of
	// entry FirstIndex-1.
	FirstIndex, LastIndex, PrevTerm uint64
	Torn                            *WALDamage // a torn tail OpenWAL would zero, or nil
}

// InspectWAL analyses the WAL in dir without modifying anything: it opens
// files read-only and never writes. visit, if not nil, is called for every
// record of every live segment, in log order. On mid-log corruption the
// error is a *WALCorruptError; the report then describes what was read up
// to the damage. A report with a non-nil Torn tail is not an error.
func InspectWAL(fsys vfs.FS, dir string, visit func(WALRecord)) (*WALReport, error) {
	st, err := analyzeWAL(fsys, dir, false, visit)
	st.closeFiles()
	rep := &WALReport{Dir: dir, Temporary: st.tmps, FirstIndex: st.base, PrevTerm: st.baseTerm, Torn: st.torn}
	for _, rc := range st.recycled {
		rep.Recycled = append(rep.Recycled, path.Base(rc.path))
	}
	rep.LastIndex = st.base + uint64(st.ents.len()) - 1
	for i, f := range st.files {
		s := WALSegment{Name: f.name, First: f.hdr.first, PrevTerm: f.hdr.prevTerm, Seq: f.hdr.seq, Version: f.hdr.version,
			Reset: f.hdr.reset(), Live: f.live, Size: f.size, DataBytes: f.end, Records: f.records}
		if f.live && f.end > 0 {
			s.FirstEntry, s.LastEntry = f.hdr.first, rep.LastIndex
			for _, g := range st.files[i+1:] {
				if g.live {
					s.LastEntry = min(s.LastEntry, g.hdr.first-1)
					break
				}
			}
		}
		rep.Segments = append(rep.Segments, s)
	}
	return rep, err
}

// walFile is a segment file found in the directory.
type walFile struct {
	name string
	path string
	size int64
	hdr  segHeader
	live bool
	f    vfs.File

	// After scanning (live segments only).
	end     int64 // end of the valid records
	records int
}

func (f *walFile) close() {
	if f.f != nil {
		f.f.Close()
		f.f = nil
	}
}

// walState is the outcome of analysing a WAL directory.
type walState struct {
	files    []*walFile // all segment files, in name order
	live     []*walFile
	tmps     []string
	recycled []recycledFile // recycled files kept for reuse
	maxSeq   uint64
	base     uint64
	baseTerm uint64
	ents     posIndex
	torn     *WALDamage
}

func (st *walState) closeFiles() {
	for _, f := range st.files {
		f.close()
	}
}

// parseSegName returns the first index a segment file name stands for.
func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, walSegmentExt)
	if !ok || len(hex) != 16 || strings.ToLower(hex) != hex {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil
}

// analyzeWAL reads the WAL in dir: segment headers, which segments are
// live, and the records of the live ones, which it replays into the index
// and checks for damage (see the comment at the top of wal.go). writable
// opens the files for writing (for OpenWAL); otherwise they are opened
// read-only. The state is never nil; on error it holds what was read so
// far, and its files are open either way.
func analyzeWAL(fsys vfs.FS, dir string, writable bool, visit func(WALRecord)) (*walState, error) {
	st := &walState{base: 1}
	names, err := fsys.List(dir)
	if err != nil {
		return st, fmt.Errorf("logmgr: list %s: %w", dir, err)
	}
	for _, name := range names {
		if _, ok := parseRecycleName(name); ok {
			p := path.Join(dir, name)
			fi, err := fsys.Stat(p)
			if err != nil {
				return st, fmt.Errorf("logmgr: stat %s: %w", p, err)
			}
			st.recycled = append(st.recycled, recycledFile{path: p, size: fi.Size()})
			continue
		}
		if tmp, ok := strings.CutSuffix(name, ".tmp"); ok {
			if _, ok := parseSegName(tmp); ok || name == walSpareName {
				st.tmps = append(st.tmps, name)
			}
			continue
		}
		if _, ok := parseSegName(name); ok {
			st.files = append(st.files, &walFile{name: name, path: path.Join(dir, name)})
		}
	}
	// One file open at a time: a long log has many segments.
	for _, f := range st.files {
		err := f.open(fsys, false)
		f.close()
		if err != nil {
			return st, err
		}
		st.maxSeq = max(st.maxSeq, f.hdr.seq)
	}
	if err := st.markLive(); err != nil {
		return st, err
	}
	var data []byte
	for i, f := range st.live {
		// The last live segment stays open (for writing, for OpenWAL),
		// the others are opened again when read.
		last := i == len(st.live)-1
		if err := f.open(fsys, writable && last); err != nil {
			return st, err
		}
		if int64(cap(data)) < f.size {
			data = make([]byte, f.size)
		}
		data = data[:f.size]
		n, err := f.f.ReadAt(data, 0)
		if !last {
			f.close()
		}
		if err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
			return st, fmt.Errorf("logmgr: read %s: %w", f.path, err)
		}
		if err := st.replay(f, data, i == 0, visit); err != nil {
			return st, err
		}
		valid, damageEnd := damageAfter(data, f)
		if valid >= 0 {
			return st, &WALCorruptError{Segment: f.path, Offset: f.end, ValidSegment: f.path, ValidOffset: valid}
		}
		if damageEnd == f.end {
			continue
		}
		if i+1 < len(st.live) {
			return st, &WALCorruptError{Segment: f.path, Offset: f.end, ValidSegment: st.live[i+1].path}
		}
		st.torn = &WALDamage{Segment: f.path, Offset: f.end, Bytes: damageEnd - f.end}
	}
	return st, nil
}

// damageAfter looks at the bytes of segment f (data) after its valid
// records for damage: it returns the offset of a valid record of the
// segment after them (-1 if none), and the end of the damaged bytes (f.end
// if none).
//
//   - Versions 1 and 2 (segments created zero-filled, never reused): any
//     byte that is not zero is damage, up to the last one.
//   - Version 3 (segments possibly in reused files, whose earlier lives
//     left their records after the end of the data): only bytes tagged
//     with the segment's tag are damage; see scanTagged.
func damageAfter(data []byte, f *walFile) (valid, damageEnd int64) {
	if f.hdr.tagged() {
		return scanTagged(data, f.end, frameOf(f.hdr))
	}
	garbage := lastNonZero(data, f.end)
	if garbage < 0 {
		return -1, f.end
	}
	return findValidRecord(data, f.end+1, garbage+1), garbage + 1
}

// open opens the segment file and reads its header (again: it checks that
// the file is still what it was).
func (f *walFile) open(fsys vfs.FS, writable bool) error {
	var err error
	if writable {
		f.f, err = fsys.OpenReadWrite(f.path)
	} else {
		f.f, err = fsys.Open(f.path)
	}
	if err != nil {
		return fmt.Errorf("logmgr: open %s: %w", f.path, err)
	}
	fi, err := f.f.Stat()
	if err != nil {
		return fmt.Errorf("logmgr: stat %s: %w", f.path, err)
	}
	f.size = fi.Size()
	if f.size > math.MaxUint32 {
		return fmt.Errorf("logmgr: %s: %d bytes, more than a segment can hold", f.path, f.size)
	}
	b := make([]byte, walHeaderRecordLen)
	if _, err := f.f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("logmgr: read %s: %w", f.path, err)
	}
	typ, payload, ok := decodeRecord(b)
	if !ok || typ != walRecSegment {
		return fmt.Errorf("logmgr: %s at offset 0: no valid segment header", f.path)
	}
	hdr, err := parseSegHeader(payload)
	if err != nil {
		return fmt.Errorf("logmgr: %s at offset 0: bad segment header: %v", f.path, err)
	}
	if f.hdr.seq != 0 && hdr != f.hdr {
		return fmt.Errorf("logmgr: %s at offset 0: the header changed while the WAL was read", f.path)
	}
	f.hdr = hdr
	if first, _ := parseSegName(f.name); first != f.hdr.first {
		return fmt.Errorf("logmgr: %s at offset 0: header says first index %d, the name %d", f.path, f.hdr.first, first)
	}
	return nil
}

// markLive decides which segments are live: a segment is dead if one with
// a higher sequence number sorts at or before it, or has the reset flag.
func (st *walState) markLive() error {
	var resetSeq, prefixSeq uint64
	seqs := map[uint64]string{}
	for _, f := range st.files {
		if other, dup := seqs[f.hdr.seq]; dup {
			return fmt.Errorf("logmgr: %s and %s have the same sequence number %d", other, f.path, f.hdr.seq)
		}
		seqs[f.hdr.seq] = f.path
		if f.hdr.reset() {
			resetSeq = max(resetSeq, f.hdr.seq)
		}
	}
	for _, f := range st.files {
		f.live = f.hdr.seq > prefixSeq && f.hdr.seq >= resetSeq
		prefixSeq = max(prefixSeq, f.hdr.seq)
		if f.live {
			st.live = append(st.live, f)
		}
	}
	return nil
}

// replay applies the records of live segment f (whose bytes are data) to
// the index, and sets f.end to the end of its valid records.
func (st *walState) replay(f *walFile, data []byte, first bool, visit func(WALRecord)) error {
	h := f.hdr
	last := st.base + uint64(st.ents.len()) - 1
	switch {
	case first:
		st.base, st.baseTerm, st.ents = h.first, h.prevTerm, posIndex{}
	case h.first > last+1:
		return fmt.Errorf("logmgr: %s at offset 0: segment starts at index %d, but the log before it ends at %d", f.path, h.first, last)
	default:
		st.ents.truncate(int(h.first - st.base))
		if t := st.term(h.first - 1); t != h.prevTerm {
			return fmt.Errorf("logmgr: %s at offset 0: header gives term %d for entry %d, the log before it %d", f.path, h.prevTerm, h.first-1, t)
		}
	}
	if visit != nil {
		visit(WALRecord{Segment: f.name, Type: WALRecordType(walRecSegment), Len: walSegHeaderLen,
			Index: h.first, Term: h.prevTerm, Seq: h.seq, Reset: h.reset()})
	}
	off := int64(walHeaderRecordLen)
	f.records = 1
	fr := frameOf(h)
	hl := int64(fr.size())
	// The positions of a batch record's entries, taken as the record is
	// checked; dropped again if it turns out bad.
	index := func(at, n int, term uint64) {
		st.ents.append(walPos{off: uint32(off + hl + int64(at)), n: uint32(n), term: term})
	}
	for {
		mark := st.ents.len()
		last := st.base + uint64(mark) - 1
		r, ok := decodeWALRecordEach(data, off, fr, index)
		if !ok {
			st.ents.truncate(mark)
			break
		}
		switch r.typ {
		case walRecEntry, walRecBatch:
			if batch := r.typ == walRecBatch; batch != h.batched() {
				st.ents.truncate(mark)
				return fmt.Errorf("logmgr: %s at offset %d: %s record in a segment of format version %d", f.path, off, WALRecordType(r.typ), h.version)
			}
			if r.index != last+1 {
				st.ents.truncate(mark)
				return fmt.Errorf("logmgr: %s at offset %d: entry %d follows %d", f.path, off, r.index, last)
			}
			if r.typ == walRecEntry {
				st.ents.append(walPos{off: uint32(r.payloadOff()), n: r.n, term: r.term})
			} // a batch record's entries are indexed already
		case walRecTruncate:
			if r.index <= h.first || r.index > last+1 {
				return fmt.Errorf("logmgr: %s at offset %d: truncation at %d outside [%d, %d]", f.path, off, r.index, h.first+1, last+1)
			}
			st.ents.truncate(int(r.index - st.base))
		default:
			return fmt.Errorf("logmgr: %s at offset %d: segment header inside a segment", f.path, off)
		}
		if visit != nil {
			visit(WALRecord{Segment: f.name, Offset: off, Type: WALRecordType(r.typ), Len: int(r.n), Index: r.index, Term: r.term, Entries: r.count})
		}
		f.records++
		off = r.end()
	}
	f.end = off
	return nil
}

// term is the term of entry index in [base-1, last].
func (st *walState) term(index uint64) uint64 {
	if index == st.base-1 {
		return st.baseTerm
	}
	return st.ents.at(int(index - st.base)).term
}
