package protoactor

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
)

// Reconnecting to a peer that comes back.
//
// protoactor's endpoint writer makes one connection attempt per endpoint
// (see startRemote) and, when it fails, sleeps 2 s before giving the
// endpoint up; the next send then makes a new endpoint. gRPC fails a
// stream at once while the peer is unreachable, so a writer to a peer that
// is down spends nearly all its time in that sleep, and a peer that comes
// back waits up to 2 s (1 s on average) before anything reaches it: a
// restarted follower hears from its leader that much later.
//
// So the stream that opens an endpoint first waits for its connection to
// be ready, at most connectWait (or until the system shuts down), while
// gRPC redials with a short backoff (dialBackoff, at most 500 ms). A peer
// that comes back during the wait is reached within that backoff; the 2 s
// sleep only follows a wait that timed out. The writer's queue, which
// protoactor does not bound, holds what is sent meanwhile: connectWait
// plus the sleep of traffic to a dead peer, as the sleep alone held 2 s.

// connectWait bounds the wait of an endpoint for its peer.
var connectWait = 5 * time.Second

// dialBackoff is the redial schedule within one endpoint's attempt.
var dialBackoff = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
	MinConnectTimeout: 5 * time.Second,
}

// dialGate ends the endpoints' waits when the system shuts down.
type dialGate struct {
	ctx   context.Context // done once closed
	close context.CancelFunc
}

func newDialGate() *dialGate {
	ctx, cancel := context.WithCancel(context.Background())
	return &dialGate{ctx: ctx, close: cancel}
}

// awaitReady waits until cc is connected, it is shut down, connectWait has
// passed, or the gate closes.
func (g *dialGate) awaitReady(cc *grpc.ClientConn) {
	ctx, cancel := context.WithTimeout(g.ctx, connectWait)
	defer cancel()
	cc.Connect()
	for st := cc.GetState(); st != connectivity.Ready && st != connectivity.Shutdown; st = cc.GetState() {
		if !cc.WaitForStateChange(ctx, st) {
			return
		}
	}
}
