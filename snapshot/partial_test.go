package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// metaFor is the manifest a leader would send for c.
func metaFor(c content) *raftpb.SnapshotMeta {
	m := c.meta()
	d := c.data()
	m.DataSize, m.DataCrc32C = uint64(len(d)), crcOf(d)
	for _, f := range c.files {
		m.Files = append(m.Files, &raftpb.SnapshotFile{Name: f.name, Size: uint64(len(f.data)), Crc32C: crcOf(f.data)})
	}
	return m
}

// segmentBytes returns c's files in transfer order.
func segmentBytes(c content) [][]byte {
	out := [][]byte{c.data()}
	for _, f := range c.files {
		out = append(out, f.data)
	}
	return out
}

// writeRest writes c into p from its position on, in pieces of at most
// step bytes, checkpointing after every checkpointEvery pieces (0: never).
func writeRest(p *partial, c content, step, checkpointEvery int) error {
	segs := segmentBytes(c)
	for k := 1; !p.done(); k++ {
		seg, off := p.position()
		b := segs[seg][off:]
		if len(b) > step {
			b = b[:step]
		}
		if err := p.write(b); err != nil {
			return err
		}
		if checkpointEvery > 0 && k%checkpointEvery == 0 && !p.done() {
			if err := p.checkpoint(); err != nil {
				return err
			}
		}
	}
	return nil
}

// A download written whole, with checkpoints, commits into a snapshot
// that reads back byte for byte; the partial directory is gone.
func TestPartialRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 1))
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 2)
	c := makeContent(10, 2, r)
	c.files = append(c.files, namedBytes{"empty", nil})
	p, err := st.startPartial(metaFor(c))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRest(p, c, 777, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.commit(); err != nil {
		t.Fatal(err)
	}
	check(t, st, c)
	noPartials(t, st)
	if names := entries(t, fsys); !slices.Equal(names, dirNames(ID{10, 2})) {
		t.Fatalf("the directory holds %v", names)
	}
	if names, _ := fsys.List(path.Join(dir, ID{10, 2}.dirName())); slices.Contains(names, progressName) {
		t.Fatalf("the snapshot holds %v", names)
	}
}

// A byte flipped on the way fails the download with ErrCorrupt as soon as
// its file is complete, whichever file it is in.
func TestPartialChecksCRC(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 2))
	c := makeContent(10, 2, r)
	for seg, b := range segmentBytes(c) {
		if len(b) == 0 {
			continue
		}
		st := openStore(t, vfs.NewMem(), 2)
		p, err := st.startPartial(metaFor(c))
		if err != nil {
			t.Fatal(err)
		}
		bad := c
		bad.chunks = [][]byte{c.data()}
		bad.files = slices.Clone(c.files)
		if seg == 0 {
			bad.chunks = [][]byte{bytes.Clone(c.data())}
			bad.chunks[0][len(b)/2] ^= 1
		} else {
			bad.files[seg-1].data = bytes.Clone(b)
			bad.files[seg-1].data[len(b)/2] ^= 1
		}
		if err := writeRest(p, bad, 100, 0); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("segment %d flipped: %v, want ErrCorrupt", seg, err)
		}
	}
}

// Open keeps the newest partial download when no valid snapshot is as
// new, and removes the others.
func TestOpenPartials(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 3))
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 2)
	mustWrite(t, st, makeContent(20, 2, r))
	for _, id := range []ID{{10, 2}, {20, 2}, {30, 2}, {40, 3}} {
		if err := fsys.MkdirAll(path.Join(dir, id.partName()), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fsys.MkdirAll(path.Join(dir, "part-nonsense"), 0o755)
	var logs bytes.Buffer
	st, err := Open(fsys, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := st.partials(); !slices.Equal(ids, []ID{{40, 3}}) {
		t.Fatalf("partials %v after Open, want only the newest", ids)
	}
	if !slices.Contains(entries(t, fsys), "part-nonsense") || !strings.Contains(logs.String(), "kept a partial download") {
		t.Fatalf("entries %v; log %s", entries(t, fsys), logs.String())
	}
	// A valid snapshot as new as the partial supersedes it.
	mustWrite(t, st, makeContent(40, 3, r))
	st = openStore(t, fsys, 2)
	noPartials(t, st)
}

// A download resumes from what PROGRESS records, and only from that: a
// damaged PROGRESS resumes from the start, another manifest or a file
// shorter than recorded starts afresh. Every path ends in a whole
// snapshot.
func TestPartialResume(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 4))
	c := makeContent(10, 2, r)
	// Long enough for the cuts below, whatever the seed.
	c.chunks = append(c.chunks, bytes.Repeat([]byte{7}, 100))
	c.files[0].data = append(c.files[0].data, bytes.Repeat([]byte{9}, 100)...)
	meta := metaFor(c)
	total := uint64(0)
	for _, b := range segmentBytes(c) {
		total += uint64(len(b))
	}
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, fsys *vfs.MemFS)
		resumed func(cp uint64) uint64 // bytes expected resumed, given the checkpoint's
		meta    *raftpb.SnapshotMeta
	}{
		{"intact", func(*testing.T, *vfs.MemFS) {}, func(cp uint64) uint64 { return cp }, meta},
		{"no PROGRESS", func(t *testing.T, fsys *vfs.MemFS) {
			fsys.Remove(path.Join(dir, ID{10, 2}.partName(), progressName))
		}, func(uint64) uint64 { return 0 }, meta},
		{"damaged PROGRESS", func(t *testing.T, fsys *vfs.MemFS) {
			flip(t, fsys, path.Join(dir, ID{10, 2}.partName(), progressName), 20)
		}, func(uint64) uint64 { return 0 }, meta},
		{"file cut short", func(t *testing.T, fsys *vfs.MemFS) {
			p := path.Join(dir, ID{10, 2}.partName(), dataName)
			b, _ := fsys.ReadFile(p)
			fsys.WriteFile(p, b[:10])
		}, func(uint64) uint64 { return 0 }, meta},
		{"complete file damaged", func(t *testing.T, fsys *vfs.MemFS) {
			flip(t, fsys, path.Join(dir, ID{10, 2}.partName(), dataName), 3)
		}, func(uint64) uint64 { return 0 }, meta},
		{"another manifest", func(*testing.T, *vfs.MemFS) {}, func(uint64) uint64 { return 0 },
			// Differs in the file being written, which resuming cannot check.
			func() *raftpb.SnapshotMeta { m := metaFor(c); m.Files[0].Crc32C++; return m }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := vfs.NewMem()
			st := openStore(t, fsys, 2)
			p, err := st.startPartial(meta)
			if err != nil {
				t.Fatal(err)
			}
			// The data, then part of the first file; a checkpoint; more
			// without one.
			d := c.data()
			must(0, p.write(d))
			must(0, p.write(c.files[0].data[:10]))
			must(0, p.checkpoint())
			cp := p.written()
			must(0, p.write(c.files[0].data[10:20]))
			p.close()
			fsys.Crash()
			tc.damage(t, fsys)

			st = openStore(t, fsys, 2)
			p, err = st.startPartial(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.resumed(cp); p.resumed != want || p.written() != want {
				t.Fatalf("resumed at %d (written %d), want %d (checkpoint at %d of %d)", p.resumed, p.written(), want, cp, total)
			}
			if tc.meta != meta {
				return // its bytes are not c's
			}
			must(0, writeRest(p, c, 50, 3))
			must(p.commit())
			check(t, st, c)
			noPartials(t, st)
		})
	}
}

// A crash at every file-system operation of a download and its commit
// (plain and torn), then a resume: the older snapshot is always intact,
// nothing is damaged, at most one partial download is left, and resuming
// it ends in the whole snapshot.
func TestPartialCrashAtEveryOp(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 5))
	a, b := makeContent(10, 1, r), makeContent(20, 2, r)
	meta := metaFor(b)

	run := func(fsys *strictFS, k int, torn *rand.Rand) (ops int, committed bool) {
		crashed := false
		inject := func(op vfs.Op, name string) error {
			if crashed {
				return vfs.ErrnoError(op, name, syscall.EIO)
			}
			if ops++; ops == k {
				crashed = true
				fsys.crash(torn)
				return vfs.ErrnoError(op, name, syscall.EIO)
			}
			return nil
		}
		fsys.inject = nil
		st := openStore(t, fsys, 2)
		fsys.inject = inject
		err := func() error {
			p, err := st.startPartial(meta)
			if err != nil {
				return err
			}
			if err := writeRest(p, b, 300, 2); err != nil {
				return err
			}
			_, err = p.commit()
			return err
		}()
		if !crashed {
			fsys.crash(torn)
		}
		fsys.inject = nil
		return ops, err == nil
	}
	total, _ := run(setupCrash(t, a), 0, nil)
	t.Logf("a download makes %d operations", total)
	var installed, resumedFromZero, resumedPart int
	defer func() {
		t.Logf("after the crash: installed %d times, resumed from the start %d, from a checkpoint %d", installed, resumedFromZero, resumedPart)
		if installed == 0 || resumedFromZero == 0 || resumedPart == 0 {
			t.Error("some outcome never happened")
		}
	}()
	for k := 1; k <= total+1; k++ {
		for v := range 3 {
			var torn *rand.Rand
			if v > 0 {
				torn = rand.New(rand.NewPCG(seed, uint64(k*4+v)))
			}
			fsys := setupCrash(t, a)
			_, committed := run(fsys, k, torn)
			what := fmt.Sprintf("seed %d, crash at operation %d of %d (variant %d)", seed, k, total, v)
			st, err := Open(fsys, dir, Options{Keep: 2})
			if err != nil {
				t.Fatalf("%s: Open: %v", what, err)
			}
			if d := st.Damaged(); len(d) > 0 {
				t.Fatalf("%s: damaged snapshots: %v", what, d)
			}
			check(t, st, a)
			got := ids(st.List())
			parts, _ := st.partials()
			switch {
			case slices.Equal(got, []ID{{20, 2}, {10, 1}}):
				check(t, st, b)
				if len(parts) != 0 {
					t.Fatalf("%s: partials %v beside the snapshot", what, parts)
				}
				installed++
				continue
			case committed:
				t.Fatalf("%s: commit returned, then the crash: List = %v", what, got)
			case !slices.Equal(got, []ID{{10, 1}}) || len(parts) > 1:
				t.Fatalf("%s: List = %v, partials %v", what, got, parts)
			}
			p, err := st.startPartial(meta)
			if err != nil {
				t.Fatalf("%s: resume: %v", what, err)
			}
			if p.resumed == 0 {
				resumedFromZero++
			} else {
				resumedPart++
			}
			if err := writeRest(p, b, 300, 2); err != nil {
				t.Fatalf("%s: resume: %v", what, err)
			}
			if _, err := p.commit(); err != nil {
				t.Fatalf("%s: commit after resuming: %v", what, err)
			}
			check(t, st, b)
			noPartials(t, st)
		}
	}
}

// A Source reads any piece of any file of a pinned snapshot, never past
// the size the manifest records; a file shorter than that is ErrCorrupt.
func TestSource(t *testing.T) {
	r := rand.New(rand.NewPCG(testseed.For(t), 6))
	fsys := vfs.NewMem()
	st := openStore(t, fsys, 1)
	c := makeContent(10, 2, r)
	c.chunks = append(c.chunks, bytes.Repeat([]byte{7}, 200)) // long enough, whatever the seed
	mustWrite(t, st, c)
	src, err := st.OpenNewestSource()
	if err != nil {
		t.Fatal(err)
	}
	d := c.data()
	buf := make([]byte, 100)
	if n, err := src.ReadAt("", buf, 5); n != 100 || err != nil || !bytes.Equal(buf, d[5:105]) {
		t.Fatalf("ReadAt(data, 5) = %d, %v", n, err)
	}
	if n, err := src.ReadAt("", buf, uint64(len(d))-10); n != 10 || err != io.EOF || !bytes.Equal(buf[:10], d[len(d)-10:]) {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if _, err := src.ReadAt("", buf, uint64(len(d))+1); err == nil {
		t.Fatal("a read past the end succeeded")
	}
	f := c.files[1]
	if n, err := src.ReadAt(f.name, buf, 0); n != min(100, len(f.data)) || !bytes.Equal(buf[:n], f.data[:n]) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(%s) = %d, %v", f.name, n, err)
	}
	for _, name := range []string{"data", "MANIFEST", "../x", "nope"} {
		if _, err := src.ReadAt(name, buf, 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ReadAt(%q): %v, want ErrNotFound", name, err)
		}
	}
	// Pinned: a newer snapshot does not prune it while the source is open.
	mustWrite(t, st, makeContent(20, 2, r))
	wantList(t, st, ID{20, 2}, ID{10, 2})
	// Cut short behind the store's back: ErrCorrupt.
	p := snapPath(ID{10, 2}, dataName)
	fsys.WriteFile(p, d[:50])
	if _, err := src.ReadAt("", buf, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a short file read: %v, want ErrCorrupt", err)
	}
	src.Close()
	src.Close()
	if _, err := src.ReadAt("", buf, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("a read after Close: %v", err)
	}
	must(0, st.Prune())
	wantList(t, st, ID{20, 2})
}

// FuzzDecodeProgress: no input makes decodeProgress panic, and what it
// accepts encodes back to the same bytes.
func FuzzDecodeProgress(f *testing.F) {
	f.Add(encodeProgress(ID{5, 2}, 1, 1234))
	f.Add([]byte(progressMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, seg, off, err := decodeProgress(b)
		if err != nil {
			return
		}
		if got := encodeProgress(id, int(seg), off); !bytes.Equal(got, b) {
			t.Fatalf("decoded %v %d %d from %x, encodes to %x", id, seg, off, b, got)
		}
	})
}
