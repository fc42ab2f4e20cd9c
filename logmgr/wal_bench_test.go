package logmgr

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// rawDisk is the disk's limit for a log: writes of one size (4 KiB unless
// said otherwise) at increasing offsets of a preallocated, zero-filled
// file, each followed by fdatasync.
type rawDisk struct {
	f   vfs.File
	off int64
	buf []byte
}

const rawFileSize = 64 << 20

func newRawDisk(b *testing.B, dir string) *rawDisk { return newRawDiskSized(b, dir, "raw", 4<<10) }

// newRawDiskSized is a rawDisk whose writes are size bytes, in a file
// named name.
func newRawDiskSized(b *testing.B, dir, name string, size int) *rawDisk {
	f, err := vfs.OS.Create(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if err := f.Truncate(rawFileSize); err != nil {
		b.Fatal(err)
	}
	if err := f.Preallocate(0, rawFileSize); err != nil {
		b.Fatal(err)
	}
	for off := int64(0); off < rawFileSize; off += walZeroChunk {
		if _, err := f.WriteAt(zeros, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	return &rawDisk{f: f, buf: buf}
}

// op writes its size and syncs, and returns how long it took.
func (r *rawDisk) op(b *testing.B) time.Duration {
	start := time.Now()
	if _, err := r.f.WriteAt(r.buf, r.off); err != nil {
		b.Fatal(err)
	}
	if err := r.f.Sync(); err != nil {
		b.Fatal(err)
	}
	if r.off += int64(len(r.buf)); r.off+int64(len(r.buf)) > rawFileSize {
		r.off = 0
	}
	return time.Since(start)
}

// benchPhase is how many WAL batches, then raw operations, a phase of the
// append benchmarks runs. Phases rather than one raw operation after each
// batch: an fdatasync of another file right before each write slows that
// write (by some 15 µs here), which would charge the WAL for the
// benchmark's own raw measurement.
const benchPhase = 50

// BenchmarkWAL measures on a real disk (a temporary directory):
//
//   - raw: the disk limit, 4 KiB write + fdatasync on a preallocated,
//     zero-filled file, in fsyncs/s;
//   - append-batch-N: WAL Append of N entries of 128 bytes of data, then
//     Sync, in entries/s, and x-of-disk-limit = entries/s ÷ (N × raw
//     fsyncs/s), the raw rate being measured in the same sub-benchmark,
//     in phases alternating with the WAL's (benchPhase operations each),
//     so that both see the same disk and the same noise. The WAL runs
//     with the default options (64 MiB segments, prepared in the
//     background, direct writes); segment rolls are included. The log is
//     compacted as a snapshotting node would: after each roll,
//     TruncatePrefix keeps the newest two segments (its time counts as
//     the WAL's), so that each new segment reuses a freed file. For
//     batch 256, whose run rolls several times, the WAL is first brought
//     into that steady state (segments grown to 64 MiB, a freed one
//     waiting; written with big batches before the timer starts);
//     Also x-of-same-bytes: the same ratio against raw writes as big as
//     the batch's records (rather than 4 KiB), measured in the same
//     phases: how close the WAL comes to the disk for the bytes it must
//     write, since a bigger write takes longer on the same disk;
//   - buffered-batch-256: the same with WALOptions.Buffered, for
//     comparison (writes through the page cache, fdatasync in Sync).
func BenchmarkWAL(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		raw := newRawDisk(b, b.TempDir())
		b.ResetTimer()
		var d time.Duration
		for range b.N {
			d += raw.op(b)
		}
		b.ReportMetric(float64(b.N)/d.Seconds(), "fsyncs/s")
	})
	for _, c := range []struct {
		batch    int
		buffered bool
	}{{1, false}, {16, false}, {256, false}, {256, true}} {
		name := fmt.Sprintf("append-batch-%d", c.batch)
		if c.buffered {
			name = fmt.Sprintf("buffered-batch-%d", c.batch)
		}
		batch := c.batch
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			raw := newRawDisk(b, dir)
			w, err := OpenWAL(vfs.OS, filepath.Join(dir, "wal"), WALOptions{Buffered: c.buffered})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { w.Close() })
			// The WAL does not keep the entries it is given (it encodes
			// them), so the benchmark reuses them: no garbage.
			data := make([]byte, 128)
			next := uint64(1)
			if batch >= 256 {
				next = warmUpCompacted(b, w, data)
			}
			es := make([]*raftpb.Entry, batch)
			for i := range es {
				es[i] = &raftpb.Entry{Term: 1, Index: next + uint64(i), Data: data}
			}
			enc, _, err := appendBatchRecords(nil, nil, es, next, w.active().frame)
			if err != nil {
				b.Fatal(err)
			}
			same := newRawDiskSized(b, dir, "raw-same", len(enc))
			var walTime, rawTime, sameTime time.Duration
			b.ResetTimer()
			for done := 0; done < b.N; {
				k := min(benchPhase, b.N-done)
				for range k {
					for _, e := range es {
						e.Index = next
						next++
					}
					start := time.Now()
					if err := w.Append(es); err != nil {
						b.Fatal(err)
					}
					if err := w.Sync(); err != nil {
						b.Fatal(err)
					}
					compactAfterRoll(b, w)
					walTime += time.Since(start)
				}
				// The WAL's zero-filling of its next segment runs
				// in the background: its disk time is the WAL's.
				start := time.Now()
				w.waitBackground()
				walTime += time.Since(start)
				b.StopTimer()
				for range k {
					rawTime += raw.op(b)
				}
				for range k {
					sameTime += same.op(b)
				}
				b.StartTimer()
				done += k
			}
			entriesPerSec := float64(b.N*batch) / walTime.Seconds()
			rawPerSec := float64(b.N) / rawTime.Seconds()
			b.ReportMetric(entriesPerSec, "entries/s")
			b.ReportMetric(rawPerSec, "raw-fsyncs/s")
			b.ReportMetric(entriesPerSec/(float64(batch)*rawPerSec), "x-of-disk-limit")
			b.ReportMetric(float64(b.N)/walTime.Seconds()/(float64(b.N)/sameTime.Seconds()), "x-of-same-bytes")
			b.ReportMetric(float64(len(enc)), "batch-bytes")
		})
	}
}

// compactAfterRoll truncates w's prefix to keep its newest two segments,
// once a roll has made a third: what a node that snapshots often does.
func compactAfterRoll(b *testing.B, w *WAL) {
	if n := len(w.segs); n > 2 {
		if err := w.TruncatePrefix(w.segs[n-2].first); err != nil {
			b.Fatal(err)
		}
	}
}

// warmUpCompacted appends big batches to the new WAL w, compacting after
// each roll, until its segments have grown to their largest size and a
// freed segment file of that size is waiting for the next roll — the
// steady state of a log that is compacted — and returns the next index.
func warmUpCompacted(b *testing.B, w *WAL, data []byte) uint64 {
	es := make([]*raftpb.Entry, 4096)
	next := uint64(1)
	for w.active().size < w.opts.SegmentSize || !w.hasRecycled(w.opts.SegmentSize) {
		for i := range es {
			es[i] = &raftpb.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		if err := w.Append(es); err != nil {
			b.Fatal(err)
		}
		compactAfterRoll(b, w)
	}
	w.waitBackground()
	return next
}

// BenchmarkWALReopen1GiB builds a 1 GiB WAL of entries with 128 bytes of
// data (about 8.1 million entries, 16 segments) once, then measures
// OpenWAL on it (with a warm page cache), in seconds per reopen. It is
// skipped unless -bench names it explicitly (building the log takes a
// while): go test -run '^$' -bench WALReopen1GiB ./logmgr/
func BenchmarkWALReopen1GiB(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Reopen1GiB") {
		b.Skip("builds a 1 GiB log: select it with -bench WALReopen1GiB")
	}
	dir := filepath.Join(b.TempDir(), "wal")
	start := time.Now()
	w, err := OpenWAL(vfs.OS, dir, WALOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 128)
	next := uint64(1)
	es := make([]*raftpb.Entry, 4096)
	var size int64
	for size < 1<<30 {
		for i := range es {
			es[i] = &raftpb.Entry{Index: next, Term: 1, Data: data}
			next++
		}
		if err := w.Append(es); err != nil {
			b.Fatal(err)
		}
		size = 0
		for _, s := range w.segs {
			size += s.end
		}
	}
	if err := w.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	names, _ := os.ReadDir(dir)
	b.Logf("built %d entries, %d bytes of records in %d segments in %v", next-1, size, len(names), time.Since(start))
	for _, cold := range []bool{false, true} {
		name := "reopen"
		if cold {
			name = "reopen-cold"
		}
		b.Run(name, func(b *testing.B) { benchReopen(b, dir, next-1, cold) })
	}
}

// benchReopen reports the time OpenWAL takes on the log in dir, whose last
// index is last: with the page cache as the previous open left it, or
// (cold) with the segments' pages evicted first.
func benchReopen(b *testing.B, dir string, last uint64, cold bool) {
	var d time.Duration
	for range b.N {
		if cold {
			evictPages(b, dir)
		}
		start := time.Now()
		w, err := OpenWAL(vfs.OS, dir, WALOptions{})
		if err != nil {
			b.Fatal(err)
		}
		d += time.Since(start)
		if w.LastIndex() != last {
			b.Fatalf("reopened with last index %d, want %d", w.LastIndex(), last)
		}
		w.Close()
	}
	b.ReportMetric(d.Seconds()/float64(b.N), "s/reopen")
}
