package logmgr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
// raftpb.IndexMark naming the first index removed. On open, the records are
// replayed; a torn or corrupt record ends the log and the file is cut there
// (a crash can tear only the unsynced tail).
type FileStorage struct {
	mu     sync.RWMutex
	fs     vfs.FS
	name   string
	f      vfs.File
	size   int64      // offset of the end of the last valid record
	pos    []position // pos[i] locates entry i+1
	closed bool

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

const (
	recHeader   = 9
	recEntry    = 1
	recTruncate = 2
	// maxRecord bounds a record's payload; a larger length field is
	// damage, not data.
	maxRecord = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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
	s := &FileStorage{fs: fsys, name: name, f: f}
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
			if want := uint64(len(s.pos)) + 1; e.Index != want {
				return fmt.Errorf("logmgr: %s at offset %d: entry %d follows %d", s.name, off, e.Index, want-1)
			}
			s.pos = append(s.pos, position{off: off + recHeader, n: uint32(len(payload)), term: e.Term})
		case recTruncate:
			var m raftpb.IndexMark
			if err := proto.Unmarshal(payload, &m); err != nil {
				return fmt.Errorf("logmgr: %s at offset %d: bad truncation: %w", s.name, off, err)
			}
			if m.Index < 1 || m.Index > uint64(len(s.pos))+1 {
				return fmt.Errorf("logmgr: %s at offset %d: truncation at %d outside [1, %d]", s.name, off, m.Index, len(s.pos)+1)
			}
			s.pos = s.pos[:m.Index-1]
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

// decodeRecord parses the record at the start of b; ok is false if b does
// not start with a whole, intact record.
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

func appendRecord(buf []byte, typ byte, m proto.Message) ([]byte, error) {
	start := len(buf)
	buf = append(buf, make([]byte, recHeader)...)
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], err
	}
	n := len(buf) - start - recHeader
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	buf[start+8] = typ
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(buf[start+8:], castagnoli))
	return buf, nil
}

func (s *FileStorage) FirstIndex() uint64 { return 1 }

func (s *FileStorage) LastIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return uint64(len(s.pos))
}

func (s *FileStorage) Term(index uint64) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if index == 0 {
		return 0, nil
	}
	if index > uint64(len(s.pos)) {
		return 0, ErrUnavailable
	}
	return s.pos[index-1].term, nil
}

func (s *FileStorage) Entries(lo, hi, maxBytes uint64) ([]*raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	if lo < 1 {
		return nil, ErrCompacted
	}
	if hi > uint64(len(s.pos))+1 {
		return nil, ErrUnavailable
	}
	var out []*raftpb.Entry
	var size uint64
	for i := lo; i < hi; i++ {
		p := s.pos[i-1]
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
	closed, last, end := s.closed, uint64(len(s.pos)), s.size
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
	closed, last, end := s.closed, uint64(len(s.pos)), s.size
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if from < 1 || from > last+1 {
		return fmt.Errorf("logmgr: truncate from %d outside [1, %d]", from, last+1)
	}
	if from == last+1 {
		return nil
	}
	buf, err := appendRecord(s.buf[:0], recTruncate, &raftpb.IndexMark{Index: from})
	if err != nil {
		return err
	}
	s.buf = buf
	if _, err := s.f.WriteAt(buf, end); err != nil {
		return fmt.Errorf("logmgr: write %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.size = end + int64(len(buf))
	s.pos = s.pos[: from-1 : from-1]
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
