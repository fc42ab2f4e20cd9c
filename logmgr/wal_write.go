package logmgr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"syscall"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// The WAL's mutations. Only the writer (one goroutine at a time) calls
// them; it reads the index without the lock, since nobody else changes it,
// and takes the write lock only to publish a change.

// writable returns the error a mutation must fail with, if any.
func (w *WAL) writable() error {
	w.mu.RLock()
	closed := w.closed
	w.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if w.failed != nil {
		return fmt.Errorf("logmgr: WAL unusable after an earlier failure: %w", w.failed)
	}
	return nil
}

// fail makes the WAL unusable and returns err.
func (w *WAL) fail(err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return err
}

func (w *WAL) active() *segment { return w.segs[len(w.segs)-1] }

// Append encodes the batch into one buffer and writes it with one write at
// the end of the last segment, first rolling to a new segment if the
// batch does not fit. With direct writes the batch is durable when Append
// returns.
func (w *WAL) Append(entries []*raftpb.Entry) error {
	if err := w.writable(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	next := w.last() + 1
	if entries[0].Index != next {
		return fmt.Errorf("logmgr: append at index %d, want %d", entries[0].Index, next)
	}
	// Writing directly to the segment written last, the batch is
	// encoded in place, behind the tail in the direct buffer (see
	// directBuffer); otherwise in w.buf.
	dseg := w.dseg
	inPlace := dseg != nil && dseg == w.active()
	buf := w.buf[:0]
	if inPlace {
		buf = w.directBuffer()
		warmDirect(buf, entries)
	}
	base := len(buf)
	fr := w.nextFrame()
	buf, pos, err := appendBatchRecords(buf, w.pos[:0], entries, next, fr)
	if err != nil {
		return err
	}
	w.pos = pos
	batch := buf[base:]
	if int64(len(batch)) > MaxSegmentSize-walHeaderRecordLen {
		return fmt.Errorf("logmgr: batch of %d bytes does not fit in a segment", len(batch))
	}
	s, err := w.room(int64(len(batch)))
	if err != nil {
		return err
	}
	if !inPlace {
		w.buf = buf
	} else if s != dseg {
		// A new segment: its tail replaces the old one in the
		// direct buffer, so the batch moves out of the way first.
		w.buf = append(w.buf[:0], batch...)
		batch = w.buf
	}
	if s.frame != fr {
		resealRecords(batch, s.frame)
	}
	at := s.end
	if err := w.write(s, batch); err != nil {
		return err
	}
	w.mu.Lock()
	w.ents.appendAt(pos, uint32(at))
	w.mu.Unlock()
	return nil
}

// warmDirect clears the room of buf, the direct buffer up to its tail,
// that a batch of entries will take, up to the next DirectAlign boundary:
// a speed-up only, the encoding overwrites it. While the thread waited on
// the last write, the device read these bytes, and writing a cache line
// the device has read is slow (the processor first fetches the line and
// takes it back from the reader). A large clear (on amd64 with enhanced
// REP STOSB, from 2 KiB) writes whole lines without fetching them, so
// the encoding then writes to lines the processor holds: measured with
// 256 entries of 128 bytes on the development VM, alone, a clear of that
// size took 1.1–1.3 µs and the encoding 5.1–5.3 µs afterwards, against
// 13.6–15.5 µs without it (docs/storage.md).
func warmDirect(buf []byte, entries []*raftpb.Entry) {
	n := len(buf) + recTaggedHeader + binary.MaxVarintLen64
	for _, e := range entries {
		n += len(e.Data) + 3
	}
	clear(buf[len(buf):min(cap(buf), int(alignUp(int64(n), vfs.DirectAlign)))])
}

// nextFrame is the framing of the records Append writes: the last
// segment's, if it is of the current format version (else the batch goes
// to a new segment, whose sequence number is the next one). If the batch
// does not fit after all, it is resealed for the new segment.
func (w *WAL) nextFrame() recFrame {
	if s := w.active(); s.frame.tagged {
		return s.frame
	}
	return recFrame{tagged: true, tag: walSeqTag(w.seq + 1)}
}

// room returns the segment to write n bytes to: the last one, or a new one
// if they do not fit (or the last one is of an older format version). The
// new one is grownSize (or what n needs); if the disk has no room for that
// (ENOSPC before anything was written), the smallest that holds n.
func (w *WAL) room(n int64) (*segment, error) {
	if s := w.active(); s.end+n <= s.size && s.frame.tagged {
		return s, nil
	}
	need := alignUp(walHeaderRecordLen+n, walAlign)
	last := w.last()
	if err := w.installFitting(last+1, w.term(last), 0, max(w.grownSize(), need), max(w.opts.InitialSegmentSize, need)); err != nil {
		return nil, err
	}
	return w.active(), nil
}

// installFitting installs a new segment (see install) of the given size,
// or, if the disk has no room for it (ENOSPC before anything was
// written), of the least size that will do; and if there is no room for
// that either, it gives up the space of the spare and of the recycled
// files no reader holds, and tries once more.
func (w *WAL) installFitting(first, prevTerm uint64, flags uint32, size, least int64) error {
	err := w.install(first, prevTerm, flags, size)
	noSpace := func() bool { return errors.Is(err, syscall.ENOSPC) && w.failed == nil }
	if noSpace() && least < size {
		err = w.install(first, prevTerm, flags, least)
	}
	if noSpace() && w.dropReserves() {
		err = w.install(first, prevTerm, flags, least)
	}
	return err
}

// dropReserves removes the spare and the recycled files that no reader
// holds, to free their space; it reports whether there was any.
func (w *WAL) dropReserves() bool {
	dropped := w.spare != nil
	w.stopSpare()
	kept := w.recycled[:0]
	for _, rc := range w.recycled {
		if !rc.free() {
			kept = append(kept, rc)
			continue
		}
		w.fs.Remove(rc.path) // best effort: a failure leaves the space taken, and the retry fails
		dropped = true
	}
	w.recycled = kept
	return dropped
}

// grownSize is the size of the segment a roll creates: twice the last
// segment's, between the initial and the largest segment size.
func (w *WAL) grownSize() int64 {
	return min(w.opts.SegmentSize, max(w.opts.InitialSegmentSize, 2*w.active().size))
}

// keptSize is the size of a segment a truncation or a reset creates: the
// last segment's, between the initial and the largest segment size.
func (w *WAL) keptSize() int64 {
	return min(w.opts.SegmentSize, max(w.opts.InitialSegmentSize, w.active().size))
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// write writes b at the end of s's data, directly if it can (see
// writeDirect), else through the page cache with zeros after it up to the
// next walZeroChunk boundary when that region has not been written yet. It
// fails the WAL on error.
func (w *WAL) write(s *segment, b []byte) error {
	if ok, err := w.writeDirect(s, b); ok {
		if err == nil {
			w.advanced(s)
		}
		return err
	}
	end := s.end + int64(len(b))
	out := b
	if end > s.zeroed {
		if z := min(s.size, alignUp(end, walZeroChunk)); z > end {
			out = append(b, zeros[:z-end]...)
		}
	}
	if _, err := s.f.WriteAt(out, s.end); err != nil {
		return w.fail(fmt.Errorf("logmgr: write %s at %d: %w", s.path, s.end, err))
	}
	s.zeroed = max(s.zeroed, s.end+int64(len(out)))
	s.end = end
	s.dirty = true
	w.advanced(s)
	return nil
}

// advanced tells the spare's preparer how far the writer is in s, and
// starts preparing a spare once the writer is far enough into s and no
// recycled file will do for the next segment (see startSpare).
func (w *WAL) advanced(s *segment) {
	progress := s.end - walHeaderRecordLen
	w.progress.Store(progress)
	if sp := w.spare; sp != nil {
		sp.advanced(progress)
		return
	}
	if w.background && progress >= s.size/walSpareStartDiv && !w.hasRecycled(w.grownSize()) {
		w.startSpare()
	}
}

// TruncateSuffix writes a truncate record at the end of the last segment
// when the cut is inside it; a cut before it (or with no room left for the
// record) starts a new segment at the cut instead, which supersedes every
// segment from the cut on.
func (w *WAL) TruncateSuffix(from uint64) error {
	if err := w.writable(); err != nil {
		return err
	}
	last := w.last()
	if from < w.base || from > last+1 {
		return fmt.Errorf("logmgr: truncate from %d outside [%d, %d]", from, w.base, last+1)
	}
	if from == last+1 {
		return nil
	}
	if s := w.active(); from > s.first && s.frame.tagged {
		rec, err := appendRecord(w.buf[:0], walRecTruncate, &raftpb.IndexMark{Index: from}, s.frame)
		if err != nil {
			return err
		}
		w.buf = rec
		if s.end+int64(len(rec)) <= s.size {
			if err := w.write(s, rec); err != nil {
				return err
			}
			w.mu.Lock()
			w.ents.truncate(int(from - w.base))
			w.mu.Unlock()
			return nil
		}
	}
	return w.installFitting(from, w.term(from-1), 0, w.keptSize(), w.opts.InitialSegmentSize)
}

// TruncatePrefix drops the segments that hold only entries before first,
// oldest first, syncing the directory after each so that a crash leaves a
// suffix of the segments. Each dropped segment's file is recycled (renamed
// for reuse, see wal_recycle.go) or removed. The last segment always
// stays. Writes not yet synced are synced first: a removal must not become
// durable before the mutations that came before it.
func (w *WAL) TruncatePrefix(first uint64) error {
	if err := w.writable(); err != nil {
		return err
	}
	if last := w.last(); first > last+1 {
		return fmt.Errorf("logmgr: truncate prefix before %d after the last index %d", first, last)
	}
	if len(w.segs) > 1 && w.segs[1].first <= first {
		if err := w.syncDirty(); err != nil {
			return err
		}
	}
	for len(w.segs) > 1 && w.segs[1].first <= first {
		old, next := w.segs[0], w.segs[1]
		w.mu.Lock()
		w.segs = append([]*segment(nil), w.segs[1:]...)
		w.ents.dropFront(int(next.first - w.base))
		w.base, w.baseTerm = next.first, next.prevTerm
		w.mu.Unlock()
		err := w.retire(old)
		if err == nil {
			err = w.recycle(old.path, old.size, old)
		}
		old.release()
		if err != nil {
			return err
		}
		if err := w.fs.SyncDir(w.dir); err != nil {
			return w.fail(fmt.Errorf("logmgr: sync dir %s: %w", w.dir, err))
		}
	}
	w.spareNotNeeded()
	return nil
}

// Reset starts a new segment at next with the reset flag, which
// supersedes every other segment; they are then removed.
func (w *WAL) Reset(next, term uint64) error {
	if err := w.writable(); err != nil {
		return err
	}
	if next == 0 {
		return fmt.Errorf("logmgr: reset to next index 0")
	}
	return w.installFitting(next, term, walFlagReset, w.keptSize(), w.opts.InitialSegmentSize)
}

// Sync fdatasyncs every segment written through the page cache since the
// last Sync (the last one, normally: a roll syncs the segment it leaves);
// direct writes leave it nothing to do. A failure makes the WAL unusable.
func (w *WAL) Sync() error {
	if err := w.writable(); err != nil {
		return err
	}
	return w.syncDirty()
}

func (w *WAL) syncDirty() error {
	for _, s := range w.segs {
		if !s.dirty {
			continue
		}
		if err := s.f.Sync(); err != nil {
			return w.fail(fmt.Errorf("logmgr: sync %s: %w", s.path, err))
		}
		s.dirty = false
	}
	return nil
}

// install makes a new segment starting at first the last one: after
// syncing every earlier write (so that only the last segment can ever have
// a torn tail, and a segment that truncates earlier ones never becomes
// durable before what it keeps of them), it creates the segment, which
// supersedes the segments starting at or after first (all of them, with
// the reset flag), and removes those.
func (w *WAL) install(first, prevTerm uint64, flags uint32, size int64) error {
	if err := w.syncDirty(); err != nil {
		return err
	}
	// A segment of the same name loses its file's name to the new one's
	// rename: it is opened now for whoever reads it from now on.
	name := segName(first)
	for _, old := range w.segs {
		if old.name == name {
			w.handles.forget(old)
			if err := old.keepOpen(w.fs); err != nil {
				return err
			}
		}
	}
	prev := w.active()
	s, err := w.createSegment(first, prevTerm, flags, size)
	if err != nil {
		return err
	}
	var keep, dead []*segment
	for _, old := range w.segs {
		if flags&walFlagReset != 0 || old.first >= first {
			dead = append(dead, old)
		} else {
			keep = append(keep, old)
		}
	}
	w.mu.Lock()
	w.segs = append(keep, s)
	switch {
	case flags&walFlagReset != 0:
		w.base, w.baseTerm, w.ents = first, prevTerm, posIndex{}
	case first <= w.last():
		w.ents.truncate(int(first - w.base))
	}
	w.mu.Unlock()
	w.lastSeg.Store(s)
	if len(keep) > 0 && keep[len(keep)-1] == prev {
		w.handles.used(prev, true) // its file is open; it may be closed now
	}
	removed := false
	for _, old := range dead {
		if old.name != s.name { // else the rename replaced it
			err := w.retire(old)
			if err == nil {
				err = w.recycle(old.path, old.size, old)
			}
			if err != nil {
				old.release()
				return err
			}
			removed = true
		}
		old.release()
	}
	if removed {
		if err := w.fs.SyncDir(w.dir); err != nil {
			return w.fail(fmt.Errorf("logmgr: sync dir %s: %w", w.dir, err))
		}
		w.spareNotNeeded()
	}
	return nil
}

// createSegment creates a segment file of (at least) the given size
// starting at first, durably. Its file is a recycled one (of at least that
// size, see wal_recycle.go), whose header it rewrites; or the spare; or a
// new one, sized, preallocated and given zeros up to walZeroChunk. With
// its header written, it is synced under its temporary name, then renamed
// into place (replacing a dead segment of that name, if any) and the
// directory synced. A failure before the rename leaves the WAL as it was
// (and usable); after it, the WAL fails.
func (w *WAL) createSegment(first, prevTerm uint64, flags uint32, size int64) (*segment, error) {
	name := segName(first)
	final := path.Join(w.dir, name)
	hdr := segHeader{first: first, prevTerm: prevTerm, seq: w.seq + 1, flags: flags, version: WALFormatVersion}
	b := appendRawRecord(make([]byte, 0, walZeroChunk), walRecSegment, hdr.marshal())
	var (
		tmp    string
		f      vfs.File
		zeroed int64
		reused bool
	)
	if rc := w.takeRecycled(size); rc != nil {
		var err error
		if f, err = w.openRecycled(rc); err != nil {
			w.fs.Remove(rc.path) // best effort; OpenWAL takes it back otherwise
			return nil, err
		}
		// Its blocks are written already: only the header changes.
		tmp, size, zeroed, reused = rc.path, rc.size, rc.size, true
	} else if sp := w.takeSpare(size); sp != nil {
		tmp, f, zeroed = sp.path, sp.f, size
	} else {
		tmp = final + ".tmp"
		var err error
		if f, err = w.fs.Create(tmp); err != nil {
			return nil, fmt.Errorf("logmgr: create %s: %w", tmp, err)
		}
	}
	abort := func(what string, err error) (*segment, error) {
		f.Close()
		w.fs.Remove(tmp) // best effort; OpenWAL removes leftovers
		return nil, fmt.Errorf("logmgr: %s %s: %w", what, tmp, err)
	}
	if zeroed == 0 {
		if err := f.Truncate(size); err != nil {
			return abort("size", err)
		}
		if err := f.Preallocate(0, size); err != nil {
			return abort("preallocate", err)
		}
		b = append(b, zeros[:min(size, walZeroChunk)-int64(len(b))]...)
		zeroed = int64(len(b))
		// With background preparation, a segment made here (no spare
		// was ready: the first one, one for a big batch) is zero-filled
		// whole, as a spare would be: its appends then never zero-fill.
		for ; w.background && zeroed < size; zeroed += walZeroChunk {
			if _, err := f.WriteAt(zeros[:min(walZeroChunk, size-zeroed)], zeroed); err != nil {
				return abort("write", err)
			}
		}
		zeroed = min(zeroed, size)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return abort("write", err)
	}
	if err := f.Sync(); err != nil {
		return abort("sync", err)
	}
	if err := w.fs.Rename(tmp, final); err != nil {
		return abort("rename", err)
	}
	w.seq++
	f.Close()
	if err := w.fs.SyncDir(w.dir); err != nil {
		return nil, w.fail(fmt.Errorf("logmgr: sync dir %s: %w", w.dir, err))
	}
	// Reopen under the final name, so that errors name it.
	f, err := w.fs.OpenReadWrite(final)
	if err != nil {
		return nil, w.fail(fmt.Errorf("logmgr: open %s: %w", final, err))
	}
	s := &segment{name: name, path: final, first: first, prevTerm: prevTerm, size: size, batched: true,
		frame: frameOf(hdr), f: f, end: walHeaderRecordLen, zeroed: zeroed}
	s.refs.Store(1)
	w.progress.Store(0)
	if reused {
		w.reuses++
	}
	return s, nil
}
