package protoactor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Raw gRPC clients for tests that play a hostile or broken peer: they talk
// to a host's port directly, with bytes built by hand, not through a
// protoactor remote (so one remote per process still holds).

// rawCodec sends []byte as is, so tests can put any bytes on the wire, and
// receives into *[]byte.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T is not []byte", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	*p = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// rawConn dials addr without TLS, with send limits far above any host's.
func rawConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	return rawConnTLS(t, addr, nil)
}

// rawConnTLS is rawConn with TLS, if cfg is set.
func rawConnTLS(t testing.TB, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(1<<30), grpc.MaxCallRecvMsgSize(1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// rawUnary calls method with body as the request and returns the call's
// error.
func rawUnary(cc *grpc.ClientConn, method string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []byte
	return cc.Invoke(ctx, method, body, &out, grpc.ForceCodecV2(rawCodec{}))
}

// rawStream opens method as a bidirectional stream, sends each message,
// closes its side and waits for the server to end the stream. It returns
// the stream's final error (nil if the server ended it cleanly). The
// server ends the stream only once it has read, and acted on, everything
// sent: so when rawStream returns, the host has processed the messages.
func rawStream(cc *grpc.ClientConn, method string, msgs ...[]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	cs, err := cc.NewStream(ctx, desc, method, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := cs.SendMsg(m); err != nil {
			break // the server ended the stream; RecvMsg reports why
		}
	}
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

// Wire builders for remote.RemoteMessage, by field number, so that tests
// can write what protoactor's own types could not hold (negative indices,
// wrong wire types, fields that do not exist).

// batchMsg wraps the encoded MessageBatch b in a RemoteMessage.
func batchMsg(b []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), b)
}

// batchOf encodes a MessageBatch of type names, targets and envelopes.
func batchOf(types, targets []string, envs ...[]byte) []byte {
	var b []byte
	for _, s := range types {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, s := range targets {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	for _, e := range envs {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// env encodes a MessageEnvelope; negative numbers are written as protobuf
// writes a negative int32 (a ten-byte varint).
func env(typeID, target, sender int32, data []byte) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(typeID)))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, data)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(int64(target)))
	if sender != 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(sender)))
	}
	return b
}

// stringValue encodes a google.protobuf.StringValue.
func stringValue(s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), s)
}

const (
	receiveMethodName = "/remote.Remoting/Receive"
	stringValueType   = "google.protobuf.StringValue"
)

var _ = remote.RemoteMessage{} // the wire builders above follow remote.proto

// vmStatus reads a field of /proc/pid/status ("VmRSS", "VmHWM") in KiB.
func vmStatus(pid int, field string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// connectRequest encodes a RemoteMessage holding the ConnectRequest a
// protoactor endpoint writer sends first.
func connectRequest(memberID, addr string) []byte {
	var sc []byte
	sc = protowire.AppendTag(sc, 1, protowire.BytesType)
	sc = protowire.AppendString(sc, memberID)
	sc = protowire.AppendTag(sc, 2, protowire.BytesType)
	sc = protowire.AppendString(sc, addr)
	cr := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), sc)
	return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), cr)
}

// rawIdle opens a Receive stream, connects as a peer would, calls ready
// once the host answered (with nil) or refused (with the error), and holds
// the stream open until release is closed. It returns the error that
// refused it, if any.
func rawIdle(cc *grpc.ClientConn, ready func(error), release <-chan struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}
	cs, err := cc.NewStream(ctx, desc, receiveMethodName, grpc.ForceCodecV2(rawCodec{}))
	if err == nil {
		err = cs.SendMsg(connectRequest("idle", "127.0.0.1:1"))
	}
	if err == nil {
		var in []byte
		err = cs.RecvMsg(&in)
	}
	ready(err)
	<-release
	return err
}
