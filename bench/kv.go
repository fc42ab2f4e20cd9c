package main

import (
	"encoding/binary"
	"sync"

	"github.com/asyncraft/asyncraft/fsm"
)

// kv is the benchmark's state machine: a map from an 8-byte key to the
// value that follows it in the command. OnApply runs on the node's FSM
// caller; the lock is for the readers of the read workloads.
type kv struct {
	fsm.Base
	mu sync.RWMutex
	m  map[uint64][]byte
}

func newKV() *kv { return &kv{m: make(map[uint64][]byte, 1024)} }

func (s *kv) OnApply(it fsm.Iterator) {
	s.mu.Lock()
	for it.Next() {
		d := it.Data()
		if len(d) < 8 {
			continue // a leader's no-op, or not ours
		}
		s.m[binary.BigEndian.Uint64(d)] = d[8:] // Data stays valid: keep it
	}
	s.mu.Unlock()
}

func (s *kv) get(key uint64) ([]byte, bool) {
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	return v, ok
}

// encodeCommand encodes key and value as one command: 8 bytes of key, big
// endian, then the value.
func encodeCommand(key uint64, value []byte) []byte {
	b := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(b, key)
	copy(b[8:], value)
	return b
}
