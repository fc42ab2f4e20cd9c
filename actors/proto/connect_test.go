package protoactor

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// unreachable returns a client for a 127.0.0.1 address nothing listens on
// (a port just freed), once it has failed to connect.
func unreachable(t *testing.T) (string, *grpc.ClientConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithConnectParams(dialBackoff))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cc.Connect()
	for st := cc.GetState(); st != connectivity.TransientFailure; st = cc.GetState() {
		if !cc.WaitForStateChange(ctx, st) {
			t.Fatalf("%s: no failed attempt within 30 s (state %v)", addr, st)
		}
	}
	return addr, cc
}

// A peer that starts listening while an endpoint waits for it is
// connected to within that wait: the stream then opens on a ready
// connection instead of failing into protoactor's 2 s sleep.
func TestEndpointWaitsForAPeerThatComesBack(t *testing.T) {
	addr, cc := unreachable(t)
	g := newDialGate()
	done := make(chan connectivity.State, 1)
	go func() {
		g.awaitReady(cc)
		done <- cc.GetState()
	}()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the freed port %s was taken meanwhile: %v", addr, err)
	}
	srv := grpc.NewServer()
	go srv.Serve(ln)
	defer srv.Stop()
	if st := <-done; st != connectivity.Ready {
		t.Fatalf("the wait ended with the connection %v, want Ready", st)
	}
}

// Shutting the system down ends the waits at once, whatever connectWait.
func TestEndpointWaitEndsAtShutdown(t *testing.T) {
	defer func(w time.Duration) { connectWait = w }(connectWait)
	connectWait = time.Hour
	_, cc := unreachable(t)
	g := newDialGate()
	done := make(chan struct{})
	go func() {
		g.awaitReady(cc)
		close(done)
	}()
	g.close()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the wait outlived the gate's close by 30 s")
	}
}
