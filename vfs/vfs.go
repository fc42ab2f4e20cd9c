// Package vfs is the small file-system interface that asyncraft's storage
// engines (log storage, meta storage) write through, with two
// implementations:
//
//   - [OS], the real operating-system file system. On Linux File.Sync is
//     fdatasync(2), File.Preallocate is fallocate(2) with
//     FALLOC_FL_KEEP_SIZE and FS.Lock is flock(2).
//   - [MemFS] (see [NewMem]), an in-memory file system for the deterministic
//     simulator. It can lose power ([MemFS.Crash]), tear unsynced writes
//     ([MemFS.CrashTorn]), fail any operation on demand
//     ([MemFS.SetInjector]) and report every operation so the simulator can
//     charge virtual time for it ([MemFS.SetObserver]).
//
// Paths use "/" as the separator and are used as given: vfs never consults
// the current working directory on its own.
//
// # Crash model
//
// MemFS models a POSIX disk strictly, in the way that makes careless storage
// code lose data:
//
//   - File content. Every file (inode) has a current content, which reads
//     see, and a durable content, which survives a crash. Writes and
//     truncations change the current content at once and are also appended
//     to the inode's ordered list of pending operations. File.Sync makes the
//     current content durable and empties the list. Sync makes nothing but
//     that file's content durable; in particular it does not make the file's
//     name durable.
//   - Names. Creating, renaming and removing a file changes the directory's
//     current namespace at once, but the change becomes durable only when
//     FS.SyncDir is called on the directory that holds the name. A file
//     that was created and synced, but whose directory was never synced, is
//     gone after a crash. A rename across directories needs SyncDir of both:
//     each directory's half becomes durable on its own, so syncing only the
//     destination leaves, after a crash, both names referring to the same
//     file, as if hard-linked.
//   - Directories. Directories themselves are simpler: MkdirAll, and Remove
//     or Rename of a directory, are durable at once, with no SyncDir needed.
//   - Crash ([MemFS.Crash]). Every directory's namespace reverts to the map
//     recorded at its last SyncDir and every inode's content reverts to its
//     durable content. Every File handle and lock opened before the crash is
//     dead: its methods return an error wrapping [ErrCrashed]. Locks are
//     released.
//   - Torn crash ([MemFS.CrashTorn]). As Crash, except that each inode
//     keeps a random prefix of its pending operations applied on top of its
//     durable content, and the last operation kept may itself be torn: a
//     write may keep only a prefix of its bytes (possibly none). It models
//     a disk that persists each file's unsynced writes in order but may stop
//     at any byte; it does not reorder writes within a file.
//
// Because durable names and durable contents are tracked separately, a
// crash can leave a name pointing at an inode whose durable content is empty
// (the name was synced, the data was not), exactly as on a real disk.
package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"unsafe"
)

// FS is the file system a storage engine writes through. Paths use "/" and
// are used as given.
type FS interface {
	// Create opens name for reading and writing, creating it if missing and
	// truncating it if present (O_RDWR|O_CREATE|O_TRUNC, mode 0644).
	Create(name string) (File, error)
	// Open opens name read-only. The error satisfies
	// errors.Is(err, fs.ErrNotExist) when name does not exist.
	Open(name string) (File, error)
	// OpenReadWrite opens name for reading and writing, creating it if
	// missing, without truncating it (O_RDWR|O_CREATE, mode 0644).
	OpenReadWrite(name string) (File, error)
	// Remove removes the file or empty directory name.
	Remove(name string) error
	// Rename renames oldname to newname, atomically replacing newname if
	// it exists.
	Rename(oldname, newname string) error
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string, perm os.FileMode) error
	// List returns the base names of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat describes the file or directory name.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the creations, renames and removals of names in dir
	// durable.
	SyncDir(dir string) error
	// Lock takes an exclusive advisory lock on the lock file name, creating
	// the file if missing. While the lock is held, another Lock of the same
	// name fails with an error wrapping ErrLocked. Closing the returned
	// Closer releases the lock.
	Lock(name string) (io.Closer, error)
}

// File is an open file. Its read, write and seek methods behave like those
// of *os.File.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	// Name returns the name the file was opened with.
	Name() string
	// Stat describes the file.
	Stat() (os.FileInfo, error)
	// Sync makes the file's data durable (fdatasync on Linux). It does
	// not make the file's name durable: see FS.SyncDir.
	Sync() error
	// Truncate changes the size of the file. It does not move the offset.
	Truncate(size int64) error
	// Preallocate reserves disk space for [off, off+length) without
	// changing the file size. It is a no-op where unsupported. A length
	// <= 0 is a no-op.
	Preallocate(off, length int64) error
}

// ErrCrashed is wrapped by the errors of every method of a File (or lock)
// of a MemFS that was opened before the MemFS crashed.
var ErrCrashed = errors.New("vfs: file system crashed")

// ErrLocked is wrapped by the error FS.Lock returns when the lock is
// already held.
var ErrLocked = errors.New("vfs: already locked")

// Op is the kind of a MemFS operation, as passed to injectors and
// observers.
type Op int

// The operations. Read covers File.Read and File.ReadAt; Write covers
// File.Write and File.WriteAt; Open covers FS.Open and FS.OpenReadWrite;
// Stat covers FS.Stat and File.Stat. File.Seek, File.Close and File.Name
// are not reported.
const (
	OpCreate Op = iota + 1
	OpOpen
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpRemove
	OpRename
	OpMkdir
	OpList
	OpStat
	OpSyncDir
	OpLock
	OpPreallocate
)

var opNames = [...]string{
	OpCreate:      "create",
	OpOpen:        "open",
	OpRead:        "read",
	OpWrite:       "write",
	OpSync:        "sync",
	OpTruncate:    "truncate",
	OpRemove:      "remove",
	OpRename:      "rename",
	OpMkdir:       "mkdir",
	OpList:        "list",
	OpStat:        "stat",
	OpSyncDir:     "syncdir",
	OpLock:        "lock",
	OpPreallocate: "preallocate",
}

// String returns the lower-case name of the operation, e.g. "write".
func (op Op) String() string {
	if op > 0 && int(op) < len(opNames) {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// ErrnoError returns the error the OS would report when op on name fails
// with errno, for use by injectors: an *fs.PathError whose Op is
// op.String() and whose Err is errno. errors.Is(err, errno) holds, and so
// do the checks the errno itself supports, such as
// errors.Is(err, fs.ErrNotExist) for ENOENT.
func ErrnoError(op Op, name string, errno syscall.Errno) error {
	return &fs.PathError{Op: op.String(), Path: name, Err: errno}
}

// DirectAlign is what the offset, the length and the memory address of
// every write through a DirectFile must be multiples of.
const DirectAlign = 4 << 10

// ErrDirectUnsupported is wrapped by the error DirectFS.OpenDirect returns
// when the file system cannot write the file directly (tmpfs, for one, has
// no O_DIRECT). Callers fall back to buffered writes and File.Sync.
var ErrDirectUnsupported = errors.New("vfs: direct writes not supported")

// DirectFS is implemented by file systems that can open a file for direct,
// durable writes: OS on Linux and MemFS.
type DirectFS interface {
	// OpenDirect opens the existing file name for direct writes.
	OpenDirect(name string) (DirectFile, error)
}

// DirectFile is a file opened for direct, durable writes (O_DIRECT|O_DSYNC
// on Linux). WriteAt bypasses the page cache and returns once the written
// range is durable, as WriteAt followed by File.Sync would — in one system
// call, which the disk completes with one write (with FUA, or followed by
// a cache flush). A buffered handle of the same file reads what it wrote.
// The offset, the length and the address of the buffer must be multiples
// of DirectAlign (see AlignedBuffer); a write that is not fails with
// EINVAL. A failed write may have written any part of the range.
type DirectFile interface {
	io.WriterAt
	io.Closer
	// Name returns the name the file was opened with.
	Name() string
}

// AlignedBuffer returns a zeroed buffer of n bytes whose address is a
// multiple of DirectAlign.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+DirectAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % DirectAlign); r != 0 {
		skip = DirectAlign - r
	}
	return b[skip : skip+n : skip+n]
}

// IsAligned reports whether b's address and length are multiples of
// DirectAlign.
func IsAligned(b []byte) bool {
	return len(b)%DirectAlign == 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%DirectAlign == 0
}

// checkDirect is the error a direct write of b at off to name fails with
// before reaching the disk: EINVAL unless all three are aligned.
func checkDirect(name string, b []byte, off int64) error {
	if !IsAligned(b) || off%DirectAlign != 0 {
		return &fs.PathError{Op: "write", Path: name, Err: syscall.EINVAL}
	}
	return nil
}
