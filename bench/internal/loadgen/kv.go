package loadgen

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3
// significant digits (about 100 KiB for the histogram).
const (
	HistLowest  = 1
	HistHighest = 60_000_000
	HistDigits  = 3
)

// NewHist returns an empty latency histogram.
func NewHist() *hdr.Histogram { return hdr.New(HistLowest, HistHighest, HistDigits) }

// EncodeCommand encodes key and value as one command: 8 bytes of key, big
// endian, then the value. Each call returns a fresh slice (a library may
// keep it).
func EncodeCommand(key uint64, value []byte) []byte {
	b := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(b, key)
	copy(b[8:], value)
	return b
}

// ValueBytes is a value of n pseudo-random bytes, the same in every run.
func ValueBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Map is the benchmark's state machine, the same for every system: a map
// from the command's 8-byte key to the value that follows it. The
// library's apply path calls Put; readers call Get (hence the lock).
type Map struct {
	mu sync.RWMutex
	m  map[uint64][]byte
}

// NewMap returns an empty map sized for the standard 1024 keys.
func NewMap() *Map { return &Map{m: make(map[uint64][]byte, 1024)} }

// Put applies one command. It keeps value: a library whose buffers are
// reused after apply passes a copy. A command shorter than a key (a
// leader's no-op, say) is ignored.
func (s *Map) Put(cmd []byte) {
	if len(cmd) < 8 {
		return
	}
	s.mu.Lock()
	s.m[binary.BigEndian.Uint64(cmd)] = cmd[8:]
	s.mu.Unlock()
}

// PutLocked is Put for a caller that applies a batch under Lock.
func (s *Map) PutLocked(cmd []byte) {
	if len(cmd) >= 8 {
		s.m[binary.BigEndian.Uint64(cmd)] = cmd[8:]
	}
}

// Lock and Unlock bracket a batch of PutLocked.
func (s *Map) Lock()   { s.mu.Lock() }
func (s *Map) Unlock() { s.mu.Unlock() }

// Get returns key's value.
func (s *Map) Get(key uint64) ([]byte, bool) {
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	return v, ok
}

// Len is the number of keys.
func (s *Map) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Snapshot returns a copy of the map, for a library's snapshots.
func (s *Map) Snapshot() map[uint64][]byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[uint64][]byte, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// Restore replaces the map's content.
func (s *Map) Restore(m map[uint64][]byte) {
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
}
