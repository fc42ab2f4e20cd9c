package snapshot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"path"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// A partial download is a snapshot being received from another node, in
// the store's directory under part-<term>-<index>/ (see the package
// documentation). It holds the leader's manifest as MANIFEST from the
// start, the files as they arrive, and PROGRESS: how far they are durable.
// Unlike tmp-* directories, Open keeps it, so that a download interrupted
// by a crash resumes; committing it renames it to snap-<term>-<index>/.

// partial is a partial download being written, by one goroutine (the copy
// actor's).
//
// Invariants: seg ≤ len(segs); off ≤ segs[seg].size and crc is the
// CRC-32C of segs[seg]'s first off bytes (when seg < len(segs)); every
// file before seg is complete, matched its CRC-32C, and is synced; f is
// segs[seg]'s file when seg < len(segs), else nil.
type partial struct {
	s    *Store
	id   ID
	dir  string
	meta *raftpb.SnapshotMeta
	segs []segment

	seg int
	off uint64
	crc uint32
	f   vfs.File

	// unsynced counts the bytes written since the last checkpoint.
	unsynced uint64
	// resumed is how many bytes were found durable when the download
	// was resumed (0 for a new one).
	resumed uint64
	closed  bool
}

// startPartial opens the partial download of meta, which checkMeta
// accepted: it resumes the one in the directory if its MANIFEST is meta,
// from what its PROGRESS says is durable (reading that back to compute
// its CRC-32C), or else starts a new one. Other partial downloads are
// removed: the store keeps one at a time.
func (s *Store) startPartial(meta *raftpb.SnapshotMeta) (*partial, error) {
	id := ID{meta.LastIndex, meta.LastTerm}
	if err := s.removePartials(id); err != nil {
		return nil, err
	}
	fresh := func() *partial {
		return &partial{s: s, id: id, dir: path.Join(s.dir, id.partName()), meta: proto.CloneOf(meta), segs: segmentsOf(meta)}
	}
	p := fresh()
	if _, err := s.fs.Stat(p.dir); err == nil {
		ok, err := p.resume()
		if ok && err == nil {
			return p, nil
		}
		p.close()
		if err != nil {
			return nil, err
		}
		if err := s.removeDir(p.dir); err != nil {
			return nil, err
		}
		p = fresh()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ioErr("stat", p.dir, err)
	}
	if err := p.create(); err != nil {
		p.close()
		if rerr := s.removeDir(p.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return p, nil
}

// removePartials removes the partial downloads of other snapshots than
// keep.
func (s *Store) removePartials(keep ID) error {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return ioErr("list", s.dir, err)
	}
	for _, name := range names {
		if id, ok := parseName(partPrefix, name); ok && id != keep {
			if err := s.removeDir(path.Join(s.dir, name)); err != nil {
				return err
			}
			s.log.Info("snapshot: removed the partial download of another snapshot", "dir", path.Join(s.dir, name), "for", keep.String())
		}
	}
	return nil
}

// partials lists the partial downloads in the directory, by name order.
func (s *Store) partials() ([]ID, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, ioErr("list", s.dir, err)
	}
	var ids []ID
	for _, name := range names {
		if id, ok := parseName(partPrefix, name); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// removeDir removes directory p the crash-safe way (see removeLocked).
func (s *Store) removeDir(p string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.removeLocked(p)
	return err
}

// create starts a new partial download: its directory, its MANIFEST
// (synced, and its name), and the first file.
func (p *partial) create() error {
	fsys := p.s.fs
	if err := fsys.MkdirAll(p.dir, 0o755); err != nil {
		return ioErr("mkdir", p.dir, err)
	}
	if err := fsys.SyncDir(p.s.dir); err != nil {
		return ioErr("syncdir", p.s.dir, err)
	}
	b, err := encodeManifest(p.meta)
	if err != nil {
		return fmt.Errorf("snapshot: partial download of %s: %w", p.id, err)
	}
	if err := writeSynced(fsys, path.Join(p.dir, manifestName), b); err != nil {
		return err
	}
	if err := fsys.SyncDir(p.dir); err != nil {
		return ioErr("syncdir", p.dir, err)
	}
	return p.enter(0)
}

// resume picks up the partial download in p.dir. It reports false if the
// directory cannot be resumed (another manifest, a complete file that
// does not check out): the caller starts afresh. The error is an I/O
// error.
func (p *partial) resume() (bool, error) {
	fsys, log := p.s.fs, p.s.log
	mp := path.Join(p.dir, manifestName)
	b, err := readFile(fsys, mp, int64(maxManifest+manifestHeader+manifestTrailer))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrCorrupt) {
		log.Info("snapshot: a partial download without a readable manifest; starting afresh", "dir", p.dir, "error", err)
		return false, nil
	} else if err != nil {
		return false, err
	}
	if m, err := decodeManifest(b); err != nil || !proto.Equal(m, p.meta) {
		log.Info("snapshot: a partial download of another manifest; starting afresh", "dir", p.dir, "error", err)
		return false, nil
	}
	seg, off := 0, uint64(0)
	pp := path.Join(p.dir, progressName)
	switch b, err := readFile(fsys, pp, int64(progressSize)); {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, ErrCorrupt):
		log.Warn("snapshot: a partial download's PROGRESS is damaged; resuming from its start", "path", pp, "error", err)
	case err != nil:
		return false, err
	default:
		id, s, o, err := decodeProgress(b)
		switch {
		case err != nil:
			log.Warn("snapshot: a partial download's PROGRESS is damaged; resuming from its start", "path", pp, "error", err)
		case id != p.id || int(s) > len(p.segs) || (int(s) < len(p.segs) && o > p.segs[s].size) || (int(s) == len(p.segs) && o != 0):
			log.Warn("snapshot: a partial download's PROGRESS makes no sense; resuming from its start", "path", pp,
				"id", id.String(), "segment", s, "offset", o)
		default:
			seg, off = int(s), o
		}
	}
	// The complete files: read back, as their CRC-32Cs are needed.
	buf := make([]byte, readBackBuffer)
	for i := range seg {
		sg := p.segs[i]
		fp := path.Join(p.dir, sg.disk)
		f, err := fsys.Open(fp)
		if errors.Is(err, fs.ErrNotExist) {
			log.Warn("snapshot: a partial download lost a complete file; starting afresh", "path", fp)
			return false, nil
		} else if err != nil {
			return false, ioErr("open", fp, err)
		}
		n, crc, err := readBack(f, buf, math.MaxUint64)
		f.Close()
		if err != nil {
			return false, ioErr("read", fp, err)
		}
		if n != sg.size || crc != sg.crc {
			log.Warn("snapshot: a complete file of a partial download does not check out; starting afresh",
				"path", fp, "size", n, "want_size", sg.size)
			return false, nil
		}
		p.resumed += n
	}
	p.seg = seg
	if seg == len(p.segs) {
		return true, nil
	}
	// The file being written: cut to its durable length, read back.
	fp := path.Join(p.dir, p.segs[seg].disk)
	f, err := fsys.OpenReadWrite(fp)
	if err != nil {
		return false, ioErr("open", fp, err)
	}
	p.f = f
	n, crc, err := readBack(f, buf, off)
	if err != nil {
		return false, ioErr("read", fp, err)
	}
	if n < off {
		log.Warn("snapshot: a partial download's file is shorter than its PROGRESS says; starting afresh", "path", fp, "size", n, "progress", off)
		return false, nil
	}
	if err := f.Truncate(int64(off)); err != nil {
		return false, ioErr("truncate", fp, err)
	}
	p.off, p.crc = off, crc
	p.resumed += off
	if off < p.segs[seg].size {
		return true, nil
	}
	// Complete, though PROGRESS did not move on to the next file.
	if crc != p.segs[seg].crc {
		log.Warn("snapshot: a complete file of a partial download does not check out; starting afresh", "path", fp)
		return false, nil
	}
	p.f = nil
	if err := f.Close(); err != nil {
		return false, ioErr("close", fp, err)
	}
	return true, p.enter(seg + 1)
}

// written is how many bytes of the snapshot are written, in transfer
// order.
func (p *partial) written() uint64 {
	var n uint64
	for _, sg := range p.segs[:p.seg] {
		n += sg.size
	}
	return n + p.off
}

// readBackBuffer is the buffer resume reads files back with.
const readBackBuffer = 256 << 10

// readBack reads r from its start, up to limit bytes, and returns the
// count and their CRC-32C.
func readBack(r io.ReaderAt, buf []byte, limit uint64) (uint64, uint32, error) {
	var n uint64
	var crc uint32
	for n < limit {
		b := buf
		if rest := limit - n; uint64(len(b)) > rest {
			b = b[:rest]
		}
		k, err := r.ReadAt(b, int64(n))
		n += uint64(k)
		crc = crc32.Update(crc, castagnoli, b[:k])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, crc, err
		}
	}
	return n, crc, nil
}

// enter starts writing segment i: it creates its file (and those of the
// empty segments from there, which are complete at once).
func (p *partial) enter(i int) error {
	for ; i < len(p.segs); i++ {
		fp := path.Join(p.dir, p.segs[i].disk)
		f, err := p.s.fs.Create(fp)
		if err != nil {
			return ioErr("create", fp, err)
		}
		if p.segs[i].size > 0 {
			p.seg, p.off, p.crc, p.f = i, 0, 0, f
			return nil
		}
		if err := f.Close(); err != nil {
			return ioErr("close", fp, err)
		}
	}
	p.seg, p.off, p.crc, p.f = len(p.segs), 0, 0, nil
	return nil
}

// done reports whether every file is complete.
func (p *partial) done() bool { return p.seg == len(p.segs) }

// position returns where writing is: the segment and the offset in it.
func (p *partial) position() (int, uint64) { return p.seg, p.off }

// write appends b to the segment being written. It fails if b goes past
// the segment's end, and with ErrCorrupt when the segment is complete and
// its CRC-32C is not the manifest's. A complete segment is synced and
// closed, and the next one started.
func (p *partial) write(b []byte) error {
	if p.closed || p.f == nil {
		return fmt.Errorf("%w: write to the partial download of %s", ErrClosed, p.id)
	}
	sg := p.segs[p.seg]
	if uint64(len(b)) > sg.size-p.off {
		return fmt.Errorf("snapshot: %d bytes at %d of %q, of %d bytes", len(b), p.off, sg.disk, sg.size)
	}
	n, err := p.f.WriteAt(b, int64(p.off))
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return ioErr("write", p.f.Name(), err)
	}
	p.crc = crc32.Update(p.crc, castagnoli, b)
	p.off += uint64(len(b))
	p.unsynced += uint64(len(b))
	if p.off < sg.size {
		return nil
	}
	if p.crc != sg.crc && !faults.On(faults.InstallUnverified) {
		return fmt.Errorf("%w: %s of snapshot %s received: crc32c %08x, the manifest says %08x",
			ErrCorrupt, p.segName(p.seg), p.id, p.crc, sg.crc)
	}
	f := p.f
	p.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return ioErr("sync", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return ioErr("close", f.Name(), err)
	}
	return p.enter(p.seg + 1)
}

func (p *partial) segName(i int) string {
	if p.segs[i].file == "" {
		return "the data"
	}
	return fmt.Sprintf("file %q", p.segs[i].file)
}

// checkpoint makes what was written durable and records it in PROGRESS:
// the file being written is synced, PROGRESS.tmp written and synced,
// renamed to PROGRESS, and the directory synced (which makes the names
// of the files created since durable too).
func (p *partial) checkpoint() error {
	if p.closed {
		return fmt.Errorf("%w: checkpoint of the partial download of %s", ErrClosed, p.id)
	}
	fsys := p.s.fs
	if p.f != nil {
		if err := p.f.Sync(); err != nil {
			return ioErr("sync", p.f.Name(), err)
		}
	}
	tmp := path.Join(p.dir, progressTmp)
	if err := writeSynced(fsys, tmp, encodeProgress(p.id, p.seg, p.off)); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path.Join(p.dir, progressName)); err != nil {
		return ioErr("rename", tmp, err)
	}
	if err := fsys.SyncDir(p.dir); err != nil {
		return ioErr("syncdir", p.dir, err)
	}
	p.unsynced = 0
	return nil
}

// commit makes the complete download a snapshot of the store, as
// Writer.Commit does: every file is synced already and MANIFEST was
// written first; PROGRESS goes, the directory is synced, renamed to
// snap-<term>-<index> and the store's directory synced. Then the store is
// pruned. It fails with ErrExists if the store holds the snapshot
// already; on any error the download stays where it was.
func (p *partial) commit() (*raftpb.SnapshotMeta, error) {
	if p.closed || !p.done() {
		return nil, fmt.Errorf("snapshot: commit of the partial download of %s, not complete", p.id)
	}
	s := p.s
	for _, name := range []string{progressName, progressTmp} {
		fp := path.Join(p.dir, name)
		if err := s.fs.Remove(fp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, ioErr("remove", fp, err)
		}
	}
	if err := s.fs.SyncDir(p.dir); err != nil {
		return nil, ioErr("syncdir", p.dir, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(p.id) != nil {
		return nil, fmt.Errorf("%w: snapshot %s in %s", ErrExists, p.id, s.dir)
	}
	final := path.Join(s.dir, p.id.dirName())
	if _, err := s.fs.Stat(final); err == nil {
		return nil, fmt.Errorf("%w: %s (a damaged snapshot of the same index and term; remove it to replace it)", ErrExists, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ioErr("stat", final, err)
	}
	if err := s.fs.Rename(p.dir, final); err != nil {
		return nil, ioErr("rename", p.dir, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		err = ioErr("syncdir", s.dir, err)
		if rerr := s.fs.Rename(final, p.dir); rerr != nil {
			s.snaps = insertSnap(s.snaps, &snap{id: p.id, meta: p.meta})
			p.closed = true
			return nil, fmt.Errorf("%w; the snapshot stays in %s, complete, but may not survive a crash (taking it back: %v)", err, final, rerr)
		}
		return nil, err
	}
	p.closed = true
	s.snaps = insertSnap(s.snaps, &snap{id: p.id, meta: p.meta})
	if err := s.pruneLocked(); err != nil {
		s.log.Warn("snapshot: pruning after installing a snapshot failed", "error", err)
	}
	return proto.CloneOf(p.meta), nil
}

// close closes the file being written, leaving the download in place.
func (p *partial) close() {
	if p.f != nil {
		p.f.Close() // what matters was synced by the last checkpoint
		p.f = nil
	}
	p.closed = true
}

// remove closes the download and removes its directory.
func (p *partial) remove() error {
	p.close()
	return p.s.removeDir(p.dir)
}

// writeSynced creates file fp holding b, synced and closed.
func writeSynced(fsys vfs.FS, fp string, b []byte) error {
	f, err := fsys.Create(fp)
	if err != nil {
		return ioErr("create", fp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return ioErr("write", fp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return ioErr("sync", fp, err)
	}
	if err := f.Close(); err != nil {
		return ioErr("close", fp, err)
	}
	return nil
}

// openPartialsLocked is Open's part: it removes the partial downloads that a
// valid snapshot or a newer download supersedes, and keeps the newest
// other. s.mu must be held; s.snaps is sorted.
func (s *Store) openPartialsLocked(names []string) error {
	var newest ID
	for _, name := range names {
		if id, ok := parseName(partPrefix, name); ok && id.compare(newest) > 0 {
			newest = id
		}
	}
	var errs []error
	for _, name := range names {
		id, ok := parseName(partPrefix, name)
		if !ok {
			if strings.HasPrefix(name, partPrefix) {
				s.log.Warn("snapshot: ignoring an entry whose name is not a partial download's", "path", path.Join(s.dir, name))
			}
			continue
		}
		why := ""
		switch {
		case len(s.snaps) > 0 && id.compare(s.snaps[0].id) <= 0:
			why = "a valid snapshot as new or newer is in the store"
		case id != newest:
			why = "a newer partial download is in the store"
		default:
			s.log.Info("snapshot: kept a partial download, to resume", "dir", path.Join(s.dir, name))
			continue
		}
		if _, err := s.removeLocked(path.Join(s.dir, name)); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("snapshot: removed a partial download: "+why, "dir", path.Join(s.dir, name))
	}
	return errors.Join(errs...)
}
