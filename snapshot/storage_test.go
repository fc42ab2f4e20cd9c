package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

const dir = "/data/snaps"

// strictFS is a MemFS whose directory renames are durable only once the
// parent directory is synced, as on a POSIX file system (MemFS makes them
// durable at once). It owns the MemFS's injector: inject, if set, is
// called before every operation but those strictFS makes itself.
type strictFS struct {
	*vfs.MemFS
	inject  func(op vfs.Op, name string) error
	bypass  bool
	pending [][2]string // directory renames not yet durable: {old, new}
}

func newStrictFS() *strictFS {
	s := &strictFS{MemFS: vfs.NewMem()}
	s.MemFS.SetInjector(func(op vfs.Op, name string) error {
		if s.bypass || s.inject == nil {
			return nil
		}
		return s.inject(op, name)
	})
	return s
}

func (s *strictFS) Rename(oldname, newname string) error {
	s.bypass = true
	fi, serr := s.MemFS.Stat(oldname)
	s.bypass = false
	if err := s.MemFS.Rename(oldname, newname); err != nil {
		return err
	}
	if serr == nil && fi.IsDir() {
		s.pending = append(s.pending, [2]string{path.Clean(oldname), path.Clean(newname)})
	}
	return nil
}

func (s *strictFS) SyncDir(d string) error {
	if err := s.MemFS.SyncDir(d); err != nil {
		return err
	}
	s.pending = slices.DeleteFunc(s.pending, func(r [2]string) bool { return path.Dir(r[1]) == path.Clean(d) })
	return nil
}

// crash loses power (tearing unsynced writes if torn is non-nil) and
// undoes the directory renames that were not durable.
func (s *strictFS) crash(torn *rand.Rand) {
	if torn != nil {
		s.MemFS.CrashTorn(torn)
	} else {
		s.MemFS.Crash()
	}
	s.bypass = true
	defer func() { s.bypass = false }()
	for i := len(s.pending) - 1; i >= 0; i-- {
		if err := s.MemFS.Rename(s.pending[i][1], s.pending[i][0]); err != nil {
			panic(fmt.Sprintf("undoing the rename of %v: %v", s.pending[i], err))
		}
	}
	s.pending = nil
}

func openStore(t *testing.T, fsys vfs.FS, keep int) *Store {
	t.Helper()
	st, err := Open(fsys, dir, Options{Keep: keep})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return st
}

// content is what a test writes: data in chunks, and extra files.
type content struct {
	index, term uint64
	conf        *raftpb.Configuration
	chunks      [][]byte
	files       []namedBytes
}

type namedBytes struct {
	name string
	data []byte
}

func (c content) data() []byte { return bytes.Join(c.chunks, nil) }

func (c content) meta() *raftpb.SnapshotMeta {
	return &raftpb.SnapshotMeta{LastIndex: c.index, LastTerm: c.term, Configuration: c.conf}
}

// makeContent builds a snapshot's content from r: data in several chunks
// of random sizes (an empty one among them) and two extra files.
func makeContent(index, term uint64, r *rand.Rand) content {
	c := content{index: index, term: term,
		conf: &raftpb.Configuration{
			Voters:    []*raftpb.Peer{{Id: "n1", Addr: "10.0.0.1:7001"}, {Id: fmt.Sprint("n", index), Addr: "10.0.0.2:7001"}},
			Learners:  []*raftpb.Peer{{Id: "l1", Addr: "10.0.0.9:7001"}},
			OldVoters: []*raftpb.Peer{{Id: "n1", Addr: "10.0.0.1:7001"}},
		}}
	for i := range 4 {
		b := make([]byte, r.IntN(3000))
		if i == 1 {
			b = nil
		}
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		c.chunks = append(c.chunks, b)
	}
	for _, name := range []string{"sst-1", "OPTIONS.x"} {
		b := make([]byte, 1+r.IntN(500))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		c.files = append(c.files, namedBytes{name, b})
	}
	return c
}

// write writes c through st and commits it.
func write(st *Store, c content) (*raftpb.SnapshotMeta, error) {
	w, err := st.Create(c.meta())
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	for i, ch := range c.chunks {
		if i == 2 { // an extra file written between chunks of data
			for _, f := range c.files {
				fw, err := w.AddFile(f.name)
				if err != nil {
					return nil, err
				}
				if _, err := fw.Write(f.data); err != nil {
					return nil, err
				}
				if err := fw.Close(); err != nil {
					return nil, err
				}
			}
		}
		if _, err := w.Write(ch); err != nil {
			return nil, err
		}
	}
	return w.Commit()
}

func mustWrite(t *testing.T, st *Store, c content) *raftpb.SnapshotMeta {
	t.Helper()
	m, err := write(st, c)
	if err != nil {
		t.Fatalf("writing snapshot (%d, %d): %v", c.index, c.term, err)
	}
	return m
}

// check reads snapshot c back through st and compares everything.
func check(t *testing.T, st *Store, c content) {
	t.Helper()
	r, err := st.Open(c.index, c.term)
	if err != nil {
		t.Fatalf("Open(%d, %d): %v", c.index, c.term, err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading snapshot (%d, %d): %v", c.index, c.term, err)
	}
	if !bytes.Equal(got, c.data()) {
		t.Fatalf("snapshot (%d, %d): data of %d bytes, want %d", c.index, c.term, len(got), len(c.data()))
	}
	m := r.Meta()
	if m.LastIndex != c.index || m.LastTerm != c.term || !proto.Equal(m.Configuration, c.conf) ||
		m.DataSize != uint64(len(c.data())) || m.DataCrc32C != crcOf(c.data()) || len(m.Files) != len(c.files) {
		t.Fatalf("snapshot (%d, %d): meta %v", c.index, c.term, m)
	}
	for i, f := range c.files {
		if mf := m.Files[i]; mf.Name != f.name || mf.Size != uint64(len(f.data)) || mf.Crc32C != crcOf(f.data) {
			t.Fatalf("snapshot (%d, %d): file %d in the meta is %v, want %q", c.index, c.term, i, mf, f.name)
		}
		fr, err := r.File(f.name)
		if err != nil {
			t.Fatalf("File(%q): %v", f.name, err)
		}
		got, err := io.ReadAll(fr)
		fr.Close()
		if err != nil || !bytes.Equal(got, f.data) {
			t.Fatalf("file %q: %d bytes, %v; want %d bytes", f.name, len(got), err, len(f.data))
		}
	}
	if err := st.Verify(c.index, c.term); err != nil {
		t.Fatalf("Verify(%d, %d): %v", c.index, c.term, err)
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func ids(metas []*raftpb.SnapshotMeta) []ID {
	out := []ID{}
	for _, m := range metas {
		out = append(out, ID{m.LastIndex, m.LastTerm})
	}
	return out
}

func wantList(t *testing.T, st *Store, want ...ID) {
	t.Helper()
	if want == nil {
		want = []ID{}
	}
	if got := ids(st.List()); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

// entries lists dir, failing the test on error.
func entries(t *testing.T, fsys vfs.FS) []string {
	t.Helper()
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatalf("List(%s): %v", dir, err)
	}
	return names
}

func dirNames(ids ...ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.dirName())
	}
	slices.Sort(out)
	return out
}

func TestRoundTrip(t *testing.T) {
	seed := testseed.For(t)
	for _, kind := range []string{"memfs", "os"} {
		t.Run(kind, func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMem()
			d := dir
			if kind == "os" {
				fsys, d = vfs.OS, path.Join(t.TempDir(), "snaps")
			}
			st, err := Open(fsys, d, Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(seed, 1))
			a := makeContent(100, 3, r)
			b := makeContent(200, 4, r)
			empty := content{index: 201, term: 4, conf: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "n1"}}}}
			if wantNone := st.Newest(); wantNone != nil {
				t.Fatalf("Newest of an empty store = %v", wantNone)
			}
			if _, err := st.OpenNewest(); !errors.Is(err, ErrNotFound) {
				t.Fatalf("OpenNewest of an empty store: %v, want ErrNotFound", err)
			}
			m := mustWrite(t, st, a)
			if m.DataSize != uint64(len(a.data())) || m.DataCrc32C != crcOf(a.data()) || len(m.Files) != 2 {
				t.Fatalf("Commit returned %v", m)
			}
			mustWrite(t, st, b)
			mustWrite(t, st, empty)
			for _, st := range []*Store{st, must(Open(fsys, d, Options{}))} { // and after reopening
				if got, want := ids(st.List()), []ID{{201, 4}, {200, 4}, {100, 3}}; !slices.Equal(got, want) {
					t.Fatalf("List = %v, want %v", got, want)
				}
				if n := st.Newest(); n.LastIndex != 201 {
					t.Fatalf("Newest = %v", n)
				}
				for _, c := range []content{a, b, empty} {
					check(t, st, c)
				}
				r, err := st.OpenNewest()
				if err != nil || r.Meta().LastIndex != 201 {
					t.Fatalf("OpenNewest: %v", err)
				}
				r.Close()
			}
			// The layout on disk.
			names, err := fsys.List(d)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"snap-0000000000000003-0000000000000064", "snap-0000000000000004-00000000000000c8", "snap-0000000000000004-00000000000000c9"}; !slices.Equal(names, want) {
				t.Fatalf("directory holds %v, want %v", names, want)
			}
			files, _ := fsys.List(path.Join(d, names[0]))
			if want := []string{"MANIFEST", "OPTIONS.x", "data", "sst-1"}; !slices.Equal(files, want) {
				t.Fatalf("snapshot directory holds %v, want %v", files, want)
			}
			if _, err := st.Open(100, 4); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Open of a missing snapshot: %v", err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestManifestEncoding(t *testing.T) {
	m := &raftpb.SnapshotMeta{LastIndex: 7, LastTerm: 2, Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "a"}}},
		DataSize: 5, DataCrc32C: 9, Files: []*raftpb.SnapshotFile{{Name: "f", Size: 1, Crc32C: 2}}}
	b, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:8]) != "asnapmf\x00" || b[8] != 1 || len(b) != 16+int(b[12])+4 {
		t.Fatalf("frame % x", b)
	}
	got, err := decodeManifest(b)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("decode: %v, %v", got, err)
	}
	for n := range len(b) {
		if _, err := decodeManifest(b[:n]); err == nil {
			t.Fatalf("a manifest cut to %d of %d bytes decodes", n, len(b))
		}
	}
	if _, err := decodeManifest(append(b, 0)); err == nil {
		t.Fatal("a manifest with a byte more decodes")
	}
}

func TestParseDirName(t *testing.T) {
	id := ID{Index: 0x1234, Term: 7}
	if got, ok := parseDirName(id.dirName()); !ok || got != id {
		t.Fatalf("parseDirName(%q) = %v, %v", id.dirName(), got, ok)
	}
	for _, bad := range []string{"snap-", "snap-0000000000000007-000000000000123", "snap-0000000000000007-000000000000123G",
		"snap-0000000000000007-00000000000012340", "snap-0000000000000007_0000000000001234", "snap-000000000000000A-0000000000001234"} {
		if _, ok := parseDirName(bad); ok {
			t.Fatalf("parseDirName(%q) accepted", bad)
		}
	}
}

// TestKeep commits Keep+2 snapshots and finds the newest Keep; a pinned
// snapshot (by Pin or by an open Reader) survives pruning and goes once
// unpinned, at the next Commit or Prune.
func TestKeep(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 2))
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 2)
	var cs []content
	for i := range 4 {
		cs = append(cs, makeContent(uint64(10*(i+1)), 1, r))
		mustWrite(t, st, cs[i])
	}
	wantList(t, st, ID{40, 1}, ID{30, 1})
	if got, want := entries(t, fsys), dirNames(ID{40, 1}, ID{30, 1}); !slices.Equal(got, want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}
	if _, err := st.Pin(10, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Pin of a pruned snapshot: %v", err)
	}

	// Pinned twice, and read through an open Reader.
	unpin1, err := st.Pin(30, 1)
	if err != nil {
		t.Fatal(err)
	}
	unpin2 := must(st.Pin(30, 1))
	rd := must(st.Open(40, 1))
	cs = append(cs, makeContent(50, 1, r), makeContent(60, 2, r))
	mustWrite(t, st, cs[4])
	mustWrite(t, st, cs[5])
	wantList(t, st, ID{60, 2}, ID{50, 1}, ID{40, 1}, ID{30, 1})
	check(t, st, cs[2])
	check(t, st, cs[3])

	unpin1()
	unpin1() // idempotent: the second pin still holds
	if err := st.Prune(); err != nil {
		t.Fatal(err)
	}
	wantList(t, st, ID{60, 2}, ID{50, 1}, ID{40, 1}, ID{30, 1})
	unpin2()
	if err := st.Prune(); err != nil {
		t.Fatal(err)
	}
	wantList(t, st, ID{60, 2}, ID{50, 1}, ID{40, 1})
	// The open Reader still reads the snapshot it pins.
	got, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(got, cs[3].data()) {
		t.Fatalf("reading a pinned snapshot: %v", err)
	}
	rd.Close()
	cs = append(cs, makeContent(70, 2, r))
	mustWrite(t, st, cs[6]) // prunes the snapshot the Reader held
	wantList(t, st, ID{70, 2}, ID{60, 2})
	if got, want := entries(t, fsys), dirNames(ID{70, 2}, ID{60, 2}); !slices.Equal(got, want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}

	// Reopening with a smaller Keep prunes.
	st = openStore(t, fsys, 1)
	wantList(t, st, ID{70, 2})
	check(t, st, cs[6])
	if _, err := Open(fsys, dir, Options{Keep: -1}); err == nil {
		t.Fatal("Open with Keep -1 succeeded")
	}
}

// TestCommitOperationOrder checks the order of Commit's operations on
// the file system: every file synced, then the MANIFEST written and synced
// (last), the temporary directory synced, renamed, and the store's
// directory synced.
func TestCommitOperationOrder(t *testing.T) {
	fsys := newStrictFS()
	st := openStore(t, fsys, 3)
	r := rand.New(rand.NewPCG(1, 1))
	var ops []string
	fsys.SetObserver(func(op vfs.Op, name string, n int) {
		if op != vfs.OpRead && op != vfs.OpStat && op != vfs.OpList {
			ops = append(ops, op.String()+" "+name)
		}
	})
	c := makeContent(5, 1, r)
	c.chunks = [][]byte{[]byte("ab"), []byte("cd"), []byte("ef")}
	c.files = c.files[:1]
	mustWrite(t, st, c)
	tmp := dir + "/tmp-0"
	want := []string{
		"mkdir " + tmp,
		"create " + tmp + "/data",
		"write " + tmp + "/data",
		"write " + tmp + "/data",
		"create " + tmp + "/sst-1",
		"write " + tmp + "/sst-1",
		"sync " + tmp + "/sst-1",
		"write " + tmp + "/data",
		"sync " + tmp + "/data",
		"create " + tmp + "/MANIFEST",
		"write " + tmp + "/MANIFEST",
		"sync " + tmp + "/MANIFEST",
		"syncdir " + tmp,
		"rename " + tmp,
		"syncdir " + dir,
	}
	if !slices.Equal(ops, want) {
		t.Fatalf("Commit's operations:\n%s\nwant:\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
}

// TestCommitCrashAtEveryOp writes snapshot B over a store holding A (Keep
// 1, so that B's commit also removes A) and crashes at each operation in
// turn, cleanly and torn, and after Commit returned. After reopening: no
// temporary directory and no damaged snapshot is left; the store holds A
// or B, whole and verified, and B if Commit returned; it takes a new
// snapshot.
func TestCommitCrashAtEveryOp(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 3))
	a, b, c := makeContent(10, 1, r), makeContent(20, 2, r), makeContent(30, 2, r)

	// run writes B, crashing at operation k (counted from Create on; 0:
	// never); it returns the number of operations and whether Commit
	// returned.
	run := func(fsys *strictFS, k int, torn *rand.Rand) (ops int, committed bool) {
		crashed := false
		fsys.inject = func(op vfs.Op, name string) error {
			if crashed {
				return vfs.ErrnoError(op, name, syscall.EIO) // the process is gone
			}
			if ops++; ops == k {
				crashed = true
				fsys.crash(torn)
				return vfs.ErrnoError(op, name, syscall.EIO)
			}
			return nil
		}
		st := openStoreNoInject(t, fsys)
		_, err := write(st, b) // may succeed with a crash in its pruning
		if !crashed {
			fsys.crash(torn)
		}
		fsys.inject = nil
		return ops, err == nil
	}
	total, _ := run(setupCrash(t, a), 0, nil)
	t.Logf("writing a snapshot makes %d operations", total)
	if total < 15 {
		t.Fatalf("only %d operations", total)
	}
	for k := 1; k <= total+1; k++ {
		for v := range 3 {
			var torn *rand.Rand
			if v > 0 {
				torn = rand.New(rand.NewPCG(seed, uint64(k*4+v)))
			}
			fsys := setupCrash(t, a)
			_, committed := run(fsys, k, torn)
			what := fmt.Sprintf("seed %d, crash at operation %d of %d (variant %d)", seed, k, total, v)
			st, err := Open(fsys, dir, Options{Keep: 1})
			if err != nil {
				t.Fatalf("%s: Open: %v", what, err)
			}
			if d := st.Damaged(); len(d) > 0 {
				t.Fatalf("%s: damaged snapshots: %v", what, d)
			}
			got := ids(st.List())
			switch {
			case slices.Equal(got, []ID{{20, 2}}):
				check(t, st, b)
			case committed:
				t.Fatalf("%s: Commit returned, then the crash: List = %v, want B", what, got)
			case slices.Equal(got, []ID{{10, 1}}):
				check(t, st, a)
			default:
				t.Fatalf("%s: List = %v", what, got)
			}
			if names := entries(t, fsys); !slices.Equal(names, dirNames(got...)) {
				t.Fatalf("%s: the directory holds %v", what, names)
			}
			mustWrite(t, st, c)
			fsys.crash(nil)
			st = openStore(t, fsys, 1)
			wantList(t, st, ID{30, 2})
			check(t, st, c)
		}
	}
}

// setupCrash returns a strictFS whose store holds snapshot a, durably.
func setupCrash(t *testing.T, a content) *strictFS {
	fsys := newStrictFS()
	st := openStore(t, fsys, 1)
	mustWrite(t, st, a)
	fsys.crash(nil)
	return fsys
}

// openStoreNoInject opens the store with the injector off.
func openStoreNoInject(t *testing.T, fsys *strictFS) *Store {
	inj := fsys.inject
	fsys.inject = nil
	defer func() { fsys.inject = inj }()
	return openStore(t, fsys, 1)
}

// TestOpenRemovesPartial leaves a snapshot half written and reopens: the
// temporary directory is removed, with a log line.
func TestOpenRemovesPartial(t *testing.T) {
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 3)
	w := must(st.Create(&raftpb.SnapshotMeta{LastIndex: 3, LastTerm: 1}))
	must(w.Write([]byte("half")))
	must(w.AddFile("x"))
	fsys.SyncAll()
	var logs bytes.Buffer
	st, err := Open(fsys, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if names := entries(t, fsys); len(names) != 0 {
		t.Fatalf("the directory holds %v", names)
	}
	if !strings.Contains(logs.String(), "removed a partial snapshot") || !strings.Contains(logs.String(), "tmp-0") {
		t.Fatalf("log: %s", logs.String())
	}
	wantList(t, st)
}

// flip flips one byte of file p in a MemFS.
func flip(t *testing.T, fsys *vfs.MemFS, p string, off int) {
	t.Helper()
	b, err := fsys.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x40
	if err := fsys.WriteFile(p, b); err != nil {
		t.Fatal(err)
	}
}

func snapPath(id ID, name string) string { return path.Join(dir, id.dirName(), name) }

// TestCorruptData flips a byte of data and of an extra file, on MemFS and
// on the OS: the readers return every byte and then ErrCorrupt instead of
// io.EOF, and Verify fails.
func TestCorruptData(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 4))
	for _, kind := range []string{"memfs", "os"} {
		t.Run(kind, func(t *testing.T) {
			mem := vfs.NewMem()
			var fsys vfs.FS = mem
			d := dir
			flipAt := func(p string, off int) { flip(t, mem, p, off) }
			if kind == "os" {
				fsys, d = vfs.OS, path.Join(t.TempDir(), "snaps")
				flipAt = func(p string, off int) {
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					b[off] ^= 0x40
					if err := os.WriteFile(p, b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			st := must(Open(fsys, d, Options{}))
			c := makeContent(9, 1, r)
			c.chunks = append(c.chunks, []byte("tail"))
			mustWrite(t, st, c)
			id := ID{9, 1}
			flipAt(path.Join(d, id.dirName(), dataName), len(c.data())/2)
			rd := must(st.Open(9, 1))
			got, err := io.ReadAll(rd)
			if !errors.Is(err, ErrCorrupt) || len(got) != len(c.data()) {
				t.Fatalf("reading corrupt data: %d bytes, %v; want %d bytes and ErrCorrupt", len(got), err, len(c.data()))
			}
			if _, err := rd.Read(make([]byte, 1)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("a read after the error: %v", err)
			}
			rd.Close()
			if err := st.Verify(9, 1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify of corrupt data: %v", err)
			}
			flipAt(path.Join(d, id.dirName(), dataName), len(c.data())/2) // repaired
			if err := st.Verify(9, 1); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			flipAt(path.Join(d, id.dirName(), "OPTIONS.x"), 0)
			rd = must(st.Open(9, 1))
			fr := must(rd.File("OPTIONS.x"))
			if _, err := io.ReadAll(fr); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading a corrupt extra file: %v", err)
			}
			fr.Close()
			rd.Close()
			if err := st.Verify(9, 1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "OPTIONS.x") {
				t.Fatalf("Verify of a corrupt extra file: %v", err)
			}
		})
	}
}

// TestTruncatedData cuts and lengthens the data file of an open store:
// the Reader returns ErrCorrupt; reopened, the store finds the snapshot
// damaged.
func TestTruncatedData(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 5))
	for _, delta := range []int{-1, -1000, 1} {
		fsys := vfs.NewMem()
		st := openStore(t, fsys, 3)
		a, b := makeContent(1, 1, r), makeContent(2, 1, r)
		b.chunks = [][]byte{bytes.Repeat([]byte("x"), 2000)}
		mustWrite(t, st, a)
		mustWrite(t, st, b)
		p := snapPath(ID{2, 1}, dataName)
		data, _ := fsys.ReadFile(p)
		if delta < 0 {
			data = data[:len(data)+delta]
		} else {
			data = append(data, 'x')
		}
		if err := fsys.WriteFile(p, data); err != nil {
			t.Fatal(err)
		}
		rd := must(st.Open(2, 1))
		got, err := io.ReadAll(rd)
		rd.Close()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("data changed by %d bytes: read %d bytes, %v; want ErrCorrupt", delta, len(got), err)
		}
		if len(got) > 2000 {
			t.Fatalf("data lengthened: the reader returned %d bytes, more than the manifest's 2000", len(got))
		}
		fsys.SyncAll()
		st = openStore(t, fsys, 3)
		wantList(t, st, ID{1, 1})
		if d := st.Damaged(); len(d) != 1 || d[0].ID != (ID{2, 1}) || !errors.Is(d[0].Err, ErrCorrupt) {
			t.Fatalf("Damaged = %v", d)
		}
	}
}

// TestCorruptManifest flips each byte of the newest snapshot's MANIFEST
// in turn: the snapshot is damaged, the previous one is the newest, and
// the damaged one is kept (no newer valid snapshot) until a newer one is
// committed.
func TestCorruptManifest(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 6))
	a, b := makeContent(1, 1, r), makeContent(2, 1, r)
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 3)
	mustWrite(t, st, a)
	mustWrite(t, st, b)
	mp := snapPath(ID{2, 1}, manifestName)
	good, _ := fsys.ReadFile(mp)
	for off := range good {
		flip(t, fsys, mp, off)
		fsys.SyncAll()
		var logs bytes.Buffer
		st, err := Open(fsys, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("byte %d flipped: Open: %v", off, err)
		}
		wantList(t, st, ID{1, 1})
		if d := st.Damaged(); len(d) != 1 || d[0].ID != (ID{2, 1}) || !errors.Is(d[0].Err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: Damaged = %v", off, d)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "falling back") {
			t.Fatalf("byte %d flipped: log: %s", off, logs.String())
		}
		if n := must(st.OpenNewest()); n.Meta().LastIndex != 1 {
			t.Fatalf("OpenNewest: %v", n.Meta())
		}
		if _, err := fsys.Stat(mp); err != nil {
			t.Fatalf("the damaged snapshot was removed: %v", err)
		}
		flip(t, fsys, mp, off)
	}
	// Damaged again, then superseded: the next commit removes it.
	flip(t, fsys, mp, 3)
	st = openStore(t, fsys, 3)
	mustWrite(t, st, makeContent(3, 1, r))
	wantList(t, st, ID{3, 1}, ID{1, 1})
	if len(st.Damaged()) != 0 {
		t.Fatalf("Damaged = %v", st.Damaged())
	}
	if got, want := entries(t, fsys), dirNames(ID{3, 1}, ID{1, 1}); !slices.Equal(got, want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}
}

// TestDamagedNoValid damages the only snapshot (its MANIFEST missing, or
// corrupt): nothing is deleted, List is empty and OpenNewest says why. A
// damaged snapshot older than a valid one is removed by Open.
func TestDamagedNoValid(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 7))
	for _, how := range []string{"missing", "corrupt", "file-missing"} {
		fsys := vfs.NewMem()
		st := openStore(t, fsys, 3)
		mustWrite(t, st, makeContent(5, 2, r))
		switch how {
		case "missing":
			must(0, fsys.Remove(snapPath(ID{5, 2}, manifestName)))
		case "corrupt":
			flip(t, fsys, snapPath(ID{5, 2}, manifestName), 20)
		case "file-missing":
			must(0, fsys.Remove(snapPath(ID{5, 2}, "sst-1")))
		}
		fsys.SyncAll()
		before := fsys.Paths()
		var logs bytes.Buffer
		st, err := Open(fsys, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("%s: Open: %v", how, err)
		}
		wantList(t, st)
		if st.Newest() != nil {
			t.Fatalf("%s: Newest = %v", how, st.Newest())
		}
		if !slices.Equal(fsys.Paths(), before) {
			t.Fatalf("%s: files removed: %v, were %v", how, fsys.Paths(), before)
		}
		_, err = st.OpenNewest()
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), ID{5, 2}.dirName()) {
			t.Fatalf("%s: OpenNewest: %v", how, err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "no valid snapshot") {
			t.Fatalf("%s: log: %s", how, logs.String())
		}
		if err := st.Prune(); err != nil || !slices.Equal(fsys.Paths(), before) {
			t.Fatalf("%s: Prune: %v, files %v", how, err, fsys.Paths())
		}
		// A newer valid snapshot: the damaged one goes at the next Open.
		st2 := openStore(t, fsys, 3)
		must(0, fsys.Remove(snapPath(ID{5, 2}, "OPTIONS.x"))) // damaged still
		mustWrite(t, st2, makeContent(6, 2, r))
		fsys.SyncAll()
		st = openStore(t, fsys, 3)
		wantList(t, st, ID{6, 2})
		if got, want := entries(t, fsys), dirNames(ID{6, 2}); !slices.Equal(got, want) {
			t.Fatalf("%s: directory holds %v, want %v", how, got, want)
		}
	}
}

// TestExists: a second snapshot of the same index and term is refused by
// Create, and by Commit when it appeared after Create; the first stays.
func TestExists(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 8))
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 3)
	a, a2 := makeContent(4, 1, r), makeContent(4, 1, r)
	late, err := st.Create(a2.meta())
	if err != nil {
		t.Fatal(err)
	}
	must(late.Write(a2.data()))
	mustWrite(t, st, a)
	if _, err := st.Create(a2.meta()); !errors.Is(err, ErrExists) {
		t.Fatalf("Create of an existing snapshot: %v", err)
	}
	if _, err := late.Commit(); !errors.Is(err, ErrExists) {
		t.Fatalf("Commit of an existing snapshot: %v", err)
	}
	check(t, st, a)
	if got, want := entries(t, fsys), dirNames(ID{4, 1}); !slices.Equal(got, want) {
		t.Fatalf("directory holds %v, want %v", got, want)
	}
	for _, bad := range []*raftpb.SnapshotMeta{nil, {LastIndex: 0, LastTerm: 1}, {LastIndex: 1, LastTerm: 0}} {
		if _, err := st.Create(bad); err == nil {
			t.Fatalf("Create(%v) succeeded", bad)
		}
	}
}

func TestBadNames(t *testing.T) {
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 3)
	w := must(st.Create(&raftpb.SnapshotMeta{LastIndex: 1, LastTerm: 1}))
	for _, name := range []string{"", ".", "..", "a/b", "/x", "../x", "a/../b", "x..", "data", "MANIFEST", "PROGRESS", "PROGRESS.tmp", "a\x00b"} {
		if _, err := w.AddFile(name); !errors.Is(err, ErrBadName) {
			t.Fatalf("AddFile(%q): %v, want ErrBadName", name, err)
		}
	}
	for _, name := range []string{"manifest", "data.1", ".hidden", "a.b"} {
		f, err := w.AddFile(name)
		if err != nil {
			t.Fatalf("AddFile(%q): %v", name, err)
		}
		f.Close()
	}
	if _, err := w.AddFile("a.b"); !errors.Is(err, ErrBadName) {
		t.Fatalf("AddFile of a name added before: %v", err)
	}
	must(w.Commit())
	rd := must(st.OpenNewest())
	defer rd.Close()
	for _, name := range []string{"../MANIFEST", "MANIFEST", "data"} {
		if _, err := rd.File(name); !errors.Is(err, ErrBadName) {
			t.Fatalf("File(%q): %v", name, err)
		}
	}
	if _, err := rd.File("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("File of a missing file: %v", err)
	}
	if f, err := rd.File(".hidden"); err != nil || len(must(io.ReadAll(f))) != 0 {
		t.Fatalf("File(.hidden): %v", err)
	}
}

// TestUseAfterFinish: every method of a committed or aborted Writer, a
// closed extra file and a closed Reader fails with ErrClosed; Abort
// removes the temporary directory.
func TestUseAfterFinish(t *testing.T) {
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 3)
	wantClosed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("%s: %v, want ErrClosed", what, err)
		}
	}
	for i, finish := range []string{"commit", "abort"} {
		w := must(st.Create(&raftpb.SnapshotMeta{LastIndex: uint64(i + 1), LastTerm: 1}))
		f := must(w.AddFile("f"))
		must(f.Write([]byte("x")))
		must(0, f.Close())
		_, err := f.Write([]byte("x"))
		wantClosed("extra file's Write after Close", err)
		wantClosed("extra file's Close twice", f.Close())
		open := must(w.AddFile("g"))
		if finish == "commit" {
			must(w.Commit())
		} else {
			must(0, w.Abort())
			if names := entries(t, fsys); slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, tmpPrefix) }) {
				t.Fatalf("Abort left %v", names)
			}
		}
		_, err = w.Write([]byte("x"))
		wantClosed(finish+", then Write", err)
		_, err = w.AddFile("h")
		wantClosed(finish+", then AddFile", err)
		_, err = w.Commit()
		wantClosed(finish+", then Commit", err)
		wantClosed(finish+", then Abort", w.Abort())
		_, err = open.Write([]byte("x"))
		wantClosed(finish+", then an extra file's Write", err)
	}
	wantList(t, st, ID{1, 1})
	rd := must(st.Open(1, 1))
	must(0, rd.Close())
	_, err := rd.Read(make([]byte, 1))
	wantClosed("Read after Close", err)
	_, err = rd.File("f")
	wantClosed("File after Close", err)
	wantClosed("Close twice", rd.Close())
	fr := must(must(st.Open(1, 1)).File("f"))
	must(0, fr.Close())
	_, err = fr.Read(make([]byte, 1))
	wantClosed("extra file's Read after Close", err)
}

// TestInjectedErrors fails each operation of writing a snapshot in turn
// with EIO (or ENOSPC): the error names the path and wraps the errno,
// nothing panics, no temporary directory is left, the store holds the new
// snapshot only if Commit succeeded, and it takes the next snapshot. Then
// the same for each operation of Open.
func TestInjectedErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 9))
	a, b, c := makeContent(1, 1, r), makeContent(2, 1, r), makeContent(3, 1, r)
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ENOSPC} {
		for k := 1; ; k++ {
			fsys := newStrictFS()
			st := openStore(t, fsys, 3)
			mustWrite(t, st, a)
			n := 0
			fsys.inject = func(op vfs.Op, name string) error {
				if n++; n == k {
					return vfs.ErrnoError(op, name, errno)
				}
				return nil
			}
			_, err := write(st, b)
			fsys.inject = nil
			if n < k { // every operation passed
				if err != nil {
					t.Fatal(err)
				}
				break
			}
			what := fmt.Sprintf("%v at operation %d", errno, k)
			if err != nil && (!errors.Is(err, errno) || !strings.Contains(err.Error(), dir)) {
				t.Fatalf("%s: error %v does not wrap the errno and name the path", what, err)
			}
			if names := entries(t, fsys); slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, tmpPrefix) }) {
				t.Fatalf("%s: %v left", what, names)
			}
			want := []ID{{1, 1}}
			if err == nil {
				want = []ID{{2, 1}, {1, 1}}
			}
			wantList(t, st, want...)
			mustWrite(t, st, c)
			fsys.crash(nil)
			st = openStore(t, fsys, 3)
			wantList(t, st, append([]ID{{3, 1}}, want...)...)
		}
	}
	// Open: a failed operation fails it, and changes nothing a retry needs.
	for k := 1; ; k++ {
		fsys := newStrictFS()
		st := openStore(t, fsys, 2)
		mustWrite(t, st, a)
		unpin := must(st.Pin(1, 1))
		mustWrite(t, st, b)
		mustWrite(t, st, c)
		unpin()                                      // a stays until the next pruning
		must(st.Create(makeContent(4, 1, r).meta())) // a tmp directory
		fsys.SyncAll()
		n := 0
		fsys.inject = func(op vfs.Op, name string) error {
			if n++; n == k {
				return vfs.ErrnoError(op, name, syscall.EIO)
			}
			return nil
		}
		st, err := Open(fsys, dir, Options{Keep: 2})
		fsys.inject = nil
		if n < k {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if err != nil && !errors.Is(err, syscall.EIO) {
			t.Fatalf("Open, EIO at operation %d: %v", k, err)
		}
		// A failed read is not damage: nothing valid was removed.
		st = openStore(t, fsys, 2)
		wantList(t, st, ID{3, 1}, ID{2, 1})
		check(t, st, b)
		check(t, st, c)
	}
}
