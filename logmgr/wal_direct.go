package logmgr

import (
	"errors"
	"fmt"

	"github.com/asyncraft/asyncraft/vfs"
)

// Direct writes. Unless WALOptions.Buffered is set, the writer appends to
// the last segment through a second handle opened with vfs.DirectFS: each
// write bypasses the page cache and is durable when it returns, so that a
// batch costs one system call and one disk write (with FUA, or followed by
// a cache flush) and Sync has nothing left to do for it.
//
// A direct write must start and end on a vfs.DirectAlign boundary. The
// writer keeps the segment's bytes from its last boundary to its end (the
// tail, less than DirectAlign bytes) and writes them again in front of
// the new bytes, with zeros after them up to the next boundary (or, in a
// segment not zero-filled that far yet, up to the next walZeroChunk
// boundary, as a buffered write would). So a direct write rewrites the
// partial block at the end with the bytes it already holds, and writes
// zeros over zeros: the content of the file changes exactly as with a
// buffered write. A write torn by a crash leaves whole sectors of either
// the old or the new content in the block, which agree up to the old end;
// a buffered write has the same exposure, since writeback rewrites whole
// pages. Segments whose size is not a multiple of DirectAlign (small
// segments in tests) are written through the page cache.

// writeDirect writes b at the end of s's data directly, if it can: ok is
// false when it cannot (the segment's size is not aligned, or the file
// system has no direct writes, which then turns them off), and the caller
// writes through the page cache instead.
func (w *WAL) writeDirect(s *segment, b []byte) (ok bool, err error) {
	if !w.direct || s.size%vfs.DirectAlign != 0 {
		return false, nil
	}
	if w.dseg != s {
		if err := w.openDirect(s); err != nil {
			if errors.Is(err, vfs.ErrDirectUnsupported) {
				w.direct = false
				return false, nil
			}
			return true, err
		}
	}
	start := alignDown(s.end, vfs.DirectAlign)
	end := s.end + int64(len(b))
	zend := alignUp(end, vfs.DirectAlign)
	if end > s.zeroed {
		zend = max(zend, min(s.size, alignUp(end, walZeroChunk)))
	}
	n := int(zend - start)
	// b may be in place already (Append encodes there).
	inPlace := len(b) > 0 && w.dtail < cap(w.dbuf) && &w.dbuf[:cap(w.dbuf)][w.dtail] == &b[0]
	if inPlace {
		w.growDirect(n, w.dtail+len(b))
	} else {
		w.growDirect(n, w.dtail)
	}
	out := w.dbuf[:n]
	if !inPlace {
		copy(out[w.dtail:], b)
	}
	clear(out[w.dtail+len(b):])
	if _, err := w.dfile.WriteAt(out, start); err != nil {
		return true, w.fail(fmt.Errorf("logmgr: write %s at %d: %w", s.path, start, err))
	}
	// The new tail goes to the front of the buffer.
	ts := alignDown(end, vfs.DirectAlign)
	w.dtail = copy(w.dbuf, out[ts-start:end-start])
	s.zeroed = max(s.zeroed, zend)
	s.end = end
	return true, nil
}

// openDirect opens s for direct writes, closing the handle of the
// segment written before, and loads its tail.
func (w *WAL) openDirect(s *segment) error {
	if err := w.closeDirect(); err != nil {
		return w.fail(err)
	}
	f, err := w.fs.(vfs.DirectFS).OpenDirect(s.path)
	if err != nil {
		if errors.Is(err, vfs.ErrDirectUnsupported) {
			return err
		}
		return fmt.Errorf("logmgr: open %s for direct writes: %w", s.path, err)
	}
	start := alignDown(s.end, vfs.DirectAlign)
	tail := int(s.end - start)
	w.growDirect(tail, 0)
	if _, err := s.f.ReadAt(w.dbuf[:tail], start); err != nil {
		f.Close()
		return fmt.Errorf("logmgr: read the tail of %s at %d: %w", s.path, start, err)
	}
	w.dseg, w.dfile, w.dtail = s, f, tail
	return nil
}

// directBuffer returns dbuf up to the tail, for Append to encode the
// batch behind it, in place: the write then needs no copy. A batch that
// outgrows dbuf is encoded elsewhere (append reallocates) and copied.
func (w *WAL) directBuffer() []byte {
	w.dbuf = w.dbuf[:cap(w.dbuf)]
	return w.dbuf[:w.dtail]
}

// growDirect makes dbuf hold at least n bytes, keeping its first keep.
func (w *WAL) growDirect(n, keep int) {
	if n > cap(w.dbuf) {
		b := vfs.AlignedBuffer(int(alignUp(int64(n), vfs.DirectAlign)))
		copy(b, w.dbuf[:keep])
		w.dbuf = b
	}
	w.dbuf = w.dbuf[:cap(w.dbuf)]
}

// closeDirect closes the direct handle, if any. Its writes are durable
// already; an error closing it is reported all the same.
func (w *WAL) closeDirect() error {
	f := w.dfile
	if f == nil {
		return nil
	}
	w.dseg, w.dfile, w.dtail = nil, nil, 0
	if err := f.Close(); err != nil {
		return fmt.Errorf("logmgr: close %s: %w", f.Name(), err)
	}
	return nil
}

func alignDown(n, a int64) int64 { return n / a * a }
