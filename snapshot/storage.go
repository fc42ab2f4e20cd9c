package snapshot

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/internal/faults"
	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// DefaultKeep is how many valid snapshots a Store keeps unless
// Options.Keep says otherwise.
const DefaultKeep = 3

// File and directory names; see the package documentation.
const (
	dataName     = "data"
	manifestName = "MANIFEST"
	snapPrefix   = "snap-"
	tmpPrefix    = "tmp-"
	partPrefix   = "part-"
)

// The MANIFEST file's frame.
const (
	manifestMagic   = "asnapmf\x00"
	manifestVersion = 1
	// manifestHeader is the magic, the version (u32) and the length of
	// the marshalled SnapshotMeta (u32); the CRC-32C (u32) follows it.
	manifestHeader  = len(manifestMagic) + 4 + 4
	manifestTrailer = 4
	// maxManifest bounds the SnapshotMeta a MANIFEST may hold, so that a
	// damaged length never makes Open allocate much.
	maxManifest = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrExists is wrapped by the error of Create and Commit when the
	// store already holds a snapshot of the same index and term.
	ErrExists = errors.New("snapshot: already exists")
	// ErrCorrupt is wrapped by the errors that report damaged snapshot
	// files: a MANIFEST that does not check out, or a file whose size or
	// CRC-32C differs from the one the MANIFEST records.
	ErrCorrupt = errors.New("snapshot: corrupt")
	// ErrNotFound is wrapped by the error of Open, OpenNewest, Verify and
	// Pin when the store holds no such valid snapshot, and of
	// Reader.File when the snapshot has no such file.
	ErrNotFound = errors.New("snapshot: not found")
	// ErrClosed is wrapped by the error of every method of a Writer after
	// Commit or Abort, of a Reader after Close, and of a file writer or
	// reader after its Close.
	ErrClosed = errors.New("snapshot: used after close")
	// ErrBadName is wrapped by the error of Writer.AddFile and Reader.File
	// for a name that cannot be an extra file's.
	ErrBadName = errors.New("snapshot: invalid file name")
)

// Options configures a Store.
type Options struct {
	// Keep is how many valid snapshots, the newest, pruning keeps
	// (pinned ones are kept besides). Default DefaultKeep; at least 1.
	Keep int
	// Logger receives what Open finds and repairs (partial snapshots
	// removed, damaged snapshots) and what pruning removes. Default: a
	// logger that discards everything.
	Logger *slog.Logger
}

// ID names a snapshot by the last entry it covers.
type ID struct {
	Index, Term uint64
}

func (id ID) String() string { return fmt.Sprintf("(index %d, term %d)", id.Index, id.Term) }

// dirName returns the snapshot's directory name, snap-<term>-<index>.
func (id ID) dirName() string { return id.name(snapPrefix) }

// partName returns the name of the directory of its partial download,
// part-<term>-<index>.
func (id ID) partName() string { return id.name(partPrefix) }

func (id ID) name(prefix string) string {
	return fmt.Sprintf("%s%016x-%016x", prefix, id.Term, id.Index)
}

// compare orders IDs by index, then term.
func (id ID) compare(b ID) int {
	if c := cmp.Compare(id.Index, b.Index); c != 0 {
		return c
	}
	return cmp.Compare(id.Term, b.Term)
}

// parseDirName parses a snap-<term>-<index> name.
func parseDirName(name string) (ID, bool) { return parseName(snapPrefix, name) }

// parseName parses a <prefix><term>-<index> name.
func parseName(prefix, name string) (ID, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) != 33 || rest[16] != '-' {
		return ID{}, false
	}
	term, err1 := strconv.ParseUint(rest[:16], 16, 64)
	index, err2 := strconv.ParseUint(rest[17:], 16, 64)
	if err1 != nil || err2 != nil || (ID{index, term}).name(prefix) != name {
		return ID{}, false // also refuses upper-case hex: one name per ID
	}
	return ID{index, term}, true
}

// Damage describes a snapshot directory Open found but cannot use.
type Damage struct {
	ID
	// Dir is the snapshot's directory.
	Dir string
	// Err says what is wrong; it wraps ErrCorrupt for a MANIFEST that does
	// not check out or a file of the wrong size, fs.ErrNotExist for a
	// missing MANIFEST or file, or the I/O error that prevented the check.
	Err error
}

// snap is a valid snapshot the store holds.
type snap struct {
	id   ID
	meta *raftpb.SnapshotMeta // never handed out: callers get clones
}

// Store is a directory of snapshots. Its methods are safe for concurrent
// use; a Writer or a Reader is used by one goroutine at a time.
type Store struct {
	fs   vfs.FS
	dir  string
	keep int
	log  *slog.Logger

	// mu guards everything below, and serialises the renames and
	// removals in dir (commits and pruning).
	mu      sync.Mutex
	snaps   []*snap // valid, newest first
	damaged []Damage
	pins    map[ID]int
	nextTmp uint64
}

// Open opens the snapshot store in dir, creating dir if missing. It
// removes every tmp-* directory (a snapshot that was being written or
// removed when the process stopped), checks every snapshot's MANIFEST and
// the sizes of its files, and prunes to Options.Keep.
//
// A snapshot that does not check out is damaged: it is logged at WARN and
// left out of List (see Damaged). It is removed if a newer valid snapshot
// exists; otherwise it is kept for the operator, since it may be the only
// copy of the state.
func Open(fsys vfs.FS, dir string, opts Options) (*Store, error) {
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Keep < 1 {
		return nil, fmt.Errorf("snapshot: Options.Keep %d: must be at least 1", opts.Keep)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{fs: fsys, dir: dir, keep: opts.Keep, log: opts.Logger, pins: map[ID]int{}}
	if _, err := fsys.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := fsys.MkdirAll(dir, 0o755); err != nil {
			return nil, ioErr("mkdir", dir, err)
		}
		if err := fsys.SyncDir(path.Dir(dir)); err != nil {
			return nil, ioErr("syncdir", path.Dir(dir), err)
		}
	} else if err != nil {
		return nil, ioErr("stat", dir, err)
	}
	names, err := fsys.List(dir)
	if err != nil {
		return nil, ioErr("list", dir, err)
	}
	removed := false
	for _, name := range names {
		p := path.Join(dir, name)
		if n, ok := strings.CutPrefix(name, tmpPrefix); ok {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil && v >= s.nextTmp {
				s.nextTmp = v + 1
			}
			if err := removeAll(fsys, p); err != nil {
				return nil, err
			}
			removed = true
			s.log.Info("snapshot: removed a partial snapshot (written or being removed when the process stopped)", "dir", p)
			continue
		}
		if !strings.HasPrefix(name, snapPrefix) {
			continue
		}
		id, ok := parseDirName(name)
		if !ok {
			s.log.Warn("snapshot: ignoring an entry whose name is not a snapshot's", "path", p)
			continue
		}
		meta, err := s.load(id)
		if err != nil && !isDamage(err) {
			return nil, err // an I/O error says nothing about the snapshot
		}
		if err != nil {
			s.damaged = append(s.damaged, Damage{ID: id, Dir: p, Err: err})
			continue
		}
		s.snaps = append(s.snaps, &snap{id: id, meta: meta})
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return nil, ioErr("syncdir", dir, err)
		}
	}
	slices.SortFunc(s.snaps, func(a, b *snap) int { return b.id.compare(a.id) })
	slices.SortFunc(s.damaged, func(a, b Damage) int { return b.ID.compare(a.ID) })
	for _, d := range s.damaged {
		if len(s.snaps) > 0 && d.ID.compare(s.snaps[0].id) > 0 {
			s.log.Warn("snapshot: a snapshot newer than the newest valid one is damaged; falling back to the newest valid one",
				"damaged", d.Dir, "error", d.Err, "newest_valid", path.Join(dir, s.snaps[0].id.dirName()))
		} else if len(s.snaps) == 0 {
			s.log.Warn("snapshot: damaged snapshot kept, as there is no valid snapshot", "dir", d.Dir, "error", d.Err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.pruneLocked(); err != nil {
		s.log.Warn("snapshot: pruning failed; the store is usable, the next Commit or Prune tries again", "error", err)
	}
	if err := s.openPartialsLocked(names); err != nil {
		s.log.Warn("snapshot: removing superseded partial downloads failed; the next download tries again", "error", err)
	}
	return s, nil
}

// load reads and checks the MANIFEST of snapshot id, and the sizes of its
// files.
func (s *Store) load(id ID) (*raftpb.SnapshotMeta, error) {
	dir := path.Join(s.dir, id.dirName())
	p := path.Join(dir, manifestName)
	b, err := readFile(s.fs, p, int64(maxManifest+manifestHeader+manifestTrailer))
	if err != nil {
		return nil, err
	}
	meta, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, p, err)
	}
	if meta.LastIndex != id.Index || meta.LastTerm != id.Term {
		return nil, fmt.Errorf("%w: %s: holds (index %d, term %d), not %s as its directory's name says",
			ErrCorrupt, p, meta.LastIndex, meta.LastTerm, id)
	}
	seen := map[string]bool{}
	for _, f := range meta.Files {
		if err := checkName(f.Name); err != nil || seen[f.Name] {
			return nil, fmt.Errorf("%w: %s: bad or repeated file name %q", ErrCorrupt, p, f.Name)
		}
		seen[f.Name] = true
	}
	check := func(name string, size uint64) error {
		fp := path.Join(dir, name)
		fi, err := s.fs.Stat(fp)
		if err != nil {
			return ioErr("stat", fp, err)
		}
		if uint64(fi.Size()) != size {
			return fmt.Errorf("%w: %s: %d bytes, the manifest says %d", ErrCorrupt, fp, fi.Size(), size)
		}
		return nil
	}
	if err := check(dataName, meta.DataSize); err != nil {
		return nil, err
	}
	for _, f := range meta.Files {
		if err := check(f.Name, f.Size); err != nil {
			return nil, err
		}
	}
	return meta, nil
}

// isDamage reports whether err, from load, is about the snapshot's files
// (missing, or not what the MANIFEST says) rather than a failure to read
// them.
func isDamage(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// encodeManifest frames meta as a MANIFEST: magic, version, length, the
// marshalled meta, and a CRC-32C of everything before it.
func encodeManifest(meta *raftpb.SnapshotMeta) ([]byte, error) {
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(meta)
	if err != nil {
		return nil, err
	}
	if len(body) > maxManifest {
		return nil, fmt.Errorf("manifest of %d bytes, more than %d", len(body), maxManifest)
	}
	b := make([]byte, 0, manifestHeader+len(body)+manifestTrailer)
	b = append(b, manifestMagic...)
	b = binary.LittleEndian.AppendUint32(b, manifestVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeManifest checks and decodes a MANIFEST.
func decodeManifest(b []byte) (*raftpb.SnapshotMeta, error) {
	if len(b) < manifestHeader+manifestTrailer {
		return nil, fmt.Errorf("%d bytes, shorter than a manifest's frame", len(b))
	}
	if string(b[:len(manifestMagic)]) != manifestMagic {
		return nil, errors.New("bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[len(manifestMagic):]); v != manifestVersion {
		return nil, fmt.Errorf("unknown manifest version %d", v)
	}
	n := binary.LittleEndian.Uint32(b[len(manifestMagic)+4:])
	if uint64(len(b)) != uint64(manifestHeader)+uint64(n)+manifestTrailer {
		return nil, fmt.Errorf("%d bytes, the frame says %d", len(b), uint64(manifestHeader)+uint64(n)+manifestTrailer)
	}
	end := len(b) - manifestTrailer
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return nil, fmt.Errorf("crc32c %08x, the frame says %08x", got, want)
	}
	meta := &raftpb.SnapshotMeta{}
	if err := proto.Unmarshal(b[manifestHeader:end], meta); err != nil {
		return nil, err
	}
	return meta, nil
}

// checkName checks the name of an extra file.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..", name == dataName, name == manifestName,
		name == progressName, name == progressTmp, // a partial download's (partial.go)
		strings.ContainsAny(name, "/\x00"), strings.Contains(name, ".."):
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// List returns the metas of the valid snapshots, newest first (by index,
// then term).
func (s *Store) List() []*raftpb.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*raftpb.SnapshotMeta, len(s.snaps))
	for i, sn := range s.snaps {
		out[i] = proto.CloneOf(sn.meta)
	}
	return out
}

// Newest returns the meta of the newest valid snapshot, or nil if there is
// none.
func (s *Store) Newest() *raftpb.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.snaps) == 0 {
		return nil
	}
	return proto.CloneOf(s.snaps[0].meta)
}

// Damaged returns the damaged snapshots Open found and kept (those with no
// newer valid snapshot), newest first.
func (s *Store) Damaged() []Damage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.damaged)
}

// find returns the valid snapshot id; s.mu must be held.
func (s *Store) find(id ID) *snap {
	for _, sn := range s.snaps {
		if sn.id == id {
			return sn
		}
	}
	return nil
}

// notFoundLocked is the error for a snapshot the store does not hold;
// s.mu must be held.
func (s *Store) notFoundLocked(what string) error {
	if len(s.damaged) == 0 {
		return fmt.Errorf("%w: %s in %s", ErrNotFound, what, s.dir)
	}
	var ds []string
	for _, d := range s.damaged {
		ds = append(ds, fmt.Sprintf("%s: %v", path.Base(d.Dir), d.Err))
	}
	return fmt.Errorf("%w: %s in %s (damaged snapshots kept there: %s)", ErrNotFound, what, s.dir, strings.Join(ds, "; "))
}

// Pin keeps snapshot (index, term) from being removed by pruning until
// unpin is called; pins count, and unpin may be called more than once. A
// snapshot that pruning skipped because it was pinned is removed by the
// next Commit or Prune after its last unpin.
func (s *Store) Pin(index, term uint64) (unpin func(), err error) {
	id := ID{index, term}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(id) == nil {
		return nil, s.notFoundLocked("snapshot " + id.String())
	}
	s.pins[id]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pins[id]--; s.pins[id] <= 0 {
				delete(s.pins, id)
			}
		})
	}, nil
}

// Prune removes the valid snapshots beyond the newest Options.Keep that are
// not pinned, and the damaged snapshots older than the newest valid one.
func (s *Store) Prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruneLocked()
}

func (s *Store) pruneLocked() error {
	var errs []error
	kept := s.snaps[:0:0]
	for i, sn := range s.snaps {
		if i < s.keep || s.pins[sn.id] > 0 {
			kept = append(kept, sn)
			continue
		}
		p := path.Join(s.dir, sn.id.dirName())
		if moved, err := s.removeLocked(p); err != nil {
			errs = append(errs, err)
			if !moved {
				kept = append(kept, sn)
			}
			continue
		}
		s.log.Info("snapshot: removed an old snapshot", "dir", p)
	}
	s.snaps = kept
	var damaged []Damage
	for _, d := range s.damaged {
		if len(s.snaps) == 0 || d.ID.compare(s.snaps[0].id) > 0 {
			damaged = append(damaged, d)
			continue
		}
		if moved, err := s.removeLocked(d.Dir); err != nil {
			errs = append(errs, err)
			if !moved {
				damaged = append(damaged, d)
			}
			continue
		}
		s.log.Warn("snapshot: removed a damaged snapshot, as a newer valid one exists", "dir", d.Dir, "error", d.Err)
	}
	s.damaged = damaged
	return errors.Join(errs...)
}

// removeLocked removes the snapshot directory p: renamed to a tmp-*
// directory first (and the rename made durable), so that a crash part way
// through leaves a directory that Open removes, never a snapshot with
// files missing. moved reports whether p is gone from its name.
func (s *Store) removeLocked(p string) (moved bool, err error) {
	tmp := s.tmpNameLocked()
	if err := s.fs.Rename(p, tmp); err != nil {
		return false, ioErr("rename", p, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return true, ioErr("syncdir", s.dir, err)
	}
	return true, removeAll(s.fs, tmp)
}

func (s *Store) tmpNameLocked() string {
	n := s.nextTmp
	s.nextTmp++
	return path.Join(s.dir, tmpPrefix+strconv.FormatUint(n, 10))
}

// Create starts writing snapshot meta (its LastIndex, LastTerm and
// Configuration; the other fields are computed). The snapshot appears only
// when the Writer is committed. It fails with ErrExists if the store
// already holds a snapshot of that index and term.
func (s *Store) Create(meta *raftpb.SnapshotMeta) (*Writer, error) {
	if meta == nil || meta.LastIndex == 0 || meta.LastTerm == 0 {
		return nil, fmt.Errorf("snapshot: create: the meta must name an index and a term, both non-zero (%v)", meta)
	}
	id := ID{meta.LastIndex, meta.LastTerm}
	s.mu.Lock()
	if s.find(id) != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: snapshot %s in %s", ErrExists, id, s.dir)
	}
	tmp := s.tmpNameLocked()
	s.mu.Unlock()
	w := &Writer{s: s, id: id, tmp: tmp, names: map[string]bool{},
		meta: &raftpb.SnapshotMeta{LastIndex: meta.LastIndex, LastTerm: meta.LastTerm, Configuration: proto.CloneOf(meta.Configuration)}}
	if err := s.fs.MkdirAll(tmp, 0o755); err != nil {
		return nil, ioErr("mkdir", tmp, err)
	}
	f, err := s.fs.Create(path.Join(tmp, dataName))
	if err != nil {
		err = ioErr("create", path.Join(tmp, dataName), err)
		if rerr := removeAll(s.fs, tmp); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	w.data = &fileWriter{w: w, f: f, path: f.Name()}
	return w, nil
}

// Writer writes a snapshot into a temporary directory; Commit gives it its
// name. A Writer is used by one goroutine at a time. The first I/O error
// sticks: every later Write, AddFile and Commit returns it, and Commit then
// removes the temporary directory. After Commit or Abort, every method
// returns an error wrapping ErrClosed, so "defer w.Abort()" is safe.
type Writer struct {
	s     *Store
	id    ID
	tmp   string
	meta  *raftpb.SnapshotMeta
	data  *fileWriter
	files []*fileWriter
	names map[string]bool
	err   error // the first error of any write
	done  bool
}

// fileWriter writes one file of a snapshot, counting its size and CRC.
type fileWriter struct {
	w      *Writer
	f      vfs.File
	path   string
	size   uint64
	crc    uint32
	closed bool // synced and closed
}

func (w *Writer) check(op string) error {
	if w.done {
		return fmt.Errorf("%w: %s on the writer of snapshot %s, already committed or aborted", ErrClosed, op, w.id)
	}
	return w.err
}

// Write appends p to the snapshot's data.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.check("write"); err != nil {
		return 0, err
	}
	return w.data.write(p)
}

func (fw *fileWriter) write(p []byte) (int, error) {
	n, err := fw.f.Write(p)
	fw.size += uint64(n)
	fw.crc = crc32.Update(fw.crc, castagnoli, p[:n])
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		err = ioErr("write", fw.path, err)
		if fw.w.err == nil {
			fw.w.err = err
		}
	}
	return n, err
}

// finish makes the file durable and closes it (once).
func (fw *fileWriter) finish() error {
	if fw.closed {
		return nil
	}
	fw.closed = true
	err := fw.f.Sync()
	if err != nil {
		err = ioErr("sync", fw.path, err)
	}
	if cerr := fw.f.Close(); cerr != nil && err == nil {
		err = ioErr("close", fw.path, cerr)
	}
	if err != nil && fw.w.err == nil {
		fw.w.err = err
	}
	return err
}

// AddFile adds an extra file named name to the snapshot (for state
// machines whose state is files). The name must not be empty, "data",
// "MANIFEST", "PROGRESS" or "PROGRESS.tmp", and must not hold "/" or "..". Close the file when it is
// written (Close makes it durable); Commit closes any still open.
func (w *Writer) AddFile(name string) (io.WriteCloser, error) {
	if err := w.check("add file"); err != nil {
		return nil, err
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if w.names[name] {
		return nil, fmt.Errorf("%w: %q added twice", ErrBadName, name)
	}
	p := path.Join(w.tmp, name)
	f, err := w.s.fs.Create(p)
	if err != nil {
		err = ioErr("create", p, err)
		w.err = err
		return nil, err
	}
	w.names[name] = true
	fw := &fileWriter{w: w, f: f, path: p}
	w.files = append(w.files, fw)
	return &extraWriter{fw}, nil
}

// extraWriter is the io.WriteCloser AddFile returns.
type extraWriter struct{ fw *fileWriter }

func (e *extraWriter) Write(p []byte) (int, error) {
	if e.fw.closed {
		return 0, fmt.Errorf("%w: write to %s after its Close", ErrClosed, e.fw.path)
	}
	if err := e.fw.w.check("write"); err != nil {
		return 0, err
	}
	return e.fw.write(p)
}

// Close makes the file durable and closes it.
func (e *extraWriter) Close() error {
	if e.fw.closed {
		return fmt.Errorf("%w: %s closed twice", ErrClosed, e.fw.path)
	}
	if err := e.fw.w.check("close"); err != nil {
		return err
	}
	return e.fw.finish()
}

// Commit makes the snapshot durable and gives it its name: it syncs and
// closes every file, writes the MANIFEST (and syncs it), syncs the
// temporary directory, renames it to snap-<term>-<index> and syncs the
// store's directory. Then it prunes the store to Options.Keep (a pruning
// error is logged, not returned: the snapshot is committed). It returns
// the snapshot's meta, with the sizes and checksums.
//
// On error the snapshot is not in the store (its temporary directory is
// removed) and the Writer is finished. It fails with ErrExists if the store
// gained a snapshot of the same index and term since Create.
func (w *Writer) Commit() (*raftpb.SnapshotMeta, error) {
	if err := w.check("commit"); err != nil {
		if !w.done { // a write failed: the snapshot cannot be committed
			w.done = true
			if rerr := w.abort(); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return nil, err
	}
	meta, err := w.commit()
	w.done = true
	if err != nil {
		if rerr := w.abort(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return meta, nil
}

func (w *Writer) commit() (*raftpb.SnapshotMeta, error) {
	s := w.s
	meta := w.meta
	if err := w.data.finish(); err != nil {
		return nil, err
	}
	meta.DataSize, meta.DataCrc32C = w.data.size, w.data.crc
	for _, fw := range w.files {
		if err := fw.finish(); err != nil {
			return nil, err
		}
		meta.Files = append(meta.Files, &raftpb.SnapshotFile{Name: path.Base(fw.path), Size: fw.size, Crc32C: fw.crc})
	}
	b, err := encodeManifest(meta)
	if err != nil {
		return nil, fmt.Errorf("snapshot: commit %s: %w", w.id, err)
	}
	mp := path.Join(w.tmp, manifestName)
	f, err := s.fs.Create(mp)
	if err != nil {
		return nil, ioErr("create", mp, err)
	}
	mf := &fileWriter{w: w, f: f, path: mp}
	if _, err := mf.write(b); err != nil {
		f.Close()
		return nil, err
	}
	if err := mf.finish(); err != nil {
		return nil, err
	}
	if err := s.fs.SyncDir(w.tmp); err != nil {
		return nil, ioErr("syncdir", w.tmp, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	final := path.Join(s.dir, w.id.dirName())
	if s.find(w.id) != nil {
		return nil, fmt.Errorf("%w: snapshot %s in %s", ErrExists, w.id, s.dir)
	}
	if _, err := s.fs.Stat(final); err == nil {
		return nil, fmt.Errorf("%w: %s (a damaged snapshot of the same index and term; remove it to replace it)", ErrExists, final)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ioErr("stat", final, err)
	}
	if err := s.fs.Rename(w.tmp, final); err != nil {
		return nil, ioErr("rename", w.tmp, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		err = ioErr("syncdir", s.dir, err)
		// The name may not be durable: take the snapshot back out, so that
		// an error always means the store does not hold it.
		if rerr := s.fs.Rename(final, w.tmp); rerr != nil {
			s.snaps = insertSnap(s.snaps, &snap{id: w.id, meta: meta})
			return nil, fmt.Errorf("%w; the snapshot stays in %s, complete, but may not survive a crash (taking it back: %v)", err, final, rerr)
		}
		return nil, err
	}
	s.snaps = insertSnap(s.snaps, &snap{id: w.id, meta: meta})
	if err := s.pruneLocked(); err != nil {
		s.log.Warn("snapshot: pruning after a commit failed", "error", err)
	}
	return proto.CloneOf(meta), nil
}

// insertSnap inserts sn into snaps, newest first.
func insertSnap(snaps []*snap, sn *snap) []*snap {
	i, _ := slices.BinarySearchFunc(snaps, sn, func(a, b *snap) int { return b.id.compare(a.id) })
	return slices.Insert(snaps, i, sn)
}

// Abort abandons the snapshot and removes its temporary directory.
func (w *Writer) Abort() error {
	if w.done {
		return fmt.Errorf("%w: abort of the writer of snapshot %s, already committed or aborted", ErrClosed, w.id)
	}
	w.done = true
	return w.abort()
}

// abort closes every file and removes the temporary directory.
func (w *Writer) abort() error {
	for _, fw := range append([]*fileWriter{w.data}, w.files...) {
		if !fw.closed {
			fw.closed = true
			fw.f.Close() // the file is being removed: its error does not matter
		}
	}
	return removeAll(w.s.fs, w.tmp)
}

// Open opens snapshot (index, term) for reading. The snapshot cannot be
// pruned until the Reader is closed.
func (s *Store) Open(index, term uint64) (*Reader, error) {
	id := ID{index, term}
	s.mu.Lock()
	sn := s.find(id)
	if sn == nil {
		err := s.notFoundLocked("snapshot " + id.String())
		s.mu.Unlock()
		return nil, err
	}
	return s.openLocked(sn)
}

// OpenNewest opens the newest valid snapshot; see Open. With no valid
// snapshot it fails with ErrNotFound, naming the damaged ones if any.
func (s *Store) OpenNewest() (*Reader, error) {
	s.mu.Lock()
	if len(s.snaps) == 0 {
		err := s.notFoundLocked("no valid snapshot")
		s.mu.Unlock()
		return nil, err
	}
	return s.openLocked(s.snaps[0])
}

// openLocked opens sn; it is called with s.mu held and releases it.
func (s *Store) openLocked(sn *snap) (*Reader, error) {
	s.pins[sn.id]++
	s.mu.Unlock()
	r := &Reader{s: s, id: sn.id, dir: path.Join(s.dir, sn.id.dirName()), meta: sn.meta}
	d, err := r.open(dataName, sn.meta.DataSize, sn.meta.DataCrc32C)
	if err != nil {
		r.unpin()
		return nil, err
	}
	r.data = d
	return r, nil
}

// Reader reads a snapshot. Its Read returns the state machine's data and,
// at the end, io.EOF only if the data has the size and CRC-32C the
// MANIFEST records: otherwise an error wrapping ErrCorrupt. A consumer
// must therefore read to io.EOF before it trusts what it read. A Reader is
// used by one goroutine at a time.
type Reader struct {
	s      *Store
	id     ID
	dir    string
	meta   *raftpb.SnapshotMeta
	data   *checkedReader
	closed bool
	once   sync.Once
}

func (r *Reader) unpin() {
	r.once.Do(func() {
		r.s.mu.Lock()
		defer r.s.mu.Unlock()
		if r.s.pins[r.id]--; r.s.pins[r.id] <= 0 {
			delete(r.s.pins, r.id)
		}
	})
}

func (r *Reader) open(name string, size uint64, crc uint32) (*checkedReader, error) {
	p := path.Join(r.dir, name)
	f, err := r.s.fs.Open(p)
	if err != nil {
		return nil, ioErr("open", p, err)
	}
	return &checkedReader{f: f, path: p, size: size, crc: crc}, nil
}

// Meta returns the snapshot's meta.
func (r *Reader) Meta() *raftpb.SnapshotMeta { return proto.CloneOf(r.meta) }

// Read reads the snapshot's data; see Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("%w: read of snapshot %s after Close", ErrClosed, r.id)
	}
	return r.data.Read(p)
}

// File opens the extra file name, checked like the data: its reader
// returns an error wrapping ErrCorrupt instead of io.EOF if the file's size
// or CRC-32C is not the MANIFEST's. Close it when done; it stays readable
// after the Reader's Close.
func (r *Reader) File(name string) (io.ReadCloser, error) {
	if r.closed {
		return nil, fmt.Errorf("%w: file %q of snapshot %s after Close", ErrClosed, name, r.id)
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	for _, f := range r.meta.Files {
		if f.Name == name {
			return r.open(name, f.Size, f.Crc32C)
		}
	}
	return nil, fmt.Errorf("%w: file %q in snapshot %s", ErrNotFound, name, r.id)
}

// Close closes the data file and lets pruning remove the snapshot.
func (r *Reader) Close() error {
	if r.closed {
		return fmt.Errorf("%w: snapshot %s closed twice", ErrClosed, r.id)
	}
	r.closed = true
	err := r.data.Close()
	r.unpin()
	return err
}

// checkedReader reads a file whose size and CRC-32C are known.
type checkedReader struct {
	f      vfs.File
	path   string
	size   uint64 // expected
	crc    uint32 // expected
	n      uint64 // read so far
	sum    uint32
	err    error // sticky: io.EOF or a failure
	closed bool
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.closed {
		return 0, fmt.Errorf("%w: read of %s after Close", ErrClosed, c.path)
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.n == c.size {
		// Everything expected is read: the file must end here.
		var one [1]byte
		n, err := c.f.Read(one[:])
		switch {
		case n > 0:
			c.err = fmt.Errorf("%w: %s is longer than the %d bytes the manifest records", ErrCorrupt, c.path, c.size)
		case err == io.EOF && c.sum != c.crc && !faults.On(faults.InstallUnverified):
			c.err = fmt.Errorf("%w: %s: crc32c %08x, the manifest records %08x", ErrCorrupt, c.path, c.sum, c.crc)
		case err == io.EOF:
			c.err = io.EOF
		case err != nil:
			return 0, ioErr("read", c.path, err) // not sticky: a retry may work
		default:
			return 0, nil
		}
		return 0, c.err
	}
	if rest := c.size - c.n; uint64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.f.Read(p)
	c.n += uint64(n)
	c.sum = crc32.Update(c.sum, castagnoli, p[:n])
	switch {
	case err == io.EOF:
		if n > 0 {
			return n, nil // the next Read finds the end again and judges it
		}
		c.err = fmt.Errorf("%w: %s has %d bytes, the manifest records %d", ErrCorrupt, c.path, c.n, c.size)
		return 0, c.err
	case err != nil:
		return n, ioErr("read", c.path, err)
	}
	return n, nil
}

func (c *checkedReader) Close() error {
	if c.closed {
		return fmt.Errorf("%w: %s closed twice", ErrClosed, c.path)
	}
	c.closed = true
	if err := c.f.Close(); err != nil {
		return ioErr("close", c.path, err)
	}
	return nil
}

// Verify reads all of snapshot (index, term) — its data and every extra
// file — and checks their sizes and CRC-32Cs against its MANIFEST.
func (s *Store) Verify(index, term uint64) error {
	r, err := s.Open(index, term)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	for _, f := range r.meta.Files {
		fr, err := r.File(f.Name)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, fr)
		fr.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readFile reads the file p, refusing one larger than limit.
func readFile(fsys vfs.FS, p string, limit int64) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, ioErr("open", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, ioErr("read", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, p, limit)
	}
	return b, nil
}

// removeAll removes p and, if it is a directory, everything in it.
func removeAll(fsys vfs.FS, p string) error {
	fi, err := fsys.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return ioErr("stat", p, err)
	}
	if fi.IsDir() {
		names, err := fsys.List(p)
		if err != nil {
			return ioErr("list", p, err)
		}
		for _, name := range names {
			if err := removeAll(fsys, path.Join(p, name)); err != nil {
				return err
			}
		}
	}
	if err := fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ioErr("remove", p, err)
	}
	return nil
}

// ioErr wraps an I/O error with the operation and the path, unless it
// already names them.
func ioErr(op, p string, err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	if (errors.As(err, &pe) && pe.Path == p) || (errors.As(err, &le) && le.Old == p) {
		return fmt.Errorf("snapshot: %w", err)
	}
	return fmt.Errorf("snapshot: %s %s: %w", op, p, err)
}
