package logmgr

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/vfs"
)

// Reusing the files of freed segments.
//
// A segment that TruncatePrefix drops, or that a new segment supersedes,
// is not removed: its file is renamed to "recycle-<n>.wal.tmp" and kept
// (at most walMaxRecycled of them, the biggest), to become a later
// segment. Creating a segment from a recycled file rewrites its header in
// place, syncs it and renames the file into place; appends then overwrite
// its old records. Its blocks are all written already, so that, unlike a
// fresh file, it needs no zero-filling for appends to stay cheap to sync
// (see docs/storage.md). The records of its earlier lives stay after the
// end of the data; they carry the tags of earlier sequence numbers (see
// walSeqTag), so that they read as the end of the data.
//
// A recycled file is reused only once no reader holds the segment it was:
// a reader that pinned the segment before it was dropped reads its old
// bytes, which must stay as they were until the reader lets go (the
// segment's file is closed then, see segment.release).
//
// The pool is owned by the writer; OpenWAL keeps the recycled files it
// finds (up to the bound) and recycles the dead segments it finds.

const (
	// walRecyclePrefix starts the name of a recycled file, followed by a
	// decimal number and walTmpExt.
	walRecyclePrefix = "recycle-"
	// walMaxRecycled is the most recycled files a WAL keeps.
	walMaxRecycled = 2
)

// recycledFile is a file kept for reuse.
type recycledFile struct {
	path string
	size int64
	// seg is the segment the file held, if dropped by this WAL: the file
	// may be reused once seg's readers are gone (refs zero).
	seg *segment
}

// free says whether no reader holds the segment the file held.
func (rc *recycledFile) free() bool { return rc.seg == nil || rc.seg.refs.Load() == 0 }

func recycleName(n uint64) string { return walRecyclePrefix + strconv.FormatUint(n, 10) + walTmpExt }

// parseRecycleName returns the number of a recycled file's name.
func parseRecycleName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, walRecyclePrefix)
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, walTmpExt); !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && strconv.FormatUint(n, 10) == s
}

// recycle keeps the file at p (of size bytes; seg is the segment it
// held, or nil) for reuse: it renames it to a recycle name, unless the
// pool is full of files at least as big, in which case it removes it. A
// file that gets in evicts the smallest of a full pool. It does not sync
// the directory; an error fails the WAL.
func (w *WAL) recycle(p string, size int64, seg *segment) error {
	if seg != nil && seg == w.dseg {
		if err := w.closeDirect(); err != nil {
			return w.fail(err)
		}
	}
	var evict *recycledFile
	if len(w.recycled) >= walMaxRecycled {
		k := 0
		for i, rc := range w.recycled {
			if rc.size < w.recycled[k].size {
				k = i
			}
		}
		if w.recycled[k].size >= size {
			if err := w.fs.Remove(p); err != nil {
				return w.fail(fmt.Errorf("logmgr: remove %s: %w", p, err))
			}
			return nil
		}
		evict = w.recycled[k]
		w.recycled = append(w.recycled[:k], w.recycled[k+1:]...)
	}
	name := path.Join(w.dir, recycleName(w.recycleNext))
	w.recycleNext++
	if err := w.fs.Rename(p, name); err != nil {
		return w.fail(fmt.Errorf("logmgr: rename %s to %s: %w", p, name, err))
	}
	w.recycled = append(w.recycled, &recycledFile{path: name, size: size, seg: seg})
	if evict != nil {
		if err := w.fs.Remove(evict.path); err != nil {
			return w.fail(fmt.Errorf("logmgr: remove %s: %w", evict.path, err))
		}
	}
	return nil
}

// takeRecycled takes out of the pool the smallest recycled file of at
// least size bytes that no reader holds, or returns nil.
func (w *WAL) takeRecycled(size int64) *recycledFile {
	k := -1
	for i, rc := range w.recycled {
		if rc.size >= size && rc.free() && (k < 0 || rc.size < w.recycled[k].size) {
			k = i
		}
	}
	if k < 0 {
		return nil
	}
	rc := w.recycled[k]
	w.recycled = append(w.recycled[:k], w.recycled[k+1:]...)
	return rc
}

// hasRecycled says whether the pool holds a file of at least size bytes
// (free now or once its readers are done).
func (w *WAL) hasRecycled(size int64) bool {
	for _, rc := range w.recycled {
		if rc.size >= size {
			return true
		}
	}
	return false
}

// openRecycled opens rc for reuse and checks that it is still the file
// the pool knows (its size).
func (w *WAL) openRecycled(rc *recycledFile) (vfs.File, error) {
	if err := invariants.Check(rc.free(), "logmgr: reusing %s while readers hold the segment it was", rc.path); err != nil {
		return nil, err
	}
	f, err := w.fs.OpenReadWrite(rc.path)
	if err != nil {
		return nil, fmt.Errorf("logmgr: open %s: %w", rc.path, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != rc.size {
		err = fmt.Errorf("%d bytes, was %d", fi.Size(), rc.size)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logmgr: stat %s: %w", rc.path, err)
	}
	return f, nil
}

// recoverRecycled takes over the recycled files OpenWAL found (names, with
// their sizes), removing those beyond the bound (the smallest), and
// recycles the dead segments. It reports whether it changed the
// directory.
func (w *WAL) recoverRecycled(st *walState) (changed bool, err error) {
	for _, rc := range st.recycled {
		n, _ := parseRecycleName(path.Base(rc.path))
		w.recycleNext = max(w.recycleNext, n+1)
	}
	for _, rc := range st.recycled {
		removed, err := w.recycleFound(rc.path, rc.size)
		if err != nil {
			return true, err
		}
		changed = changed || removed
	}
	for _, f := range st.files {
		if f.live {
			continue
		}
		f.close()
		if err := w.recycle(f.path, f.size, nil); err != nil {
			return true, fmt.Errorf("logmgr: recycle dead segment: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// recycleFound adds a recycled file found on open to the pool, under its
// own name, or removes it or the smallest in the pool (see recycle for the
// choice); removed says whether it removed one.
func (w *WAL) recycleFound(p string, size int64) (removed bool, err error) {
	if len(w.recycled) < walMaxRecycled {
		w.recycled = append(w.recycled, &recycledFile{path: p, size: size})
		return false, nil
	}
	k := 0
	for i, rc := range w.recycled {
		if rc.size < w.recycled[k].size {
			k = i
		}
	}
	victim := p
	if w.recycled[k].size < size {
		victim = w.recycled[k].path
		w.recycled[k] = &recycledFile{path: p, size: size}
	}
	if err := w.fs.Remove(victim); err != nil {
		return true, fmt.Errorf("logmgr: remove %s: %w", victim, err)
	}
	return true, nil
}
