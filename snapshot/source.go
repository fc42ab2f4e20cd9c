package snapshot

import (
	"errors"
	"fmt"
	"io"
	"path"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// Source gives random access to the files of a stored snapshot, for
// serving it to a follower chunk by chunk. It pins the snapshot until
// Close. A Source is used by one goroutine at a time.
//
// Unlike a Reader, a Source does not check CRC-32Cs: it cannot, reading
// pieces in any order. It never reads past the size the MANIFEST records
// and reports a file shorter than that as ErrCorrupt; whoever receives the
// bytes checks them against the manifest's checksums at the end (the
// follower's copy actor does, before anything is committed).
type Source struct {
	s    *Store
	id   ID
	dir  string
	meta *raftpb.SnapshotMeta

	// One file open at a time: a follower fetches the files in order, so
	// switching is rare, and a snapshot of many files costs one handle.
	open     string
	f        vfs.File
	unpinned bool
}

// OpenSource opens snapshot (index, term) for random access; see Source.
// It fails with ErrNotFound if the store holds no such valid snapshot.
func (s *Store) OpenSource(index, term uint64) (*Source, error) {
	id := ID{index, term}
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.find(id)
	if sn == nil {
		return nil, s.notFoundLocked("snapshot " + id.String())
	}
	return s.sourceLocked(sn), nil
}

// OpenNewestSource opens the newest valid snapshot for random access; it
// fails with ErrNotFound if there is none.
func (s *Store) OpenNewestSource() (*Source, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.snaps) == 0 {
		return nil, s.notFoundLocked("no valid snapshot")
	}
	return s.sourceLocked(s.snaps[0]), nil
}

func (s *Store) sourceLocked(sn *snap) *Source {
	s.pins[sn.id]++
	return &Source{s: s, id: sn.id, dir: path.Join(s.dir, sn.id.dirName()), meta: sn.meta}
}

// metaOf returns a copy of the meta of valid snapshot id, or nil.
func (s *Store) metaOf(id ID) *raftpb.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.find(id); sn != nil {
		return proto.CloneOf(sn.meta)
	}
	return nil
}

// ID is the snapshot's index and term.
func (src *Source) ID() ID { return src.id }

// Meta returns the snapshot's meta (a copy).
func (src *Source) Meta() *raftpb.SnapshotMeta { return proto.CloneOf(src.meta) }

// Size returns the size the MANIFEST records for file ("" is the data),
// and false if the snapshot has no such file.
func (src *Source) Size(file string) (uint64, bool) {
	if file == "" {
		return src.meta.DataSize, true
	}
	for _, f := range src.meta.Files {
		if f.Name == file {
			return f.Size, true
		}
	}
	return 0, false
}

// ReadAt reads len(p) bytes of file ("" is the data) at off into p,
// fewer only at the end of the file as the MANIFEST records its size: it
// returns the count, and io.EOF with it when the read reaches that end.
// An offset past the end fails; so does a file shorter on disk than
// recorded (ErrCorrupt) and a name the snapshot does not have
// (ErrNotFound). The caller keeps p.
func (src *Source) ReadAt(file string, p []byte, off uint64) (int, error) {
	if src.unpinned {
		return 0, fmt.Errorf("%w: read of snapshot %s after Close", ErrClosed, src.id)
	}
	size, ok := src.Size(file)
	if !ok {
		return 0, fmt.Errorf("%w: file %q in snapshot %s", ErrNotFound, file, src.id)
	}
	if off > size {
		return 0, fmt.Errorf("snapshot: read at %d of %q in snapshot %s, of %d bytes", off, file, src.id, size)
	}
	if rest := size - off; uint64(len(p)) >= rest {
		p = p[:rest]
	}
	name := file
	if name == "" {
		name = dataName
	}
	if err := src.use(name); err != nil {
		return 0, err
	}
	n, err := src.f.ReadAt(p, int64(off))
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			return n, fmt.Errorf("%w: %s is shorter than the %d bytes the manifest records", ErrCorrupt, src.f.Name(), size)
		}
		return n, ioErr("read", src.f.Name(), err)
	}
	if off+uint64(n) == size {
		return n, io.EOF
	}
	return n, nil
}

// use makes name the open file.
func (src *Source) use(name string) error {
	if src.f != nil && src.open == name {
		return nil
	}
	if src.f != nil {
		src.f.Close() // read-only: nothing to lose
		src.f = nil
	}
	p := path.Join(src.dir, name)
	f, err := src.s.fs.Open(p)
	if err != nil {
		return ioErr("open", p, err)
	}
	src.f, src.open = f, name
	return nil
}

// Close closes the open file and unpins the snapshot. Later calls do
// nothing.
func (src *Source) Close() error {
	if src.unpinned {
		return nil
	}
	src.unpinned = true
	var err error
	if src.f != nil {
		err = src.f.Close()
		src.f = nil
	}
	s := src.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pins[src.id]--; s.pins[src.id] <= 0 {
		delete(s.pins, src.id)
	}
	return err
}
