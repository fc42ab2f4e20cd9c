package asyncraft_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/raftpb"
)

// TestHostSurvivesBadInput runs a single-node group on a networked host and
// sends its port, over raw gRPC, what took clusters down: calls of
// protoactor's unimplemented methods, batches whose indices are out of
// their tables, types other than raftpb.Envelope (protoactor's PoisonPill
// to the node actor, a raftpb.Entry), garbage, and a message over the
// size limit. Each is refused and counted; the node still commits.
func TestHostSurvivesBadInput(t *testing.T) {
	var logs syncBuffer
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	node, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "n1", Peers: []asyncraft.Peer{{ID: "n1", Addr: host.Addr()}},
		StateMachine: &counter{}, ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to lead", 10*time.Second, func() bool { return node.Status().Role == asyncraft.Leader })
	commit := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := node.ApplyWait(ctx, []byte(what)); err != nil {
			t.Fatalf("%s: %v (node %v)", what, err, node.Status())
		}
	}
	commit("before")

	cc, err := grpc.NewClient(host.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.ForceCodecV2(bytesCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	methods := []string{"/remote.Remoting/ListProcesses", "/remote.Remoting/GetProcessDiagnostics", "/remote.Remoting/Other", "/x.Y/Z"}
	for _, m := range methods {
		var out []byte
		if err := cc.Invoke(ctx, m, []byte{}, &out); status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", m, err)
		}
	}

	nodeActor := "g/n1/node"
	envType := string(proto.MessageName(&raftpb.Envelope{}))
	hb, _ := proto.Marshal(&raftpb.Envelope{Group: "g", From: "n9", To: "n1", Term: 1,
		Body: &raftpb.Envelope_HeartbeatRequest{HeartbeatRequest: &raftpb.HeartbeatRequest{}}})
	one, targets := []string{envType}, []string{nodeActor}
	bad := map[string][]byte{
		"target -1":           rawBatch(one, targets, rawEnv(0, -1, 0, hb)),
		"target 1 of 1":       rawBatch(one, targets, rawEnv(0, 1, 0, hb)),
		"type id -1":          rawBatch(one, targets, rawEnv(-1, 0, 0, hb)),
		"type id 1 of 1":      rawBatch(one, targets, rawEnv(1, 0, 0, hb)),
		"sender -1":           rawBatch(one, targets, rawEnv(0, 0, -1, hb)),
		"sender 1 of 0":       rawBatch(one, targets, rawEnv(0, 0, 1, hb)),
		"a raftpb.Entry":      rawBatch([]string{string(proto.MessageName(&raftpb.Entry{}))}, targets, rawEnv(0, 0, 0, nil)),
		"actor.PoisonPill":    rawBatch([]string{"actor.PoisonPill"}, targets, rawEnv(0, 0, 0, nil)),
		"an undecodable body": rawBatch(one, targets, rawEnv(0, 0, 0, []byte{0xff, 0xff})),
		"garbage":             []byte("\x00\x01garbage\xff"),
		"over the size limit": rawBatch(one, targets, rawEnv(0, 0, 0, make([]byte, asyncraft.DefaultMaxMessageBytes+64<<10))),
	}
	for name, msg := range bad {
		err := rawReceive(ctx, cc, msg)
		if c := status.Code(err); c != codes.InvalidArgument && c != codes.ResourceExhausted {
			t.Errorf("%s: %v, want InvalidArgument or ResourceExhausted", name, err)
		}
	}
	commit("after")
	st := host.Boundary()
	if st.Refused != uint64(len(methods)) || st.Malformed != uint64(len(bad)) || st.Panics != 0 {
		t.Fatalf("boundary %+v; want %d refused, %d malformed, no panic", st, len(methods), len(bad))
	}
	if s := node.Status(); s.Role != asyncraft.Leader {
		t.Fatalf("node %v after the bad input", s)
	}
	for _, line := range []string{"refused a call or connection from the network", "refused a message from the network"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no log line %q in:\n%s", line, logs.String())
		}
	}
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bytesCodec puts []byte on the wire as is.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }

// rawReceive sends msg on protoactor's Receive stream and returns how the
// host ended the stream.
func rawReceive(ctx context.Context, cc *grpc.ClientConn, msg []byte) error {
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/remote.Remoting/Receive")
	if err != nil {
		return err
	}
	cs.SendMsg(msg) // an error shows in RecvMsg
	cs.CloseSend()
	for {
		var in []byte
		if err := cs.RecvMsg(&in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// rawBatch encodes a remote.RemoteMessage holding a MessageBatch, field by
// field (remote.proto), so that it can say what protoactor's types cannot.
func rawBatch(types, targets []string, envs ...[]byte) []byte {
	var b []byte
	for _, s := range types {
		b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), s)
	}
	for _, s := range targets {
		b = protowire.AppendString(protowire.AppendTag(b, 2, protowire.BytesType), s)
	}
	for _, e := range envs {
		b = protowire.AppendBytes(protowire.AppendTag(b, 3, protowire.BytesType), e)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
}

// rawEnv encodes a MessageEnvelope; negative numbers as protobuf writes
// them.
func rawEnv(typeID, target, sender int32, data []byte) []byte {
	var b []byte
	for _, f := range []struct {
		num protowire.Number
		v   int32
	}{{1, typeID}, {3, target}, {4, sender}} {
		b = protowire.AppendVarint(protowire.AppendTag(b, f.num, protowire.VarintType), uint64(int64(f.v)))
	}
	return protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), data)
}
