package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"testing"
)

// The same suite runs against the OS (in a temporary directory) and MemFS.

func TestOSBehaviour(t *testing.T) {
	testBehaviour(t, func(t *testing.T) (FS, string) { return OS, t.TempDir() })
}

func TestMemBehaviour(t *testing.T) {
	testBehaviour(t, func(t *testing.T) (FS, string) {
		m := NewMem()
		if err := m.MkdirAll("/data/x", 0o755); err != nil {
			t.Fatal(err)
		}
		return m, "/data/x"
	})
}

func TestMemRelativePaths(t *testing.T) {
	testBehaviour(t, func(t *testing.T) (FS, string) {
		m := NewMem()
		if err := m.MkdirAll("rel", 0o755); err != nil {
			t.Fatal(err)
		}
		return m, "rel"
	})
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, fsys FS, name, content string) {
	t.Helper()
	f := must[File](t)(fsys.Create(name))
	_, err := f.Write([]byte(content))
	check(t, err)
	check(t, f.Close())
}

func content(t *testing.T, fsys FS, name string) string {
	t.Helper()
	f := must[File](t)(fsys.Open(name))
	defer f.Close()
	b, err := io.ReadAll(f)
	check(t, err)
	return string(b)
}

func testBehaviour(t *testing.T, setup func(t *testing.T) (FS, string)) {
	run := func(name string, fn func(t *testing.T, fsys FS, dir string)) {
		t.Run(name, func(t *testing.T) {
			fsys, dir := setup(t)
			fn(t, fsys, dir)
		})
	}

	run("CreateWriteSeekRead", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		f := must[File](t)(fsys.Create(name))
		defer f.Close()
		if f.Name() != name {
			t.Fatalf("Name = %q, want %q", f.Name(), name)
		}
		if n, err := f.Write([]byte("hello")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n, err := f.Write(nil); n != 0 || err != nil {
			t.Fatalf("empty Write = %d, %v", n, err)
		}
		if off := must[int64](t)(f.Seek(0, io.SeekStart)); off != 0 {
			t.Fatalf("Seek = %d", off)
		}
		buf := make([]byte, 3)
		if n, err := f.Read(buf); n != 3 || err != nil || string(buf) != "hel" {
			t.Fatalf("Read = %d, %v, %q", n, err, buf)
		}
		if n, err := f.Read(buf); n != 2 || err != nil || string(buf[:n]) != "lo" {
			t.Fatalf("Read = %d, %v, %q", n, err, buf[:n])
		}
		if n, err := f.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("Read at EOF = %d, %v", n, err)
		}
		if n, err := f.Read(nil); n != 0 || err != nil {
			t.Fatalf("empty Read = %d, %v", n, err)
		}
		fi := must[fs.FileInfo](t)(f.Stat())
		if fi.Size() != 5 || fi.Name() != "a" || fi.IsDir() {
			t.Fatalf("Stat = %v %v %v", fi.Name(), fi.Size(), fi.IsDir())
		}
		check(t, f.Sync())
	})

	run("WriteAtAndOffsets", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		f := must[File](t)(fsys.Create(name))
		defer f.Close()
		must[int](t)(f.Write([]byte("abc")))
		if n, err := f.WriteAt([]byte("XY"), 1); n != 2 || err != nil {
			t.Fatalf("WriteAt = %d, %v", n, err)
		}
		must[int](t)(f.Write([]byte("d"))) // WriteAt did not move the offset
		if got := content(t, fsys, name); got != "aXYd" {
			t.Fatalf("content %q", got)
		}
		must[int](t)(f.WriteAt([]byte("Z"), 6)) // beyond EOF: zero fill
		if got := content(t, fsys, name); got != "aXYd\x00\x00Z" {
			t.Fatalf("content %q", got)
		}
		if off := must[int64](t)(f.Seek(2, io.SeekEnd)); off != 9 {
			t.Fatalf("Seek end = %d", off)
		}
		must[int](t)(f.Write([]byte("!")))
		if got := content(t, fsys, name); got != "aXYd\x00\x00Z\x00\x00!" {
			t.Fatalf("content %q", got)
		}
		if off := must[int64](t)(f.Seek(-3, io.SeekCurrent)); off != 7 {
			t.Fatalf("Seek current = %d", off)
		}
		if _, err := f.Seek(-1, io.SeekStart); err == nil {
			t.Fatal("negative Seek succeeded")
		}
		if _, err := f.WriteAt([]byte("x"), -1); err == nil {
			t.Fatal("negative WriteAt succeeded")
		}
		if n, err := f.WriteAt(nil, 100); n != 0 || err != nil {
			t.Fatalf("empty WriteAt = %d, %v", n, err)
		}
		if fi := must[fs.FileInfo](t)(fsys.Stat(name)); fi.Size() != 10 {
			t.Fatalf("size %d after empty WriteAt past EOF", fi.Size())
		}
	})

	run("ReadAt", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		create(t, fsys, name, "0123456789")
		f := must[File](t)(fsys.Open(name))
		defer f.Close()
		buf := make([]byte, 4)
		if n, err := f.ReadAt(buf, 6); n != 4 || err != nil || string(buf) != "6789" {
			t.Fatalf("ReadAt to EOF = %d, %v, %q", n, err, buf)
		}
		if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:n]) != "89" {
			t.Fatalf("ReadAt past EOF = %d, %v, %q", n, err, buf[:n])
		}
		if n, err := f.ReadAt(buf, 10); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt at EOF = %d, %v", n, err)
		}
		if n, err := f.ReadAt(buf, 100); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt far past EOF = %d, %v", n, err)
		}
		if _, err := f.ReadAt(buf, -1); err == nil {
			t.Fatal("negative ReadAt succeeded")
		}
		// ReadAt does not move the offset.
		if n, err := f.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
			t.Fatalf("Read = %d, %v, %q", n, err, buf)
		}
	})

	run("Truncate", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		f := must[File](t)(fsys.Create(name))
		defer f.Close()
		must[int](t)(f.Write([]byte("abcdef")))
		check(t, f.Truncate(2))
		if got := content(t, fsys, name); got != "ab" {
			t.Fatalf("content %q", got)
		}
		check(t, f.Truncate(4))
		if got := content(t, fsys, name); got != "ab\x00\x00" {
			t.Fatalf("content %q (stale bytes after re-extension?)", got)
		}
		// Truncate does not move the offset (still 6).
		must[int](t)(f.Write([]byte("g")))
		if got := content(t, fsys, name); got != "ab\x00\x00\x00\x00g" {
			t.Fatalf("content %q", got)
		}
		if err := f.Truncate(-1); err == nil {
			t.Fatal("negative Truncate succeeded")
		}
	})

	run("CreateTruncatesOpenReadWriteDoesNot", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		create(t, fsys, name, "hello")
		f := must[File](t)(fsys.OpenReadWrite(name))
		must[int](t)(f.Write([]byte("J")))
		check(t, f.Close())
		if got := content(t, fsys, name); got != "Jello" {
			t.Fatalf("content %q", got)
		}
		check(t, must[File](t)(fsys.Create(name)).Close())
		if got := content(t, fsys, name); got != "" {
			t.Fatalf("content after Create %q", got)
		}
		other := path.Join(dir, "b")
		check(t, must[File](t)(fsys.OpenReadWrite(other)).Close())
		if fi := must[fs.FileInfo](t)(fsys.Stat(other)); fi.Size() != 0 {
			t.Fatalf("OpenReadWrite created size %d", fi.Size())
		}
	})

	run("OpenReadOnly", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		if _, err := fsys.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open missing: %v", err)
		}
		if _, err := fsys.Create(path.Join(dir, "nodir", "a")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Create in missing dir: %v", err)
		}
		create(t, fsys, name, "data")
		f := must[File](t)(fsys.Open(name))
		defer f.Close()
		if _, err := f.Write([]byte("x")); err == nil {
			t.Fatal("Write on read-only file succeeded")
		}
		if _, err := f.WriteAt([]byte("x"), 0); err == nil {
			t.Fatal("WriteAt on read-only file succeeded")
		}
		if err := f.Truncate(0); err == nil {
			t.Fatal("Truncate on read-only file succeeded")
		}
		if got := content(t, fsys, name); got != "data" {
			t.Fatalf("content %q", got)
		}
	})

	run("RenameRemove", func(t *testing.T, fsys FS, dir string) {
		a, b := path.Join(dir, "a"), path.Join(dir, "b")
		create(t, fsys, a, "new")
		create(t, fsys, b, "old")
		check(t, fsys.Rename(a, b))
		if got := content(t, fsys, b); got != "new" {
			t.Fatalf("content %q", got)
		}
		if _, err := fsys.Stat(a); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat renamed: %v", err)
		}
		if err := fsys.Rename(a, b); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Rename missing: %v", err)
		}
		// An open file survives removal of its name.
		f := must[File](t)(fsys.Open(b))
		defer f.Close()
		check(t, fsys.Remove(b))
		if err := fsys.Remove(b); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Remove missing: %v", err)
		}
		buf := make([]byte, 3)
		if n, err := f.ReadAt(buf, 0); n != 3 || err != nil || string(buf) != "new" {
			t.Fatalf("ReadAt removed = %d, %v, %q", n, err, buf)
		}
		if names := must[[]string](t)(fsys.List(dir)); len(names) != 0 {
			t.Fatalf("List = %q", names)
		}
	})

	run("RenameDir", func(t *testing.T, fsys FS, dir string) {
		check(t, fsys.MkdirAll(path.Join(dir, "tmp", "sub"), 0o755))
		create(t, fsys, path.Join(dir, "tmp", "sub", "f"), "x")
		check(t, fsys.Rename(path.Join(dir, "tmp"), path.Join(dir, "final")))
		if got := content(t, fsys, path.Join(dir, "final", "sub", "f")); got != "x" {
			t.Fatalf("content %q", got)
		}
		if names := must[[]string](t)(fsys.List(dir)); !slices.Equal(names, []string{"final"}) {
			t.Fatalf("List = %q", names)
		}
	})

	run("ListStatMkdir", func(t *testing.T, fsys FS, dir string) {
		for _, n := range []string{"c", "a", "b"} {
			create(t, fsys, path.Join(dir, n), n)
		}
		check(t, fsys.MkdirAll(path.Join(dir, "d", "e"), 0o755))
		check(t, fsys.MkdirAll(path.Join(dir, "d"), 0o755)) // exists: fine
		if names := must[[]string](t)(fsys.List(dir)); !slices.Equal(names, []string{"a", "b", "c", "d"}) {
			t.Fatalf("List = %q", names)
		}
		if names := must[[]string](t)(fsys.List(path.Join(dir, "d"))); !slices.Equal(names, []string{"e"}) {
			t.Fatalf("List d = %q", names)
		}
		if _, err := fsys.List(path.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("List missing: %v", err)
		}
		fi := must[fs.FileInfo](t)(fsys.Stat(path.Join(dir, "d")))
		if !fi.IsDir() || fi.Name() != "d" {
			t.Fatalf("Stat dir: %v %v", fi.Name(), fi.IsDir())
		}
		fi = must[fs.FileInfo](t)(fsys.Stat(path.Join(dir, "b")))
		if fi.IsDir() || fi.Size() != 1 || !fi.Mode().IsRegular() {
			t.Fatalf("Stat file: %v %v", fi.Size(), fi.Mode())
		}
		if _, err := fsys.Stat(path.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat missing: %v", err)
		}
		if err := fsys.MkdirAll(path.Join(dir, "a", "x"), 0o755); err == nil {
			t.Fatal("MkdirAll through a file succeeded")
		}
		if _, err := fsys.Create(path.Join(dir, "d")); err == nil {
			t.Fatal("Create over a directory succeeded")
		}
		if err := fsys.Remove(path.Join(dir, "d")); err == nil {
			t.Fatal("Remove of non-empty directory succeeded")
		}
		check(t, fsys.Remove(path.Join(dir, "d", "e")))
		check(t, fsys.Remove(path.Join(dir, "d")))
		check(t, fsys.SyncDir(dir))
		if err := fsys.SyncDir(path.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("SyncDir missing: %v", err)
		}
	})

	run("Lock", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "LOCK")
		l := must[io.Closer](t)(fsys.Lock(name))
		if _, err := fsys.Stat(name); err != nil {
			t.Fatalf("lock file not created: %v", err)
		}
		_, err := fsys.Lock(name)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock: %v", err)
		}
		t.Logf("second Lock: %v", err)
		other := must[io.Closer](t)(fsys.Lock(path.Join(dir, "OTHER")))
		check(t, l.Close())
		l2 := must[io.Closer](t)(fsys.Lock(name))
		check(t, l2.Close())
		check(t, other.Close())
	})

	run("ClosedHandle", func(t *testing.T, fsys FS, dir string) {
		f := must[File](t)(fsys.Create(path.Join(dir, "a")))
		check(t, f.Close())
		if err := f.Close(); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if err := f.Sync(); !errors.Is(err, fs.ErrClosed) {
			t.Fatalf("Sync after Close: %v", err)
		}
	})

	run("Preallocate", func(t *testing.T, fsys FS, dir string) {
		name := path.Join(dir, "a")
		f := must[File](t)(fsys.Create(name))
		defer f.Close()
		must[int](t)(f.Write([]byte("abc")))
		check(t, f.Preallocate(0, 1<<20))
		check(t, f.Preallocate(0, 0))
		if fi := must[fs.FileInfo](t)(f.Stat()); fi.Size() != 3 {
			t.Fatalf("size %d after Preallocate", fi.Size())
		}
		if got := content(t, fsys, name); !bytes.Equal([]byte(got), []byte("abc")) {
			t.Fatalf("content %q", got)
		}
	})
}
