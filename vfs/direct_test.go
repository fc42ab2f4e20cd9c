package vfs

import (
	"bytes"
	"errors"
	"os"
	"path"
	"syscall"
	"testing"
)

// testDirect checks a DirectFS on dir: aligned writes land and are read
// back through a buffered handle, unaligned ones fail with EINVAL.
func testDirect(t *testing.T, fsys FS, dir string) {
	name := path.Join(dir, "f")
	f, err := fsys.Create(name)
	check(t, err)
	defer f.Close()
	check(t, f.Truncate(4*DirectAlign))
	d, err := fsys.(DirectFS).OpenDirect(name)
	if errors.Is(err, ErrDirectUnsupported) {
		t.Skipf("no direct writes here: %v", err)
	}
	check(t, err)
	defer d.Close()
	if d.Name() != name {
		t.Errorf("Name() = %q, want %q", d.Name(), name)
	}
	buf := AlignedBuffer(2 * DirectAlign)
	if !IsAligned(buf) || len(buf) != 2*DirectAlign {
		t.Fatalf("AlignedBuffer(%d): len %d, aligned %v", 2*DirectAlign, len(buf), IsAligned(buf))
	}
	for i := range buf {
		buf[i] = byte(i%251 + 1)
	}
	if n, err := d.WriteAt(buf, DirectAlign); err != nil || n != len(buf) {
		t.Fatalf("aligned direct write: %d, %v", n, err)
	}
	got := make([]byte, len(buf))
	if _, err := f.ReadAt(got, DirectAlign); err != nil || !bytes.Equal(got, buf) {
		t.Fatalf("buffered read after a direct write: %v, equal %v", err, bytes.Equal(got, buf))
	}
	for what, w := range map[string]func() error{
		"offset": func() error { _, err := d.WriteAt(buf[:DirectAlign], 100); return err },
		"length": func() error { _, err := d.WriteAt(buf[:100], 0); return err },
		"memory": func() error { _, err := d.WriteAt(buf[1:DirectAlign+1], 0); return err },
	} {
		if err := w(); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("direct write with unaligned %s: err %v, want EINVAL", what, err)
		}
	}
	if _, err := f.ReadAt(got[:DirectAlign], 0); err != nil || !bytes.Equal(got[:DirectAlign], make([]byte, DirectAlign)) {
		t.Errorf("a refused write changed the file (err %v)", err)
	}
}

func TestOSDirect(t *testing.T) { testDirect(t, OS, t.TempDir()) }

func TestMemDirect(t *testing.T) {
	m := newMemT(t)
	testDirect(t, m, "/d")
}

// TestMemDirectIsDurable: a direct write survives a crash, without Sync,
// and is reported to the injector and the observer as a write and a sync.
func TestMemDirectIsDurable(t *testing.T) {
	m := newMemT(t)
	f, err := m.Create("/d/f")
	check(t, err)
	check(t, f.Sync())
	check(t, m.SyncDir("/d"))
	d, err := m.OpenDirect("/d/f")
	check(t, err)
	var ops []Op
	m.SetObserver(func(op Op, name string, n int) { ops = append(ops, op) })
	buf := AlignedBuffer(DirectAlign)
	copy(buf, "durable")
	_, err = d.WriteAt(buf, 0)
	check(t, err)
	m.SetObserver(nil)
	if len(ops) != 2 || ops[0] != OpWrite || ops[1] != OpSync {
		t.Errorf("observed %v, want [write sync]", ops)
	}
	m.Crash()
	if got := readMem(t, m, "/d/f"); len(got) != DirectAlign || got[:7] != "durable" {
		t.Fatalf("after a crash: %q (%d bytes)", got[:min(len(got), 7)], len(got))
	}
	// A failed sync fails the write.
	d, err = m.OpenDirect("/d/f")
	check(t, err)
	m.SetInjector(func(op Op, name string) error {
		if op == OpSync {
			return ErrnoError(op, name, syscall.EIO)
		}
		return nil
	})
	if _, err := d.WriteAt(buf, 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("direct write with a failing sync: err %v, want EIO", err)
	}
	m.SetInjector(nil)
	if _, err := m.OpenDirect("/d/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenDirect of a missing file: err %v, want ErrNotExist", err)
	}
}

// TestOSDirectUnsupported: on tmpfs, which has no O_DIRECT, OpenDirect
// says so with ErrDirectUnsupported.
func TestOSDirectUnsupported(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "vfs-direct-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	name := path.Join(dir, "f")
	check(t, os.WriteFile(name, nil, 0o644))
	d, err := OS.(DirectFS).OpenDirect(name)
	if err == nil {
		d.Close()
		t.Skip("this /dev/shm takes O_DIRECT")
	}
	if !errors.Is(err, ErrDirectUnsupported) {
		t.Fatalf("OpenDirect on tmpfs: err %v, want ErrDirectUnsupported", err)
	}
}
