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

func newLog(t *testing.T, s LogStorage) *Log {
	t.Helper()
	l, err := NewLog(s)
	if err != nil {
		t.Fatalf("NewLog: %v", err)
	}
	return l
}

// checkLog compares every read of l with want.
func checkLog(t *testing.T, l *Log, want oracle) {
	t.Helper()
	last := uint64(len(want))
	if got := l.LastIndex(); got != last {
		t.Fatalf("LastIndex = %d, want %d", got, last)
	}
	if i, term := l.Last(); i != last || term != want.lastTerm() {
		t.Fatalf("Last = (%d, %d), want (%d, %d)", i, term, last, want.lastTerm())
	}
	for i := uint64(0); i <= last; i++ {
		wantTerm := uint64(0)
		if i > 0 {
			wantTerm = want[i-1].Term
		}
		if got, err := l.Term(i); err != nil || got != wantTerm {
			t.Fatalf("Term(%d) = %d, %v; want %d", i, got, err, wantTerm)
		}
		if !l.MatchTerm(i, wantTerm) || (i > 0 && l.MatchTerm(i, wantTerm+1)) {
			t.Fatalf("MatchTerm(%d) wrong", i)
		}
	}
	if _, err := l.Term(last + 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Term(%d): err %v, want ErrUnavailable", last+1, err)
	}
	for lo := uint64(1); lo <= last+1; lo++ {
		for hi := lo; hi <= last+1; hi++ {
			got, err := l.Entries(lo, hi, ^uint64(0))
			if err != nil {
				t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
			}
			if err := diffEntries(got, want[lo-1:hi-1]); err != nil {
				t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
			}
		}
	}
	if _, err := l.Entries(1, last+2, ^uint64(0)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Entries past the end: err %v, want ErrUnavailable", err)
	}
}

func TestLogCacheBoundary(t *testing.T) {
	for _, k := range storageKinds() {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t)
			mustAppend(t, s, ents(1, 11, 1)) // durable before the Log exists
			l := newLog(t, s)
			want := oracle(ents(1, 11, 1))
			if l.Cached() != 0 {
				t.Fatalf("new log caches %d entries", l.Cached())
			}
			checkLog(t, l, want)

			// Entries 11..20 in the cache only.
			if err := l.Append(ents(11, 21, 2)); err != nil {
				t.Fatal(err)
			}
			want = want.append(ents(11, 21, 2))
			checkLog(t, l, want)
			if err := l.Append(ents(22, 23, 2)); err == nil {
				t.Fatal("Append with a gap succeeded")
			}
			if err := l.Append(ents(20, 21, 3)); err == nil {
				t.Fatal("Append overlapping the last entry succeeded")
			}

			// Persist 11..15 and trim them from the cache: reads of them
			// now go to the storage, and joins span the boundary.
			mustAppend(t, s, want[10:15])
			l.Trim(15)
			if l.Cached() != 5 {
				t.Fatalf("after Trim(15): %d cached, want 5", l.Cached())
			}
			checkLog(t, l, want)
			l.Trim(3) // below the cache: nothing to do
			if l.Cached() != 5 {
				t.Fatalf("after Trim(3): %d cached, want 5", l.Cached())
			}

			// maxBytes across the boundary: every entry here counts 30
			// or 31 bytes.
			for _, c := range []struct{ lo, hi, max, n uint64 }{
				{14, 19, 0, 1},
				{14, 19, 40, 1},
				{14, 19, 63, 2},  // one from storage, one from the cache
				{14, 19, 93, 3},  // two from storage (full), one from the cache
				{14, 19, 200, 5}, // all
				{12, 16, 61, 2},  // storage only, limited
				{16, 21, 62, 2},  // cache only, limited
				{16, 16, 0, 0},
			} {
				got, err := l.Entries(c.lo, c.hi, c.max)
				if err != nil {
					t.Fatalf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
				}
				if err := diffEntries(got, want[c.lo-1:c.lo-1+c.n]); err != nil {
					t.Fatalf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
				}
			}

			// TruncateFrom outside the log is refused, and changes nothing.
			for _, from := range []uint64{0, 22, 23} {
				if err := l.TruncateFrom(from); err == nil {
					t.Fatalf("TruncateFrom(%d) with log [1, 20] succeeded", from)
				}
			}
			checkLog(t, l, want)
			if err := l.TruncateFrom(21); err != nil { // last+1: no-op
				t.Fatal(err)
			}
			checkLog(t, l, want)

			// Truncate within the cache, then rewrite.
			if err := l.TruncateFrom(18); err != nil {
				t.Fatal(err)
			}
			want = want.truncate(18)
			checkLog(t, l, want)
			if err := l.Append(ents(18, 25, 3)); err != nil {
				t.Fatal(err)
			}
			want = want.append(ents(18, 25, 3))
			checkLog(t, l, want)

			// Truncate the whole cache: the last term comes from storage.
			if err := l.TruncateFrom(16); err != nil {
				t.Fatal(err)
			}
			want = want.truncate(16)
			checkLog(t, l, want)
			if l.Cached() != 0 {
				t.Fatalf("%d cached after truncating the whole cache", l.Cached())
			}
			if err := l.Append(ents(16, 18, 4)); err != nil {
				t.Fatal(err)
			}
			want = want.append(ents(16, 18, 4))
			checkLog(t, l, want)

			// Trim everything (storage first), then append again.
			if err := s.TruncateSuffix(16); err != nil {
				t.Fatal(err)
			}
			mustAppend(t, s, want[15:])
			l.Trim(100)
			if l.Cached() != 0 {
				t.Fatalf("%d cached after Trim(100)", l.Cached())
			}
			checkLog(t, l, want)
			if err := l.Append(ents(18, 20, 4)); err != nil {
				t.Fatal(err)
			}
			want = want.append(ents(18, 20, 4))
			checkLog(t, l, want)
		})
	}
}

func TestLogEmptyAndStale(t *testing.T) {
	l := newLog(t, NewMemoryStorage())
	checkLog(t, l, nil)
	if got, err := l.Entries(3, 2, 0); err != nil || got != nil {
		t.Fatalf("Entries(3, 2) = %v, %v; want nothing", got, err)
	}
	if _, err := l.Entries(0, 1, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Entries(0, 1): err %v, want ErrCompacted", err)
	}
	if err := l.TruncateFrom(1); err != nil {
		t.Fatalf("TruncateFrom(1) on an empty log: %v", err)
	}
	// Two appends, so that the cache has spare capacity.
	if err := l.Append(ents(1, 4, 1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ents(4, 5, 1)); err != nil {
		t.Fatal(err)
	}
	// Slices handed out stay unchanged across truncation and appends.
	got, err := l.Entries(1, 4, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateFrom(2); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ents(2, 4, 2)); err != nil {
		t.Fatal(err)
	}
	if err := diffEntries(got, ents(1, 4, 1)); err != nil {
		t.Fatalf("slice returned before truncation changed: %v", err)
	}
	if err := l.Append(ents(4, 10, 2)); err != nil {
		t.Fatal(err)
	}
	_ = append(got[:1], ent(77, 77)) // the caller appending to a result
	checkLog(t, l, oracle(ents(1, 2, 1)).append(ents(2, 10, 2)))
}

// TestLogEntriesShortStorageRead: when maxBytes stops the read of the
// stored part early, Entries must not continue with the cache (that would
// skip entries).
func TestLogEntriesShortStorageRead(t *testing.T) {
	for _, k := range storageKinds() {
		t.Run(k.name, func(t *testing.T) {
			s := k.open(t)
			stored := []*raftpb.Entry{ent(1, 1), {Index: 2, Term: 1, Data: make([]byte, 1000)}, ent(3, 1)}
			mustAppend(t, s, stored)
			l := newLog(t, s)
			if err := l.Append(ents(4, 7, 1)); err != nil {
				t.Fatal(err)
			}
			want := oracle(stored).append(ents(4, 7, 1))
			for _, c := range []struct{ lo, hi, max, n uint64 }{
				{1, 7, 100, 1},  // entry 2 does not fit, entry 4 would
				{1, 7, 2000, 6}, // everything
				{2, 7, 100, 1},  // entry 2 alone, over the cap
				{3, 7, 100, 3},  // 3 from storage, 4 and 5 from the cache
				{1, 4, 1100, 3}, // storage only
				{1, 5, 1053, 2}, // 1, 2 (1053 bytes); 3 would exceed
				{1, 5, 1083, 3}, // 1, 2, 3; 4 would exceed
				{1, 5, 1113, 4}, // across the boundary
				{5, 7, 0, 1},    // cache only
			} {
				got, err := l.Entries(c.lo, c.hi, c.max)
				if err != nil {
					t.Fatalf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
				}
				if err := diffEntries(got, want[c.lo-1:c.lo-1+c.n]); err != nil {
					t.Fatalf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
				}
			}
		})
	}
}

// TestLogConcurrentReaders runs one writer (the node: appending,
// truncating uncommitted entries, persisting and trimming) against four
// readers (replicators, FSM caller). Every entry a reader gets must be the
// one it asked for. Run with -race.
func TestLogConcurrentReaders(t *testing.T) {
	seed := testseed.For(t)
	for ki, k := range []storageKind{
		{name: "memory", open: func(*testing.T) LogStorage { return NewMemoryStorage() }},
		walKind("wal-memfs", 4<<10, false, func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data" }),
		walKind("wal-memfs-buffered", 4<<10, true, func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data" }),
	} {
		t.Run(k.name, func(t *testing.T) {
			runConcurrentLog(t, seed^uint64(ki), k.open(t))
		})
	}
}

func runConcurrentLog(t *testing.T, seed uint64, s LogStorage) {
	l := newLog(t, s)
	var done atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		done.Store(true)
	}
	// Entry data names the index and term, padded to a size that varies
	// with the index: a reader can check what it got, and byte caps cut
	// reads at varying places.
	data := func(index, term uint64) string {
		return fmt.Sprintf("e%d.t%d.", index, term) + strings.Repeat("x", int(index*37%90))
	}
	mk := func(lo, hi, term uint64) []*raftpb.Entry {
		var es []*raftpb.Entry
		for i := lo; i < hi; i++ {
			es = append(es, &raftpb.Entry{Index: i, Term: term, Data: []byte(data(i, term))})
		}
		return es
	}
	checkEntry := func(e *raftpb.Entry, index uint64) error {
		if e.Index != index || string(e.Data) != data(e.Index, e.Term) {
			return fmt.Errorf("asked for entry %d, got index %d term %d data %q", index, e.Index, e.Term, e.Data)
		}
		return nil
	}

	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		defer done.Store(true)
		r := rand.New(rand.NewPCG(seed, 0))
		stored, term := uint64(0), uint64(1)
		for range 3000 {
			if done.Load() {
				return
			}
			last := l.LastIndex()
			switch n := r.IntN(10); {
			case n < 6:
				if err := l.Append(mk(last+1, last+1+uint64(1+r.IntN(8)), term)); err != nil {
					fail(err)
					return
				}
			case n < 7 && last > stored:
				// Only entries not yet in the storage are uncommitted.
				from := stored + 1 + r.Uint64N(last-stored)
				if err := l.TruncateFrom(from); err != nil {
					fail(err)
					return
				}
				term++
			case last > stored:
				// Commit a prefix: persist it, then trim part of it.
				upTo := stored + 1 + r.Uint64N(last-stored)
				es, err := l.Entries(stored+1, upTo+1, ^uint64(0))
				if err == nil {
					err = s.Append(es)
				}
				if err != nil {
					fail(fmt.Errorf("persist (%d, %d]: %w", stored, upTo, err))
					return
				}
				stored = upTo
				l.Trim(stored - r.Uint64N(min(stored, 5)))
			}
		}
	}()
	for rd := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(rd+1)))
			for reads := 0; !done.Load() || reads < 100; reads++ {
				last := l.LastIndex()
				if last == 0 {
					continue
				}
				lo := 1 + r.Uint64N(last)
				hi := lo + 1 + r.Uint64N(min(last-lo+1, 20))
				es, err := l.Entries(lo, hi, r.Uint64N(400))
				if errors.Is(err, ErrUnavailable) {
					continue // truncated meanwhile
				}
				if err != nil {
					fail(fmt.Errorf("Entries(%d, %d): %w", lo, hi, err))
					return
				}
				if len(es) == 0 {
					fail(fmt.Errorf("Entries(%d, %d) returned nothing", lo, hi))
					return
				}
				for i, e := range es {
					if err := checkEntry(e, lo+uint64(i)); err != nil {
						fail(err)
						return
					}
					// Terms never decrease along a log: a result mixing
					// old and rewritten entries would show it.
					if i > 0 && e.Term < es[i-1].Term {
						fail(fmt.Errorf("Entries(%d, %d): term %d after %d", lo, hi, e.Term, es[i-1].Term))
						return
					}
				}
				if term, err := l.Term(lo); err == nil && term == 0 {
					fail(fmt.Errorf("Term(%d) = 0", lo))
					return
				} else if err != nil && !errors.Is(err, ErrUnavailable) {
					fail(fmt.Errorf("Term(%d): %w", lo, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}

// After a restart nothing is cached, and the storage may end with
// uncommitted entries that a new leader overwrites: the log truncates them
// (moving its cache start back) and never reads the storage's stale entries
// again, even before the storage itself is truncated.
func TestLogTruncateBelowCacheAfterRestart(t *testing.T) {
	st := NewMemoryStorage()
	if err := st.Append(ents(1, 11, 1)); err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(st)
	if err != nil {
		t.Fatal(err)
	}
	before, err := l.Entries(1, 11, 1<<20)
	if err != nil || len(before) != 10 {
		t.Fatalf("entries before: %d, %v", len(before), err)
	}
	if l.Cached() != 0 {
		t.Fatalf("%d cached right after opening", l.Cached())
	}
	if err := l.TruncateFrom(7); err != nil {
		t.Fatal(err)
	}
	if last, term := l.Last(); last != 6 || term != 1 {
		t.Fatalf("after truncation: last (%d, %d), want (6, 1)", last, term)
	}
	if err := l.Append(ents(7, 9, 2)); err != nil {
		t.Fatal(err)
	}
	// The storage still holds the old entries 7..10 (the log manager has
	// not truncated it yet); the log must not show them.
	want := oracle(ents(1, 7, 1)).append(ents(7, 9, 2))
	checkLog(t, l, want)
	if _, err := l.Term(9); err == nil {
		t.Fatal("Term(9) after truncation to 8 succeeded")
	}
	// Slices handed out before are unchanged.
	for i, e := range before {
		if e.Index != uint64(i+1) || e.Term != 1 {
			t.Fatalf("an earlier slice changed at %d: %+v", i, e)
		}
	}
}

// TestLogCachedBytesAndSpill checks the cache's byte count against a sum
// over the cached entries, through random appends, truncations, trims and
// spills, and that Spill keeps at most its budget, never drops an entry
// after its bound, and drops no more than it must. Entries stay readable
// (from the storage) after they leave the cache.
func TestLogCachedBytesAndSpill(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 1))
	s := NewMemoryStorage()
	l := newLog(t, s)
	var want oracle
	durable := uint64(0) // entries up to here are in s too
	sum := func() uint64 {
		var b uint64
		for i := l.LastIndex() - uint64(l.Cached()) + 1; i <= l.LastIndex(); i++ {
			b += EntrySize(want[i-1])
		}
		return b
	}
	check := func(op string) {
		t.Helper()
		if got, exp := l.CachedBytes(), sum(); got != exp {
			t.Fatalf("seed %d, after %s: CachedBytes %d, entries in the cache sum to %d", seed, op, got, exp)
		}
	}
	term := uint64(1)
	for step := 0; step < 2000; step++ {
		last := l.LastIndex()
		cacheStart := last - uint64(l.Cached()) + 1
		switch k := r.IntN(10); {
		case k < 5:
			es := randEnts(r, last+1, 1+r.IntN(8), term)
			if err := l.Append(es); err != nil {
				t.Fatal(err)
			}
			want = want.append(es)
			check("append")
		case k < 6 && last >= cacheStart && last > durable:
			// Truncate an undurable suffix (a new term overwrites it).
			from := max(durable+1, cacheStart) + uint64(r.IntN(int(last-max(durable, cacheStart-1))))
			if err := l.TruncateFrom(from); err != nil {
				t.Fatal(err)
			}
			want = want.truncate(from)
			term++
			check("truncate")
		case k < 8:
			// Make a prefix durable.
			if last > durable {
				upTo := durable + 1 + uint64(r.IntN(int(last-durable)))
				mustAppend(t, s, want[durable:upTo])
				durable = upTo
			}
			l.Trim(uint64(r.IntN(int(durable + 1))))
			check("trim")
		default:
			upTo := uint64(r.IntN(int(durable + 1)))
			keep := uint64(r.IntN(3000))
			beforeStart := cacheStart
			l.Spill(upTo, keep)
			check("spill")
			start := l.LastIndex() - uint64(l.Cached()) + 1
			switch {
			case start > max(upTo+1, beforeStart):
				t.Fatalf("seed %d: Spill(%d, %d) dropped up to %d", seed, upTo, keep, start-1)
			case start <= upTo && l.CachedBytes() > keep:
				t.Fatalf("seed %d: Spill(%d, %d) kept %d bytes from %d", seed, upTo, keep, l.CachedBytes(), start)
			case start > beforeStart && l.CachedBytes()+EntrySize(want[start-2]) <= keep:
				t.Fatalf("seed %d: Spill(%d, %d) dropped entry %d although %d bytes would fit", seed, upTo, keep, start-1, l.CachedBytes()+EntrySize(want[start-2]))
			}
		}
	}
	got, err := l.Entries(1, l.LastIndex()+1, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := diffEntries(got, want); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}

// Reset empties the view so that it continues at next: the term of the
// entry before is known at once, before the log manager resets the
// storage (which still holds the old entries), and entries append after
// it.
func TestLogReset(t *testing.T) {
	st := NewMemoryStorage()
	if err := st.Append(ents(1, 6, 1)); err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(11, 3); err != nil {
		t.Fatal(err)
	}
	if last, term := l.Last(); last != 10 || term != 3 {
		t.Fatalf("after Reset(11, 3): last %d/%d, want 10/3", last, term)
	}
	if term, err := l.Term(10); err != nil || term != 3 {
		t.Fatalf("Term(10) = %d, %v; want 3 (known before the storage is reset)", term, err)
	}
	if err := l.Append(ents(11, 13, 3)); err != nil {
		t.Fatal(err)
	}
	got, err := l.Entries(11, 13, 1<<20)
	if err != nil || len(got) != 2 || got[0].Index != 11 {
		t.Fatalf("Entries(11, 13) = %v, %v", got, err)
	}
	if err := l.Reset(0, 1); err == nil {
		t.Fatal("Reset(0, 1) accepted")
	}
}
