package logmgr

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// storageKind makes LogStorages of one implementation for the contract
// suite.
type storageKind struct {
	name string
	// open returns a new, empty storage.
	open func(t *testing.T) LogStorage
	// reopen syncs and closes s and opens the same storage again; nil
	// when the storage keeps nothing across instances.
	reopen func(t *testing.T, s LogStorage) LogStorage
}

// diskOpener opens the storage in dir on fs and reports how many bytes of
// a torn tail it repaired.
type diskOpener func(fs vfs.FS, dir string) (LogStorage, int64, error)

// openWALSized opens WALs with the given segment size, writing directly
// where the file system can, or through the page cache (buffered).
func openWALSized(segmentSize int64, buffered bool) diskOpener {
	return func(fs vfs.FS, dir string) (LogStorage, int64, error) {
		w, err := OpenWAL(fs, dir, WALOptions{SegmentSize: segmentSize, Buffered: buffered, Logger: quietLogger})
		if err != nil {
			return nil, 0, err
		}
		return w, w.Repaired(), nil
	}
}

func walKind(name string, segmentSize int64, buffered bool, fsys func(t *testing.T) (vfs.FS, string)) storageKind {
	return diskKind(name, fsys, openWALSized(segmentSize, buffered))
}

func diskKind(name string, fsys func(t *testing.T) (vfs.FS, string), open diskOpener) storageKind {
	type handle struct {
		fs  vfs.FS
		dir string
	}
	handles := map[LogStorage]handle{}
	return storageKind{
		name: name,
		open: func(t *testing.T) LogStorage {
			fs, dir := fsys(t)
			s, _, err := open(fs, dir)
			if err != nil {
				t.Fatalf("open %s: %v", name, err)
			}
			t.Cleanup(func() { s.Close() })
			handles[s] = handle{fs, dir}
			return s
		},
		reopen: func(t *testing.T, s LogStorage) LogStorage {
			h := handles[s]
			if err := s.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			delete(handles, s)
			s2, repaired, err := open(h.fs, h.dir)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if repaired != 0 {
				t.Fatalf("reopen after a clean close repaired %d bytes", repaired)
			}
			t.Cleanup(func() { s2.Close() })
			handles[s2] = h
			return s2
		},
	}
}

func storageKinds() []storageKind {
	return []storageKind{
		{name: "memory", open: func(*testing.T) LogStorage { return NewMemoryStorage() }},
		// Small segments, so that the suites roll, cut and drop segments.
		walKind("wal-memfs", 4<<10, false, func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data/node1" }),
		walKind("wal-memfs-buffered", 4<<10, true, func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data/node1" }),
		walKind("wal-os", 64<<10, false, func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() + "/wal" }),
		walKind("wal-os-buffered", 64<<10, true, func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() + "/wal" }),
	}
}

// TestLogStorageContract runs the LogStorage contract against every
// implementation.
func TestLogStorageContract(t *testing.T) {
	for _, k := range storageKinds() {
		t.Run(k.name, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) { contractEmpty(t, k) })
			t.Run("append-and-read", func(t *testing.T) { contractAppend(t, k) })
			t.Run("max-bytes", func(t *testing.T) { contractMaxBytes(t, k) })
			t.Run("wrong-index-append", func(t *testing.T) { contractWrongIndex(t, k) })
			t.Run("truncate-suffix", func(t *testing.T) { contractTruncate(t, k) })
			t.Run("closed", func(t *testing.T) { contractClosed(t, k) })
			t.Run("returned-slices-stable", func(t *testing.T) { contractStableSlices(t, k) })
			if k.reopen != nil {
				t.Run("reopen", func(t *testing.T) { contractReopen(t, k) })
			}
		})
	}
}

func mustAppend(t *testing.T, s LogStorage, es []*raftpb.Entry) {
	t.Helper()
	if err := s.Append(es); err != nil {
		t.Fatalf("Append(%s): %v", summary(es), err)
	}
}

func mustCheck(t *testing.T, s LogStorage, want []*raftpb.Entry) {
	t.Helper()
	if err := checkStorage(s, want); err != nil {
		t.Fatal(err)
	}
}

func contractEmpty(t *testing.T, k storageKind) {
	s := k.open(t)
	mustCheck(t, s, nil)
	if got, err := s.Entries(1, 1, 100); err != nil || len(got) != 0 {
		t.Errorf("Entries(1, 1) on empty log = %v, %v; want none", got, err)
	}
	if _, err := s.Entries(1, 2, 100); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Entries(1, 2) on empty log: err %v, want ErrUnavailable", err)
	}
	if _, err := s.Entries(0, 1, 100); !errors.Is(err, ErrCompacted) {
		t.Errorf("Entries(0, 1): err %v, want ErrCompacted", err)
	}
	if err := s.Append(nil); err != nil {
		t.Errorf("Append(nil): %v", err)
	}
	if err := s.TruncateSuffix(1); err != nil {
		t.Errorf("TruncateSuffix(1) on empty log: %v", err)
	}
	mustCheck(t, s, nil)
}

func contractAppend(t *testing.T, k storageKind) {
	s := k.open(t)
	var want oracle
	for _, es := range [][]*raftpb.Entry{ents(1, 4, 1), ents(4, 5, 1), ents(5, 11, 2)} {
		mustAppend(t, s, es)
		want = want.append(es)
		mustCheck(t, s, want)
	}
	for lo := uint64(1); lo <= 11; lo++ {
		for hi := lo; hi <= 11; hi++ {
			got, err := s.Entries(lo, hi, ^uint64(0))
			if err != nil {
				t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
			}
			if err := diffEntries(got, want[lo-1:hi-1]); err != nil {
				t.Fatalf("Entries(%d, %d): %v", lo, hi, err)
			}
		}
	}
	if _, err := s.Entries(0, 5, ^uint64(0)); !errors.Is(err, ErrCompacted) {
		t.Errorf("Entries(0, 5): err %v, want ErrCompacted", err)
	}
	if _, err := s.Entries(5, 12, ^uint64(0)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Entries(5, 12): err %v, want ErrUnavailable", err)
	}
	if _, err := s.Term(100); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Term(100): err %v, want ErrUnavailable", err)
	}
}

func contractMaxBytes(t *testing.T, k storageKind) {
	s := k.open(t)
	// Ten entries of 10 bytes of data: each counts 34 bytes.
	var want oracle
	for i := uint64(1); i <= 10; i++ {
		want = append(want, &raftpb.Entry{Index: i, Term: 1, Data: []byte("0123456789")})
	}
	// Then one huge entry and two small ones.
	want = append(want, &raftpb.Entry{Index: 11, Term: 1, Data: make([]byte, 1000)}, ent(12, 1), ent(13, 1))
	mustAppend(t, s, want)
	one := EntrySize(want[0])
	if one != 34 {
		t.Fatalf("EntrySize = %d, want 34", one)
	}
	for _, c := range []struct {
		lo, hi, max uint64
		n           int
	}{
		{1, 11, 0, 1}, // always at least one entry
		{1, 11, 1, 1},
		{1, 11, one, 1},
		{1, 11, 2*one - 1, 1},
		{1, 11, 2 * one, 2},
		{1, 11, 3*one + 5, 3},
		{1, 11, 10 * one, 10},
		{1, 11, ^uint64(0), 10},
		{3, 5, 100 * one, 2},
		{11, 14, 10, 1}, // the huge entry alone, though it exceeds the cap
		{10, 14, 2 * one, 1},
		{10, 14, one + 1024, 2},
		{12, 14, 0, 1},
	} {
		got, err := s.Entries(c.lo, c.hi, c.max)
		if err != nil {
			t.Fatalf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
		}
		if err := diffEntries(got, want[c.lo-1:c.lo-1+uint64(c.n)]); err != nil {
			t.Errorf("Entries(%d, %d, %d): %v", c.lo, c.hi, c.max, err)
		}
	}
}

func contractWrongIndex(t *testing.T, k storageKind) {
	s := k.open(t)
	if err := s.Append(ents(2, 4, 1)); err == nil {
		t.Fatal("Append starting at 2 on an empty log succeeded")
	}
	if err := s.Append(ents(0, 2, 1)); err == nil {
		t.Fatal("Append starting at 0 succeeded")
	}
	mustCheck(t, s, nil)
	want := oracle(ents(1, 6, 1))
	mustAppend(t, s, want)
	for _, lo := range []uint64{1, 5, 7, 100} {
		if err := s.Append(ents(lo, lo+2, 2)); err == nil {
			t.Fatalf("Append starting at %d after last 5 succeeded", lo)
		}
		mustCheck(t, s, want)
	}
	for _, from := range []uint64{0, 7, 100} {
		if err := s.TruncateSuffix(from); err == nil {
			t.Fatalf("TruncateSuffix(%d) with last 5 succeeded", from)
		}
		mustCheck(t, s, want)
	}
	// The storage still works after the rejected calls.
	mustAppend(t, s, ents(6, 8, 2))
	mustCheck(t, s, want.append(ents(6, 8, 2)))
}

func contractTruncate(t *testing.T, k storageKind) {
	s := k.open(t)
	want := oracle(ents(1, 11, 1))
	mustAppend(t, s, want)
	if err := s.TruncateSuffix(11); err != nil { // last+1: nothing to remove
		t.Fatalf("TruncateSuffix(11): %v", err)
	}
	mustCheck(t, s, want)
	if err := s.TruncateSuffix(6); err != nil {
		t.Fatalf("TruncateSuffix(6): %v", err)
	}
	want = want.truncate(6)
	mustCheck(t, s, want)
	if _, err := s.Entries(5, 7, ^uint64(0)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Entries(5, 7) after truncation: err %v, want ErrUnavailable", err)
	}
	if err := s.Append(ents(7, 8, 2)); err == nil {
		t.Fatal("Append at 7 after truncating to 5 succeeded")
	}
	mustAppend(t, s, ents(6, 9, 2))
	want = want.append(ents(6, 9, 2))
	mustCheck(t, s, want)
	if err := s.TruncateSuffix(8); err != nil {
		t.Fatalf("TruncateSuffix(8): %v", err)
	}
	want = want.truncate(8)
	mustCheck(t, s, want)
	if err := s.TruncateSuffix(1); err != nil {
		t.Fatalf("TruncateSuffix(1): %v", err)
	}
	mustCheck(t, s, nil)
	mustAppend(t, s, ents(1, 3, 3))
	mustCheck(t, s, ents(1, 3, 3))
}

func contractClosed(t *testing.T, k storageKind) {
	s := k.open(t)
	mustAppend(t, s, ents(1, 4, 1))
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Term(2); !errors.Is(err, ErrClosed) {
		t.Errorf("Term after Close: err %v, want ErrClosed", err)
	}
	if _, err := s.Term(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Term(0) after Close: err %v, want ErrClosed", err)
	}
	if _, err := s.Entries(1, 3, ^uint64(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Entries after Close: err %v, want ErrClosed", err)
	}
	if err := s.Append(ents(4, 5, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: err %v, want ErrClosed", err)
	}
	if err := s.TruncateSuffix(2); !errors.Is(err, ErrClosed) {
		t.Errorf("TruncateSuffix after Close: err %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// contractStableSlices checks that what Entries returned never changes: not
// when the log is truncated and rewritten, and not when the caller appends
// to the returned slice (Log.Entries does, to join storage and cache).
func contractStableSlices(t *testing.T, k storageKind) {
	s := k.open(t)
	mustAppend(t, s, ents(1, 11, 1))
	got, err := s.Entries(2, 8, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	snapshot := make([]*raftpb.Entry, len(got))
	copies := make([]*raftpb.Entry, len(got))
	for i, e := range got {
		snapshot[i] = e
		copies[i] = &raftpb.Entry{Index: e.Index, Term: e.Term, Type: e.Type, Data: append([]byte(nil), e.Data...)}
	}
	head, err := s.Entries(1, 4, ^uint64(0))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(head, ent(99, 99), ent(98, 98)) // must not reach the storage

	check := func(when string) {
		t.Helper()
		for i := range got {
			if got[i] != snapshot[i] {
				t.Fatalf("%s: returned slice element %d was replaced", when, i)
			}
		}
		if err := diffEntries(got, copies); err != nil {
			t.Fatalf("%s: returned entries changed: %v", when, err)
		}
	}
	// A short rewrite first, which fits in whatever capacity the storage
	// kept, then longer ones.
	if err := s.TruncateSuffix(4); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, ents(4, 6, 2))
	check("after truncating to 3 and appending 4..5")
	mustAppend(t, s, ents(6, 40, 2))
	check("after appending 6..39")
	if err := s.TruncateSuffix(3); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, ents(3, 6, 3))
	check("after truncating to 2 and appending 3..5")
	mustCheck(t, s, oracle(ents(1, 3, 1)).append(ents(3, 6, 3)))
}

func contractReopen(t *testing.T, k storageKind) {
	s := k.open(t)
	s = k.reopen(t, s)
	mustCheck(t, s, nil)
	want := oracle(ents(1, 11, 1))
	mustAppend(t, s, want)
	s = k.reopen(t, s)
	mustCheck(t, s, want)
	if err := s.TruncateSuffix(4); err != nil {
		t.Fatal(err)
	}
	want = want.truncate(4).append(ents(4, 7, 2))
	mustAppend(t, s, want[3:])
	s = k.reopen(t, s)
	mustCheck(t, s, want)
	if err := s.TruncateSuffix(1); err != nil {
		t.Fatal(err)
	}
	s = k.reopen(t, s)
	mustCheck(t, s, nil)
	mustAppend(t, s, ents(1, 2, 5))
	s = k.reopen(t, s)
	mustCheck(t, s, ents(1, 2, 5))
}

// TestLogStorageDifferential drives each implementation with random
// appends, suffix truncations and (for files) sync+close+reopen, comparing
// every read with a trivial oracle after every operation.
func TestLogStorageDifferential(t *testing.T) {
	seed := testseed.For(t)
	for ki, k := range storageKinds() {
		t.Run(k.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, uint64(ki)))
			steps := 400
			if strings.HasSuffix(k.name, "-os") {
				steps = 150 // real fsyncs are slow
			}
			s := k.open(t)
			var want oracle
			term := uint64(1)
			for step := range steps {
				var what string
				switch n := r.IntN(10); {
				case n < 6:
					es := randEnts(r, uint64(len(want))+1, 1+r.IntN(6), term)
					what = "append " + summary(es)
					if err := s.Append(es); err != nil {
						t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
					}
					want = want.append(es)
				case n < 8:
					from := 1 + r.Uint64N(uint64(len(want))+1)
					what = "truncate from " + strconv.FormatUint(from, 10)
					if err := s.TruncateSuffix(from); err != nil {
						t.Fatalf("seed %d step %d: %s: %v", seed, step, what, err)
					}
					want = want.truncate(from)
					term++
				case n < 9:
					what = "bad append"
					if err := s.Append(randEnts(r, uint64(len(want))+2+r.Uint64N(3), 1, term)); err == nil {
						t.Fatalf("seed %d step %d: append past the end succeeded", seed, step)
					}
				default:
					what = "reopen"
					if k.reopen == nil {
						what = "sync"
						if err := s.Sync(); err != nil {
							t.Fatalf("seed %d step %d: Sync: %v", seed, step, err)
						}
					} else {
						s = k.reopen(t, s)
					}
				}
				if err := checkStorage(s, want); err != nil {
					t.Fatalf("seed %d step %d (%s): %v", seed, step, what, err)
				}
				if len(want) > 0 {
					lo := 1 + r.Uint64N(uint64(len(want)))
					hi := lo + r.Uint64N(uint64(len(want))-lo+2)
					maxBytes := r.Uint64N(600)
					got, err := s.Entries(lo, hi, maxBytes)
					if err != nil {
						t.Fatalf("seed %d step %d: Entries(%d, %d, %d): %v", seed, step, lo, hi, maxBytes, err)
					}
					if err := diffEntries(got, want[lo-1:lo-1+prefixWithin(want[lo-1:hi-1], maxBytes)]); err != nil {
						t.Fatalf("seed %d step %d: Entries(%d, %d, %d): %v", seed, step, lo, hi, maxBytes, err)
					}
				}
			}
		})
	}
}

// prefixWithin is how many entries Entries must return for maxBytes: the
// longest prefix whose sizes sum to at most maxBytes, but at least one.
func prefixWithin(es []*raftpb.Entry, maxBytes uint64) uint64 {
	var n, size uint64
	for _, e := range es {
		size += uint64(len(e.Data)) + 24
		if n > 0 && size > maxBytes {
			break
		}
		n++
	}
	return n
}
