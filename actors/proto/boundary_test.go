package protoactor

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/asyncraft/asyncraft/actors"
)

// TestRemoteBoundarySurvivesBadInput plays a hostile client against a live
// host: every method but Receive, and every kind of bad RemoteMessage
// (each on a stream of its own), over raw gRPC. Each is refused with an
// error and counted, none panics the process, and afterwards a message
// still reaches an actor (the PoisonPill and Stop among the bad messages
// did not stop it).
func TestRemoteBoundarySurvivesBadInput(t *testing.T) {
	if ownProcess(t) {
		return
	}
	s, in, self := localNet(t, nil)
	cc := rawConn(t, s.Host())
	defer cc.Close()

	methods := []string{
		"/remote.Remoting/ListProcesses",
		"/remote.Remoting/GetProcessDiagnostics",
		"/remote.Remoting/NoSuchMethod",
		"/no.such.Service/Method",
	}
	for _, m := range methods {
		if err := rawUnary(cc, m, nil); status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: %v, want Unimplemented", m, err)
		}
	}
	if err := rawStream(cc, "/remote.Remoting/ListProcesses", nil); status.Code(err) != codes.Unimplemented {
		t.Errorf("ListProcesses as a stream: %v, want Unimplemented", err)
	}
	if got, want := s.Refused(), uint64(len(methods)+1); got != want {
		t.Errorf("refused %d calls, want %d", got, want)
	}

	bad := badMessages()
	bad["over the size limit"] = batchMsg(batchOf([]string{stringValueType}, []string{self.Name},
		env(0, 0, 0, stringValue(strings.Repeat("x", DefaultMaxMessageBytes+wireSlack)))))
	// What the messages would have done: stop the inbox.
	bad["actor.PoisonPill"] = batchMsg(batchOf([]string{"actor.PoisonPill"}, []string{self.Name}, env(0, 0, 0, nil)))
	bad["actor.Stop"] = batchMsg(batchOf([]string{"actor.Stop"}, []string{self.Name}, env(0, 0, 0, nil)))
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		// Refused by the inspection, or by gRPC's size limit.
		err := rawStream(cc, receiveMethodName, bad[name])
		if c := status.Code(err); c != codes.InvalidArgument && c != codes.ResourceExhausted {
			t.Errorf("%s: %v, want InvalidArgument or ResourceExhausted", name, err)
		}
	}
	if got, want := s.Malformed(), uint64(len(bad)); got != want {
		t.Errorf("malformed %d, want %d", got, want)
	}

	// The host still serves: a good batch reaches the inbox. Its messages
	// for actors that do not exist, and for protoactor's own processes,
	// are dropped at the boundary and counted.
	good := batchMsg(batchOf([]string{stringValueType}, []string{"nobody", "activator", "eventstream", self.Name},
		env(0, 0, 0, stringValue("lost")), env(0, 1, 0, stringValue("lost")), env(0, 2, 0, stringValue("lost")),
		env(0, 3, 0, stringValue("still here"))))
	if err := rawStream(cc, receiveMethodName, good); err != nil {
		t.Fatalf("a good batch: %v", err)
	}
	in.waitFor(t, 30*time.Second, "the good message", func(g []string) bool { return len(g) == 1 && g[0] == "still here" })
	if s.DeadLetters() != 3 || s.Panics() != 0 {
		t.Errorf("dead letters %d, panics %d; want 3 and 0", s.DeadLetters(), s.Panics())
	}
}

// TestRemoteConnectionCap: connections over MaxConnections are refused
// (and counted) before anything else happens on them; a slot freed serves
// a new connection.
func TestRemoteConnectionCap(t *testing.T) {
	if ownProcess(t) {
		return
	}
	s, err := New(Options{Addr: "127.0.0.1:0", MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !raceEnabled {
			s.Shutdown()
		}
	})
	// idle holds a connection with an idle Receive stream until stop.
	idle := func() (stop func(), err error) {
		cc := rawConn(t, s.Host())
		ready, release := make(chan error, 1), make(chan struct{})
		done := make(chan struct{})
		go func() {
			rawIdle(cc, func(err error) { ready <- err }, release)
			close(done)
		}()
		err = <-ready
		var once sync.Once
		return func() { once.Do(func() { close(release); <-done; cc.Close() }) }, err
	}
	stop1, err := idle()
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	stop2, err := idle()
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	defer stop2()
	stop3, err := idle()
	stop3()
	if err == nil {
		t.Fatal("a third connection was served with MaxConnections 2")
	}
	if s.Refused() == 0 {
		t.Fatal("the refused connection was not counted")
	}
	stop1()
	// The first slot comes back once the host has seen the connection go.
	if !eventually(10*time.Second, 10*time.Millisecond, func() bool {
		stop, err := idle()
		stop()
		return err == nil
	}) {
		t.Fatal("a freed slot never served a new connection")
	}
}

// TestRemoteSplitsLargeBatches sends messages close to MaxMessageBytes
// faster than they go out, so that protoactor's writer batches several:
// each batch is split to fit the receiver's limit, and every message
// arrives.
func TestRemoteSplitsLargeBatches(t *testing.T) {
	if ownProcess(t) {
		return
	}
	s, in, self := localNet(t, nil)
	p := startPeer(t, "127.0.0.1:0", "")
	echo := actors.Ref{Host: p.addr, Name: "echo"}
	const n = 4
	big := strings.Repeat("z", DefaultMaxMessageBytes*3/4)
	for i := range n {
		s.Send(echo, wrapperspb.String(fmt.Sprintf("%s|%s|%d%s", self.Host, self.Name, i, big)))
	}
	got := in.waitFor(t, 60*time.Second, "the echoes", func(g []string) bool { return len(g) == n })
	for i, g := range got {
		if !strings.HasPrefix(g, fmt.Sprint(i)) || len(g) != len(big)+len(fmt.Sprint(i)) {
			t.Fatalf("echo %d: %d bytes starting %.3q", i, len(g), g)
		}
	}
	if s.Malformed() != 0 {
		t.Fatalf("%d echo batches refused here", s.Malformed())
	}
	s.Send(echo, wrapperspb.String(self.Host+"|"+self.Name+"|stats"))
	got = in.waitFor(t, 30*time.Second, "the stats", func(g []string) bool { return len(g) == n+1 })
	if got[n] != "malformed=0 dead=0" {
		t.Fatalf("peer counted %q, want malformed=0 dead=0", got[n])
	}
}

// fakeStream is a grpc.ServerStream with a context and nothing else.
type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// TestBoundaryRecoversPanics: a panic in the Receive handler ends that
// stream with Internal, is counted, and does not reach the process.
func TestBoundaryRecoversPanics(t *testing.T) {
	s, err := New(Options{Addr: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	b := newBoundary(s, Options{})
	err = b.stream(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: receiveMethod},
		func(any, grpc.ServerStream) error { panic("index out of range") })
	if status.Code(err) != codes.Internal || s.Panics() != 1 {
		t.Fatalf("err %v, panics %d; want Internal and 1", err, s.Panics())
	}
	_, err = b.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/remote.Remoting/ListProcesses"},
		func(context.Context, any) (any, error) { panic("implement me") })
	if status.Code(err) != codes.Unimplemented || s.Refused() != 1 {
		t.Fatalf("err %v, refused %d; want Unimplemented and 1", err, s.Refused())
	}
}

// givingStream is a grpc.ServerStream that has n messages, then ends.
type givingStream struct {
	fakeStream
	n int
}

func (g *givingStream) RecvMsg(any) error {
	if g.n == 0 {
		return io.EOF
	}
	g.n--
	return nil
}

// TestCloseWaitsForHandlersInsideAMessage: the boundary's close (before
// protoactor's shutdown) waits while a Receive handler is handling a
// message, and afterwards no handler is given another (what arrives is
// dropped until the stream ends): protoactor's handler reads, after each
// message, a flag its shutdown writes without synchronisation, so its
// reads must all happen before the write.
func TestCloseWaitsForHandlersInsideAMessage(t *testing.T) {
	s, err := New(Options{Addr: "local"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	b := newBoundary(s, Options{})
	inside, proceed := make(chan struct{}), make(chan struct{})
	given := 0
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- b.stream(nil, &givingStream{n: 10}, &grpc.StreamServerInfo{FullMethod: receiveMethod},
			func(_ any, ss grpc.ServerStream) error {
				for {
					if err := ss.RecvMsg(new(struct{})); err != nil {
						return err
					}
					given++
					if given == 1 {
						close(inside)
						<-proceed
					}
				}
			})
	}()
	<-inside
	closed := make(chan struct{})
	go func() { b.close(); close(closed) }()
	// Wait until close waits for the gate (a pending writer turns readers
	// away), with a bound in case it never does.
	deadline := time.Now().Add(5 * time.Second)
	for b.gate.TryRLock() {
		b.gate.RUnlock()
		if time.Now().After(deadline) {
			t.Fatal("close did not wait for the gate")
		}
		runtime.Gosched()
	}
	select {
	case <-closed:
		t.Fatal("close returned while a handler was inside a message")
	default:
	}
	close(proceed)
	<-closed
	if err := <-streamErr; err != io.EOF {
		t.Fatalf("the stream ended with %v, want its end (io.EOF)", err)
	}
	if given != 1 {
		t.Fatalf("the handler was given %d of 10 messages, want 1 (none after close)", given)
	}
}
