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

const metaDir, metaFile = "/node/meta", "/node/meta/meta"

var (
	hs1 = &raftpb.HardState{Term: 3, Vote: "n2", Commit: 10}
	hs2 = &raftpb.HardState{Term: 4, Vote: "n1", Commit: 12}
	hs3 = &raftpb.HardState{Term: 7}
)

func openMeta(t *testing.T, fsys vfs.FS, dir string) *FileMeta {
	t.Helper()
	m, err := OpenFileMeta(fsys, dir)
	if err != nil {
		t.Fatalf("OpenFileMeta: %v", err)
	}
	return m
}

func mustSave(t *testing.T, m MetaStorage, hs *raftpb.HardState) {
	t.Helper()
	if err := m.Save(hs); err != nil {
		t.Fatalf("Save(%v): %v", hs, err)
	}
}

func wantLoad(t *testing.T, m MetaStorage, want *raftpb.HardState) {
	t.Helper()
	got, err := m.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("Load = %v, want %v", got, want)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		fs   func(t *testing.T) (vfs.FS, string)
	}{
		{"memfs", func(*testing.T) (vfs.FS, string) { return vfs.NewMem(), metaDir }},
		{"os", func(t *testing.T) (vfs.FS, string) { return vfs.OS, t.TempDir() + "/meta" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys, dir := c.fs(t)
			m := openMeta(t, fsys, dir)
			wantLoad(t, m, &raftpb.HardState{})
			mustSave(t, m, hs1)
			wantLoad(t, m, hs1)
			wantLoad(t, openMeta(t, fsys, dir), hs1)
			mustSave(t, m, hs2)
			wantLoad(t, m, hs2)
			mustSave(t, m, &raftpb.HardState{})
			wantLoad(t, openMeta(t, fsys, dir), &raftpb.HardState{})
			mustSave(t, m, hs3)
			if err := m.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			wantLoad(t, openMeta(t, fsys, dir), hs3)
		})
	}
	t.Run("memory", func(t *testing.T) {
		m := NewMemoryMeta()
		wantLoad(t, m, &raftpb.HardState{})
		mustSave(t, m, hs1)
		got, _ := m.Load()
		got.Term = 99 // Load hands out a copy
		wantLoad(t, m, hs1)
	})
}

// crashAt makes the injector crash fsys just before the n-th operation
// (counting from 1) on the meta directory, which then fails.
func crashAt(fsys *vfs.MemFS, n int, torn *rand.Rand) *int {
	count := new(int)
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if !strings.HasPrefix(name, metaDir) {
			return nil
		}
		*count++
		if *count != n {
			return nil
		}
		if torn != nil {
			fsys.CrashTorn(torn)
		} else {
			fsys.Crash()
		}
		return vfs.ErrnoError(op, name, syscall.EIO)
	})
	return count
}

func TestMetaCrashBeforeSyncDir(t *testing.T) {
	crashOnSyncDir := func(fsys *vfs.MemFS) {
		fsys.SetInjector(func(op vfs.Op, name string) error {
			if op == vfs.OpSyncDir {
				fsys.Crash()
				return vfs.ErrnoError(op, name, syscall.EIO)
			}
			return nil
		})
	}
	t.Run("first-save", func(t *testing.T) {
		fsys := vfs.NewMem()
		m := openMeta(t, fsys, metaDir)
		crashOnSyncDir(fsys)
		if err := m.Save(hs1); err == nil {
			t.Fatal("Save succeeded though its SyncDir failed")
		}
		fsys.SetInjector(nil)
		wantLoad(t, openMeta(t, fsys, metaDir), &raftpb.HardState{})
		mustSave(t, m, hs2)
		fsys.Crash()
		wantLoad(t, openMeta(t, fsys, metaDir), hs2)
	})
	t.Run("later-save", func(t *testing.T) {
		fsys := vfs.NewMem()
		m := openMeta(t, fsys, metaDir)
		mustSave(t, m, hs1)
		crashOnSyncDir(fsys)
		if err := m.Save(hs2); err == nil {
			t.Fatal("Save succeeded though its SyncDir failed")
		}
		fsys.SetInjector(nil)
		wantLoad(t, openMeta(t, fsys, metaDir), hs1)
	})
}

// TestMetaCrashAnywhere crashes (cleanly and torn) before each operation of
// a Save, and after it: Load must return the old or the new hard state,
// the new one once Save returned, and never fail.
func TestMetaCrashAnywhere(t *testing.T) {
	seed := testseed.For(t)
	// Count the operations of one Save.
	fsys := vfs.NewMem()
	m := openMeta(t, fsys, metaDir)
	mustSave(t, m, hs1)
	ops := crashAt(fsys, -1, nil)
	mustSave(t, m, hs2)
	if *ops < 4 {
		t.Fatalf("a Save made only %d operations", *ops)
	}
	for n := 1; n <= *ops+1; n++ {
		for variant := range 8 {
			var torn *rand.Rand
			if variant > 0 {
				torn = rand.New(rand.NewPCG(seed, uint64(n*8+variant)))
			}
			fsys := vfs.NewMem()
			m := openMeta(t, fsys, metaDir)
			mustSave(t, m, hs1)
			crashAt(fsys, n, torn)
			err := m.Save(hs2)
			if n > *ops {
				if err != nil {
					t.Fatalf("seed %d: Save with no crash: %v", seed, err)
				}
				if torn != nil {
					fsys.CrashTorn(torn)
				} else {
					fsys.Crash()
				}
			} else if err == nil {
				t.Fatalf("seed %d: Save succeeded though the disk crashed before operation %d", seed, n)
			}
			fsys.SetInjector(nil)
			got, lerr := openMeta(t, fsys, metaDir).Load()
			switch {
			case lerr != nil:
				t.Fatalf("seed %d: crash before op %d (torn %v): Load: %v", seed, n, torn != nil, lerr)
			case err == nil && !proto.Equal(got, hs2):
				t.Fatalf("seed %d: Save returned, then a crash: Load = %v, want %v", seed, got, hs2)
			case !proto.Equal(got, hs1) && !proto.Equal(got, hs2):
				t.Fatalf("seed %d: crash before op %d (torn %v): Load = %v, want %v or %v", seed, n, torn != nil, got, hs1, hs2)
			}
			// Saving works again after the crash.
			mustSave(t, m, hs3)
			fsys.Crash()
			wantLoad(t, openMeta(t, fsys, metaDir), hs3)
		}
	}
}

func TestMetaDamaged(t *testing.T) {
	fsys := vfs.NewMem()
	m := openMeta(t, fsys, metaDir)
	mustSave(t, m, hs1)
	good, err := fsys.ReadFile(metaFile)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	garbage := []byte{0xff, 0xff, 0xff}
	withCRC := make([]byte, metaHeader, metaHeader+len(garbage))
	binary.LittleEndian.PutUint32(withCRC[0:4], crc32.Checksum(garbage, castagnoli))
	binary.LittleEndian.PutUint32(withCRC[4:8], uint32(len(garbage)))
	withCRC = append(withCRC, garbage...)
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than its header"},
		{"short-header", good[:5], "shorter than its header"},
		{"truncated-body", good[:len(good)-2], "length"},
		{"extra-byte", append(append([]byte(nil), good...), 0), "length"},
		{"bad-crc-field", flip(1), "checksum"},
		{"bad-body", flip(len(good) - 1), "checksum"},
		{"bad-length", flip(4), "length"},
		{"not-a-hard-state", withCRC, "damaged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := fsys.WriteFile(metaFile, c.data); err != nil {
				t.Fatal(err)
			}
			hs, err := openMeta(t, fsys, metaDir).Load()
			if err == nil {
				t.Fatalf("Load of a damaged file = %v, no error", hs)
			}
			if !strings.Contains(err.Error(), metaFile) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load error %q does not mention %s and %q", err, metaFile, c.want)
			}
		})
	}
}

// TestMetaInjectedErrors fails each step of a Save with EIO: Save reports
// it, and the old hard state survives (a crash then keeps it too).
func TestMetaInjectedErrors(t *testing.T) {
	for _, c := range []struct {
		op   vfs.Op
		name string
		// visibleBeforeCrash: the new state is already in place in the
		// current namespace when the step fails.
		visibleBeforeCrash bool
	}{
		{vfs.OpCreate, metaFile + ".tmp", false},
		{vfs.OpWrite, metaFile + ".tmp", false},
		{vfs.OpSync, metaFile + ".tmp", false},
		{vfs.OpRename, metaFile + ".tmp", false},
		{vfs.OpSyncDir, metaDir, true},
	} {
		t.Run(c.op.String(), func(t *testing.T) {
			fsys := vfs.NewMem()
			m := openMeta(t, fsys, metaDir)
			mustSave(t, m, hs1)
			fsys.SetInjector(func(op vfs.Op, name string) error {
				if op == c.op && name == c.name {
					return vfs.ErrnoError(op, name, syscall.EIO)
				}
				return nil
			})
			err := m.Save(hs2)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("Save with EIO on %s: err %v, want EIO", c.op, err)
			}
			if !c.visibleBeforeCrash {
				wantLoad(t, m, hs1)
			}
			fsys.SetInjector(nil)
			fsys.Crash()
			wantLoad(t, openMeta(t, fsys, metaDir), hs1)
			mustSave(t, m, hs3)
			wantLoad(t, m, hs3)
		})
	}
}
