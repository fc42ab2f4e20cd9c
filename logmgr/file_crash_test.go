package logmgr

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

const crashDir, crashFile = "/data", "/data/log"

// recState is the log after a prefix of the records written since the last
// sync, and the size of the file then.
type recState struct {
	log  oracle
	size int64
}

// crashRig drives a FileStorage on a MemFS and remembers every state the
// file can be cut back to by a crash: states[0] is the state at the last
// sync, and each later state adds one record. FileStorage writes one record
// per entry, so a torn multi-entry append may keep some of its entries:
// states are per record, not per Append call.
type crashRig struct {
	t      *testing.T
	seed   uint64
	fs     *vfs.MemFS
	s      *FileStorage
	states []recState
	term   uint64
}

func newCrashRig(t *testing.T, seed uint64) *crashRig {
	c := &crashRig{t: t, seed: seed, fs: vfs.NewMem(), term: 1}
	c.open()
	if c.s.Repaired != 0 || c.s.LastIndex() != 0 {
		t.Fatalf("seed %d: new storage: repaired %d, last %d", seed, c.s.Repaired, c.s.LastIndex())
	}
	c.states = []recState{{}}
	return c
}

func (c *crashRig) open() {
	c.t.Helper()
	s, err := OpenFileStorage(c.fs, crashDir)
	if err != nil {
		c.t.Fatalf("seed %d: OpenFileStorage: %v", c.seed, err)
	}
	c.s = s
}

func (c *crashRig) cur() recState { return c.states[len(c.states)-1] }

func (c *crashRig) fileSize() int64 {
	b, err := c.fs.ReadFile(crashFile)
	if err != nil {
		c.t.Fatalf("seed %d: %v", c.seed, err)
	}
	return int64(len(b))
}

// step applies one random mutation and records the states it passes
// through.
func (c *crashRig) step(r *rand.Rand) {
	c.t.Helper()
	cur := c.cur()
	if len(cur.log) > 0 && r.IntN(4) == 0 {
		from := 1 + r.Uint64N(uint64(len(cur.log))+1)
		if err := c.s.TruncateSuffix(from); err != nil {
			c.t.Fatalf("seed %d: TruncateSuffix(%d): %v", c.seed, from, err)
		}
		if from <= uint64(len(cur.log)) { // otherwise nothing is written
			c.states = append(c.states, recState{
				log:  cur.log.truncate(from),
				size: cur.size + recordSize(&raftpb.IndexMark{Index: from}),
			})
		}
		c.term++
	} else {
		es := randEnts(r, uint64(len(cur.log))+1, 1+r.IntN(5), c.term)
		if err := c.s.Append(es); err != nil {
			c.t.Fatalf("seed %d: Append: %v", c.seed, err)
		}
		for _, e := range es {
			cur = recState{log: cur.log.append([]*raftpb.Entry{e}), size: cur.size + recordSize(e)}
			c.states = append(c.states, cur)
		}
	}
	if got := c.fileSize(); got != c.cur().size {
		c.t.Fatalf("seed %d: file holds %d bytes, records add up to %d", c.seed, got, c.cur().size)
	}
	if err := checkStorage(c.s, c.cur().log); err != nil {
		c.t.Fatalf("seed %d: before crash: %v", c.seed, err)
	}
}

func (c *crashRig) sync() {
	c.t.Helper()
	if err := c.s.Sync(); err != nil {
		c.t.Fatalf("seed %d: Sync: %v", c.seed, err)
	}
	c.states = []recState{c.cur()}
}

// recover reopens the storage after a crash and checks that it holds
// exactly the state of the longest whole-record prefix of the file: every
// synced entry, nothing that was not written before, torn bytes cut.
func (c *crashRig) recover(torn bool) {
	c.t.Helper()
	size := c.fileSize()
	synced := c.states[0]
	if size < synced.size {
		c.t.Fatalf("seed %d: crash left %d bytes, %d were synced", c.seed, size, synced.size)
	}
	if !torn && size != synced.size {
		c.t.Fatalf("seed %d: clean crash left %d bytes, want the %d synced", c.seed, size, synced.size)
	}
	i := 0
	for i+1 < len(c.states) && c.states[i+1].size <= size {
		i++
	}
	want := c.states[i]
	c.open()
	if wantCut := size - want.size; c.s.Repaired != wantCut {
		c.t.Fatalf("seed %d: Repaired = %d, want %d (file %d bytes, last whole record ends at %d)", c.seed, c.s.Repaired, wantCut, size, want.size)
	}
	if got := c.fileSize(); got != want.size {
		c.t.Fatalf("seed %d: after repair the file holds %d bytes, want %d", c.seed, got, want.size)
	}
	if err := checkStorage(c.s, want.log); err != nil {
		c.t.Fatalf("seed %d: after crash (kept %d of %d records since the last sync): %v", c.seed, i, len(c.states)-1, err)
	}
	c.states = []recState{want}
	c.term++
}

// TestFileStorageCrash crashes a FileStorage again and again on the same
// MemFS: a clean crash keeps exactly what was synced.
func TestFileStorageCrash(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 1))
	c := newCrashRig(t, seed)
	for gen := range 50 {
		for range r.IntN(12) {
			c.step(r)
			if r.IntN(4) == 0 {
				c.sync()
			}
		}
		c.fs.Crash()
		c.recover(false)
		if c.s.Repaired != 0 {
			t.Fatalf("seed %d gen %d: clean crash repaired %d bytes", seed, gen, c.s.Repaired)
		}
	}
}

// TestFileStorageTornCrash tears the unsynced tail of the file at random
// points (many seeds) and checks that recovery keeps a record prefix of the
// operations since the last sync, cuts the torn record and then accepts
// appends and survives further crashes.
func TestFileStorageTornCrash(t *testing.T) {
	seed := testseed.For(t)
	repaired := 0
	for iter := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, iter))
		c := newCrashRig(t, seed)
		for range 4 {
			for range 1 + r.IntN(8) {
				c.step(r)
				if r.IntN(5) == 0 {
					c.sync()
				}
			}
			c.fs.CrashTorn(rand.New(rand.NewPCG(seed, iter<<8|uint64(r.IntN(256)))))
			c.recover(true)
			if c.s.Repaired > 0 {
				repaired++
			}
			// The repaired storage accepts appends, and they last.
			c.step(r)
			c.sync()
			want := c.cur().log
			if err := c.s.Close(); err != nil {
				t.Fatalf("seed %d iter %d: Close: %v", seed, iter, err)
			}
			c.open()
			if c.s.Repaired != 0 {
				t.Fatalf("seed %d iter %d: clean reopen repaired %d bytes", seed, iter, c.s.Repaired)
			}
			if err := checkStorage(c.s, want); err != nil {
				t.Fatalf("seed %d iter %d: after append and reopen: %v", seed, iter, err)
			}
		}
	}
	if repaired == 0 {
		t.Fatalf("seed %d: no torn crash cut any bytes; the test exercised nothing", seed)
	}
}

// TestFileStorageRepairInterrupted fails the sync that makes the cut of a
// torn tail durable, crashes, and opens again.
func TestFileStorageRepairInterrupted(t *testing.T) {
	fsys := vfs.NewMem()
	s, err := OpenFileStorage(fsys, crashDir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, ents(1, 5, 1))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := fsys.ReadFile(crashFile)
	if err := fsys.WriteFile(crashFile, b[:len(b)-3]); err != nil { // tear entry 4
		t.Fatal(err)
	}
	fsys.SyncAll()
	eio := vfs.ErrnoError(vfs.OpSync, crashFile, syscall.EIO)
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync {
			return eio
		}
		return nil
	})
	if _, err := OpenFileStorage(fsys, crashDir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("open with failing sync of the repair: err %v, want EIO", err)
	}
	fsys.SetInjector(nil)
	fsys.Crash()
	s, err = OpenFileStorage(fsys, crashDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Repaired == 0 {
		t.Error("Repaired = 0 after a torn tail")
	}
	mustCheck(t, s, ents(1, 4, 1))
}

// TestFileStorageCorruptMiddle flips one byte of a record in the middle of
// a synced file.
//
// Known limitation: FileStorage cannot tell a damaged record in the middle
// of the file from a torn tail, so the log silently ends before the damaged
// record and the (synced, intact) records after it are cut off the file
// and reported only through Repaired. The segmented WAL will make this an
// error. This test pins the current behaviour.
func TestFileStorageCorruptMiddle(t *testing.T) {
	all := ents(1, 11, 1)
	var offs []int64 // offs[i] is the offset of entry i+1's record
	var end int64
	for _, e := range all {
		offs = append(offs, end)
		end += recordSize(e)
	}
	for _, c := range []struct {
		name string
		at   int64 // offset within entry 4's record
	}{
		{"length", 1},
		{"crc", 5},
		{"type", 8},
		{"payload", recordSize(all[3]) / 2},
		{"payload-last-byte", recordSize(all[3]) - 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			s, err := OpenFileStorage(fsys, crashDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range all {
				mustAppend(t, s, []*raftpb.Entry{e})
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			b, _ := fsys.ReadFile(crashFile)
			if int64(len(b)) != end {
				t.Fatalf("file holds %d bytes, records add up to %d", len(b), end)
			}
			b[offs[3]+c.at] ^= 0x40
			if err := fsys.WriteFile(crashFile, b); err != nil {
				t.Fatal(err)
			}
			fsys.SyncAll()
			s, err = OpenFileStorage(fsys, crashDir)
			if err != nil {
				t.Fatalf("open: %v (the current behaviour is to end the log, not to fail)", err)
			}
			defer s.Close()
			mustCheck(t, s, all[:3])
			if s.Repaired != end-offs[3] {
				t.Errorf("Repaired = %d, want %d", s.Repaired, end-offs[3])
			}
			if b, _ := fsys.ReadFile(crashFile); int64(len(b)) != offs[3] {
				t.Errorf("file cut to %d bytes, want %d", len(b), offs[3])
			}
			mustAppend(t, s, ents(4, 6, 2))
			mustCheck(t, s, oracle(all[:3]).append(ents(4, 6, 2)))
		})
	}
}

// TestFileStorageInconsistentRecords checks that intact records that do not
// make a log are an error naming the file, never a silent reset.
func TestFileStorageInconsistentRecords(t *testing.T) {
	rec := func(typ byte, m proto.Message) []byte {
		b, err := appendRecord(nil, typ, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw := func(typ byte, payload []byte) []byte { // a record with an intact crc around any payload
		b := make([]byte, recHeader, recHeader+len(payload))
		binary.LittleEndian.PutUint32(b, uint32(len(payload)))
		b[8] = typ
		b = append(b, payload...)
		binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
		return b
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, c := range []struct {
		name, want string
		data       []byte
	}{
		{"index-gap", "entry 4 follows 2", cat(rec(recEntry, ent(1, 1)), rec(recEntry, ent(2, 1)), rec(recEntry, ent(4, 1)))},
		{"first-not-one", "entry 2 follows 0", rec(recEntry, ent(2, 1))},
		{"truncate-past-end", "truncation at 5", cat(rec(recEntry, ent(1, 1)), rec(recTruncate, &raftpb.IndexMark{Index: 5}))},
		{"truncate-zero", "truncation at 0", cat(rec(recEntry, ent(1, 1)), rec(recTruncate, &raftpb.IndexMark{}))},
		{"unknown-type", "unknown record type 9", cat(rec(recEntry, ent(1, 1)), rec(9, ent(2, 1)))},
		{"bad-entry", "bad entry", raw(recEntry, []byte{0x08, 0xff})},
		{"bad-truncation", "bad truncation", cat(rec(recEntry, ent(1, 1)), raw(recTruncate, []byte{0x80}))},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			if err := fsys.MkdirAll(crashDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := fsys.WriteFile(crashFile, c.data); err != nil {
				t.Fatal(err)
			}
			fsys.SyncAll()
			s, err := OpenFileStorage(fsys, crashDir)
			if err == nil {
				s.Close()
				t.Fatalf("open succeeded with last index %d", s.LastIndex())
			}
			if !strings.Contains(err.Error(), crashFile) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %s and %q", err, crashFile, c.want)
			}
		})
	}
}

// TestFileStorageOpenRetryAfterDirSyncFailure: the first open creates the
// file but fails to make its name durable; a retry (the node restarting
// without a machine crash) finds the file and must still make its name
// durable before anything written to it can be called durable.
func TestFileStorageOpenRetryAfterDirSyncFailure(t *testing.T) {
	fsys := vfs.NewMem()
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSyncDir {
			return vfs.ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	if _, err := OpenFileStorage(fsys, crashDir); !errors.Is(err, syscall.EIO) {
		t.Fatalf("open with failing SyncDir: err %v, want EIO", err)
	}
	fsys.SetInjector(nil)
	s, err := OpenFileStorage(fsys, crashDir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, ents(1, 4, 1))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()
	s, err = OpenFileStorage(fsys, crashDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCheck(t, s, ents(1, 4, 1))
}
