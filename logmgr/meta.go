package logmgr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// FileMeta is a MetaStorage in the file "meta" of a directory. Each Save
// writes "meta.tmp", syncs it, renames it over "meta" and syncs the
// directory, so a crash leaves either the old hard state or the new one,
// never a mix. A damaged file is an error at Load, never a silent reset of
// the term and vote.
//
// The file's format:
//
//	+----------------+----------------+---------------------------+
//	| crc32c (4, LE) | length (4, LE) | marshalled raftpb.HardState |
//	+----------------+----------------+---------------------------+
//
// The checksum covers the HardState bytes, which are exactly length long.
// The HardState evolves as protobuf does, by new fields (the bootstrap
// record, field 4, came that way): files written before a field existed
// read as that field absent, and a reader that predates a field ignores it
// — so the layout has no version of its own.
type FileMeta struct {
	fs  vfs.FS
	dir string
}

var _ MetaStorage = (*FileMeta)(nil)

// metaHeader is the size of a meta file's header: crc32c and length.
const metaHeader = 8

// OpenFileMeta returns the FileMeta of dir, creating dir if needed.
func OpenFileMeta(fsys vfs.FS, dir string) (*FileMeta, error) {
	if err := mkdirDurable(fsys, dir); err != nil {
		return nil, fmt.Errorf("logmgr: create %s: %w", dir, err)
	}
	return &FileMeta{fs: fsys, dir: dir}, nil
}

func (m *FileMeta) Load() (*raftpb.HardState, error) {
	name := path.Join(m.dir, "meta")
	f, err := m.fs.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return &raftpb.HardState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logmgr: open %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("logmgr: read %s: %w", name, err)
	}
	hs, err := decodeMeta(b)
	if err != nil {
		return nil, fmt.Errorf("logmgr: %s is damaged: %w", name, err)
	}
	return hs, nil
}

// decodeMeta decodes the contents of a meta file (see FileMeta). Any input
// that is not exactly one such file is an error.
func decodeMeta(b []byte) (*raftpb.HardState, error) {
	if len(b) < metaHeader {
		return nil, fmt.Errorf("%d bytes, shorter than its header", len(b))
	}
	n := binary.LittleEndian.Uint32(b[4:8])
	if uint64(n) != uint64(len(b)-metaHeader) {
		return nil, fmt.Errorf("length %d, file holds %d", n, len(b)-metaHeader)
	}
	if crc32.Checksum(b[metaHeader:], castagnoli) != binary.LittleEndian.Uint32(b[0:4]) {
		return nil, errors.New("checksum mismatch")
	}
	hs := &raftpb.HardState{}
	if err := proto.Unmarshal(b[metaHeader:], hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// encodeMeta is the contents of a meta file holding hs.
func encodeMeta(hs *raftpb.HardState) ([]byte, error) {
	body, err := proto.Marshal(hs)
	if err != nil {
		return nil, err
	}
	b := make([]byte, metaHeader, metaHeader+len(body))
	binary.LittleEndian.PutUint32(b[0:4], crc32.Checksum(body, castagnoli))
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(body)))
	return append(b, body...), nil
}

func (m *FileMeta) Save(hs *raftpb.HardState) error {
	b, err := encodeMeta(hs)
	if err != nil {
		return fmt.Errorf("logmgr: encode hard state: %w", err)
	}
	tmp, final := path.Join(m.dir, "meta.tmp"), path.Join(m.dir, "meta")
	f, err := m.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("logmgr: create %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("logmgr: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("logmgr: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("logmgr: close %s: %w", tmp, err)
	}
	if err := m.fs.Rename(tmp, final); err != nil {
		return fmt.Errorf("logmgr: rename %s: %w", tmp, err)
	}
	if err := m.fs.SyncDir(m.dir); err != nil {
		return fmt.Errorf("logmgr: sync dir %s: %w", m.dir, err)
	}
	return nil
}

func (m *FileMeta) Close() error { return nil }
