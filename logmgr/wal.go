// # The write-ahead log
//
// [WAL] is the log storage for real use: a segmented write-ahead log.
//
// # WAL files
//
// A WAL directory holds segment files named after the index of the first
// entry they hold, as 16 lower-case hex digits, so that names sort by index:
//
//	0000000000000001.wal  0000000000004e21.wal  0000000000009c41.wal
//
// A segment is created at a fixed size (WALOptions.SegmentSize, 64 MiB by
// default; a bigger batch gets a segment of its own, rounded up to 4 KiB)
// under a temporary name: a recycled file of a freed segment (see below)
// whose header is rewritten, or a new file, "<name>.tmp", sized with
// ftruncate and fallocate and given its header. It is synced, renamed into
// place and the directory synced. So every segment that has its final name
// has its size and its header on disk. Other files in the directory (the
// hard state's "meta", for one) are left alone; leftover "<name>.tmp" and
// "spare.wal.tmp" files are removed on open.
//
// Segments dropped by TruncatePrefix or superseded are renamed to
// "recycle-<n>.wal.tmp" and kept (at most walMaxRecycled) for later
// segments, whose appends then overwrite blocks that are written already:
// see wal_recycle.go.
//
// # WAL records
//
// A segment is a header record followed by records, then by whatever the
// file held before (zeros in a new file, the records of its earlier lives
// in a recycled one):
//
//	offset 0                                                 size
//	+--------+--------+--------+-----+--------+--------------+
//	| header | record | record | ... | record | (old bytes)  |
//	+--------+--------+--------+-----+--------+--------------+
//
//	header record (every version), and records of versions 1 and 2:
//	+------------+------------+---------+---------------------+
//	| length u32 | crc32c u32 | type u8 | payload (length)    |
//	+------------+------------+---------+---------------------+
//	records of version 3:
//	+------------+------------+---------+---------+-----------+
//	| length u32 | crc32c u32 | tag u32 | type u8 | payload   |
//	+------------+------------+---------+---------+-----------+
//	  little endian; crc32c (Castagnoli) covers what follows it (tag,)
//	  type and payload; tag = walSeqTag(the segment's seq)
//
//	type 4 batch     entries after the last one (format versions 2, 3);
//	                 payload, uvarints and bytes:
//	                 +-------+------+------+-----+------+------+-----+
//	                 | first | term | type | len | data | term | ... |
//	                 +-------+------+------+-----+------+------+-----+
//	                 first: the index of the first entry; at least one
//	type 2 truncate  payload: raftpb.IndexMark; removes the entries at and
//	                 after Index, which is after the segment's first index
//	type 3 segment   the header, only at offset 0; payload (40 bytes):
//	                 +----------+---------+-------+-------+----------+-----+
//	                 | "asyncwal"| version| flags | first | prevTerm | seq |
//	                 |  8 bytes | u32 = 3 | u32   | u64   | u64      | u64 |
//	                 +----------+---------+-------+-------+----------+-----+
//	type 1 entry     (format version 1 segments, still read) payload:
//	                 raftpb.Entry, the entry after the last one
//
// first is the index of the segment's first entry (= the name), prevTerm
// the term of entry first-1, seq a sequence number that grows with every
// segment created, and flags bit 0 marks a segment written by Reset. Every
// record has a non-empty payload, so a zero length field ends the data. In
// version 3 a record whose tag is not the segment's ends it too: the
// records a recycled file kept from its earlier lives carry the tags of
// earlier sequence numbers, and a sequence number is never used twice
// (the highest one is always that of the last live segment).
//
// # WAL meaning
//
// A segment is dead if a segment with a higher seq has a name that sorts
// at or before its own, or has the reset flag. The log is the live
// segments replayed in name order (which is also seq order): the first one
// sets the log's first index and the term before it; each later one, when
// its first index is at or before the log's last index, first removes the
// entries from its first index on (this is how a suffix truncation that
// reaches before the current segment is written: as a new segment starting
// at the cut, which supersedes every segment after the cut at once); then
// each record applies in order.
//
// So the writer never changes a byte of a live segment it wrote before (a
// direct write rewrites the partial block at the end with the same bytes;
// see wal_direct.go): appends and truncations within the last segment are
// records written at its end;
// a truncation further back, a Reset, and a roll to the next segment are
// new segments, made durable (after every earlier write is synced) by the
// rename and directory sync that give them their names. Dead segments and
// segments wholly before TruncatePrefix's first index are then recycled or
// removed.
//
// # WAL recovery
//
// OpenWAL reads every live segment. Bytes that do not form a valid record
// (a whole frame, with the segment's tag in version 3, whose crc32c checks
// out, of a known type, whose payload decodes) end a segment's data. What
// follows is damage if it is not zero (versions 1 and 2), or if it holds
// the segment's tag at a record's tag position, or starts with a record
// that checks out with the segment's tag in place of its own (version 3;
// the old records of a recycled file are not damage). On damage, the WAL
// looks for a valid record after it — at every later offset of the segment
// (in version 3, every offset where the tag is, found by a byte search),
// and in any later live segment (whose header always is one). If there is
// one, the damage is mid-log corruption and OpenWAL fails with a
// *WALCorruptError naming the file and offset: the node must not start
// with entries silently dropped. If there is none, the damage is a torn
// tail — writes in flight at a crash — and OpenWAL zeroes it (in version 3
// up to the end of the frame of the last tagged record), syncs, and
// reports the number of bytes through Repaired and a warning. Only the
// last live segment can have a torn tail: before a new segment is created,
// every earlier write is synced.
//
// See docs/storage.md for the durability argument, the crash cases and
// the benchmarks; "go run ./cmd/asyncraft-wal" dumps and checks a WAL
// directory (see InspectWAL).
package logmgr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

const (
	// DefaultSegmentSize is the largest size of a WAL segment unless
	// WALOptions.SegmentSize says otherwise.
	DefaultSegmentSize = 64 << 20
	// DefaultInitialSegmentSize is the size of a WAL's first segment
	// unless WALOptions.InitialSegmentSize says otherwise (or SegmentSize
	// is smaller).
	DefaultInitialSegmentSize = 1 << 20
	// MinSegmentSize and MaxSegmentSize bound WALOptions.SegmentSize.
	MinSegmentSize = 1 << 10
	MaxSegmentSize = 1 << 30

	walSegmentExt = ".wal"
	walTmpExt     = ".wal.tmp"
	// walZeroChunk is how far ahead of the data the writer zero-fills a
	// segment, so that appends overwrite written blocks and fdatasync has
	// no metadata to flush (see docs/storage.md).
	walZeroChunk = 1 << 20
	// walAlign is what the size of a segment for one big batch is rounded
	// up to.
	walAlign = 4 << 10
)

// zeros is walZeroChunk zero bytes, never written to.
var zeros = make([]byte, walZeroChunk)

// WALOptions configures a WAL.
type WALOptions struct {
	// SegmentSize is the largest size of a segment file, between
	// MinSegmentSize and MaxSegmentSize. Default DefaultSegmentSize.
	// Segments start at InitialSegmentSize and grow: each segment a roll
	// creates is twice the size of the last one, up to SegmentSize (a
	// segment made by a truncation or a reset keeps the last one's size).
	// A batch bigger than that gets a segment of its own, as big as it
	// needs. Segments found on disk keep the size they were created with,
	// and a segment created in a recycled file has the file's size, which
	// may be bigger than planned.
	SegmentSize int64
	// InitialSegmentSize is the size of a WAL's first segment, between
	// MinSegmentSize and SegmentSize. Default DefaultInitialSegmentSize,
	// or SegmentSize if that is smaller. A WAL that holds little (an idle
	// group of a multi-raft host) costs about this much disk.
	InitialSegmentSize int64
	// Logger receives the warning about a repaired torn tail. Default
	// slog.Default().
	Logger *slog.Logger
	// Prepare says where the next segment's file is prepared; see
	// PrepareMode. Default PrepareAuto.
	Prepare PrepareMode
	// Buffered makes the WAL write through the page cache and fdatasync
	// in Sync. By default, where the file system supports it (see
	// vfs.DirectFS: Linux file systems with O_DIRECT, and vfs.MemFS),
	// the WAL writes each batch with one direct, durable write instead
	// (O_DIRECT|O_DSYNC), which leaves Sync nothing to do for it: one
	// system call, no copy into the page cache. See docs/storage.md.
	Buffered bool
}

// WAL is a LogStorage in a directory of fixed-size, preallocated segment
// files: a segmented write-ahead log. See the comment at the top of wal.go
// for the format and recovery rules.
//
// Reads (FirstIndex, LastIndex, Term, Entries) may run concurrently with
// each other and with the one writer. They take a read lock only to copy
// positions from the in-memory index and pin the segment files involved;
// the file reads happen without the lock, and a segment removed meanwhile
// stays open until its last reader lets go.
//
// Errors: an error from a mutation that has written to a segment or
// changed the directory (write, fdatasync, rename, remove, directory sync)
// makes the WAL unusable: every later mutation returns an error wrapping
// the first. Errors detected before anything is written (a bad index, a
// failure to create the next segment's temporary file, ENOSPC from
// fallocate) leave it usable.
type WAL struct {
	fs       vfs.FS
	dir      string
	opts     WALOptions
	repaired int64

	mu       sync.RWMutex
	segs     []*segment // live segments in order; segs[0].first == base
	base     uint64     // first index
	baseTerm uint64     // term of entry base-1
	ents     posIndex   // ents.at(i) locates entry base+i
	closed   bool

	// lastSeg is the last segment (set by the writer), whose file stays
	// open; handles keeps the other segments' files open for reads, a
	// few at a time (see wal_handles.go).
	lastSeg atomic.Pointer[segment]
	handles readHandles

	// Owned by the writer.
	failed     error
	seq        uint64   // highest segment sequence number used
	buf        []byte   // encoding buffer
	pos        []walPos // scratch positions of the batch being appended
	background bool     // prepare spare segments in the background
	spare      *spare   // the spare being prepared, or nil
	// recycled are the files kept for reuse (see wal_recycle.go), at
	// most walMaxRecycled; recycleNext numbers the next one; reuses
	// counts the segments created in recycled files (for tests).
	recycled    []*recycledFile
	recycleNext uint64
	reuses      int
	// progress is how far the writer is into the last segment (bytes
	// after the header), for the spare's preparer to pace itself.
	progress atomic.Int64
	// Direct writes (see wal_direct.go). dfile writes dseg, the segment
	// last written directly; dbuf is an aligned buffer whose first dtail
	// bytes are dseg's data from its last DirectAlign boundary to its end.
	direct bool
	dseg   *segment
	dfile  vfs.DirectFile
	dbuf   []byte
	dtail  int
}

var _ LogStorage = (*WAL)(nil)

// walPos locates an entry's record: its payload is n bytes at off in the
// segment holding the entry (the last segment whose first index is at or
// before it).
type walPos struct {
	off  uint32
	n    uint32
	term uint64
}

// segment is an open live segment.
type segment struct {
	name     string // base name
	path     string
	first    uint64
	prevTerm uint64
	size     int64
	batched  bool     // holds batch records (format version 2 or 3), not entry records
	frame    recFrame // how its records are framed; tagged: format version 3
	// refs counts the WAL's own reference (while the segment is live)
	// and readers'; the file closes when it drops to zero.
	refs atomic.Int32
	// fmu guards f and gone. f is the segment's file: open read-write
	// while the segment is the last one (the writer uses it without
	// fmu), and otherwise opened for reads when needed and closed when
	// idle (see wal_handles.go); nil while closed. gone: the segment
	// left the log and its file its name, so f, if readers hold the
	// segment, stays open until the last of them releases it.
	fmu  sync.Mutex
	f    vfs.File
	gone bool

	// Owned by the writer.
	end    int64 // end of the data
	zeroed int64 // [0, zeroed) has been written (data or zeros)
	dirty  bool  // written since the last fdatasync
}

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	s.fmu.Lock()
	f := s.f
	s.f = nil
	s.fmu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

func segName(first uint64) string { return fmt.Sprintf("%016x%s", first, walSegmentExt) }

// OpenWAL opens the WAL in dir on fsys, creating the directory and the
// first segment if needed, and recovers it: see the comment at the top of
// wal.go. A torn tail is zeroed and reported by Repaired; damage before the
// tail is a *WALCorruptError and the WAL is not opened.
func OpenWAL(fsys vfs.FS, dir string, opts WALOptions) (*WAL, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < MinSegmentSize || opts.SegmentSize > MaxSegmentSize {
		return nil, fmt.Errorf("logmgr: WAL segment size %d outside [%d, %d]", opts.SegmentSize, MinSegmentSize, MaxSegmentSize)
	}
	if opts.InitialSegmentSize == 0 {
		opts.InitialSegmentSize = min(DefaultInitialSegmentSize, opts.SegmentSize)
	}
	if opts.InitialSegmentSize < MinSegmentSize || opts.InitialSegmentSize > opts.SegmentSize {
		return nil, fmt.Errorf("logmgr: WAL initial segment size %d outside [%d, %d]", opts.InitialSegmentSize, MinSegmentSize, opts.SegmentSize)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := mkdirDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("logmgr: create %s: %w", dir, err)
	}
	// Make the names already here durable: an earlier open may have
	// created a segment and failed before syncing the directory.
	if err := fsys.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("logmgr: sync dir %s: %w", dir, err)
	}
	st, err := analyzeWAL(fsys, dir, true, nil)
	if err != nil {
		st.closeFiles()
		return nil, err
	}
	_, canDirect := fsys.(vfs.DirectFS)
	w := &WAL{fs: fsys, dir: dir, opts: opts, seq: st.maxSeq, base: st.base, baseTerm: st.baseTerm, ents: st.ents,
		background: opts.Prepare == PrepareBackground || (opts.Prepare == PrepareAuto && fsys == vfs.OS),
		direct:     canDirect && !opts.Buffered}
	if err := w.recover(st); err != nil {
		st.closeFiles()
		return nil, err
	}
	return w, nil
}

// recover removes what the analysis found dead, repairs a torn tail and
// takes over the live segments.
func (w *WAL) recover(st *walState) error {
	removed := false
	for _, name := range st.tmps {
		if err := w.fs.Remove(path.Join(w.dir, name)); err != nil {
			return fmt.Errorf("logmgr: remove %s: %w", path.Join(w.dir, name), err)
		}
		removed = true
	}
	changed, err := w.recoverRecycled(st)
	if err != nil {
		return err
	}
	if removed || changed {
		if err := w.fs.SyncDir(w.dir); err != nil {
			return fmt.Errorf("logmgr: sync dir %s: %w", w.dir, err)
		}
	}
	if t := st.torn; t != nil {
		f := st.live[len(st.live)-1]
		for off := t.Offset; off < t.Offset+t.Bytes; off += walZeroChunk {
			n := min(walZeroChunk, t.Offset+t.Bytes-off)
			if _, err := f.f.WriteAt(zeros[:n], off); err != nil {
				return fmt.Errorf("logmgr: zero torn tail of %s at %d: %w", f.path, t.Offset, err)
			}
		}
		if err := f.f.Sync(); err != nil {
			return fmt.Errorf("logmgr: sync %s: %w", f.path, err)
		}
		w.repaired = t.Bytes
		w.opts.Logger.Warn("logmgr: cut a torn tail from the WAL", "file", f.path, "offset", t.Offset, "bytes", t.Bytes)
	}
	for _, f := range st.live {
		s := &segment{name: f.name, path: f.path, first: f.hdr.first, prevTerm: f.hdr.prevTerm,
			size: f.size, batched: f.hdr.batched(), frame: frameOf(f.hdr), f: f.f, end: f.end, zeroed: f.end}
		s.refs.Store(1)
		f.f = nil
		w.segs = append(w.segs, s)
	}
	if len(w.segs) == 0 {
		w.base = 1
		s, err := w.createSegment(1, 0, 0, w.opts.InitialSegmentSize)
		if err != nil {
			return err
		}
		w.segs = []*segment{s}
	}
	w.lastSeg.Store(w.active())
	w.progress.Store(w.active().end - walHeaderRecordLen)
	return nil
}

// Repaired is the number of bytes of a torn tail zeroed when the WAL was
// opened (0 after a clean shutdown).
func (w *WAL) Repaired() int64 { return w.repaired }

// Dir is the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

func (w *WAL) FirstIndex() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.base
}

func (w *WAL) LastIndex() uint64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.last()
}

// last is the last index; w.mu must be held, or the caller be the writer.
func (w *WAL) last() uint64 { return w.base + uint64(w.ents.len()) - 1 }

// term is Term without the lock for the writer and callers holding it;
// index must be in [base-1, last].
func (w *WAL) term(index uint64) uint64 {
	if index == w.base-1 {
		return w.baseTerm
	}
	return w.ents.at(int(index - w.base)).term
}

func (w *WAL) Term(index uint64) (uint64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	switch {
	case w.closed:
		return 0, ErrClosed
	case index == 0:
		return 0, nil
	case index < w.base-1:
		return 0, ErrCompacted
	case index > w.last():
		return 0, ErrUnavailable
	}
	return w.term(index), nil
}

// readSpan is a run of entries whose records are adjacent in one segment.
type readSpan struct {
	seg   *segment
	index uint64   // index of the first
	pos   []walPos // positions
}

func (w *WAL) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	spans, err := w.pin(lo, hi, maxBytes)
	if err != nil || len(spans) == 0 {
		return nil, err
	}
	es, err := w.readSpans(spans, maxBytes)
	unpin(spans)
	w.handles.trim()
	return es, err
}

// unpin releases the segments pin took.
func unpin(spans []readSpan) {
	for i, sp := range spans {
		if i == 0 || sp.seg != spans[i-1].seg {
			sp.seg.release()
		}
	}
}

// readSpans reads and decodes the entries of spans, pinned, up to
// maxBytes (at least one).
func (w *WAL) readSpans(spans []readSpan, maxBytes uint64) ([]*raftpb.Entry, error) {
	var (
		out  []*raftpb.Entry
		size uint64
	)
	for _, sp := range spans {
		start := int64(sp.pos[0].off)
		last := sp.pos[len(sp.pos)-1]
		buf := make([]byte, int64(last.off)+int64(last.n)-start)
		f, err := w.readFile(sp.seg)
		if err != nil {
			return nil, err
		}
		if _, err := f.ReadAt(buf, start); err != nil {
			return nil, fmt.Errorf("logmgr: read entries from %s: %w", sp.seg.path, err)
		}
		for i, p := range sp.pos {
			index := sp.index + uint64(i)
			b := buf[int64(p.off)-start:][:p.n]
			var e *raftpb.Entry
			if sp.seg.batched {
				var ok bool
				if e, ok = batchEntry(b, index); !ok {
					return nil, fmt.Errorf("logmgr: entry %d in %s at offset %d does not decode", index, sp.seg.path, p.off)
				}
			} else {
				e = &raftpb.Entry{}
				if err := proto.Unmarshal(b, e); err != nil || e.Index != index {
					return nil, fmt.Errorf("logmgr: entry %d in %s at offset %d does not decode (err %v, index %d)", index, sp.seg.path, p.off, err, e.Index)
				}
			}
			size += entrySize(e)
			if len(out) > 0 && size > maxBytes {
				return out, nil
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// pin copies, under the read lock, the positions of the entries in
// [lo, hi) that Entries may return and takes a reference on each segment
// they are in (once per segment; spans of one segment are consecutive).
func (w *WAL) pin(lo, hi, maxBytes uint64) ([]readSpan, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	switch {
	case w.closed:
		return nil, ErrClosed
	case lo < w.base:
		return nil, ErrCompacted
	case hi > w.last()+1:
		return nil, ErrUnavailable
	case lo >= hi:
		return nil, nil
	}
	k := sort.Search(len(w.segs), func(i int) bool { return w.segs[i].first > lo }) - 1
	var (
		spans []readSpan
		bound uint64 // a lower bound of the sizes of the entries taken
	)
	for i := lo; i < hi; i++ {
		p := w.ents.at(int(i - w.base))
		// entrySize is len(Data)+24, and the payload holds Data plus at
		// most 39 bytes of tags and varints.
		lb := uint64(24)
		if p.n > 39 {
			lb = uint64(p.n) - 15
		}
		if i > lo && bound+lb > maxBytes {
			break
		}
		bound += lb
		newSeg := false
		for k+1 < len(w.segs) && w.segs[k+1].first <= i {
			k++
			newSeg = true
		}
		n := len(spans)
		if n == 0 || newSeg || !adjacent(spans[n-1].pos[len(spans[n-1].pos)-1], p) {
			if n == 0 || newSeg {
				w.segs[k].acquire()
			}
			spans = append(spans, readSpan{seg: w.segs[k], index: i})
			n++
		}
		spans[n-1].pos = append(spans[n-1].pos, p)
	}
	return spans, nil
}

// adjacent reports whether q's bytes follow p's closely enough to be read
// with them in one piece: at once (entries of one batch record), or after
// a record frame (entry records; the next batch record, whose first index
// comes too) or a short truncate record.
func adjacent(p, q walPos) bool {
	end := uint64(p.off) + uint64(p.n)
	return uint64(q.off) >= end && uint64(q.off)-end <= walMaxGap
}

// walMaxGap is the most bytes adjacent entries may have between them.
const walMaxGap = 2 * (recHeader + binary.MaxVarintLen64)

// Close releases the WAL; it does not sync. Files being read are closed
// when their readers are done.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	segs := w.segs
	w.segs, w.ents = nil, posIndex{}
	w.mu.Unlock()
	w.stopSpare()
	var errs []error
	errs = append(errs, w.closeDirect())
	for _, s := range segs {
		errs = append(errs, s.release())
	}
	return errors.Join(errs...)
}
