package chaos

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/raftpb"
)

// Snapshots of the workload's state machine, and the checks that go with
// them:
//
//   - replicas that reached the same applied index hold the same state:
//     each kvMachine hashes its state after every entry it applies and
//     after every snapshot it loads, and the oracle compares the hash with
//     the first one seen at that index (whichever node, whichever way it
//     got there: applying entries, loading its own snapshot at restart,
//     or installing the leader's);
//   - a node's published indexes keep first log index <= snapshot index
//     + 1 <= applied + 1 <= commit + 1 (invariants.go);
//   - no acknowledged write is lost across installs and restarts from
//     snapshots: the linearizability and acknowledged-write checks run as
//     before.
//
// A snapshot holds the map and the index, as JSON behind its length, then
// Config.SnapshotPadding bytes of filler (checked on load), so that it can
// span several chunks and take a while to persist.

// tamper returns the run's CorruptChunks nemesis (nil without it): one
// snapshot chunk in 6, on a random stream of its own, arrives with one
// byte flipped.
func (r *run) tamper() func(from, to actors.Ref, msg proto.Message) proto.Message {
	if r.cfg.Nemeses&CorruptChunks == 0 {
		return nil
	}
	rnd := rand.New(rand.NewPCG(r.cfg.Seed, 0x636f7272))
	return func(from, to actors.Ref, msg proto.Message) proto.Message {
		e, ok := msg.(*raftpb.Envelope)
		if !ok || len(e.GetSnapshotChunk().GetData()) == 0 || rnd.IntN(6) != 0 {
			return msg
		}
		c := proto.CloneOf(e)
		d := c.GetSnapshotChunk().Data
		d[rnd.IntN(len(d))] ^= byte(1 + rnd.IntN(255))
		r.corrupted++
		return c
	}
}

// stateSeen is the first state seen at an index.
type stateSeen struct {
	hash uint64
	node string
}

// state checks the state hash node reached at index against the first one
// seen there.
func (o *oracle) state(node string, index, hash uint64) {
	if s, ok := o.states[index]; !ok {
		o.states[index] = stateSeen{hash, node}
	} else if s.hash != hash {
		o.r.violate("replica state", "%s's state at index %d differs from %s's there (hash %016x, %016x)", node, index, s.node, hash, s.hash)
	}
}

// hashState hashes a state machine's map, keys in order.
func hashState(data map[string]string) uint64 {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(data[k]), data[k])
	}
	return h.Sum64()
}

type kvSnapshot struct {
	Index uint64
	// LastData is the last entry with a command at or before Index (the
	// entries after it up to Index, if any, are no-ops), where the
	// machines that applied the entries hashed the same state.
	LastData uint64
	Data     map[string]string
	// Node is the node that took it, with Config.snapshotsDiffer only.
	Node string `json:",omitempty"`
}

// OnSnapshotSave captures a copy of the map (it is small).
func (m *kvMachine) OnSnapshotSave(meta fsm.SnapshotMeta) (fsm.SnapshotPersister, error) {
	m.r.snapshots++
	if meta.Index < m.last {
		m.r.violate("snapshot", "%s is asked for a snapshot at %d with %d applied", m.id, meta.Index, m.last)
	}
	snap := kvSnapshot{Index: meta.Index, LastData: m.last, Data: maps.Clone(m.data)}
	if m.r.cfg.snapshotsDiffer {
		snap.Node = m.id
	}
	return &kvPersister{snap: snap, pad: m.r.cfg.SnapshotPadding}, nil
}

type kvPersister struct {
	snap kvSnapshot
	pad  int
}

func (p *kvPersister) Persist(sink fsm.SnapshotSink) error {
	b, err := json.Marshal(p.snap)
	if err != nil {
		return err
	}
	if _, err := sink.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b)))); err != nil {
		return err
	}
	if _, err := sink.Write(b); err != nil {
		return err
	}
	filler := make([]byte, 4096)
	for i := range filler {
		filler[i] = byte(i * 7)
	}
	for left := p.pad; left > 0; left -= len(filler) {
		if _, err := sink.Write(filler[:min(left, len(filler))]); err != nil {
			return err
		}
	}
	return nil
}

func (p *kvPersister) Release() {}

// OnSnapshotLoad replaces the map with the snapshot's.
func (m *kvMachine) OnSnapshotLoad(src fsm.SnapshotSource) error {
	var n [4]byte
	if _, err := io.ReadFull(src, n[:]); err != nil {
		return err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(src, b); err != nil {
		return err
	}
	var s kvSnapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	rest, err := io.ReadAll(src) // the filler, and the checksum at the end
	if err != nil {
		return err
	}
	for i, c := range rest {
		if c != byte((i%4096)*7) {
			return errors.New("kvMachine: snapshot filler damaged")
		}
	}
	if s.Index != src.Meta().Index {
		m.r.violate("snapshot", "%s loads a snapshot of index %d that says %d", m.id, src.Meta().Index, s.Index)
	}
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	m.r.loads++
	m.data, m.last = s.Data, s.Index
	if s.LastData > 0 {
		m.r.oracle.state(m.id, s.LastData, hashState(m.data))
	}
	return nil
}
