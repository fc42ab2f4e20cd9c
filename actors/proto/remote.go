package proto

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
//     protoactor. A payload that does not decode at the receiver makes
//     protoactor drop that stream's batch and reset the stream (the peer
//     reconnects on its next send); the runtime counts it (Malformed) from
//     protoactor's report of the failure. Raft tolerates the lost batch.
//   - Sizes are capped at both ends. A message larger than MaxMessageBytes
//     is dropped at the sender and counted (Oversized); the protocol above
//     splits what it sends (AppendEntries are capped by bytes) so this does
//     not happen in practice. The gRPC receive limit applies to a whole
//     batch, so it is set to recvLimit and the writer's batch is capped at
//     recvLimit / MaxMessageBytes messages.
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
	// recvLimit is the gRPC receive limit, which applies to a batch.
	recvLimit = 256 << 20
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
	maxMsg := s.maxMessage
	batch := max(1, min(1000, recvLimit/maxMsg))
	server := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(recvLimit),
		grpc.MaxSendMsgSize(recvLimit),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		if opts.TLS.Server == nil || opts.TLS.Client == nil {
			return "", fmt.Errorf("proto: TLS needs both a server and a client configuration")
		}
		server = append(server, grpc.Creds(credentials.NewTLS(opts.TLS.Server)))
		creds = credentials.NewTLS(opts.TLS.Client)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(recvLimit), grpc.MaxCallSendMsgSize(recvLimit)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	}
	cfg := remote.Configure(host, port,
		remote.WithServerOptions(server...),
		remote.WithDialOptions(dial...),
		remote.WithEndpointWriterBatchSize(batch),
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
			err = fmt.Errorf("proto: listen on %s: %v", net.JoinHostPort(host, strconv.Itoa(port)), p)
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
	if proto.Size(pm) > s.maxMessage {
		s.oversized.Add(1)
		return
	}
	ctx.Send(actor.NewPID(to.Host, to.Name), msg)
}
