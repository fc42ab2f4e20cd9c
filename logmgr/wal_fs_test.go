package logmgr

import (
	"sync"
	"syscall"

	"github.com/asyncraft/asyncraft/vfs"
)

// Test file systems around a MemFS: one that counts open handles, one with
// a capacity. Both keep direct writes (vfs.DirectFS).

// countingFS counts the handles open on it (files, direct files) and the
// most that were open at once.
type countingFS struct {
	*vfs.MemFS
	mu        sync.Mutex
	open, max int
}

var _ vfs.DirectFS = (*countingFS)(nil)

func (c *countingFS) opened(err error) {
	if err != nil {
		return
	}
	c.mu.Lock()
	c.open++
	c.max = max(c.max, c.open)
	c.mu.Unlock()
}

// openNow is the number of handles open now.
func (c *countingFS) openNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// resetMax makes the most open at once the number open now.
func (c *countingFS) resetMax() {
	c.mu.Lock()
	c.max = c.open
	c.mu.Unlock()
}

func (c *countingFS) maxOpen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

func (c *countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	c.opened(err)
	if err != nil {
		return nil, err
	}
	return &countedFile{File: f, fs: c}, nil
}

func (c *countingFS) Create(name string) (vfs.File, error) { return c.wrap(c.MemFS.Create(name)) }
func (c *countingFS) Open(name string) (vfs.File, error)   { return c.wrap(c.MemFS.Open(name)) }
func (c *countingFS) OpenReadWrite(name string) (vfs.File, error) {
	return c.wrap(c.MemFS.OpenReadWrite(name))
}

func (c *countingFS) OpenDirect(name string) (vfs.DirectFile, error) {
	d, err := c.MemFS.OpenDirect(name)
	c.opened(err)
	if err != nil {
		return nil, err
	}
	return &countedDirect{DirectFile: d, fs: c}, nil
}

func (c *countingFS) closed() {
	c.mu.Lock()
	c.open--
	c.mu.Unlock()
}

type countedFile struct {
	vfs.File
	fs   *countingFS
	once sync.Once
}

func (f *countedFile) Close() error {
	f.once.Do(f.fs.closed)
	return f.File.Close()
}

type countedDirect struct {
	vfs.DirectFile
	fs   *countingFS
	once sync.Once
}

func (f *countedDirect) Close() error {
	f.once.Do(f.fs.closed)
	return f.DirectFile.Close()
}

// smallFS is a volume of capacity bytes: a file takes the bytes up to its
// size or to the end of what was preallocated for it, whichever is more,
// and an operation that would need more than is free fails with ENOSPC
// (and does nothing). A removed file frees its bytes at once.
type smallFS struct {
	*vfs.MemFS
	capacity int64
	mu       sync.Mutex
	files    map[string]*allocation // by path
	used     int64
}

var _ vfs.DirectFS = (*smallFS)(nil)

// allocation is the space a file takes; handles share it across renames.
type allocation struct{ bytes int64 }

func newSmallFS(capacity int64) *smallFS {
	return &smallFS{MemFS: vfs.NewMem(), capacity: capacity, files: map[string]*allocation{}}
}

// usedBytes is the space the files take.
func (s *smallFS) usedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// grow makes a take at least n bytes, or fails with ENOSPC.
func (s *smallFS) grow(a *allocation, n int64, op vfs.Op, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= a.bytes {
		return nil
	}
	if s.used+n-a.bytes > s.capacity {
		return vfs.ErrnoError(op, name, syscall.ENOSPC)
	}
	s.used += n - a.bytes
	a.bytes = n
	return nil
}

// alloc returns the allocation of path, new (and empty) if fresh.
func (s *smallFS) alloc(path string, fresh bool) *allocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.files[path]
	if a != nil && fresh {
		s.used -= a.bytes
		a = nil
	}
	if a == nil {
		a = &allocation{}
		s.files[path] = a
	}
	return a
}

func (s *smallFS) wrap(name string, fresh bool, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &smallFile{File: f, fs: s, a: s.alloc(name, fresh)}, nil
}

func (s *smallFS) Create(name string) (vfs.File, error) {
	f, err := s.MemFS.Create(name)
	return s.wrap(name, true, f, err)
}

func (s *smallFS) Open(name string) (vfs.File, error) {
	f, err := s.MemFS.Open(name)
	return s.wrap(name, false, f, err)
}

func (s *smallFS) OpenReadWrite(name string) (vfs.File, error) {
	f, err := s.MemFS.OpenReadWrite(name)
	return s.wrap(name, false, f, err)
}

func (s *smallFS) OpenDirect(name string) (vfs.DirectFile, error) {
	d, err := s.MemFS.OpenDirect(name)
	if err != nil {
		return nil, err
	}
	return &smallDirect{DirectFile: d, fs: s, a: s.alloc(name, false)}, nil
}

func (s *smallFS) Remove(name string) error {
	if err := s.MemFS.Remove(name); err != nil {
		return err
	}
	s.mu.Lock()
	if a := s.files[name]; a != nil {
		s.used -= a.bytes
		a.bytes = 0
		delete(s.files, name)
	}
	s.mu.Unlock()
	return nil
}

func (s *smallFS) Rename(oldname, newname string) error {
	if err := s.MemFS.Rename(oldname, newname); err != nil {
		return err
	}
	s.mu.Lock()
	if a := s.files[newname]; a != nil {
		s.used -= a.bytes
		a.bytes = 0
	}
	s.files[newname] = s.files[oldname]
	delete(s.files, oldname)
	s.mu.Unlock()
	return nil
}

type smallFile struct {
	vfs.File
	fs *smallFS
	a  *allocation
}

func (f *smallFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.grow(f.a, off+int64(len(b)), vfs.OpWrite, f.Name()); err != nil {
		return 0, err
	}
	return f.File.WriteAt(b, off)
}

func (f *smallFile) Truncate(size int64) error {
	if err := f.fs.grow(f.a, size, vfs.OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *smallFile) Preallocate(off, length int64) error {
	if err := f.fs.grow(f.a, off+length, vfs.OpPreallocate, f.Name()); err != nil {
		return err
	}
	return f.File.Preallocate(off, length)
}

type smallDirect struct {
	vfs.DirectFile
	fs *smallFS
	a  *allocation
}

func (f *smallDirect) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.grow(f.a, off+int64(len(b)), vfs.OpWrite, f.Name()); err != nil {
		return 0, err
	}
	return f.DirectFile.WriteAt(b, off)
}
