package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/asyncraft/asyncraft/fsm"
)

// Snapshots of the store: a msgpack stream of a header and then one
// [key, value] pair per key, so that neither end holds the encoding of the
// whole store at once.

// snapshotVersion is the format of a store snapshot.
const snapshotVersion = 1

type snapshotHeader struct {
	Version int
	Keys    int
}

// OnSnapshotSave captures the store: a copy of the map (its strings are
// immutable and shared, so the copy costs one map entry per key), made
// under the read lock between two applies. The persister encodes the copy
// while OnApply goes on changing the live map. A store too large to copy
// quickly would keep a persistent (copy-on-write) map instead.
func (s *Store) OnSnapshotSave(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.applied != meta.Index {
		// The FSM caller captures between two applies: the store has
		// applied exactly meta.Index.
		return nil, fmt.Errorf("kvstore: snapshot of index %d asked while the store has applied %d", meta.Index, s.applied)
	}
	return &storeSnapshot{data: maps.Clone(s.data)}, nil
}

type storeSnapshot struct{ data map[string]entry }

// Persist writes the captured map to sink.
func (p *storeSnapshot) Persist(sink fsm.SnapshotSink) error {
	w := bufio.NewWriterSize(sink, 64<<10)
	enc := codec.NewEncoder(w, mh)
	if err := enc.Encode(snapshotHeader{Version: snapshotVersion, Keys: len(p.data)}); err != nil {
		return fmt.Errorf("kvstore: encode snapshot header: %w", err)
	}
	for k, e := range p.data {
		if err := enc.Encode([2]string{k, e.v}); err != nil {
			return fmt.Errorf("kvstore: encode snapshot entry: %w", err)
		}
	}
	return w.Flush()
}

// Release drops the copy.
func (p *storeSnapshot) Release() { p.data = nil }

// OnSnapshotLoad replaces the store with a snapshot's: the map, and the
// statistics and digest recomputed from it.
func (s *Store) OnSnapshotLoad(src fsm.SnapshotSource) error {
	dec := codec.NewDecoder(bufio.NewReaderSize(src, 64<<10), mh)
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("kvstore: decode snapshot header: %w", err)
	}
	if h.Version != snapshotVersion || h.Keys < 0 {
		return fmt.Errorf("kvstore: snapshot format %d with %d keys: this build reads format %d", h.Version, h.Keys, snapshotVersion)
	}
	data := make(map[string]entry, min(h.Keys, 1<<20))
	var bytes int64
	var digest uint64
	for i := 0; i < h.Keys; i++ {
		var kv [2]string
		if err := dec.Decode(&kv); err != nil {
			return fmt.Errorf("kvstore: decode snapshot entry %d of %d: %w", i, h.Keys, err)
		}
		if _, dup := data[kv[0]]; dup {
			return fmt.Errorf("kvstore: snapshot holds key %q twice", kv[0])
		}
		e := entry{v: kv[1], h: fnvString(fnvString(fnvOffset, kv[0]), kv[1])}
		data[kv[0]] = e
		bytes += entrySize(len(kv[0]), len(e.v))
		digest += entryDigest(kv[0], e.h)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("kvstore: snapshot does not end after its %d keys (%v)", h.Keys, err)
	}
	s.mu.Lock()
	s.data, s.bytes, s.digest, s.applied = data, bytes, digest, src.Meta().Index
	s.mu.Unlock()
	return nil
}
