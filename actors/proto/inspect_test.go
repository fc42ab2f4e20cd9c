package protoactor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	_ "google.golang.org/protobuf/types/known/structpb" // ListValue, for payloads that amplify
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/asyncraft/asyncraft/raftpb"
)

func testInspector() *inspector {
	return &inspector{budget: decodeFactor * DefaultMaxMessageBytes, accept: acceptTypes(nil)}
}

// goodBatch is what protoactor's endpoint writer sends for ctx.Send of
// StringValues to two actors.
func goodBatch(t testing.TB) []byte {
	t.Helper()
	data, err := proto.Marshal(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{
		MessageBatch: &remote.MessageBatch{
			TypeNames: []string{stringValueType},
			Targets:   []string{"a", "b"},
			Envelopes: []*remote.MessageEnvelope{
				{TypeId: 0, Target: 0, MessageData: data},
				{TypeId: 0, Target: 1, MessageData: data},
			},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInspectAccepts(t *testing.T) {
	in := testInspector()
	good := goodBatch(t)
	cost, err := in.inspect(good)
	if err != nil {
		t.Fatalf("a batch as protoactor sends it: %v", err)
	}
	if cost < len(good) {
		t.Errorf("cost %d is below the %d bytes of the batch", cost, len(good))
	}
	connect := connectRequest("member", "127.0.0.1:7001")
	if _, err := in.inspect(connect); err != nil {
		t.Errorf("a connect request: %v", err)
	}
	// An empty batch decodes to nothing and is harmless.
	if _, err := in.inspect(batchMsg(nil)); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
}

// badMessages are RemoteMessages the boundary must refuse, by what is
// wrong with them. Each would otherwise make protoactor panic, let a peer
// act on actors it must not reach, or cost more than the budget.
func badMessages() map[string][]byte {
	hello := stringValue("hello")
	one := []string{stringValueType}
	targets := []string{"inbox"}
	unknownField := protowire.AppendVarint(protowire.AppendTag(nil, 15, protowire.VarintType), 1)
	var list []byte
	for len(list) < 2<<20 {
		list = protowire.AppendTag(list, 1, protowire.BytesType)
		list = protowire.AppendVarint(list, 0)
	}
	envs := make([][]byte, maxBatchEnvelopes+1)
	for i := range envs {
		envs[i] = env(0, 0, 0, hello)
	}
	header := append(env(0, 0, 0, hello), protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), nil)...)
	serializer := append(env(0, 0, 0, hello), protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1)...)
	senderTable := append(batchOf(one, targets, env(0, 0, 1, hello)),
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), nil)...)
	wrongWire := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{1})
	connectWith := func(field protowire.Number, v []byte) []byte {
		cr := protowire.AppendBytes(protowire.AppendTag(nil, field, protowire.BytesType), v)
		return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), cr)
	}
	blockList := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "someone")
	return map[string][]byte{
		"target -1":              batchMsg(batchOf(one, targets, env(0, -1, 0, hello))),
		"target out of range":    batchMsg(batchOf(one, targets, env(0, 1, 0, hello))),
		"no targets":             batchMsg(batchOf(one, nil, env(0, 0, 0, hello))),
		"type id -1":             batchMsg(batchOf(one, targets, env(-1, 0, 0, hello))),
		"type id out of range":   batchMsg(batchOf(one, targets, env(1, 0, 0, hello))),
		"no type names":          batchMsg(batchOf(nil, targets, env(0, 0, 0, hello))),
		"sender -1":              batchMsg(batchOf(one, targets, env(0, 0, -1, hello))),
		"sender out of range":    batchMsg(batchOf(one, targets, env(0, 0, 1, hello))),
		"a sender table":         batchMsg(senderTable),
		"a message header":       batchMsg(batchOf(one, targets, header)),
		"the JSON serializer":    batchMsg(batchOf(one, targets, serializer)),
		"an unregistered type":   batchMsg(batchOf([]string{"no.such.Type"}, targets, env(0, 0, 0, hello))),
		"actor.PoisonPill":       batchMsg(batchOf([]string{"actor.PoisonPill"}, targets, env(0, 0, 0, nil))),
		"actor.Stop":             batchMsg(batchOf([]string{"actor.Stop"}, targets, env(0, 0, 0, nil))),
		"actor.Terminated":       batchMsg(batchOf([]string{"actor.Terminated"}, targets, env(0, 0, 0, nil))),
		"remote.ActorPidRequest": batchMsg(batchOf([]string{"remote.ActorPidRequest"}, []string{"activator"}, env(0, 0, 0, nil))),
		"a payload not protobuf": batchMsg(batchOf(one, targets, env(0, 0, 0, []byte{0xff, 0xff, 0xff}))),
		"a payload that amplifies": batchMsg(batchOf([]string{"google.protobuf.ListValue"}, targets,
			env(0, 0, 0, list), env(0, 0, 0, list), env(0, 0, 0, list), env(0, 0, 0, list))),
		"too many envelopes":           batchMsg(batchOf(one, targets, envs...)),
		"a long target name":           batchMsg(batchOf(one, []string{strings.Repeat("n", maxNameBytes+1)}, env(0, 0, 0, hello))),
		"an unknown envelope field":    batchMsg(batchOf(one, targets, append(env(0, 0, 0, hello), unknownField...))),
		"an unknown batch field":       batchMsg(append(batchOf(one, targets, env(0, 0, 0, hello)), unknownField...)),
		"a type id of wire type bytes": batchMsg(batchOf(one, targets, append(env(0, 0, 0, hello), wrongWire...))),
		"two batches":                  append(batchMsg(batchOf(one, targets)), batchMsg(batchOf(one, targets))...),
		"nothing":                      {},
		"garbage":                      []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"a connect response":           protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), nil),
		"a disconnect request":         protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), nil),
		"a client connection":          connectWith(1, nil),
		"a block list":                 connectWith(2, blockList),
		"an unknown top-level field":   unknownField,
	}
}

func TestInspectRefuses(t *testing.T) {
	in := testInspector()
	bad := badMessages()
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		if _, err := in.inspect(bad[name]); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%-28s %v", name+":", err)
		}
	}
}

func TestInspectOnlyRemoteTypes(t *testing.T) {
	in := &inspector{budget: 1 << 30, accept: acceptTypes([]protoreflect.FullName{"google.protobuf.Int64Value"})}
	if _, err := in.inspect(goodBatch(t)); err == nil {
		t.Fatal("a StringValue passed a filter of Int64Value")
	}
	var re *rejectError
	if _, err := in.inspect(goodBatch(t)); !errors.As(err, &re) {
		t.Fatalf("refused with %v, want a rejectError", err)
	}
	if md, ok := acceptTypes(nil)("actor.PID"); ok {
		t.Fatalf("protoactor's %s accepted by default", md.FullName())
	}
}

// FuzzInspect: whatever the bytes, inspect does not panic, and what it
// accepts is safe for protoactor's endpoint reader: it decodes, and every
// index is within its table.
func FuzzInspect(f *testing.F) {
	f.Add(goodBatch(f))
	f.Add(connectRequest("m", "a:1"))
	for _, m := range badMessages() {
		if len(m) < 4096 {
			f.Add(m)
		}
	}
	in := testInspector()
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := in.inspect(b); err != nil {
			return
		}
		var rm remote.RemoteMessage
		if err := proto.Unmarshal(b, &rm); err != nil {
			// Only what protobuf checks beyond the wire format: UTF-8 in
			// the names. protoactor's reader never sees these.
			return
		}
		batch := rm.GetMessageBatch()
		if batch == nil {
			return
		}
		if len(batch.Senders) != 0 {
			t.Fatal("accepted a sender table")
		}
		for _, e := range batch.Envelopes {
			if e.TypeId < 0 || int(e.TypeId) >= len(batch.TypeNames) ||
				e.Target < 0 || int(e.Target) >= len(batch.Targets) || e.Sender != 0 || e.SerializerId != 0 {
				t.Fatalf("accepted an envelope %v with %d types and %d targets", e, len(batch.TypeNames), len(batch.Targets))
			}
			if _, err := remote.Deserialize(e.MessageData, batch.TypeNames[e.TypeId], e.SerializerId); err != nil {
				// The wire walk accepts what only decoding refuses (UTF-8
				// in strings): protoactor then reports it, and the
				// runtime counts it as malformed.
				continue
			}
		}
	})
}

var _ = actor.PID{} // the envelope's sender table holds these

// TestLargestAppendFitsTheBudget: the most costly message asyncraft sends,
// an AppendRequest filled to the largest MaxBytesPerRPC a host allows with
// empty entries (each counts 24 bytes against the cap, see
// logmgr.EntrySize), costs far less than the decode budget, so the
// boundary never refuses what a peer legitimately sends.
func TestLargestAppendFitsTheBudget(t *testing.T) {
	const maxBytesPerRPC = DefaultMaxMessageBytes - 64<<10
	b := appendOf(maxBytesPerRPC/24, 0)
	if len(b) > DefaultMaxMessageBytes {
		t.Fatalf("the append is %d bytes, over MaxMessageBytes", len(b))
	}
	var md protoreflect.MessageDescriptor = (&raftpb.Envelope{}).ProtoReflect().Descriptor()
	cost, err := decodeCost(md, b, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	budget := decodeFactor * DefaultMaxMessageBytes
	t.Logf("%d entries: wire %d, cost %d (%.1f MiB of a %d MiB budget)", maxBytesPerRPC/24, len(b), cost, float64(cost)/(1<<20), budget>>20)
	if cost+len(b)+envelopeCost+batchBaseCost > budget/2 {
		t.Fatalf("cost %d leaves less than half the budget %d", cost, budget)
	}
}

// BenchmarkInspect compares the inspection of a batch with its decoding
// (which protoactor does after it, payloads included): a batch of one
// 512 KiB AppendRequest of 100-byte entries, and one of 1000 heartbeats.
func BenchmarkInspect(b *testing.B) {
	hb, err := proto.Marshal(&raftpb.Envelope{Group: "group-0001", From: "n1", To: "n2", Term: 7, Seq: 99,
		Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{Commit: 1 << 40}}})
	if err != nil {
		b.Fatal(err)
	}
	envType := string(proto.MessageName(&raftpb.Envelope{}))
	var beats [][]byte
	var targets []string
	for i := range 1000 {
		beats = append(beats, env(0, int32(i), 0, hb))
		targets = append(targets, fmt.Sprintf("group-%04d/n2/node", i))
	}
	batches := map[string][]byte{
		"append":     batchMsg(batchOf([]string{envType}, []string{"g/n2/node"}, env(0, 0, 0, appendOf(512<<10/124, 100)))),
		"heartbeats": batchMsg(batchOf([]string{envType}, targets, beats...)),
	}
	in := testInspector()
	for _, name := range []string{"append", "heartbeats"} {
		raw := batches[name]
		b.Run(name+"/inspect", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := in.inspect(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				var rm remote.RemoteMessage
				if err := proto.Unmarshal(raw, &rm); err != nil {
					b.Fatal(err)
				}
				for _, e := range rm.GetMessageBatch().Envelopes {
					var m raftpb.Envelope
					if err := proto.Unmarshal(e.MessageData, &m); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
