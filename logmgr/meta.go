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
// never a mix. The file holds a crc32c and a length before the marshalled
// raftpb.HardState; a damaged file is an error at Load, never a silent
// reset of the term and vote.
type FileMeta struct {
	fs  vfs.FS
	dir string
}

var _ MetaStorage = (*FileMeta)(nil)

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
	if len(b) < metaHeader {
		return nil, fmt.Errorf("logmgr: %s is damaged: %d bytes, shorter than its header", name, len(b))
	}
	n := binary.LittleEndian.Uint32(b[4:8])
	if uint64(n) != uint64(len(b)-metaHeader) {
		return nil, fmt.Errorf("logmgr: %s is damaged: length %d, file holds %d", name, n, len(b)-metaHeader)
	}
	if crc32.Checksum(b[metaHeader:], castagnoli) != binary.LittleEndian.Uint32(b[0:4]) {
		return nil, fmt.Errorf("logmgr: %s is damaged: checksum mismatch", name)
	}
	hs := &raftpb.HardState{}
	if err := proto.Unmarshal(b[metaHeader:], hs); err != nil {
		return nil, fmt.Errorf("logmgr: %s is damaged: %w", name, err)
	}
	return hs, nil
}

func (m *FileMeta) Save(hs *raftpb.HardState) error {
	body, err := proto.Marshal(hs)
	if err != nil {
		return fmt.Errorf("logmgr: encode hard state: %w", err)
	}
	b := make([]byte, metaHeader, metaHeader+len(body))
	binary.LittleEndian.PutUint32(b[0:4], crc32.Checksum(body, castagnoli))
	binary.LittleEndian.PutUint32(b[4:8], uint32(len(body)))
	b = append(b, body...)
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
