package vfs

import (
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that can crash, tear unsynced writes and inject
// errors; see the package documentation for its crash model. It is safe for
// concurrent use (one mutex guards everything) and deterministic: no result
// depends on Go's map iteration order.
//
// Paths are cleaned with path.Clean. The roots "/" (for absolute paths) and
// "." (for relative ones) always exist; other directories must be made with
// MkdirAll before files can be created in them.
//
// Differences from OS worth knowing: Open of a directory fails with EISDIR
// (use List and SyncDir instead); modification times are always the zero
// time; file modes are reported as 0644 for files and the MkdirAll perm for
// directories; Preallocate is a no-op; a file may not grow beyond 4 GiB
// (EFBIG).
type MemFS struct {
	mu       sync.Mutex
	dirs     map[string]*memDir // cleaned path -> directory
	locks    map[string]*memLock
	epoch    uint64 // incremented by every crash; older handles are dead
	nextIno  uint64
	injector func(op Op, name string) error
	observer func(op Op, name string, n int)

	// With a clock, syncs take effect when they complete (see SetClock):
	// the syncs not yet known to be complete, in the order issued.
	clock    func() time.Duration
	present  func() time.Duration
	inflight []*syncPoint
}

// syncPoint is a Sync or SyncDir in flight: it makes the first upTo
// pending operations of ino (or the namespace snapshot of dir) durable at
// virtual time at (-1 until the call returns).
type syncPoint struct {
	at   time.Duration
	ino  *inode
	upTo int
	dir  *memDir
	snap map[string]*inode
}

// memDir is a directory: its current namespace and the namespace recorded
// at its last SyncDir. Only files are entries; subdirectories are found
// through MemFS.dirs and are durable at once.
type memDir struct {
	perm    fs.FileMode
	entries map[string]*inode // current: base name -> file
	durable map[string]*inode // as of the last SyncDir
}

func newMemDir(perm fs.FileMode) *memDir {
	return &memDir{
		perm:    perm.Perm(),
		entries: map[string]*inode{},
		durable: map[string]*inode{},
	}
}

// memMaxFileSize bounds file sizes so that a stray huge offset fails with
// EFBIG instead of exhausting memory.
const memMaxFileSize = 1 << 32

var _ FS = (*MemFS)(nil)

// NewMem returns an empty MemFS holding only the roots "/" and ".".
func NewMem() *MemFS {
	m := &MemFS{
		dirs:  map[string]*memDir{},
		locks: map[string]*memLock{},
	}
	m.dirs["/"] = newMemDir(0o755)
	m.dirs["."] = newMemDir(0o755)
	return m
}

// SetInjector installs f, which is called before every operation (see Op
// for the kinds) with the operation and the name it concerns (for a File
// method, the name the file was opened with; for Rename, oldname). If f
// returns an error the operation fails with exactly that error and has no
// effect. Build OS-like errors with ErrnoError. f is called without the
// MemFS mutex held, so it may call into the MemFS, e.g. to Crash it at that
// point; an operation on a File handle then fails with ErrCrashed. A nil f
// removes the injector.
func (m *MemFS) SetInjector(f func(op Op, name string) error) {
	m.mu.Lock()
	m.injector = f
	m.mu.Unlock()
}

// SetObserver installs f, which is called after every successful operation
// with the operation, the name it concerns (as for SetInjector) and the
// number of bytes read or written (0 for other operations). A read that
// returns io.EOF counts as successful. f is called without the MemFS mutex
// held. A nil f removes the observer.
func (m *MemFS) SetObserver(f func(op Op, name string, n int)) {
	m.mu.Lock()
	m.observer = f
	m.mu.Unlock()
}

// inject calls the injector, if any, without the mutex held.
func (m *MemFS) inject(op Op, name string) error {
	m.mu.Lock()
	inj := m.injector
	m.mu.Unlock()
	if inj == nil {
		return nil
	}
	return inj(op, name)
}

// do runs a namespace operation: injector, then fn under the mutex, then
// the observer.
func (m *MemFS) do(op Op, name string, fn func() error) error {
	if err := m.inject(op, name); err != nil {
		return err
	}
	m.mu.Lock()
	err := fn()
	obs := m.observer
	m.mu.Unlock()
	if err == nil && obs != nil {
		obs(op, name, 0)
	}
	return err
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// clean cleans name; ok is false for the empty name.
func clean(name string) (p string, ok bool) {
	if name == "" {
		return "", false
	}
	return path.Clean(name), true
}

func isRoot(p string) bool { return p == "/" || p == "." }

// parentDir returns the directory holding p, or the errno for its absence.
func (m *MemFS) parentDir(p string) (*memDir, syscall.Errno) {
	dir := path.Dir(p)
	if d := m.dirs[dir]; d != nil {
		return d, 0
	}
	if m.fileAt(dir) != nil {
		return nil, syscall.ENOTDIR
	}
	return nil, syscall.ENOENT
}

// fileAt returns the file currently named p, or nil.
func (m *MemFS) fileAt(p string) *inode {
	if d := m.dirs[path.Dir(p)]; d != nil {
		return d.entries[path.Base(p)]
	}
	return nil
}

// lookupFile returns the file currently named p, or the errno for its
// absence.
func (m *MemFS) lookupFile(p string) (*inode, syscall.Errno) {
	if m.dirs[p] != nil {
		return nil, syscall.EISDIR
	}
	d, errno := m.parentDir(p)
	if errno != 0 {
		return nil, errno
	}
	n := d.entries[path.Base(p)]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return n, 0
}

// Open flags.
const (
	openWrite = 1 << iota
	openCreate
	openTrunc
)

// openLocked opens name; m.mu must be held.
func (m *MemFS) openLocked(name string, flags int) (*memFile, error) {
	p, ok := clean(name)
	if !ok {
		return nil, pathErr("open", name, syscall.ENOENT)
	}
	if m.dirs[p] != nil {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	d, errno := m.parentDir(p)
	if errno != 0 {
		return nil, pathErr("open", name, errno)
	}
	base := path.Base(p)
	n := d.entries[base]
	switch {
	case n == nil && flags&openCreate == 0:
		return nil, pathErr("open", name, syscall.ENOENT)
	case n == nil:
		m.nextIno++
		n = &inode{id: m.nextIno}
		d.entries[base] = n
	case flags&openTrunc != 0:
		n.truncate(0, m.issued())
	}
	return &memFile{fs: m, ino: n, name: name, epoch: m.epoch, writable: flags&openWrite != 0}, nil
}

func (m *MemFS) open(op Op, name string, flags int) (File, error) {
	var f *memFile
	err := m.do(op, name, func() (err error) {
		f, err = m.openLocked(name, flags)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	return m.open(OpCreate, name, openWrite|openCreate|openTrunc)
}

// Open implements FS. Opening a directory fails with EISDIR.
func (m *MemFS) Open(name string) (File, error) {
	return m.open(OpOpen, name, 0)
}

// OpenReadWrite implements FS. It reports OpOpen to the injector and
// observer.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	return m.open(OpOpen, name, openWrite|openCreate)
}

// Remove implements FS. Removing a file is durable only after SyncDir of
// its directory; removing an (empty) directory is durable at once.
func (m *MemFS) Remove(name string) error {
	return m.do(OpRemove, name, func() error {
		p, ok := clean(name)
		if !ok {
			return pathErr("remove", name, syscall.ENOENT)
		}
		if d := m.dirs[p]; d != nil {
			switch {
			case isRoot(p):
				return pathErr("remove", name, syscall.EBUSY)
			case len(d.entries) > 0 || len(m.subdirs(p)) > 0:
				return pathErr("remove", name, syscall.ENOTEMPTY)
			}
			delete(m.dirs, p)
			return nil
		}
		d, errno := m.parentDir(p)
		if errno != 0 {
			return pathErr("remove", name, errno)
		}
		base := path.Base(p)
		if d.entries[base] == nil {
			return pathErr("remove", name, syscall.ENOENT)
		}
		delete(d.entries, base)
		return nil
	})
}

// Rename implements FS. Renaming a file is durable only after SyncDir of
// the directories involved; renaming a directory is durable at once. It
// reports oldname to the injector and observer, and fails with an
// *os.LinkError as os.Rename does.
func (m *MemFS) Rename(oldname, newname string) error {
	return m.do(OpRename, oldname, func() error {
		if errno := m.renameLocked(oldname, newname); errno != 0 {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errno}
		}
		return nil
	})
}

func (m *MemFS) renameLocked(oldname, newname string) syscall.Errno {
	op, ok1 := clean(oldname)
	np, ok2 := clean(newname)
	if !ok1 || !ok2 {
		return syscall.ENOENT
	}
	if m.dirs[op] != nil {
		return m.renameDirLocked(op, np)
	}
	od, errno := m.parentDir(op)
	if errno != 0 {
		return errno
	}
	n := od.entries[path.Base(op)]
	if n == nil {
		return syscall.ENOENT
	}
	if m.dirs[np] != nil {
		return syscall.EISDIR
	}
	nd, errno := m.parentDir(np)
	if errno != 0 {
		return errno
	}
	if op == np {
		return 0
	}
	delete(od.entries, path.Base(op))
	nd.entries[path.Base(np)] = n
	return 0
}

// renameDirLocked moves the directory tree at op to np, durably.
func (m *MemFS) renameDirLocked(op, np string) syscall.Errno {
	if isRoot(op) || isRoot(np) {
		return syscall.EBUSY
	}
	if op == np {
		return 0
	}
	if strings.HasPrefix(np, op+"/") {
		return syscall.EINVAL
	}
	if m.fileAt(np) != nil {
		return syscall.ENOTDIR
	}
	if _, errno := m.parentDir(np); errno != 0 {
		return errno
	}
	if t := m.dirs[np]; t != nil {
		if len(t.entries) > 0 || len(m.subdirs(np)) > 0 {
			return syscall.ENOTEMPTY
		}
		delete(m.dirs, np)
	}
	moved := map[string]*memDir{}
	for k, d := range m.dirs { // order does not matter: keys are rewritten
		if k == op || strings.HasPrefix(k, op+"/") {
			moved[np+k[len(op):]] = d
			delete(m.dirs, k)
		}
	}
	maps.Copy(m.dirs, moved)
	return 0
}

// subdirs returns the base names of the directories directly in dir,
// sorted.
func (m *MemFS) subdirs(dir string) []string {
	var names []string
	for k := range m.dirs {
		if k != dir && path.Dir(k) == dir {
			names = append(names, path.Base(k))
		}
	}
	slices.Sort(names)
	return names
}

// MkdirAll implements FS. New directories are durable at once.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	return m.do(OpMkdir, dir, func() error {
		p, ok := clean(dir)
		if !ok {
			return pathErr("mkdir", dir, syscall.ENOENT)
		}
		var chain []string // p and its missing ancestors, deepest first
		for q := p; m.dirs[q] == nil; q = path.Dir(q) {
			chain = append(chain, q)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			if m.fileAt(chain[i]) != nil {
				return pathErr("mkdir", chain[i], syscall.ENOTDIR)
			}
		}
		for i := len(chain) - 1; i >= 0; i-- {
			m.dirs[chain[i]] = newMemDir(perm)
		}
		return nil
	})
}

// List implements FS: the files and subdirectories currently in dir.
func (m *MemFS) List(dir string) ([]string, error) {
	var names []string
	err := m.do(OpList, dir, func() error {
		p, ok := clean(dir)
		d := m.dirs[p]
		switch {
		case !ok:
			return pathErr("open", dir, syscall.ENOENT)
		case d == nil && m.fileAt(p) != nil:
			return pathErr("open", dir, syscall.ENOTDIR)
		case d == nil:
			return pathErr("open", dir, syscall.ENOENT)
		}
		names = append(m.subdirs(p), slices.Collect(maps.Keys(d.entries))...)
		slices.Sort(names)
		return nil
	})
	return names, err
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	var fi os.FileInfo
	err := m.do(OpStat, name, func() error {
		p, ok := clean(name)
		if !ok {
			return pathErr("stat", name, syscall.ENOENT)
		}
		if d := m.dirs[p]; d != nil {
			fi = &memFileInfo{name: path.Base(p), mode: fs.ModeDir | d.perm}
			return nil
		}
		n, errno := m.lookupFile(p)
		if errno != 0 {
			return pathErr("stat", name, errno)
		}
		fi = n.info(p)
		return nil
	})
	return fi, err
}

// SyncDir implements FS: it records dir's current namespace as durable
// (with a clock, once the call completes; see SetClock).
func (m *MemFS) SyncDir(dir string) error {
	var sp *syncPoint
	err := m.do(OpSyncDir, dir, func() error {
		p, ok := clean(dir)
		d := m.dirs[p]
		switch {
		case !ok:
			return pathErr("open", dir, syscall.ENOENT)
		case d == nil && m.fileAt(p) != nil:
			// fsync of a file descriptor of a regular file succeeds,
			// but SyncDir is meant for directories.
			return pathErr("sync", dir, syscall.ENOTDIR)
		case d == nil:
			return pathErr("open", dir, syscall.ENOENT)
		}
		if m.clock == nil {
			d.durable = maps.Clone(d.entries)
			return nil
		}
		sp = &syncPoint{at: -1, dir: d, snap: maps.Clone(d.entries)}
		m.inflight = append(m.inflight, sp)
		return nil
	})
	if sp != nil {
		m.completeSync(sp)
	}
	return err
}

// Lock implements FS. The lock file is created if missing (its name, like
// any other, is durable only after SyncDir). Locks live in memory only and
// are released by a crash.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	var l *memLock
	err := m.do(OpLock, name, func() error {
		p, ok := clean(name)
		if !ok {
			return pathErr("open", name, syscall.ENOENT)
		}
		if m.locks[p] != nil {
			return pathErr("lock", name, ErrLocked)
		}
		if _, err := m.openLocked(name, openWrite|openCreate); err != nil {
			return err
		}
		l = &memLock{fs: m, key: p, name: name, epoch: m.epoch}
		m.locks[p] = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// memLock is a held MemFS lock.
type memLock struct {
	fs     *MemFS
	key    string
	name   string
	epoch  uint64
	closed bool
}

// Close releases the lock. After a crash it returns an error wrapping
// ErrCrashed (the crash already released the lock).
func (l *memLock) Close() error {
	m := l.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.closed {
		return pathErr("unlock", l.name, fs.ErrClosed)
	}
	l.closed = true
	if l.epoch != m.epoch {
		return pathErr("unlock", l.name, ErrCrashed)
	}
	if m.locks[l.key] == l {
		delete(m.locks, l.key)
	}
	return nil
}

// memFileInfo implements os.FileInfo.
type memFileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *memFileInfo) ModTime() time.Time { return time.Time{} }
func (fi *memFileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *memFileInfo) Sys() any           { return nil }
