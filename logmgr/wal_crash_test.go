package logmgr

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// walRig drives a WAL on a MemFS and remembers every state a crash may
// leave: states[0] is the state as of the last successful Sync, and every
// later state is one the log passed through since (per record: a torn
// batch keeps a prefix of its entries). An operation's states are added
// before it runs, so a crash inside it is covered too.
type walRig struct {
	t      *testing.T
	seed   uint64
	fs     *vfs.MemFS
	opener diskOpener
	w      LogStorage
	states []logModel
	term   uint64
	// compact makes the steps those of a node that snapshots: mostly
	// appends, and prefix truncations that keep little more than the last
	// segment, so that segment files are recycled and reused all the time.
	compact bool
	// repaired counts recoveries that cut a torn tail; reuses the
	// segments created in recycled files, over every WAL opened.
	repaired     int
	lastRepaired int64
	reuses       int
}

func newWALRig(t *testing.T, seed uint64, open diskOpener) *walRig {
	return &walRig{t: t, seed: seed, fs: vfs.NewMem(), opener: open, states: []logModel{newModel()}, term: 1}
}

// close closes the WAL, counting its reuses.
func (c *walRig) close() error {
	if w, ok := c.w.(*WAL); ok {
		c.reuses += w.reuses
	}
	return c.w.Close()
}

// crashKinds are the storages the crash suites run against.
// A buffered WAL leaves unsynced writes a crash can tear between any two
// operations; a direct one only inside a write (a crash at its sync).
// Each runs the mixed script and the compacting one (see walRig.compact);
// the direct kind with segments bigger than a direct write's 4 KiB block
// too, which a direct write does not zero whole, so that the stale records
// of reused files stay after the data as they do in real segments.
var crashKinds = []struct {
	name    string
	open    diskOpener
	tears   bool // torn tails must show up between operations too
	compact bool
}{
	{"wal-buffered", openWALSized(4<<10, true), true, false},
	{"wal-direct", openWALSized(4<<10, false), false, false},
	{"wal-buffered-compacting", openWALSized(4<<10, true), true, true},
	{"wal-direct-8k-compacting", openWALSized(8<<10, false), false, true},
}

func (c *walRig) fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("seed %d: %s", c.seed, fmt.Sprintf(format, args...))
}

// open opens the WAL; an error is returned only for the caller to treat
// as a crash.
func (c *walRig) open() error {
	w, repaired, err := c.opener(c.fs, walDir)
	if err != nil {
		return err
	}
	c.w = w
	if repaired > 0 {
		c.repaired++
	}
	c.lastRepaired = repaired
	return nil
}

func (c *walRig) cur() logModel { return c.states[len(c.states)-1] }

func (c *walRig) add(ms ...logModel) { c.states = append(c.states, ms...) }

// step runs one random operation and returns what it was and its error.
func (c *walRig) step(r *rand.Rand) (string, error) {
	if c.compact {
		return c.compactingStep(r)
	}
	cur, w := c.cur(), c.w
	last, first := cur.last(), w.FirstIndex()
	switch n := r.IntN(100); {
	case n < 55:
		count := 1 + r.IntN(6)
		if r.IntN(15) == 0 {
			count = 20 + r.IntN(30) // more than a segment holds
		}
		es := randEnts(r, last+1, count, c.term)
		c.add(cur.appendStates(es)...)
		return "append " + summary(es), w.Append(es)
	case n < 70:
		from := first + r.Uint64N(last-first+2)
		if r.IntN(2) == 0 {
			from = first + r.Uint64N(min(last-first+2, 4)) // far back
		}
		c.add(cur.truncated(from))
		c.term++
		return fmt.Sprint("truncate suffix from ", from), w.TruncateSuffix(from)
	case n < 78:
		f := first + r.Uint64N(last-first+2)
		c.add(cur.compacted(f))
		return fmt.Sprint("truncate prefix to ", f), w.TruncatePrefix(f)
	case n < 81:
		next := uint64(max(1, int64(last)+1+int64(r.IntN(40))-15))
		c.term++
		c.add(cur.reset(next, c.term))
		return fmt.Sprint("reset to ", next), w.Reset(next, c.term)
	default:
		err := w.Sync()
		if err == nil {
			c.states = []logModel{cur}
		}
		return "sync", err
	}
}

// compactingStep runs one operation of the compacting script: mostly
// appends, often truncating the prefix up to the last segment (or close to
// it), now and then a suffix truncation or a reset (which also free
// segments), and syncs.
func (c *walRig) compactingStep(r *rand.Rand) (string, error) {
	cur, w := c.cur(), c.w
	last, first := cur.last(), w.FirstIndex()
	switch n := r.IntN(100); {
	case n < 60:
		count := 2 + r.IntN(12)
		if r.IntN(4) == 0 {
			count = 16 + r.IntN(24) // a segment of 4 KiB, or more
		}
		es := randEnts(r, last+1, count, c.term)
		c.add(cur.appendStates(es)...)
		return "append " + summary(es), w.Append(es)
	case n < 78:
		f := last + 1 - r.Uint64N(min(last-first+2, 8))
		c.add(cur.compacted(f))
		return fmt.Sprint("truncate prefix to ", f), w.TruncatePrefix(f)
	case n < 84:
		from := last + 1 - r.Uint64N(min(last-first+2, 30))
		c.add(cur.truncated(from))
		c.term++
		return fmt.Sprint("truncate suffix from ", from), w.TruncateSuffix(from)
	case n < 86:
		next := uint64(max(1, int64(last)+1+int64(r.IntN(40))-30))
		c.term++
		c.add(cur.reset(next, c.term))
		return fmt.Sprint("reset to ", next), w.Reset(next, c.term)
	default:
		err := w.Sync()
		if err == nil {
			c.states = []logModel{cur}
		}
		return "sync", err
	}
}

// recover reopens the WAL after a crash and checks that it holds one of
// the states, then makes that the only state.
func (c *walRig) recover(what string) {
	c.t.Helper()
	if c.w != nil {
		c.close()
		c.w = nil
	}
	c.fs.SetInjector(nil)
	if err := c.open(); err != nil {
		c.fatalf("reopen after a crash (%s): %v", what, err)
	}
	i := matchState(c.w, c.states)
	if i < 0 {
		c.fatalf("after a crash (%s): recovered log (first %d, last %d) is none of the %d states since the last sync; the synced one: %v",
			what, c.w.FirstIndex(), c.w.LastIndex(), len(c.states), c.states[0].check(c.w, false))
	}
	// States that match are equivalent; keep the latest.
	for j := len(c.states) - 1; j > i; j-- {
		if c.states[j].check(c.w, false) == nil {
			i = j
			break
		}
	}
	c.states = []logModel{c.states[i]}
	c.term++
}

// crashDuringRecovery opens the storage with the disk crashing (torn) at
// its first mutating operation — zeroing a torn tail, removing dead
// segments — if it makes any.
func (c *walRig) crashDuringRecovery(tear *rand.Rand) {
	c.fs.SetInjector(func(op vfs.Op, name string) error {
		if !mutating(op) {
			return nil
		}
		c.fs.SetInjector(nil)
		c.fs.CrashTorn(tear)
		return vfs.ErrnoError(op, name, syscall.EIO)
	})
	if w, _, err := c.opener(c.fs, walDir); err == nil {
		w.Close()
	}
	c.fs.SetInjector(nil)
}

// carryOn appends, syncs, closes and reopens: the recovered WAL works.
func (c *walRig) carryOn() {
	c.t.Helper()
	cur := c.cur()
	es := ents(cur.last()+1, cur.last()+4, c.term)
	if err := c.w.Append(es); err != nil {
		c.fatalf("append after recovery: %v", err)
	}
	if err := c.w.Sync(); err != nil {
		c.fatalf("sync after recovery: %v", err)
	}
	c.states = []logModel{cur.appended(es)}
	if err := c.close(); err != nil {
		c.fatalf("close: %v", err)
	}
	if err := c.open(); err != nil {
		c.fatalf("reopen: %v", err)
	}
	if c.lastRepaired != 0 {
		c.fatalf("clean reopen repaired %d bytes", c.lastRepaired)
	}
	if err := c.cur().check(c.w, false); err != nil {
		c.fatalf("after append and reopen: %v", err)
	}
}

// TestWALRandomCrash runs random operations, crashing (clean or torn) at
// random points between them, many times over on the same disk.
func TestWALRandomCrash(t *testing.T) {
	seed := testseed.For(t)
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) { runRandomCrash(t, seed, k.open, k.tears, k.compact) })
	}
}

func runRandomCrash(t *testing.T, seed uint64, open diskOpener, tears, compact bool) {
	torn, reuses := 0, 0
	for iter := range uint64(150) {
		r := rand.New(rand.NewPCG(seed, iter))
		c := newWALRig(t, seed, open)
		c.compact = compact
		if err := c.open(); err != nil {
			t.Fatal(err)
		}
		for gen := range 6 {
			for range r.IntN(25) {
				if what, err := c.step(r); err != nil {
					c.fatalf("iter %d gen %d: %s: %v", iter, gen, what, err)
				}
			}
			latest := c.cur()
			if r.IntN(2) == 0 {
				c.fs.Crash()
			} else {
				c.fs.CrashTorn(rand.New(rand.NewPCG(seed, iter<<8|uint64(gen))))
			}
			c.recover(fmt.Sprintf("iter %d gen %d", iter, gen))
			if !tears {
				// Every direct write was durable when it returned.
				if err := latest.check(c.w, false); err != nil {
					c.fatalf("iter %d gen %d: a crash between operations lost a direct write: %v", iter, gen, err)
				}
			}
			if r.IntN(3) == 0 {
				c.carryOn()
			}
		}
		c.close()
		torn += c.repaired
		reuses += c.reuses
	}
	t.Logf("%d recoveries zeroed a torn tail; %d segments were created in recycled files", torn, reuses)
	if tears && torn == 0 {
		t.Fatalf("seed %d: no recovery found a torn tail; the test exercised nothing", seed)
	}
	if compact && reuses < 150 {
		t.Fatalf("seed %d: only %d segments created in recycled files; the compacting script should reuse them all the time", seed, reuses)
	}
}

// mutating reports whether op changes the file system.
func mutating(op vfs.Op) bool {
	switch op {
	case vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpTruncate, vfs.OpRemove, vfs.OpRename,
		vfs.OpMkdir, vfs.OpSyncDir, vfs.OpPreallocate:
		return true
	}
	return false
}

// runScript runs a fixed random script (the same for the same seed) on c,
// crashing the disk just before its crashAt-th mutating operation (never,
// if crashAt is 0) with tear (nil: a clean crash). It returns the number
// of mutating operations the script made, and whether it crashed.
func runScript(c *walRig, crashAt int, tear *rand.Rand) (ops int, crashed bool) {
	c.fs.SetInjector(func(op vfs.Op, name string) error {
		if !mutating(op) {
			return nil
		}
		ops++
		if ops != crashAt {
			return nil
		}
		if tear != nil {
			c.fs.CrashTorn(tear)
		} else {
			c.fs.Crash()
		}
		return vfs.ErrnoError(op, name, syscall.EIO)
	})
	defer c.fs.SetInjector(nil)
	if err := c.open(); err != nil {
		return ops, true
	}
	r := rand.New(rand.NewPCG(c.seed, 77))
	steps := 100
	if c.compact {
		steps = 80 // of bigger appends
	}
	// A compacting script goes on (up to 400 steps) until two segments
	// were made in recycled files: some seeds' first 80 steps reuse only
	// one. The script stays the same for the same seed: a run that does
	// not crash takes the same steps.
	for i := 0; i < steps || (c.compact && c.liveReuses() < 2 && i < 400); i++ {
		if _, err := c.step(r); err != nil {
			return ops, true
		}
	}
	return ops, false
}

// liveReuses is the segments made in recycled files so far, the open
// WAL's included.
func (c *walRig) liveReuses() int {
	if w, ok := c.w.(*WAL); ok {
		return c.reuses + w.reuses
	}
	return c.reuses
}

// TestWALCrashAtEveryOp runs one script again and again, crashing the disk
// at each of its mutating file system operations in turn — every write,
// fdatasync, create, rename, removal and directory sync, including those
// of opening — cleanly and torn, and checks each recovery.
func TestWALCrashAtEveryOp(t *testing.T) {
	seed := testseed.For(t)
	for _, k := range crashKinds {
		t.Run(k.name, func(t *testing.T) { runCrashAtEveryOp(t, seed, k.open, k.compact) })
	}
}

func runCrashAtEveryOp(t *testing.T, seed uint64, open diskOpener, compact bool) {
	full := newWALRig(t, seed, open)
	full.compact = compact
	total, _ := runScript(full, 0, nil)
	full.close()
	t.Logf("the script makes %d mutating operations and creates %d segments in recycled files", total, full.reuses)
	if compact && full.reuses < 2 {
		t.Fatalf("seed %d: the compacting script creates only %d segments in recycled files", seed, full.reuses)
	}
	for k := 1; k <= total; k++ {
		for v := range 3 {
			c := newWALRig(t, seed, open)
			c.compact = compact
			var tear *rand.Rand
			if v > 0 {
				tear = rand.New(rand.NewPCG(seed, uint64(k)<<2|uint64(v)))
			}
			if _, crashed := runScript(c, k, tear); !crashed {
				t.Fatalf("seed %d: the crash at operation %d of %d did not happen", seed, k, total)
			}
			if v == 2 {
				c.crashDuringRecovery(tear)
			}
			c.recover(fmt.Sprintf("crash at operation %d, variant %d", k, v))
			c.carryOn()
		}
	}
}

// TestWALTornAtEveryOffset writes two batches (two records) after a synced
// log and tears them at every byte offset: recovery keeps exactly the
// records that were written whole, zeroes the frames of the torn one (the
// bytes tagged with the segment's tag) and reports them, and a second open
// finds nothing to repair. It runs in a fresh segment (zeros after the
// data), the first or a later one, and in a reused one (the records of the
// file's earlier life after the data).
func TestWALTornAtEveryOffset(t *testing.T) {
	for _, c := range []struct {
		name   string
		synced int // batches before the torn ones
		reused bool
	}{{"first-segment", 1, false}, {"later-segment", 7, false}, {"reused-segment", 2, true}} {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			// Buffered: a direct write would zero the rest of its 4 KiB
			// block, which is the whole of these small segments.
			w := openTestWALOpts(t, fsys, WALOptions{SegmentSize: 4 << 10, Buffered: c.reused})
			m := newModel()
			for i := 0; c.reused && w.reuses == 0; i++ {
				// Compacting as it goes, until a segment is in a recycled
				// file.
				es := randEnts(rand.New(rand.NewPCG(2, uint64(i))), m.last()+1, 4, 1)
				mustAppend(t, w, es)
				m = m.appended(es)
				must(t, w.TruncatePrefix(w.active().first))
				m = m.compacted(w.active().first)
			}
			for i := 0; i < c.synced; i++ {
				es := randEnts(rand.New(rand.NewPCG(1, uint64(i))), m.last()+1, 4, 1)
				mustAppend(t, w, es)
				m = m.appended(es)
			}
			if c.reused && w.reuses != 1 {
				t.Fatalf("the last segment is not the reused one (%d reuses)", w.reuses)
			}
			must(t, w.TruncateSuffix(m.last()-1)) // a truncate record too
			m = m.truncated(m.last() - 1)
			must(t, w.Sync())
			seg := w.active()
			name, end, fr := seg.path, seg.end, seg.frame
			durable, err := fsys.ReadFile(name)
			must(t, err)
			if stale := lastNonZero(durable, end) >= 0; stale != c.reused {
				t.Fatalf("bytes after the data: %v, want %v", stale, c.reused)
			}
			batch := []*raftpb.Entry{ent(m.last()+1, 2), {Index: m.last() + 2, Term: 2}, ent(m.last()+3, 2)}
			// Records: the first two entries, then the third.
			parts := [][]*raftpb.Entry{batch[:2], batch[2:]}
			var sizes []int64
			for _, es := range parts {
				b, _, err := appendBatchRecords(nil, nil, es, es[0].Index, fr)
				must(t, err)
				sizes = append(sizes, int64(len(b)))
				mustAppend(t, w, es)
			}
			written, err := fsys.ReadFile(name)
			must(t, err)
			w.Close()
			total := sizes[0] + sizes[1]
			for cut := int64(0); cut <= total; cut++ {
				torn := append([]byte(nil), durable...)
				copy(torn[end:end+cut], written[end:end+cut])
				must(t, fsys.WriteFile(name, torn))
				fsys.SyncAll()
				whole, records, kept := int64(0), 0, 0
				// A record is whole when what the cut leaves out of it is
				// what the file holds there already.
				for records < len(sizes) && (whole+sizes[records] <= cut ||
					bytes.Equal(torn[end+whole:end+whole+sizes[records]], written[end+whole:end+whole+sizes[records]])) {
					whole += sizes[records]
					kept += len(parts[records])
					records++
				}
				_, damageEnd := scanTaggedOracle(torn, end+whole, fr)
				for i, want := range []int64{damageEnd - (end + whole), 0} {
					w, err := OpenWAL(fsys, walDir, WALOptions{SegmentSize: 4 << 10, Logger: quietLogger})
					if err != nil {
						t.Fatalf("torn at %d of %d, open %d: %v", cut, total, i, err)
					}
					if w.Repaired() != want {
						t.Fatalf("torn at %d of %d, open %d: Repaired = %d, want %d", cut, total, i, w.Repaired(), want)
					}
					if err := m.appended(batch[:kept]).check(w, true); err != nil {
						t.Fatalf("torn at %d of %d, open %d: %v", cut, total, i, err)
					}
					w.Close()
				}
				after, _ := fsys.ReadFile(name)
				if v, d := scanTaggedOracle(after, end+whole, fr); v >= 0 || d != end+whole {
					t.Fatalf("torn at %d: bytes with the tag left after the last whole record (%d, %d)", cut, v, d)
				}
			}
		})
	}
}
