package main

import (
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/fsm"
)

// kv is the benchmark's state machine (loadgen.Map, the same for every
// system) as an asyncraft state machine. OnApply runs on the node's FSM
// caller; the map's lock is for the readers of the read workloads.
type kv struct {
	fsm.Base
	m *loadgen.Map
}

func newKV() *kv { return &kv{m: loadgen.NewMap()} }

func (s *kv) OnApply(it fsm.Iterator) {
	s.m.Lock()
	for it.Next() {
		s.m.PutLocked(it.Data()) // Data stays valid: the map keeps it
	}
	s.m.Unlock()
}

func (s *kv) get(key uint64) ([]byte, bool) { return s.m.Get(key) }
