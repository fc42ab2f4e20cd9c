package logmgr

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
	"github.com/asyncraft/asyncraft/vfs"
)

// FuzzDecodeMeta feeds arbitrary bytes to the meta file decoder: it never
// panics, and whatever it accepts encodes back to a file that decodes to
// the same hard state. The seeds are files with and without a bootstrap
// record, and a hard state written before the record existed.
func FuzzDecodeMeta(f *testing.F) {
	for _, hs := range []*raftpb.HardState{
		{},
		hs1,
		{Term: 9, Vote: "n3", Commit: 4, Bootstrap: &raftpb.Bootstrap{
			ClusterId: "prod-eu", Group: "g", Id: "n3",
			Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "n1", Addr: "a:1"}, {Id: "n3", Addr: "c:1"}}},
		}},
	} {
		b, err := encodeMeta(hs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hs, err := decodeMeta(data)
		if err != nil {
			return
		}
		again, err := encodeMeta(hs)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", hs, err)
		}
		back, err := decodeMeta(again)
		if err != nil || !proto.Equal(back, hs) {
			t.Fatalf("decoded %v, encoded again it decodes to %v (%v)", hs, back, err)
		}
	})
}

// TestMetaKeepsBootstrap: a hard state with a bootstrap record survives a
// save and a reopen whole, and one written before the record existed
// (no field 4) reads as a hard state without a record.
func TestMetaKeepsBootstrap(t *testing.T) {
	fsys := vfs.NewMem()
	m := openMeta(t, fsys, metaDir)
	hs := &raftpb.HardState{Term: 2, Vote: "n1", Bootstrap: &raftpb.Bootstrap{ClusterId: "c", Group: "g", Id: "n1",
		Configuration: &raftpb.Configuration{Voters: []*raftpb.Peer{{Id: "n1", Addr: "n1"}, {Id: "n2", Addr: "n2"}}}}}
	mustSave(t, m, hs)
	wantLoad(t, openMeta(t, fsys, metaDir), hs)
	old, err := encodeMeta(&raftpb.HardState{Term: 5, Vote: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile(metaFile, old); err != nil {
		t.Fatal(err)
	}
	got, err := openMeta(t, fsys, metaDir).Load()
	if err != nil || got.Bootstrap != nil || got.Term != 5 {
		t.Fatalf("Load of a file without a record = %v, %v", got, err)
	}
}
