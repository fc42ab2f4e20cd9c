package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/fsm"
)

// kv is the benchmark's state machine (loadgen.Map, the same for every
// system) as an asyncraft state machine, with snapshots. OnApply and the
// snapshot callbacks run on the node's FSM caller (OnSnapshotLoad at
// restart on StartNode's goroutine); the map's lock is for the readers of
// the read workloads; the persister runs on the snapshot executor.
//
// Besides the map, the state may hold a blob, for the install workload: a
// command under blobKey gives it one of a size and a seed, whose bytes are
// generated (blobBlock) rather than kept. A snapshot carries the blob as
// a file of that many bytes, generated as it is written, and a load reads
// every byte of it back and checks it against the generator: the bytes
// really travel through the snapshot paths, but no replica keeps a copy
// of them beside its snapshots.
type kv struct {
	fsm.Base
	m    *loadgen.Map
	blob blobSpec // owned by the FSM caller

	// For the member's status, from any goroutine: the size of the
	// newest snapshot persisted (data and files), and the latest
	// OnSnapshotLoad's duration and bytes read.
	snapBytes atomic.Int64
	loadNanos atomic.Int64
	loadBytes atomic.Int64

	// leading receives a token when the node begins to lead
	// (OnLeaderStart), for the clients of a Follow load.
	leading chan struct{}
}

// blobKey, as a command's key, gives the state machine a blob: the value
// is its size and seed, 8 bytes each, big endian.
const blobKey = math.MaxUint64

// blobSpec is the blob of a state: size bytes from seed (none if size is 0).
type blobSpec struct {
	size int64
	seed uint64
}

func newKV() *kv { return &kv{m: loadgen.NewMap(), leading: make(chan struct{}, 1)} }

// OnLeaderStart wakes a Follow load's client waiting for its node to
// lead.
func (s *kv) OnLeaderStart(uint64) {
	select {
	case s.leading <- struct{}{}:
	default:
	}
}

func (s *kv) OnApply(it fsm.Iterator) {
	s.m.Lock()
	for it.Next() {
		d := it.Data() // stays valid: the map keeps it
		if len(d) >= 8+16 && binary.BigEndian.Uint64(d) == blobKey {
			s.blob = blobSpec{size: int64(binary.BigEndian.Uint64(d[8:])), seed: binary.BigEndian.Uint64(d[16:])}
			continue
		}
		s.m.PutLocked(d)
	}
	s.m.Unlock()
}

func (s *kv) get(key uint64) ([]byte, bool) { return s.m.Get(key) }

// blobCommand is the command that gives the state a blob.
func blobCommand(size int64, seed uint64) []byte {
	b := make([]byte, 8+16)
	binary.BigEndian.PutUint64(b, blobKey)
	binary.BigEndian.PutUint64(b[8:], uint64(size))
	binary.BigEndian.PutUint64(b[16:], seed)
	return b
}

// The snapshot's data: a header, then each key and its value.
//
//	"abkv" | version uint32 | blob size uint64 | blob seed uint64 | count uint64
//	count × (key uint64 | length uint32 | value)
//
// all big endian; the blob, if any, is the snapshot's file blobFile.
const (
	kvMagic   = "abkv"
	kvVersion = 1
	blobFile  = "blob"
	// maxValue bounds a value's length in a snapshot (a command is at
	// most 64 MiB).
	maxValue = 64 << 20
)

// OnSnapshotSave captures a copy of the map: the values are immutable
// (the map keeps the commands' bytes), so a copy of the map is a copy of
// the state, O(keys) — about 30 µs for the standard 1,024 keys, and tens
// of ms for the restart workload's 800,000.
func (s *kv) OnSnapshotSave(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	return &kvCapture{sm: s, m: s.m.Snapshot(), blob: s.blob}, nil
}

// kvCapture is a captured state, persisted on the snapshot executor.
type kvCapture struct {
	sm   *kv
	m    map[uint64][]byte
	blob blobSpec
}

func (c *kvCapture) Persist(sink fsm.SnapshotSink) error {
	cw := &countingWriter{w: sink}
	w := bufio.NewWriterSize(cw, 256<<10)
	var hdr [4 + 4 + 8 + 8 + 8]byte
	copy(hdr[:], kvMagic)
	binary.BigEndian.PutUint32(hdr[4:], kvVersion)
	binary.BigEndian.PutUint64(hdr[8:], uint64(c.blob.size))
	binary.BigEndian.PutUint64(hdr[16:], c.blob.seed)
	binary.BigEndian.PutUint64(hdr[24:], uint64(len(c.m)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	var rec [12]byte
	for k, v := range c.m {
		binary.BigEndian.PutUint64(rec[:], k)
		binary.BigEndian.PutUint32(rec[8:], uint32(len(v)))
		if _, err := w.Write(rec[:]); err != nil {
			return err
		}
		if _, err := w.Write(v); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	total := cw.n
	if c.blob.size > 0 {
		f, err := sink.AddFile(blobFile)
		if err != nil {
			return err
		}
		if err := writeBlob(f, c.blob); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		total += c.blob.size
	}
	c.sm.snapBytes.Store(total)
	return nil
}

func (c *kvCapture) Release() { c.m = nil }

// OnSnapshotLoad replaces the map (and blob) with the snapshot's. The
// values are carved out of large slabs, one allocation per 4 MiB.
func (s *kv) OnSnapshotLoad(src fsm.SnapshotSource) error {
	start := time.Now()
	cr := &countingReader{r: src}
	m, blob, err := decodeKV(bufio.NewReaderSize(cr, 256<<10))
	if err != nil {
		return err
	}
	n := cr.n
	if blob.size > 0 {
		f, err := src.OpenFile(blobFile)
		if err != nil {
			return fmt.Errorf("the snapshot's blob: %w", err)
		}
		err = verifyBlob(f, blob)
		f.Close()
		if err != nil {
			return err
		}
		n += blob.size
	}
	s.m.Restore(m)
	s.blob = blob
	s.loadNanos.Store(int64(time.Since(start)))
	s.loadBytes.Store(n)
	return nil
}

// decodeKV reads a snapshot's data (see kvMagic), all of it.
func decodeKV(r io.Reader) (map[uint64][]byte, blobSpec, error) {
	var hdr [32]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, blobSpec{}, fmt.Errorf("kv snapshot header: %w", err)
	}
	if string(hdr[:4]) != kvMagic || binary.BigEndian.Uint32(hdr[4:]) != kvVersion {
		return nil, blobSpec{}, fmt.Errorf("not a kv snapshot of version %d: %q", kvVersion, hdr[:8])
	}
	blob := blobSpec{size: int64(binary.BigEndian.Uint64(hdr[8:])), seed: binary.BigEndian.Uint64(hdr[16:])}
	if blob.size < 0 {
		return nil, blobSpec{}, fmt.Errorf("kv snapshot: blob of %d bytes", blob.size)
	}
	count := binary.BigEndian.Uint64(hdr[24:])
	// The entries are read into a slice first (count is not trusted with
	// an allocation), then put in a map of the right size: growing the
	// map as they come costs more than the slice.
	type entry struct {
		key uint64
		v   []byte
	}
	var entries []entry
	var slab []byte
	var rec [12]byte
	for i := uint64(0); i < count; i++ {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return nil, blobSpec{}, fmt.Errorf("kv snapshot entry %d of %d: %w", i, count, err)
		}
		n := int(binary.BigEndian.Uint32(rec[8:]))
		if n > maxValue {
			return nil, blobSpec{}, fmt.Errorf("kv snapshot entry %d: a value of %d bytes", i, n)
		}
		if cap(slab)-len(slab) < n {
			slab = make([]byte, 0, max(n, 4<<20))
		}
		v := slab[len(slab) : len(slab)+n : len(slab)+n]
		slab = slab[:len(slab)+n]
		if _, err := io.ReadFull(r, v); err != nil {
			return nil, blobSpec{}, fmt.Errorf("kv snapshot entry %d of %d: %w", i, count, err)
		}
		entries = append(entries, entry{binary.BigEndian.Uint64(rec[:]), v})
	}
	var one [1]byte
	if n, err := r.Read(one[:]); n > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("bytes after the last entry")
		}
		return nil, blobSpec{}, fmt.Errorf("kv snapshot: %w", err)
	}
	m := make(map[uint64][]byte, len(entries))
	for _, e := range entries {
		m[e.key] = e.v
	}
	return m, blob, nil
}

// The blob's bytes: block b (of blobBlock bytes; the last one cut short)
// is a pseudo-random pattern drawn once from the seed, each 8-byte word
// XORed with a function of b, so that no two blocks are alike.
const blobBlock = 1 << 20

func blobPattern(seed uint64) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	p := make([]byte, blobBlock)
	_, _ = rand.NewChaCha8(key).Read(p)
	return p
}

func fillBlock(dst, pattern []byte, b uint64) {
	x := (b + 1) * 0x9E3779B97F4A7C15
	n := len(dst) &^ 7
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], binary.LittleEndian.Uint64(pattern[i:])^x)
	}
	copy(dst[n:], pattern[n:len(dst)])
}

func writeBlob(w io.Writer, blob blobSpec) error {
	pattern := blobPattern(blob.seed)
	buf := make([]byte, blobBlock)
	for off, b := int64(0), uint64(0); off < blob.size; b++ {
		n := min(int64(blobBlock), blob.size-off)
		fillBlock(buf[:n], pattern, b)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// verifyBlob reads the whole blob from r and checks every byte.
func verifyBlob(r io.Reader, blob blobSpec) error {
	pattern := blobPattern(blob.seed)
	want := make([]byte, blobBlock)
	got := make([]byte, blobBlock)
	for off, b := int64(0), uint64(0); off < blob.size; b++ {
		n := min(int64(blobBlock), blob.size-off)
		if _, err := io.ReadFull(r, got[:n]); err != nil {
			return fmt.Errorf("the snapshot's blob at byte %d of %d: %w", off, blob.size, err)
		}
		fillBlock(want[:n], pattern, b)
		if !bytes.Equal(got[:n], want[:n]) {
			return fmt.Errorf("the snapshot's blob differs from its generator in block %d", b)
		}
		off += n
	}
	var one [1]byte
	if n, err := r.Read(one[:]); n > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("longer than its size")
		}
		return fmt.Errorf("the snapshot's blob: %w", err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
