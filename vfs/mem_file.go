package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
)

// inode is a MemFS file: its current content, its durable content and the
// writes and truncations made since the last Sync, oldest first. Applying
// pending to durable gives data. data and durable never share memory.
type inode struct {
	id      uint64 // creation sequence; orders inodes deterministically
	data    []byte
	durable []byte
	pending []pendingOp
}

// pendingOp is a write of data at off, or (trunc) a truncation to size off,
// issued at virtual time at (zero without clocks, see MemFS.SetClock).
type pendingOp struct {
	trunc bool
	off   int64
	data  []byte
	at    time.Duration
}

// apply returns buf with op applied, reusing buf's memory.
func (op pendingOp) apply(buf []byte) []byte {
	if op.trunc {
		return resize(buf, op.off)
	}
	return writeBytes(buf, op.off, op.data)
}

// resize returns buf truncated or zero-extended to size.
func resize(buf []byte, size int64) []byte {
	n := int64(len(buf))
	switch {
	case size <= n:
		return buf[:size]
	case size <= int64(cap(buf)):
		buf = buf[:size]
		clear(buf[n:]) // memory past len may hold stale bytes
		return buf
	default:
		nb := make([]byte, size, max(size, 2*int64(cap(buf))))
		copy(nb, buf)
		return nb
	}
}

// writeBytes returns buf with p written at off, zero-filling any gap. An
// empty p changes nothing, as pwrite(2) of zero bytes does not extend a
// file.
func writeBytes(buf []byte, off int64, p []byte) []byte {
	if len(p) == 0 {
		return buf
	}
	if end := off + int64(len(p)); end > int64(len(buf)) {
		buf = resize(buf, end)
	}
	copy(buf[off:], p)
	return buf
}

func (n *inode) write(off int64, p []byte, at time.Duration) {
	if len(p) == 0 {
		return
	}
	n.data = writeBytes(n.data, off, p)
	n.pending = append(n.pending, pendingOp{off: off, data: bytes.Clone(p), at: at})
}

func (n *inode) truncate(size int64, at time.Duration) {
	n.data = resize(n.data, size)
	n.pending = append(n.pending, pendingOp{trunc: true, off: size, at: at})
}

// sync makes the current content durable.
func (n *inode) sync() {
	for _, op := range n.pending {
		n.durable = op.apply(n.durable)
	}
	clear(n.pending)
	n.pending = n.pending[:0]
}

func (n *inode) info(p string) *memFileInfo {
	return &memFileInfo{name: path.Base(p), size: int64(len(n.data)), mode: 0o644}
}

// memFile is an open MemFS file. All its state is guarded by fs.mu.
type memFile struct {
	fs       *MemFS
	ino      *inode
	name     string // as opened
	epoch    uint64 // fs.epoch when opened
	writable bool
	closed   bool
	off      int64
}

var _ File = (*memFile)(nil)

// check reports whether the handle is usable; f.fs.mu must be held.
func (f *memFile) check(opname string) error {
	if f.closed {
		return pathErr(opname, f.name, fs.ErrClosed)
	}
	if f.epoch != f.fs.epoch {
		return pathErr(opname, f.name, ErrCrashed)
	}
	return nil
}

// do runs a file operation: handle check, injector, fn under the mutex,
// then the observer with fn's byte count.
func (f *memFile) do(op Op, opname string, fn func() (int, error)) (int, error) {
	m := f.fs
	m.mu.Lock()
	if err := f.check(opname); err != nil {
		m.mu.Unlock()
		return 0, err
	}
	if inj := m.injector; inj != nil {
		m.mu.Unlock()
		if err := inj(op, f.name); err != nil {
			return 0, err
		}
		m.mu.Lock()
		// The injector may have crashed the file system.
		if err := f.check(opname); err != nil {
			m.mu.Unlock()
			return 0, err
		}
	}
	n, err := fn()
	obs := m.observer
	m.mu.Unlock()
	if obs != nil && (err == nil || (op == OpRead && err == io.EOF)) {
		obs(op, f.name, n)
	}
	return n, err
}

func (f *memFile) Name() string { return f.name }

// readAt copies from the current content at off; f.fs.mu must be held.
func (f *memFile) readAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	data := f.ino.data
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Read(p []byte) (int, error) {
	return f.do(OpRead, "read", func() (int, error) {
		n, err := f.readAt(p, f.off)
		f.off += int64(n)
		if n > 0 && err == io.EOF {
			err = nil // like os.File.Read: EOF only when nothing was read
		}
		return n, err
	})
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	return f.do(OpRead, "read", func() (int, error) {
		if off < 0 {
			return 0, pathErr("readat", f.name, errors.New("negative offset"))
		}
		return f.readAt(p, off)
	})
}

// writeAt writes p at off; f.fs.mu must be held.
func (f *memFile) writeAt(opname string, p []byte, off int64) (int, error) {
	switch {
	case !f.writable:
		return 0, pathErr(opname, f.name, syscall.EBADF)
	case off < 0:
		return 0, pathErr(opname, f.name, errors.New("negative offset"))
	case off+int64(len(p)) > memMaxFileSize:
		return 0, pathErr(opname, f.name, syscall.EFBIG)
	}
	f.ino.write(off, p, f.fs.issued())
	return len(p), nil
}

func (f *memFile) Write(p []byte) (int, error) {
	return f.do(OpWrite, "write", func() (int, error) {
		n, err := f.writeAt("write", p, f.off)
		f.off += int64(n)
		return n, err
	})
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	return f.do(OpWrite, "write", func() (int, error) {
		return f.writeAt("writeat", p, off)
	})
}

// Seek is not reported to the injector or observer.
func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		base = int64(len(f.ino.data))
	default:
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	if base+offset < 0 {
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	f.off = base + offset
	return f.off, nil
}

// Close is not reported to the injector or observer. Closing a handle that
// died in a crash returns an error wrapping ErrCrashed.
func (f *memFile) Close() error {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("close"); err != nil {
		f.closed = true
		return err
	}
	f.closed = true
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	var fi os.FileInfo
	_, err := f.do(OpStat, "stat", func() (int, error) {
		fi = f.ino.info(f.name)
		return 0, nil
	})
	return fi, err
}

// Sync makes the file's current content durable. Like fsync(2) it works on
// read-only handles too.
func (f *memFile) Sync() error {
	var sp *syncPoint
	m := f.fs
	_, err := f.do(OpSync, "sync", func() (int, error) {
		if m.clock == nil {
			f.ino.sync()
			return 0, nil
		}
		sp = &syncPoint{at: -1, ino: f.ino, upTo: len(f.ino.pending)}
		m.inflight = append(m.inflight, sp)
		return 0, nil
	})
	if sp != nil {
		m.completeSync(sp)
	}
	return err
}

func (f *memFile) Truncate(size int64) error {
	_, err := f.do(OpTruncate, "truncate", func() (int, error) {
		switch {
		case !f.writable || size < 0:
			return 0, pathErr("truncate", f.name, syscall.EINVAL)
		case size > memMaxFileSize:
			return 0, pathErr("truncate", f.name, syscall.EFBIG)
		}
		f.ino.truncate(size, f.fs.issued())
		return 0, nil
	})
	return err
}

// Preallocate is a no-op apart from argument checks, the injector (as
// OpPreallocate, so that ENOSPC can be simulated) and the observer.
func (f *memFile) Preallocate(off, length int64) error {
	_, err := f.do(OpPreallocate, "fallocate", func() (int, error) {
		switch {
		case length <= 0:
			return 0, nil
		case off < 0:
			return 0, pathErr("fallocate", f.name, syscall.EINVAL)
		case !f.writable:
			return 0, pathErr("fallocate", f.name, syscall.EBADF)
		}
		return 0, nil
	})
	return err
}

// OpenDirect implements DirectFS. MemFS models a direct write as a write
// followed by a Sync of the file, both reported to the injector and the
// observer (so either can fail it, and the simulator charges it a sync).
// That Sync also makes the file's earlier unsynced writes durable, which a
// real disk need not do: code must not rely on it. Writes are checked for
// alignment like the OS's.
func (m *MemFS) OpenDirect(name string) (DirectFile, error) {
	f, err := m.open(OpOpen, name, openWrite)
	if err != nil {
		return nil, err
	}
	return memDirectFile{f.(*memFile)}, nil
}

type memDirectFile struct {
	f *memFile
}

func (d memDirectFile) WriteAt(p []byte, off int64) (int, error) {
	if err := checkDirect(d.f.name, p, off); err != nil {
		return 0, err
	}
	n, err := d.f.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	if err := d.f.Sync(); err != nil {
		return n, err
	}
	return n, nil
}

func (d memDirectFile) Close() error { return d.f.Close() }

func (d memDirectFile) Name() string { return d.f.name }
