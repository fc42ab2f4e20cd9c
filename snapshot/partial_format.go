package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/asyncraft/asyncraft/raftpb"
)

// The formats of a partial download (see partial.go and the package
// documentation): the PROGRESS frame, the order of its files, and the
// checks a manifest from another node passes before anything is created
// for it.

// File names of a partial download.
const (
	progressName = "PROGRESS"
	progressTmp  = "PROGRESS.tmp"
)

// The PROGRESS file's frame: everything little endian, the CRC-32C covers
// every byte before it.
//
//	+------------+-------------+-----------+----------+-------------+------------+------------+
//	| "asnappg\0"| version u32 | index u64 | term u64 | segment u32 | offset u64 | crc32c u32 |
//	+------------+-------------+-----------+----------+-------------+------------+------------+
//
// segment counts the files in transfer order (the data, then the extra
// files in the manifest's order): the files before it are complete and
// durable, and offset bytes of it are durable.
const (
	progressMagic   = "asnappg\x00"
	progressVersion = 1
	progressSize    = len(progressMagic) + 4 + 8 + 8 + 4 + 8 + 4
)

// Limits on a manifest received from another node, before anything is
// created for it.
const (
	// maxSnapshotFiles bounds the extra files of a received snapshot.
	maxSnapshotFiles = 1 << 16
	// DefaultMaxSnapshotBytes is the largest snapshot (data and files
	// together) a copy actor installs unless CopyConfig says otherwise.
	DefaultMaxSnapshotBytes = 1 << 40
)

// segment is one file of a snapshot in transfer order.
type segment struct {
	file string // the name on the wire: "" for the data
	disk string // the name in the snapshot's directory
	size uint64
	crc  uint32
}

func segmentsOf(meta *raftpb.SnapshotMeta) []segment {
	segs := []segment{{file: "", disk: dataName, size: meta.DataSize, crc: meta.DataCrc32C}}
	for _, f := range meta.Files {
		segs = append(segs, segment{file: f.Name, disk: f.Name, size: f.Size, crc: f.Crc32C})
	}
	return segs
}

// checkMeta checks a manifest received from another node: an index and a
// term, file names an extra file may have, each once, and sizes that add
// up to at most limit bytes.
func checkMeta(meta *raftpb.SnapshotMeta, limit uint64) error {
	switch {
	case meta == nil:
		return fmt.Errorf("%w: no manifest", ErrBadMeta)
	case meta.LastIndex == 0 || meta.LastTerm == 0:
		return fmt.Errorf("%w: index %d, term %d", ErrBadMeta, meta.LastIndex, meta.LastTerm)
	case len(meta.Files) > maxSnapshotFiles:
		return fmt.Errorf("%w: %d files, more than %d", ErrBadMeta, len(meta.Files), maxSnapshotFiles)
	}
	if meta.DataSize == 0 && meta.DataCrc32C != 0 {
		return fmt.Errorf("%w: empty data with crc32c %08x", ErrBadMeta, meta.DataCrc32C)
	}
	total := meta.DataSize
	seen := make(map[string]bool, len(meta.Files))
	for _, f := range meta.Files {
		if f == nil {
			return fmt.Errorf("%w: an empty file entry", ErrBadMeta)
		}
		if f.Size == 0 && f.Crc32C != 0 {
			return fmt.Errorf("%w: empty file %q with crc32c %08x", ErrBadMeta, f.Name, f.Crc32C)
		}
		if err := checkName(f.Name); err != nil || seen[f.Name] {
			return fmt.Errorf("%w: bad or repeated file name %q", ErrBadMeta, f.Name)
		}
		seen[f.Name] = true
		if f.Size > math.MaxUint64-total {
			return fmt.Errorf("%w: the sizes overflow", ErrBadMeta)
		}
		total += f.Size
	}
	if total > limit {
		return fmt.Errorf("%w: %d bytes, more than the %d this node accepts", ErrBadMeta, total, limit)
	}
	if _, err := encodeManifest(meta); err != nil {
		return fmt.Errorf("%w: %v", ErrBadMeta, err)
	}
	return nil
}

func encodeProgress(id ID, seg int, off uint64) []byte {
	b := make([]byte, 0, progressSize)
	b = append(b, progressMagic...)
	b = binary.LittleEndian.AppendUint32(b, progressVersion)
	b = binary.LittleEndian.AppendUint64(b, id.Index)
	b = binary.LittleEndian.AppendUint64(b, id.Term)
	b = binary.LittleEndian.AppendUint32(b, uint32(seg))
	b = binary.LittleEndian.AppendUint64(b, off)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeProgress checks and decodes a PROGRESS file.
func decodeProgress(b []byte) (id ID, seg uint32, off uint64, err error) {
	if len(b) != progressSize {
		return ID{}, 0, 0, fmt.Errorf("%d bytes, not %d", len(b), progressSize)
	}
	if string(b[:len(progressMagic)]) != progressMagic {
		return ID{}, 0, 0, errors.New("bad magic")
	}
	end := progressSize - 4
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return ID{}, 0, 0, fmt.Errorf("crc32c %08x, the frame says %08x", got, want)
	}
	b = b[len(progressMagic):]
	if v := binary.LittleEndian.Uint32(b); v != progressVersion {
		return ID{}, 0, 0, fmt.Errorf("unknown version %d", v)
	}
	id = ID{Index: binary.LittleEndian.Uint64(b[4:]), Term: binary.LittleEndian.Uint64(b[12:])}
	return id, binary.LittleEndian.Uint32(b[20:]), binary.LittleEndian.Uint64(b[24:]), nil
}
