package logmgr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// TestWALConcurrentReaders runs one writer — appending, truncating the
// suffix (often across segments), compacting, resetting, syncing — against
// readers calling Entries, Term, FirstIndex and LastIndex. Segments are
// small, so readers keep meeting segments that are being superseded or
// removed. Every entry a reader gets must be the one it asked for, and the
// only errors allowed are ErrCompacted and ErrUnavailable (the log moved
// under the reader). Run with -race.
func TestWALConcurrentReaders(t *testing.T) {
	seed := testseed.For(t)
	for ki, c := range []struct {
		name  string
		fs    func(t *testing.T) (vfs.FS, string)
		steps int
	}{
		{"memfs", func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), walDir }, 3000},
		{"os", func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() }, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys, dir := c.fs(t)
			w, err := OpenWAL(fsys, dir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger})
			must(t, err)
			defer w.Close()
			runConcurrentWAL(t, seed^uint64(ki), w, c.steps)
		})
	}
}

// concData is the data of entry index of term, padded by an amount that
// varies with the index.
func concData(index, term uint64) []byte {
	return fmt.Appendf(nil, "e%d.t%d.%s", index, term, strings.Repeat("x", int(index*37%200)))
}

func runConcurrentWAL(t *testing.T, seed uint64, w *WAL, steps int) {
	var (
		done  atomic.Bool
		wg    sync.WaitGroup
		reads atomic.Int64
		errc  = make(chan error, 8)
	)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		done.Store(true)
	}
	moved := func(err error) bool { return errors.Is(err, ErrCompacted) || errors.Is(err, ErrUnavailable) }
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(i)+100))
			for !done.Load() {
				first, last := w.FirstIndex(), w.LastIndex()
				if first > last {
					continue
				}
				lo := first + r.Uint64N(last-first+1)
				hi := lo + 1 + r.Uint64N(min(last-lo+1, 40))
				got, err := w.Entries(lo, hi, r.Uint64N(3000))
				if err != nil {
					if !moved(err) {
						fail(fmt.Errorf("Entries(%d, %d): %v", lo, hi, err))
					}
					continue
				}
				if len(got) == 0 {
					fail(fmt.Errorf("Entries(%d, %d) returned nothing", lo, hi))
				}
				for j, e := range got {
					if e.Index != lo+uint64(j) || string(e.Data) != string(concData(e.Index, e.Term)) {
						fail(fmt.Errorf("Entries(%d, %d)[%d] = entry %d/%d with data %.20q", lo, hi, j, e.Index, e.Term, e.Data))
					}
				}
				if _, err := w.Term(lo); err != nil && !moved(err) {
					fail(fmt.Errorf("Term(%d): %v", lo, err))
				}
				reads.Add(1)
			}
		}()
	}
	r := rand.New(rand.NewPCG(seed, 1))
	term := uint64(1)
	for step := 0; step < steps && !done.Load(); step++ {
		last, first := w.LastIndex(), w.FirstIndex()
		var err error
		switch n := r.IntN(100); {
		case n < 60:
			es := make([]*raftpb.Entry, 1+r.IntN(8))
			for i := range es {
				idx := last + 1 + uint64(i)
				es[i] = &raftpb.Entry{Index: idx, Term: term, Data: concData(idx, term)}
			}
			err = w.Append(es)
		case n < 75:
			term++
			err = w.TruncateSuffix(max(first, last-min(last, r.Uint64N(30))))
		case n < 85:
			if last > 50 {
				err = w.TruncatePrefix(last - 50)
			}
		case n < 87:
			term++
			err = w.Reset(last+1+r.Uint64N(20), term-1)
		default:
			err = w.Sync()
		}
		if err != nil {
			fail(fmt.Errorf("step %d: %v", step, err))
		}
	}
	done.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if reads.Load() == 0 {
		t.Fatalf("seed %d: no read succeeded", seed)
	}
	t.Logf("%d reads", reads.Load())
}
