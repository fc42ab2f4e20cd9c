package main

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/asyncraft/asyncraft/fsm"
)

// The counter's snapshots: its value, msgpack-encoded. The capture copies
// the value (OnSnapshotSave runs between two applies); the persister
// writes the copy while the counter goes on.

var mh = &codec.MsgpackHandle{}

type counterSnapshot struct{ Value uint64 }

// OnSnapshotSave captures the value.
func (c *counter) OnSnapshotSave(fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return counterSnapshot{Value: c.value}, nil
}

// Persist writes the captured value.
func (s counterSnapshot) Persist(sink fsm.SnapshotSink) error {
	return codec.NewEncoder(sink, mh).Encode(s)
}

// Release has nothing to release.
func (counterSnapshot) Release() {}

// OnSnapshotLoad replaces the value with the snapshot's.
func (c *counter) OnSnapshotLoad(src fsm.SnapshotSource) error {
	var s counterSnapshot
	if err := codec.NewDecoder(src, mh).Decode(&s); err != nil {
		return fmt.Errorf("counter: decode snapshot: %w", err)
	}
	c.mu.Lock()
	c.value, c.index = s.Value, src.Meta().Index
	c.mu.Unlock()
	return nil
}
