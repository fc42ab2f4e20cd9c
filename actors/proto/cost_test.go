package protoactor

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/asyncraft/asyncraft/raftpb"
)

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// repeatedEmpty encodes n empty occurrences of field num: the most
// amplifying bytes protobuf has (two bytes, one struct).
func repeatedEmpty(num protowire.Number, n int) []byte {
	var b []byte
	for range n {
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, 0)
	}
	return b
}

// appendOf encodes a raftpb.Envelope carrying an AppendRequest of n entries
// of data bytes each, at indexes past 2^40 (as a long-lived log has).
func appendOf(n, data int) []byte {
	req := &raftpb.AppendRequest{PrevLogIndex: 1 << 40, PrevLogTerm: 7, Commit: 1 << 40}
	for i := range n {
		req.Entries = append(req.Entries, &raftpb.Entry{Index: 1<<40 + uint64(i) + 1, Term: 7, Data: make([]byte, data)})
	}
	b, err := proto.Marshal(&raftpb.Envelope{Group: "group-0001", From: "n1", To: "n2", Term: 7, Seq: 99,
		Body: &raftpb.Envelope_AppendRequest{AppendRequest: req}})
	if err != nil {
		panic(err)
	}
	return b
}

// TestDecodeCostBoundsHeap checks the model against Go's allocations: the
// cost of decoding never falls below what proto.Unmarshal allocates, and
// does not overshoot it wildly.
func TestDecodeCostBoundsHeap(t *testing.T) {
	deep := &structpb.ListValue{}
	for range 30 {
		deep = &structpb.ListValue{Values: []*structpb.Value{structpb.NewListValue(deep)}}
	}
	fields := map[string]any{}
	for i := range 2000 {
		fields[fmt.Sprintf("key-%d", i)] = float64(i)
	}
	st, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	must := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		msg  proto.Message // the type to decode into
		b    []byte
	}{
		{"empty entries", &raftpb.Envelope{}, appendOf(20000, 0)},
		{"entries of 100 bytes", &raftpb.Envelope{}, appendOf(5000, 100)},
		{"entries of 1 KiB", &raftpb.Envelope{}, appendOf(1000, 1024)},
		{"a heartbeat", &raftpb.Envelope{}, must(&raftpb.Envelope{Group: "g", From: "n1", To: "n2", Term: 3,
			Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{Commit: 5}}})},
		{"empty list values", &structpb.ListValue{}, repeatedEmpty(1, 50000)},
		{"a map", &structpb.Struct{}, must(st)},
		{"nested lists", &structpb.ListValue{}, must(deep)},
		{"a large string", &wrapperspb.StringValue{}, must(wrapperspb.String(strings.Repeat("s", 1<<20)))},
		{"unknown fields", &wrapperspb.StringValue{}, repeatedEmpty(9, 50000)},
	}
	for _, c := range cases {
		md := c.msg.ProtoReflect().Descriptor()
		cost, err := decodeCost(md, c.b, 1<<30)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		const runs = 5
		msgs := make([]proto.Message, runs)
		real := allocated(func() {
			for i := range msgs {
				m := c.msg.ProtoReflect().New().Interface()
				if err := proto.Unmarshal(c.b, m); err != nil {
					t.Fatal(err)
				}
				msgs[i] = m
			}
		}) / runs
		runtime.KeepAlive(msgs)
		t.Logf("%-20s wire %8d  allocated %9d  cost %9d  (%.1f× the wire, %.2f× the heap)",
			c.name, len(c.b), real, cost, float64(cost)/float64(len(c.b)), float64(cost)/float64(real))
		// TotalAlloc counts the whole process: other goroutines (the
		// runtime's, earlier tests' leftovers) may add a few bytes to a
		// run, so the model may fall short by that much, no more.
		const noise = 256
		if uint64(cost)+noise < real {
			t.Errorf("%s: cost %d is below the %d bytes decoding allocates", c.name, cost, real)
		}
		if uint64(cost) > 4*real+256 {
			t.Errorf("%s: cost %d is over 4 times the %d bytes decoding allocates", c.name, cost, real)
		}
	}
}

func TestDecodeCostRefuses(t *testing.T) {
	lv := (&structpb.ListValue{}).ProtoReflect().Descriptor()
	if _, err := decodeCost(lv, repeatedEmpty(1, 100000), 1<<20); err == nil {
		t.Error("100000 empty values fit a budget of 1 MiB")
	}
	if _, err := decodeCost(lv, []byte{0x0a, 0x05, 0x01}, 1<<20); err != errWire {
		t.Errorf("a truncated field: %v, want errWire", err)
	}
	// Nesting past maxDecodeDepth.
	b := []byte{}
	for range maxDecodeDepth/2 + 2 {
		// ListValue.values (1) -> Value.list_value (6) -> ListValue ...
		b = protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), b)
		b = protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
	}
	if _, err := decodeCost(lv, b, 1<<30); err != errDepth {
		t.Errorf("nesting %d deep: %v, want errDepth", maxDecodeDepth+2, err)
	}
}

// FuzzDecodeCost: the cost walk never panics, and it refuses no bytes that
// protobuf decodes, but for nesting past maxDecodeDepth (protobuf allows
// 10000 levels).
func FuzzDecodeCost(f *testing.F) {
	f.Add(appendOf(3, 10))
	f.Add(repeatedEmpty(1, 10))
	f.Add([]byte{0x0a, 0x02, 0x32, 0x00})
	md := (&raftpb.Envelope{}).ProtoReflect().Descriptor()
	lv := (&structpb.ListValue{}).ProtoReflect().Descriptor()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&raftpb.Envelope{}, &structpb.ListValue{}} {
			d := md
			if _, ok := m.(*structpb.ListValue); ok {
				d = lv
			}
			_, err := decodeCost(d, b, 1<<30)
			if proto.Unmarshal(b, m) != nil || err == errDepth {
				continue
			}
			if err != nil {
				t.Fatalf("%s: protobuf decodes %x, the cost walk refuses it: %v", d.FullName(), b, err)
			}
		}
	})
}
