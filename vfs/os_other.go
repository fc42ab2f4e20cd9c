//go:build !linux

package vfs

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

func datasync(f *os.File) error { return f.Sync() }

func preallocate(f *os.File, off, length int64) error { return nil }

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		// Directories cannot be fsynced on Windows; NTFS journals
		// metadata.
		if _, err := os.Stat(dir); err != nil {
			return err
		}
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Outside Linux, locks are held in a process-wide registry keyed by absolute
// path: they exclude other holders in this process only.
var (
	lockMu   sync.Mutex
	lockHeld = map[string]bool{}
)

type osLock struct {
	key  string
	f    *os.File
	once sync.Once
}

func (l *osLock) Close() error {
	err := os.ErrClosed
	l.once.Do(func() {
		err = l.f.Close()
		lockMu.Lock()
		delete(lockHeld, l.key)
		lockMu.Unlock()
	})
	return err
}

func lockFile(name string) (io.Closer, error) {
	key, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockHeld[key] {
		f.Close()
		return nil, &os.PathError{Op: "lock", Path: name, Err: ErrLocked}
	}
	lockHeld[key] = true
	return &osLock{key: key, f: f}, nil
}

func openDirect(name string) (*os.File, error) {
	return nil, &os.PathError{Op: "open", Path: name, Err: ErrDirectUnsupported}
}
