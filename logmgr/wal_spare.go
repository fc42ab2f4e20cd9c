package logmgr

import (
	"errors"
	"path"
	"sync"
	"sync/atomic"

	"github.com/asyncraft/asyncraft/vfs"
)

// PrepareMode says where the WAL prepares the file of its next segment.
type PrepareMode int

const (
	// PrepareAuto prepares in the background on vfs.OS and inline on
	// any other file system (a simulated one must see all I/O on the
	// writer's goroutine to stay deterministic).
	PrepareAuto PrepareMode = iota
	// PrepareInline creates a segment when it is needed, on the
	// writer's goroutine, with only its first walZeroChunk zero-filled;
	// appends zero-fill the rest a chunk ahead of the data.
	PrepareInline
	// PrepareBackground keeps one spare segment file ready, fully
	// zero-filled and synced by a goroutine of the WAL's own, so that a
	// roll costs a header write, an fdatasync, a rename and a directory
	// sync, and appends never zero-fill. The spare is started once the
	// writer is an eighth of the way into the last segment, and only if
	// no recycled file (see wal_recycle.go) will do for the next segment;
	// a file recycled meanwhile stops an unfinished spare. The goroutine
	// paces itself: it zero-fills no faster than twice the rate at which
	// the writer fills the current segment from then on (so it is done by
	// the time that one is five eighths full), rather than in a burst
	// that would slow the writer's fdatasyncs; when the writer needs the
	// spare early, it hurries.
	PrepareBackground
)

var errSpareStopped = errors.New("logmgr: spare segment preparation stopped")

// walSpareStartDiv: the spare is started once the writer is 1/walSpareStartDiv
// of the way into the last segment (and no recycled file will do), rather
// than as soon as the segment is created, so that a log compacted soon
// after each roll (which recycles a file) never prepares one.
const walSpareStartDiv = 8

// walSpareName is the spare segment's file, a temporary file like those
// of segments being created: OpenWAL removes it.
const walSpareName = "spare" + walTmpExt

// spare is a segment file being prepared in the background. f and err
// are written by the preparing goroutine before done is closed and read by
// the writer after.
type spare struct {
	path     string
	size     int64
	direct   bool          // zero-fill with direct writes
	progress *atomic.Int64 // the writer's progress in its current segment
	from     int64         // the writer's progress when the preparer started
	need     atomic.Int64  // the progress the pacing preparer waits for
	hurry    atomic.Bool   // the writer is waiting: stop pacing
	kick     chan struct{} // wakes a pacing preparer (buffered, 1)
	busy     sync.Mutex    // held by the preparer while it works, not while it waits
	quit     chan struct{} // closed to stop
	done     chan struct{} // closed when the preparer returns
	f        vfs.File
	err      error
}

// startSpare starts preparing the next segment's file in the background,
// unless that is off or one is already there. The preparer paces itself
// from the writer's progress now on (see prepareSpare).
func (w *WAL) startSpare() {
	if !w.background || w.spare != nil {
		return
	}
	sp := &spare{path: path.Join(w.dir, walSpareName), size: w.grownSize(), direct: w.direct, progress: &w.progress,
		from: w.progress.Load(), kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	w.spare = sp
	go func() {
		defer close(sp.done)
		sp.busy.Lock()
		defer sp.busy.Unlock()
		sp.f, sp.err = prepareSpare(w.fs, sp)
	}()
}

// prepareSpare creates the spare file: sized, preallocated, zero-filled
// and synced, so that writes into it only overwrite written blocks.
// When the WAL writes directly, so are the zeros: they do not pass
// through (and crowd) the page cache, and cost no copy.
func prepareSpare(fsys vfs.FS, sp *spare) (vfs.File, error) {
	f, err := fsys.Create(sp.path)
	if err != nil {
		return nil, err
	}
	var d vfs.DirectFile
	fail := func(err error) (vfs.File, error) {
		if d != nil {
			d.Close()
		}
		f.Close()
		fsys.Remove(sp.path)
		return nil, err
	}
	if err := f.Truncate(sp.size); err != nil {
		return fail(err)
	}
	if err := f.Preallocate(0, sp.size); err != nil {
		return fail(err)
	}
	zeros, write := zeros, f.WriteAt
	if dfs, ok := fsys.(vfs.DirectFS); ok && sp.direct && sp.size%vfs.DirectAlign == 0 {
		d, err = dfs.OpenDirect(sp.path)
		switch {
		case err == nil:
			zeros, write = alignedZeros(), d.WriteAt
		case errors.Is(err, vfs.ErrDirectUnsupported):
			d = nil
		default:
			return fail(err)
		}
	}
	for off := int64(0); off < sp.size; off += walZeroChunk {
		for off > 2*(sp.progress.Load()-sp.from) && !sp.hurry.Load() {
			sp.need.Store(sp.from + (off+1)/2)
			if off <= 2*(sp.progress.Load()-sp.from) {
				break // the writer moved on before it could see need
			}
			if !sp.wait() {
				return fail(errSpareStopped)
			}
		}
		select {
		case <-sp.quit:
			return fail(errSpareStopped)
		default:
		}
		if _, err := write(zeros[:min(walZeroChunk, sp.size-off)], off); err != nil {
			return fail(err)
		}
	}
	if d != nil {
		err := d.Close()
		d = nil
		if err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f, nil
}

// alignedZeros is walZeroChunk zero bytes at an aligned address, never
// written to.
var alignedZeros = sync.OnceValue(func() []byte { return vfs.AlignedBuffer(walZeroChunk) })

// takeSpare returns the prepared spare file if there is one of the given
// size, waiting for its preparation to finish; nil otherwise (and then
// the caller creates the segment inline). A spare that failed is
// forgotten; the inline creation will meet the same trouble and report
// it.
func (w *WAL) takeSpare(size int64) *spare {
	sp := w.spare
	if sp == nil || sp.size != size {
		return nil
	}
	sp.hurry.Store(true)
	sp.nudge()
	<-sp.done
	w.spare = nil
	if sp.err != nil {
		return nil
	}
	return sp
}

// spareNotNeeded stops preparing a spare that is not ready yet when a
// recycled file will do for the next segment instead.
func (w *WAL) spareNotNeeded() {
	sp := w.spare
	if sp == nil || !w.hasRecycled(sp.size) {
		return
	}
	select {
	case <-sp.done:
		// Ready (or failed): it stays for a later segment.
	default:
		w.stopSpare()
	}
}

// stopSpare stops the background preparation, if any, and removes the
// spare file.
func (w *WAL) stopSpare() {
	sp := w.spare
	if sp == nil {
		return
	}
	w.spare = nil
	close(sp.quit)
	<-sp.done
	if sp.f != nil {
		sp.f.Close()
		w.fs.Remove(sp.path) // best effort: OpenWAL removes leftovers
	}
}

// advanced tells the preparer the writer's progress, waking it if it
// waits for that much.
func (sp *spare) advanced(progress int64) {
	sp.progress.Store(progress)
	if progress >= sp.need.Load() {
		sp.nudge()
	}
}

// wait waits to be woken (true) or stopped (false), not busy meanwhile.
func (sp *spare) wait() bool {
	sp.busy.Unlock()
	defer sp.busy.Lock()
	select {
	case <-sp.kick:
		return true
	case <-sp.quit:
		return false
	}
}

// waitBackground waits until the WAL's background preparation, if any,
// has nothing more to do for now (it is done, or waits for the writer to
// advance). Benchmarks call it so that the disk time of that work counts
// as the WAL's, not as that of whatever they measure next.
func (w *WAL) waitBackground() {
	if sp := w.spare; sp != nil {
		sp.busy.Lock()
		sp.busy.Unlock() //nolint:staticcheck // an empty critical section: waits for the preparer to pause
	}
}

// nudge wakes the preparer if it is pacing itself.
func (sp *spare) nudge() {
	select {
	case sp.kick <- struct{}{}:
	default:
	}
}
