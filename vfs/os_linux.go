package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// fallocKeepSize is FALLOC_FL_KEEP_SIZE from <linux/falloc.h>.
const fallocKeepSize = 0x1

func datasync(f *os.File) error {
	err := rawControl(f, func(fd int) error {
		for {
			if err := syscall.Fdatasync(fd); err != syscall.EINTR {
				return err
			}
		}
	})
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

func preallocate(f *os.File, off, length int64) error {
	err := rawControl(f, func(fd int) error {
		for {
			if err := syscall.Fallocate(fd, fallocKeepSize, off, length); err != syscall.EINTR {
				return err
			}
		}
	})
	switch err {
	case nil, syscall.EOPNOTSUPP, syscall.ENOSYS:
		return nil
	}
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
}

func syncDir(dir string) error {
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

// osLock holds a flock(2) on an open lock file; closing the file releases
// it. flock locks belong to the open file description, so a second Lock of
// the same file fails even within one process.
type osLock struct {
	f *os.File
}

func (l *osLock) Close() error { return l.f.Close() }

func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = rawControl(f, func(fd int) error {
		for {
			if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != syscall.EINTR {
				return err
			}
		}
	})
	if err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			err = fmt.Errorf("%w: %w", ErrLocked, err)
		}
		return nil, &os.PathError{Op: "lock", Path: name, Err: err}
	}
	return &osLock{f: f}, nil
}

func openDirect(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|syscall.O_DIRECT|syscall.O_DSYNC, 0)
	if errors.Is(err, syscall.EINVAL) {
		err = fmt.Errorf("%w: %w", ErrDirectUnsupported, err)
	}
	return f, err
}
