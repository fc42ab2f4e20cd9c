package vfs

import (
	"io"
	"os"
	"syscall"
)

// OS is the real operating-system file system.
var OS FS = osFS{}

type osFS struct{}

// osFile is a *os.File whose Sync is fdatasync and which can preallocate.
type osFile struct {
	*os.File
}

func wrapOSFile(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Create(name string) (File, error) {
	return wrapOSFile(os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644))
}

func (osFS) Open(name string) (File, error) {
	return wrapOSFile(os.Open(name))
}

func (osFS) OpenReadWrite(name string) (File, error) {
	return wrapOSFile(os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644))
}

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (osFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

func (osFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (osFS) SyncDir(dir string) error { return syncDir(dir) }

func (osFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

// Sync makes the file's data durable: fdatasync on Linux, fsync elsewhere.
func (f osFile) Sync() error { return datasync(f.File) }

// Preallocate reserves space with fallocate(FALLOC_FL_KEEP_SIZE) on Linux;
// it is a no-op elsewhere and where the file system does not support it.
func (f osFile) Preallocate(off, length int64) error {
	if length <= 0 {
		return nil
	}
	if off < 0 {
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: syscall.EINVAL}
	}
	return preallocate(f.File, off, length)
}

// rawControl runs fn on f's descriptor without switching it to blocking
// mode (as f.Fd would) and returns fn's error.
func rawControl(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		// Control fails only when the file is closed or closing.
		return os.ErrClosed
	}
	return ferr
}

// OpenDirect implements DirectFS: on Linux it opens name with
// O_WRONLY|O_DIRECT|O_DSYNC; elsewhere, and on file systems without
// O_DIRECT, it fails with an error wrapping ErrDirectUnsupported.
func (osFS) OpenDirect(name string) (DirectFile, error) {
	f, err := openDirect(name)
	if err != nil {
		return nil, err
	}
	return osDirectFile{f}, nil
}

// osDirectFile is a file opened by OpenDirect.
type osDirectFile struct {
	f *os.File
}

func (d osDirectFile) WriteAt(b []byte, off int64) (int, error) {
	if err := checkDirect(d.f.Name(), b, off); err != nil {
		return 0, err
	}
	return d.f.WriteAt(b, off)
}

func (d osDirectFile) Close() error { return d.f.Close() }

func (d osDirectFile) Name() string { return d.f.Name() }
