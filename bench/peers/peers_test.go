package main

import (
	"bytes"
	"testing"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// dbEntry is an entry as dragonboat hands it to Update.
func dbEntry(index uint64, cmd []byte) sm.Entry { return sm.Entry{Index: index, Cmd: cmd} }

func TestSnapshotFormat(t *testing.T) {
	in := map[uint64][]byte{1: []byte("one"), 2: {}, 1 << 60: bytes.Repeat([]byte{7}, 120)}
	var b bytes.Buffer
	if err := writeMap(&b, in); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 3*12+3+0+120 {
		t.Errorf("%d bytes", b.Len())
	}
	out, err := readMap(&b)
	if err != nil || len(out) != len(in) {
		t.Fatalf("%v %v", out, err)
	}
	for k, v := range in {
		if !bytes.Equal(out[k], v) {
			t.Errorf("key %d: %q, want %q", k, out[k], v)
		}
	}
	if _, err := readMap(bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, 'x'})); err == nil {
		t.Error("a cut value was read")
	}
}

func TestStateMachines(t *testing.T) {
	peers := []loadgen.Peer{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}
	if r, err := replicaOf("n2", peers); err != nil || r != 2 {
		t.Errorf("replicaOf n2 = %d, %v", r, err)
	}
	if _, err := replicaOf("n9", peers); err == nil {
		t.Error("n9 has a replica id")
	}
	// The dragonboat state machine copies the command and answers a
	// lookup with whether the key has a value.
	db := newDBSM()
	cmd := loadgen.EncodeCommand(5, []byte("v"))
	if _, err := db.Update(dbEntry(9, cmd)); err != nil {
		t.Fatal(err)
	}
	cmd[8] = 'w'
	if v, _ := db.m.Get(5); string(v) != "v" || db.applied.Load() != 9 {
		t.Errorf("value %q applied %d", v, db.applied.Load())
	}
	if found, err := db.Lookup(uint64(5)); err != nil || found != true {
		t.Errorf("lookup 5: %v %v", found, err)
	}
	if found, _ := db.Lookup(uint64(6)); found != false {
		t.Error("lookup 6 found a value")
	}
}
