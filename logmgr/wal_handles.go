package logmgr

import (
	"fmt"
	"sync"

	"github.com/asyncraft/asyncraft/internal/invariants"
	"github.com/asyncraft/asyncraft/vfs"
)

// Open file handles. A WAL keeps its last segment open (read-write, and
// once written, a second handle for direct writes). The other segments
// are opened only to be read: a reader opens the segment it needs, and
// the handle stays open for the next reads, up to walReadHandles of them
// per WAL; beyond that, the least recently used one that no reader holds
// is closed. So a log of any number of segments keeps a few handles open,
// and a thousand idle logs cost two each.
//
// A segment that leaves the log (dropped by TruncatePrefix, superseded)
// while readers hold it must stay readable until they let go, although
// its file loses its name: before renaming or removing the file, the
// writer opens it for them if they have not yet (retire). The handle is
// then closed by the last release.

// walReadHandles is how many segments other than the last a WAL keeps
// open for reads, when no reader holds them.
const walReadHandles = 4

// readHandles is the set of segments, other than the last, whose file may
// be open for reads, least recently used first. Readers and the writer
// use it concurrently.
type readHandles struct {
	mu   sync.Mutex
	segs []*segment
}

// used records that s was just read (opened says whether its file was
// opened for that), and closes the files of the least recently used
// segments beyond walReadHandles that no reader holds.
func (h *readHandles) used(s *segment, opened bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.index(s); i >= 0 {
		h.segs = append(h.segs[:i], h.segs[i+1:]...)
	} else if !opened {
		return // closed and forgotten meanwhile, or the last segment
	}
	h.segs = append(h.segs, s)
	h.evict(len(h.segs) - 1)
}

// trim closes the files of the least recently used segments beyond
// walReadHandles that no reader holds. Readers call it when they let go:
// what they held could not be closed while they read.
func (h *readHandles) trim() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evict(len(h.segs))
}

// evict closes files from the least recently used on, among the first
// upTo segments, while there are more than walReadHandles.
func (h *readHandles) evict(upTo int) {
	for i := 0; len(h.segs) > walReadHandles && i < upTo; {
		if h.segs[i].closeIdle() {
			h.segs = append(h.segs[:i], h.segs[i+1:]...)
			upTo--
		} else {
			i++
		}
	}
}

// forget drops s (it became the last segment's successor's, or it left).
func (h *readHandles) forget(s *segment) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := h.index(s); i >= 0 {
		h.segs = append(h.segs[:i], h.segs[i+1:]...)
	}
}

func (h *readHandles) index(s *segment) int {
	for i, t := range h.segs {
		if t == s {
			return i
		}
	}
	return -1
}

// closeIdle closes s's file if no reader holds s and it is still in the
// log (a segment that left is closed by its last release); it reports
// whether s has no open file now.
func (s *segment) closeIdle() bool {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.f == nil {
		return true
	}
	if s.gone || s.refs.Load() != 1 {
		return false
	}
	s.f.Close() // nothing was written through it since its last sync
	s.f = nil
	return true
}

// readFile returns s's file for reading, opening it if needed. The caller
// holds a reference on s (pin), which keeps the file from being closed
// until it releases it.
func (w *WAL) readFile(s *segment) (vfs.File, error) {
	s.fmu.Lock()
	f, opened := s.f, false
	if f == nil {
		if err := invariants.Check(!s.gone, "logmgr: %s left the log unopened while a reader held it", s.path); err != nil {
			s.fmu.Unlock()
			return nil, err
		}
		var err error
		if f, err = w.fs.Open(s.path); err != nil {
			s.fmu.Unlock()
			return nil, fmt.Errorf("logmgr: open %s: %w", s.path, err)
		}
		s.f, opened = f, true
	}
	s.fmu.Unlock()
	if s != w.lastSeg.Load() {
		w.handles.used(s, opened)
	}
	return f, nil
}

// keepOpen opens s's file, if it is not, and keeps it open until the
// last release: its name is about to go to another file. A failure
// leaves the WAL usable (nothing was written).
func (s *segment) keepOpen(fsys vfs.FS) error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.f == nil {
		f, err := fsys.Open(s.path)
		if err != nil {
			return fmt.Errorf("logmgr: open %s: %w", s.path, err)
		}
		s.f = f
	}
	s.gone = true
	return nil
}

// retire prepares s, which has just left the log, for its file to be
// renamed or removed: readers that hold it keep reading it through a
// handle opened now if none is.
func (w *WAL) retire(s *segment) error {
	w.handles.forget(s)
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.gone = true
	if s.f != nil || s.refs.Load() <= 1 {
		return nil
	}
	f, err := w.fs.Open(s.path)
	if err != nil {
		return w.fail(fmt.Errorf("logmgr: open %s for its readers: %w", s.path, err))
	}
	s.f = f
	return nil
}
