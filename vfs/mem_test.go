package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"syscall"
	"testing"
)

func newMemT(t *testing.T) *MemFS {
	t.Helper()
	m := NewMem()
	check(t, m.MkdirAll("/d", 0o755))
	return m
}

func readMem(t *testing.T, m *MemFS, name string) string {
	t.Helper()
	b, err := m.ReadFile(name)
	check(t, err)
	return string(b)
}

func missing(t *testing.T, m *MemFS, name string) {
	t.Helper()
	if _, err := m.Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: Stat = %v, want not exist", name, err)
	}
}

func TestCrashKeepsSyncedLosesUnsynced(t *testing.T) {
	m := newMemT(t)
	f := must[File](t)(m.Create("/d/f"))
	check(t, m.SyncDir("/d"))
	must[int](t)(f.Write([]byte("synced")))
	check(t, f.Sync())
	must[int](t)(f.Write([]byte("-lost")))
	check(t, f.Truncate(3))
	m.Crash()
	if got := readMem(t, m, "/d/f"); got != "synced" {
		t.Fatalf("after crash %q", got)
	}
}

func TestCrashNameNeedsSyncDir(t *testing.T) {
	m := newMemT(t)
	f := must[File](t)(m.Create("/d/f"))
	must[int](t)(f.Write([]byte("data")))
	check(t, f.Sync()) // content durable, name not
	m.Crash()
	missing(t, m, "/d/f")
	if p := m.Paths(); len(p) != 0 {
		t.Fatalf("Paths = %q", p)
	}

	// Name durable, content not: an empty file survives.
	f = must[File](t)(m.Create("/d/g"))
	must[int](t)(f.Write([]byte("data")))
	check(t, m.SyncDir("/d"))
	m.Crash()
	if got := readMem(t, m, "/d/g"); got != "" {
		t.Fatalf("after crash %q", got)
	}
	// Directories are durable at once.
	check(t, m.MkdirAll("/d/sub/deeper", 0o755))
	m.Crash()
	if names := must[[]string](t)(m.List("/d/sub")); !slices.Equal(names, []string{"deeper"}) {
		t.Fatalf("List = %q", names)
	}
}

func TestCrashRenameNeedsSyncDir(t *testing.T) {
	m := newMemT(t)
	check(t, m.WriteFile("/d/a", []byte("A")))
	check(t, m.WriteFile("/d/b", []byte("B")))
	m.SyncAll()

	check(t, m.Rename("/d/a", "/d/b"))
	m.Crash()
	if a, b := readMem(t, m, "/d/a"), readMem(t, m, "/d/b"); a != "A" || b != "B" {
		t.Fatalf("after crash a=%q b=%q", a, b)
	}

	check(t, m.Rename("/d/a", "/d/b"))
	check(t, m.SyncDir("/d"))
	m.Crash()
	missing(t, m, "/d/a")
	if b := readMem(t, m, "/d/b"); b != "A" {
		t.Fatalf("after crash b=%q", b)
	}

	// Removal, likewise.
	check(t, m.Remove("/d/b"))
	m.Crash()
	if b := readMem(t, m, "/d/b"); b != "A" {
		t.Fatalf("after crash b=%q", b)
	}
	check(t, m.Remove("/d/b"))
	check(t, m.SyncDir("/d"))
	m.Crash()
	missing(t, m, "/d/b")
}

func TestCrashKillsHandlesAndLocks(t *testing.T) {
	m := newMemT(t)
	f := must[File](t)(m.Create("/d/f"))
	ro := must[File](t)(m.Open("/d/f"))
	l := must[io.Closer](t)(m.Lock("/d/LOCK"))
	m.SyncAll()
	m.Crash()

	buf := make([]byte, 1)
	dead := map[string]error{}
	_, dead["Read"] = f.Read(buf)
	_, dead["ReadAt"] = ro.ReadAt(buf, 0)
	_, dead["Write"] = f.Write(buf)
	_, dead["WriteAt"] = f.WriteAt(buf, 0)
	_, dead["Seek"] = f.Seek(0, io.SeekStart)
	_, dead["Stat"] = f.Stat()
	dead["Sync"] = f.Sync()
	dead["Truncate"] = f.Truncate(0)
	dead["Preallocate"] = f.Preallocate(0, 10)
	dead["Close"] = f.Close()
	dead["unlock"] = l.Close()
	for _, k := range slices.Sorted(maps.Keys(dead)) {
		if !errors.Is(dead[k], ErrCrashed) {
			t.Errorf("%s after crash: %v", k, dead[k])
		}
	}
	if f.Name() != "/d/f" {
		t.Errorf("Name = %q", f.Name())
	}
	// The lock was released by the crash; the stale Close did not steal
	// the new holder's lock.
	l2 := must[io.Closer](t)(m.Lock("/d/LOCK"))
	if _, err := m.Lock("/d/LOCK"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while held: %v", err)
	}
	check(t, l2.Close())
	// New handles work.
	f = must[File](t)(m.OpenReadWrite("/d/f"))
	must[int](t)(f.Write([]byte("x")))
	check(t, f.Close())
}

func TestInjector(t *testing.T) {
	m := newMemT(t)
	check(t, m.WriteFile("/d/f", []byte("abc")))
	m.SyncAll()
	f := must[File](t)(m.OpenReadWrite("/d/f"))
	var fail Op
	var errno syscall.Errno
	var seen []string
	m.SetInjector(func(op Op, name string) error {
		seen = append(seen, op.String()+" "+name)
		if op == fail {
			return ErrnoError(op, name, errno)
		}
		return nil
	})

	fail, errno = OpWrite, syscall.EIO
	if n, err := f.Write([]byte("XYZW")); n != 0 || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("XYZW"), 1); !errors.Is(err, syscall.EIO) {
		t.Fatalf("WriteAt = %v", err)
	}
	if got := readMem(t, m, "/d/f"); got != "abc" {
		t.Fatalf("content after failed write %q", got)
	}
	if off := must[int64](t)(f.Seek(0, io.SeekCurrent)); off != 0 {
		t.Fatalf("offset moved to %d by failed write", off)
	}

	fail, errno = OpWrite, syscall.ENOSPC
	_, err := f.Write([]byte("x"))
	var pe *fs.PathError
	if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &pe) || pe.Op != "write" || pe.Path != "/d/f" {
		t.Fatalf("ENOSPC write: %#v", err)
	}
	t.Logf("injected: %v", err)

	// A failed sync leaves the data not durable.
	fail = OpSync
	must[int](t)(f.Write([]byte("XY")))
	if err := f.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync = %v", err)
	}
	m.SetInjector(nil)
	m.Crash()
	if got := readMem(t, m, "/d/f"); got != "abc" {
		t.Fatalf("after failed sync and crash %q", got)
	}

	// Namespace operations fail without effect too.
	m.SetInjector(func(op Op, name string) error {
		return ErrnoError(op, name, syscall.EROFS)
	})
	if _, err := m.Create("/d/new"); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("Create = %v", err)
	}
	if err := m.Rename("/d/f", "/d/g"); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("Rename = %v", err)
	}
	if err := m.Remove("/d/f"); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("Remove = %v", err)
	}
	if err := m.MkdirAll("/d/x", 0o755); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("MkdirAll = %v", err)
	}
	m.SetInjector(nil)
	if p := m.Paths(); !slices.Equal(p, []string{"/d/f"}) {
		t.Fatalf("Paths = %q", p)
	}
	if names := must[[]string](t)(m.List("/d")); !slices.Equal(names, []string{"f"}) {
		t.Fatalf("List = %q", names)
	}
	want := []string{"write /d/f", "write /d/f", "write /d/f", "write /d/f", "sync /d/f"}
	if !slices.Equal(seen, want) {
		t.Fatalf("injector saw %q, want %q", seen, want)
	}
}

func TestInjectorMayCrash(t *testing.T) {
	m := newMemT(t)
	f := must[File](t)(m.Create("/d/f"))
	m.SetInjector(func(op Op, name string) error {
		if op == OpSync {
			m.Crash() // power fails just as the sync is issued
		}
		return nil
	})
	must[int](t)(f.Write([]byte("x")))
	if err := f.Sync(); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Sync = %v", err)
	}
	missing(t, m, "/d/f")
}

func TestOpString(t *testing.T) {
	for op := OpCreate; op <= OpPreallocate; op++ {
		if s := op.String(); s == "" || s[0] == 'O' {
			t.Errorf("Op %d String = %q", int(op), s)
		}
	}
	if s := Op(0).String(); s != "Op(0)" {
		t.Errorf("Op(0) = %q", s)
	}
	err := ErrnoError(OpRead, "/x", syscall.ENOENT)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != "read /x: no such file or directory" {
		t.Errorf("ErrnoError = %v", err)
	}
}

func TestObserver(t *testing.T) {
	m := newMemT(t)
	type event struct {
		op   Op
		name string
		n    int
	}
	var events []event
	m.SetObserver(func(op Op, name string, n int) {
		events = append(events, event{op, name, n})
		m.Paths() // the mutex is not held: calling back must not deadlock
	})
	f := must[File](t)(m.Create("/d/f"))
	must[int](t)(f.Write([]byte("hello")))
	must[int](t)(f.WriteAt([]byte("HE"), 0))
	buf := make([]byte, 4)
	must[int](t)(f.ReadAt(buf, 0))
	if n, err := f.ReadAt(buf, 3); n != 2 || err != io.EOF {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	check(t, f.Sync())
	check(t, m.SyncDir("/d"))
	check(t, m.Rename("/d/f", "/d/g"))
	m.SetInjector(func(op Op, name string) error { return ErrnoError(op, name, syscall.EIO) })
	_, _ = f.Write([]byte("x")) // failed: not observed
	m.SetInjector(nil)
	check(t, f.Close()) // Close is not reported
	want := []event{
		{OpCreate, "/d/f", 0},
		{OpWrite, "/d/f", 5},
		{OpWrite, "/d/f", 2},
		{OpRead, "/d/f", 4},
		{OpRead, "/d/f", 2},
		{OpSync, "/d/f", 0},
		{OpSyncDir, "/d", 0},
		{OpRename, "/d/f", 0},
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n got %v\nwant %v", events, want)
	}
}

func TestMemConcurrent(t *testing.T) {
	m := newMemT(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("/d/f%d", i)
			f, err := m.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 100 {
				if _, err := f.Write([]byte{byte(j)}); err != nil {
					t.Error(err)
				}
				if j%10 == 0 {
					f.Sync()
					m.SyncDir("/d")
					m.List("/d")
				}
			}
			f.Close()
		})
	}
	wg.Wait()
	if p := m.Paths(); len(p) != 8 {
		t.Fatalf("Paths = %q", p)
	}
}

func TestMemErrors(t *testing.T) {
	m := newMemT(t)
	check(t, m.WriteFile("/d/f", []byte("x")))
	if _, err := m.Open("/d"); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("Open dir: %v", err)
	}
	if _, err := m.Create("/d/f/g"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Create under file: %v", err)
	}
	if _, err := m.Open(""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open empty: %v", err)
	}
	if err := m.Rename("/d/f", "/nodir/f"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Rename to missing dir: %v", err)
	}
	if err := m.Rename("/d", "/d/sub"); err == nil {
		t.Error("Rename of dir into itself succeeded")
	}
	if err := m.Remove("/"); err == nil {
		t.Error("Remove / succeeded")
	}
	f := must[File](t)(m.OpenReadWrite("/d/f"))
	if _, err := f.WriteAt([]byte("x"), memMaxFileSize); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("huge WriteAt: %v", err)
	}
	// Rename across directories: both must be synced.
	check(t, m.MkdirAll("/e", 0o755))
	m.SyncAll()
	check(t, m.Rename("/d/f", "/e/f"))
	check(t, m.SyncDir("/e"))
	check(t, m.SyncDir("/d"))
	m.Crash()
	missing(t, m, "/d/f")
	if got := readMem(t, m, "/e/f"); got != "x" {
		t.Errorf("content %q", got)
	}
}
