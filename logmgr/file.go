package logmgr

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// FileStorage is a LogStorage in one append-only file on a vfs.FS: every
// append and every suffix truncation is a record at the end of the file, so
// a suffix truncation is ordered with the appends around it by construction.
// Space is never reclaimed; the segmented WAL replaces it for long-lived
// logs.
//
// Record layout (little endian):
//
//	+-----------+-----------+--------+------------------+
//	| length u32| crc32c u32| type u8| payload (length) |
//	+-----------+-----------+--------+------------------+
//
// crc32c (Castagnoli) covers the type byte and the payload. An entry
// record's payload is a marshalled raftpb.Entry; a truncation record's is a
// raftpb.IndexMark naming the first index removed; a first-index record's
// (TruncatePrefix) is a raftpb.IndexMark naming the new first index; a
// reset record's is a raftpb.Entry holding the next index and the term
// before it. On open, the records are replayed; a torn or corrupt record
// ends the log and the file is cut there (a crash can tear only the
// unsynced tail).
type FileStorage struct {
	mu       sync.RWMutex
	fs       vfs.FS
	name     string
	f        vfs.File
	size     int64      // offset of the end of the last valid record
	base     uint64     // index of the first entry held
	baseTerm uint64     // term of entry base-1
	pos      []position // pos[i] locates entry base+i
	closed   bool

	buf []byte // encoding buffer; used by the writing goroutine only

	// Repaired is the number of bytes cut from a torn or corrupt tail when
	// the file was opened.
	Repaired int64
}

type position struct {
	off  int64 // offset of the record's payload
	n    uint32
	term uint64
}

// FileStorage record types (the framing is in wal_format.go).
const (
	recEntry    = 1
	recTruncate = 2
	// recFirstIndex: payload is a raftpb.IndexMark; entries before Index
	// are discarded (TruncatePrefix).
	recFirstIndex = 3
	// recReset: payload is a raftpb.Entry whose Index is the next index
	// and whose Term is the term of the entry before it (Reset).
	recReset = 4
)

var _ LogStorage = (*FileStorage)(nil)

// OpenFileStorage opens (creating if needed) the log file "log" in dir on
// fsys and replays it.
func OpenFileStorage(fsys vfs.FS, dir string) (*FileStorage, error) {
	if err := mkdirDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("logmgr: create %s: %w", dir, err)
	}
	name := path.Join(dir, "log")
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		return nil, fmt.Errorf("logmgr: open %s: %w", name, err)
	}
	s := &FileStorage{fs: fsys, name: name, f: f, base: 1}
	// Make the file's directory entry durable. Always, not only when the
	// file is new: a file found here may have been created by an earlier
	// open whose SyncDir failed (or never ran), and its name would then
	// not survive a crash even though its data is synced.
	if err := fsys.SyncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("logmgr: sync dir %s: %w", dir, err)
	}
	if err := s.replay(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileStorage) replay() error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("logmgr: stat %s: %w", s.name, err)
	}
	data := make([]byte, st.Size())
	if n, err := s.f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		return fmt.Errorf("logmgr: read %s: %w", s.name, err)
	}
	off := int64(0)
	for {
		typ, payload, ok := decodeRecord(data[off:])
		if !ok {
			break
		}
		switch typ {
		case recEntry:
			var e raftpb.Entry
			if err := proto.Unmarshal(payload, &e); err != nil {
				return fmt.Errorf("logmgr: %s at offset %d: bad entry: %w", s.name, off, err)
			}
			if want := s.last() + 1; e.Index != want {
				return fmt.Errorf("logmgr: %s at offset %d: entry %d follows %d", s.name, off, e.Index, want-1)
			}
			s.pos = append(s.pos, position{off: off + recHeader, n: uint32(len(payload)), term: e.Term})
		case recTruncate:
			var m raftpb.IndexMark
			if err := proto.Unmarshal(payload, &m); err != nil {
				return fmt.Errorf("logmgr: %s at offset %d: bad truncation: %w", s.name, off, err)
			}
			if m.Index < s.base || m.Index > s.last()+1 {
				return fmt.Errorf("logmgr: %s at offset %d: truncation at %d outside [%d, %d]", s.name, off, m.Index, s.base, s.last()+1)
			}
			s.pos = s.pos[:m.Index-s.base]
		case recFirstIndex:
			var m raftpb.IndexMark
			if err := proto.Unmarshal(payload, &m); err != nil {
				return fmt.Errorf("logmgr: %s at offset %d: bad first index: %w", s.name, off, err)
			}
			if m.Index <= s.base || m.Index > s.last()+1 {
				return fmt.Errorf("logmgr: %s at offset %d: first index %d outside [%d, %d]", s.name, off, m.Index, s.base+1, s.last()+1)
			}
			s.dropPrefix(m.Index)
		case recReset:
			var e raftpb.Entry
			if err := proto.Unmarshal(payload, &e); err != nil {
				return fmt.Errorf("logmgr: %s at offset %d: bad reset: %w", s.name, off, err)
			}
			if e.Index == 0 {
				return fmt.Errorf("logmgr: %s at offset %d: reset to index 0", s.name, off)
			}
			s.base, s.baseTerm, s.pos = e.Index, e.Term, nil
		default:
			return fmt.Errorf("logmgr: %s at offset %d: unknown record type %d", s.name, off, typ)
		}
		off += recHeader + int64(len(payload))
	}
	s.size = off
	if tail := int64(len(data)) - off; tail > 0 {
		s.Repaired = tail
		if err := s.f.Truncate(off); err != nil {
			return fmt.Errorf("logmgr: cut torn tail of %s at %d: %w", s.name, off, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("logmgr: sync %s: %w", s.name, err)
		}
	}
	return nil
}

// last is the index of the last entry; s.mu must be held (or the caller
// be the writer).
func (s *FileStorage) last() uint64 { return s.base + uint64(len(s.pos)) - 1 }

// dropPrefix discards the entries before first, which is in
// (base, last+1]; s.mu must be held for writing.
func (s *FileStorage) dropPrefix(first uint64) {
	n := first - s.base
	s.baseTerm = s.pos[n-1].term
	s.pos = append([]position(nil), s.pos[n:]...)
	s.base = first
}

func (s *FileStorage) FirstIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.base
}

func (s *FileStorage) LastIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last()
}

func (s *FileStorage) Term(index uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	switch {
	case index == 0:
		return 0, nil
	case index == s.base-1:
		return s.baseTerm, nil
	case index < s.base:
		return 0, ErrCompacted
	case index > s.last():
		return 0, ErrUnavailable
	}
	return s.pos[index-s.base].term, nil
}

func (s *FileStorage) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if lo < s.base {
		return nil, ErrCompacted
	}
	if hi > s.last()+1 {
		return nil, ErrUnavailable
	}
	var out []*raftpb.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		p := s.pos[i-s.base]
		b := make([]byte, p.n)
		if _, err := s.f.ReadAt(b, p.off); err != nil {
			return nil, fmt.Errorf("logmgr: read entry %d from %s: %w", i, s.name, err)
		}
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return nil, fmt.Errorf("logmgr: decode entry %d from %s: %w", i, s.name, err)
		}
		size += entrySize(e)
		if len(out) > 0 && size > maxBytes {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (s *FileStorage) Append(entries []*raftpb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	s.mu.RLock()
	closed, last, end := s.closed, s.last(), s.size
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if entries[0].Index != last+1 {
		return fmt.Errorf("logmgr: append at index %d, want %d", entries[0].Index, last+1)
	}
	buf := s.buf[:0]
	pos := make([]position, 0, len(entries))
	for _, e := range entries {
		start := len(buf)
		var err error
		if buf, err = appendRecord(buf, recEntry, e); err != nil {
			return fmt.Errorf("logmgr: encode entry %d: %w", e.Index, err)
		}
		pos = append(pos, position{off: end + int64(start) + recHeader, n: uint32(len(buf) - start - recHeader), term: e.Term})
	}
	s.buf = buf
	if _, err := s.f.WriteAt(buf, end); err != nil {
		return fmt.Errorf("logmgr: write %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.size = end + int64(len(buf))
	s.pos = append(s.pos, pos...)
	s.mu.Unlock()
	return nil
}

func (s *FileStorage) TruncateSuffix(from uint64) error {
	s.mu.RLock()
	closed, base, last := s.closed, s.base, s.last()
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if from < base || from > last+1 {
		return fmt.Errorf("logmgr: truncate from %d outside [%d, %d]", from, base, last+1)
	}
	if from == last+1 {
		return nil
	}
	return s.writeRecord(recTruncate, &raftpb.IndexMark{Index: from}, func() {
		s.pos = s.pos[: from-base : from-base]
	})
}

// TruncatePrefix writes a first-index record; the file keeps its bytes
// (FileStorage never reclaims space), but the entries before first are
// gone from its view and, once synced, after a reopen.
func (s *FileStorage) TruncatePrefix(first uint64) error {
	s.mu.RLock()
	closed, base, last := s.closed, s.base, s.last()
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if first > last+1 {
		return fmt.Errorf("logmgr: truncate prefix before %d after the last index %d", first, last)
	}
	if first <= base {
		return nil
	}
	return s.writeRecord(recFirstIndex, &raftpb.IndexMark{Index: first}, func() { s.dropPrefix(first) })
}

// Reset writes a reset record.
func (s *FileStorage) Reset(next, term uint64) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if next == 0 {
		return fmt.Errorf("logmgr: reset to next index 0")
	}
	return s.writeRecord(recReset, &raftpb.Entry{Index: next, Term: term}, func() {
		s.base, s.baseTerm, s.pos = next, term, nil
	})
}

// writeRecord writes one record at the end of the file, then applies it
// to the in-memory view under the lock.
func (s *FileStorage) writeRecord(typ byte, m proto.Message, apply func()) error {
	buf, err := appendRecord(s.buf[:0], typ, m)
	if err != nil {
		return err
	}
	s.buf = buf
	if _, err := s.f.WriteAt(buf, s.size); err != nil {
		return fmt.Errorf("logmgr: write %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.size += int64(len(buf))
	apply()
	s.mu.Unlock()
	return nil
}

func (s *FileStorage) Sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("logmgr: sync %s: %w", s.name, err)
	}
	return nil
}

func (s *FileStorage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}
