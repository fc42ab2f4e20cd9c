package protoactor

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
)

// The network between hosts is protoactor-go remote: one gRPC stream per
// pair of hosts, carrying batches of messages. What this runtime adds:
//
//   - Messages crossing hosts must be protobuf messages, encoded once, by
//     protoactor.
//   - The receiving side serves only what asyncraft uses and inspects every
//     message before decoding it (see boundary.go and inspect.go): other
//     methods are refused, a message that is not what asyncraft's sender
//     produces (bad indices, a type this host does not accept, a payload
//     that is not protobuf, too costly to decode) is refused whole and its
//     stream reset, a panic is recovered. Each is counted (Refused,
//     Malformed, Panics) and logged at most once a second. The peer
//     reconnects on its next send; Raft tolerates the lost batch.
//   - Sizes are capped at both ends. A message larger than MaxMessageBytes
//     (or addressed with a name over 4 KiB) is dropped at the sender and
//     counted (Oversized); the protocol above splits what it sends
//     (AppendEntries are capped by bytes) so this does not happen in
//     practice. The gRPC receive limit, which applies to a whole batch, is
//     MaxMessageBytes + 64 KiB, and the sender splits a batch over it (see
//     split.go), so one message always fits.
//   - What a host holds for the network is bounded (see boundary.go).
//   - Connections are kept alive with gRPC keepalives; a dead peer is
//     noticed and reconnected to on the next send.
//   - With TLS set, both ends authenticate each other (mutual TLS).
//
// Delivery is at most once: around a reconnect messages may be lost or
// arrive out of order. The protocol above tolerates both.

// TLS configures mutual TLS between hosts: Server is used to accept
// connections (it should require and verify client certificates), Client
// to make them (with a client certificate and the peers' CA).
type TLS struct {
	Server *tls.Config
	Client *tls.Config
}

const (
	// DefaultMaxMessageBytes is the default cap on one message between
	// hosts.
	DefaultMaxMessageBytes = 4 << 20
	// writerQueue is the initial capacity, in messages, of the queue of
	// one peer's endpoint writer. The queue grows as needed (and never
	// shrinks), so this only sets the memory a connection starts with:
	// 16 KiB, where protoactor's default (a million slots) is 16 MiB.
	// Messages for a peer that cannot be reached are dropped with its
	// endpoint (see MaxRetryCount below), not queued without bound.
	writerQueue = 1 << 10
)

// networked reports whether addr is an address to listen on (host:port)
// rather than a local-only name.
func networked(addr string) (host string, port int, ok bool) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, false
	}
	return h, n, true
}

// startRemote starts protoactor remote on host:port and returns the
// address it listens on (the bound port if port was 0).
func (s *System) startRemote(host string, port int, opts Options) (addr string, err error) {
	s.boundary = newBoundary(s, opts)
	s.dial = newDialGate()
	var serverCreds, clientCreds credentials.TransportCredentials = insecure.NewCredentials(), insecure.NewCredentials()
	if opts.TLS != nil {
		if opts.TLS.Server == nil || opts.TLS.Client == nil {
			return "", fmt.Errorf("protoactor: TLS needs both a server and a client configuration")
		}
		serverCreds, clientCreds = credentials.NewTLS(opts.TLS.Server), credentials.NewTLS(opts.TLS.Client)
	}
	server := s.boundary.serverOptions(serverCreds)
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(clientCreds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(replyLimit), grpc.MaxCallSendMsgSize(s.wireLimit())),
		grpc.WithMaxHeaderListSize(headerListLimit),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithChainStreamInterceptor(s.outboundStream),
		grpc.WithConnectParams(dialBackoff),
	}
	cfg := remote.Configure(host, port,
		remote.WithServerOptions(server...),
		remote.WithDialOptions(dial...),
		remote.WithEndpointWriterBatchSize(maxBatchEnvelopes),
		remote.WithEndpointWriterQueueSize(writerQueue),
		remote.WithEndpointManagerQueueSize(writerQueue),
	)
	// One connection attempt per endpoint: protoactor sleeps 2 s between
	// attempts, blocking the endpoint (and a graceful shutdown) meanwhile.
	// A failed attempt drops the endpoint; the next send makes a new one,
	// and the protocol above retransmits what was lost.
	cfg.MaxRetryCount = 1
	r := remote.NewRemote(s.sys, cfg)
	defer func() {
		// remote.Start panics when it cannot listen; turn that into an
		// error.
		if p := recover(); p != nil {
			err = fmt.Errorf("protoactor: listen on %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), p)
		}
	}()
	r.Start()
	s.remote = r
	s.sys.EventStream.Subscribe(func(evt any) {
		if _, ok := evt.(*actor.DeadLetterEvent); ok {
			s.deadLetters.Add(1)
		}
	})
	return s.sys.Address(), nil
}

// wireLimit is the largest gRPC message between hosts.
func (s *System) wireLimit() int { return s.maxMessage + wireSlack }

// sendRemote wraps msg and hands it to protoactor remote for the host at
// to.Host. It never blocks on the network.
func (s *System) sendRemote(ctx actor.SenderContext, to actors.Ref, msg any) {
	if s.remote == nil {
		s.droppedRemote.Add(1)
		return
	}
	pm, ok := msg.(proto.Message)
	if !ok {
		s.droppedRemote.Add(1)
		return
	}
	if proto.Size(pm) > s.maxMessage || len(to.Name) > maxNameBytes {
		s.oversized.Add(1)
		return
	}
	ctx.Send(actor.NewPID(to.Host, to.Name), msg)
}
