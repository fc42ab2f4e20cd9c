package protoactor

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
)

// The boundary: the gRPC server that protoactor's remote runs, as this
// runtime configures it. protoactor registers its whole Remoting service,
// whose ListProcesses and GetProcessDiagnostics panic ("implement me") and
// whose Receive stream trusts its input (see inspect.go). A panic in a gRPC
// handler kills the process. So the server gets:
//
//   - interceptors that serve Receive only: every other method, known or
//     not, is answered Unimplemented (and counted as refused) before any
//     handler runs; a panic in Receive is recovered, counted, logged, and
//     ends that stream only;
//   - a codec that hands Receive's messages to the boundary as bytes, so
//     that each is inspected before it is decoded; a message refused is
//     counted as malformed, logged (at most once a second), and ends the
//     stream with InvalidArgument (the peer reconnects on its next send);
//   - messages to actors that do not exist here dropped (and counted as
//     dead letters) at the boundary, so that no peer reaches protoactor's
//     own processes;
//   - bounded memory: a receive limit of MaxMessageBytes plus wireSlack,
//     a decode budget per message and a host-wide one (memBudget), one
//     stream per connection with fixed 1 MiB flow-control windows, small
//     header lists, a cap on connections counted before the TLS handshake
//     and a handshake timeout.

const (
	// receiveMethod is the one method served.
	receiveMethod = "/remote.Remoting/Receive"
	// wireSlack is the room a gRPC message has beyond MaxMessageBytes:
	// the names and fields around one message's bytes (names are capped
	// at maxNameBytes).
	wireSlack = 64 << 10
	// replyLimit caps what a host accepts from the host it connects to,
	// which only ever answers a connect request.
	replyLimit = 64 << 10
	// streamsPerConn: protoactor opens one Receive stream per connection.
	streamsPerConn = 1
	// streamWindow is the HTTP/2 flow-control window of a stream and of a
	// connection: what a peer may send before the host reads it. Fixed
	// windows turn off gRPC's window growth (up to 16 MiB a stream).
	streamWindow = 1 << 20
	// headerListLimit caps a request's headers (gRPC's default is 16 MiB;
	// protoactor sends none of its own).
	headerListLimit = 16 << 10
	// handshakeTimeout bounds a connection's TLS handshake and HTTP/2
	// preface, during which it holds one of the MaxConnections slots.
	handshakeTimeout = 10 * time.Second
	// DefaultMaxConnections is the default Options.MaxConnections.
	DefaultMaxConnections = 64
	// logInterval spaces the boundary's warnings about one kind of event.
	logInterval = time.Second
)

// boundary is the server side of the network boundary of one System.
type boundary struct {
	s         *System
	insp      inspector // what arrives
	sent      inspector // what is sent: only its type cache is used
	wireLimit int
	mem       *memBudget
	maxConns  int64
	conns     atomic.Int64
	// One limiter per kind of event, so that a flood of one does not hide
	// the others.
	rejectLog, refuseLog, panicLog logLimiter
	// gate orders protoactor's inbound handlers before its shutdown.
	// protoactor's Receive handler reads an unsynchronised flag after each
	// message, which its Remote.Shutdown writes: a data race. A handler
	// holds the gate's read lock from the return of a message until it asks
	// for the next one (or returns); close takes the write lock, so every
	// such read happens before it, and from then on no message is returned
	// to a handler, so none happens after.
	gate struct {
		sync.RWMutex
		closed bool
	}
}

// gateTimeout bounds close's wait for the handlers inside a message.
const gateTimeout = 2 * time.Second

// close returns once no inbound handler is inside a message and none will
// be given another, or after gateTimeout (then logged; protoactor's
// shutdown proceeds anyway).
func (b *boundary) close() {
	done := make(chan struct{})
	go func() {
		b.gate.Lock()
		b.gate.closed = true
		b.gate.Unlock()
		close(done)
	}()
	t := time.NewTimer(gateTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.s.log.Warn("protoactor: an inbound stream is still handling a message; shutting the remote down anyway",
			slog.Duration("waited", gateTimeout))
	}
}

func newBoundary(s *System, opts Options) *boundary {
	budget := decodeFactor * s.maxMessage
	maxConns := opts.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	b := &boundary{
		s:         s,
		wireLimit: s.maxMessage + wireSlack,
		mem:       newMemBudget(budget),
		maxConns:  int64(maxConns),
	}
	b.insp.budget = budget
	b.insp.accept = acceptTypes(opts.RemoteTypes)
	b.sent.budget = budget
	b.sent.accept = acceptTypes(nil)
	return b
}

// serverOptions configures protoactor's gRPC server; creds are the
// transport credentials (TLS or insecure).
func (b *boundary) serverOptions(creds credentials.TransportCredentials) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(&limitedCreds{TransportCredentials: creds, b: b}),
		grpc.ForceServerCodecV2(frameCodec{encoding.GetCodecV2(grpcproto.Name)}),
		grpc.MaxRecvMsgSize(b.wireLimit),
		grpc.MaxSendMsgSize(replyLimit),
		grpc.UnaryInterceptor(b.unary),
		grpc.StreamInterceptor(b.stream),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return status.Error(codes.Unimplemented, "not served") // the interceptor answers first
		}),
		grpc.MaxConcurrentStreams(streamsPerConn),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(streamWindow),
		grpc.MaxHeaderListSize(headerListLimit),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// unary refuses every unary method: asyncraft serves none.
func (b *boundary) unary(ctx context.Context, _ any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	b.refuse(peerOf(ctx), "method "+clip(info.FullMethod))
	return nil, status.Errorf(codes.Unimplemented, "%s is not served", clip(info.FullMethod))
}

// stream serves Receive (and nothing else) through an inbound stream, and
// turns a panic into the end of that stream.
func (b *boundary) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	from := peerOf(ss.Context())
	if info.FullMethod != receiveMethod {
		b.refuse(from, "method "+clip(info.FullMethod))
		return status.Errorf(codes.Unimplemented, "%s is not served", clip(info.FullMethod))
	}
	in := &inbound{ServerStream: ss, b: b, peer: from}
	defer in.release()
	defer in.leave()
	defer func() {
		if v := recover(); v != nil {
			b.s.panics.Add(1)
			if skipped, ok := b.panicLog.allow(); ok {
				b.s.log.Error("protoactor: recovered a panic at the network boundary; closed the stream",
					slog.String("peer", from), slog.Any("panic", v), slog.Int("not_logged", skipped),
					slog.String("stack", string(debug.Stack())))
			}
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, in)
}

// reject counts and logs a refused message and returns the error that ends
// its stream.
func (b *boundary) reject(from string, why error) error {
	b.s.malformed.Add(1)
	if skipped, ok := b.rejectLog.allow(); ok {
		b.s.log.Warn("protoactor: refused a message from the network; closed the stream",
			slog.String("peer", from), slog.String("reason", why.Error()), slog.Int("not_logged", skipped))
	}
	return status.Error(codes.InvalidArgument, why.Error())
}

// refuse counts and logs a refused call or connection.
func (b *boundary) refuse(from, what string) {
	b.s.refused.Add(1)
	if skipped, ok := b.refuseLog.allow(); ok {
		b.s.log.Warn("protoactor: refused a call or connection from the network",
			slog.String("peer", from), slog.String("what", what), slog.Int("not_logged", skipped))
	}
}

// deliverable drops, in place, the envelopes of rm for actors that do not
// exist here, counting them as dead letters.
func (b *boundary) deliverable(rm *remote.RemoteMessage) {
	batch := rm.GetMessageBatch()
	if batch == nil {
		return
	}
	host := b.s.listening.Load()
	kept := batch.Envelopes[:0]
	for _, e := range batch.Envelopes {
		if host != nil {
			if _, ok := b.s.pids.Load(actors.Ref{Host: *host, Name: batch.Targets[e.Target]}); ok {
				kept = append(kept, e)
				continue
			}
		}
		b.s.deadLetters.Add(1)
	}
	clear(batch.Envelopes[len(kept):])
	batch.Envelopes = kept
}

// inbound is one Receive stream: it inspects each message before decoding
// it, and holds the message's share of the host's decode budget until
// protoactor asks for the next one (by then it has handed the batch's
// messages to their actors).
type inbound struct {
	grpc.ServerStream
	b    *boundary
	peer string
	held int // decode budget held for the last message
	// inside: the handler holds the boundary's gate (read) for the message
	// it was last given.
	inside bool
}

// RecvMsg receives the next message through the gate (see boundary.gate).
// Once the gate is closed, what arrives is dropped (the actors are gone)
// until the stream ends as it would have: protoactor's shutdown asks the
// peer to disconnect, or stops the server. Ending it here instead would
// let protoactor's handler close a channel its shutdown may still send on.
func (in *inbound) RecvMsg(m any) error {
	in.leave()
	for {
		if err := in.recv(m); err != nil {
			return err
		}
		in.b.gate.RLock()
		if !in.b.gate.closed {
			in.inside = true
			return nil
		}
		in.b.gate.RUnlock()
	}
}

// leave gives the gate back once the handler is done with its message.
func (in *inbound) leave() {
	if in.inside {
		in.inside = false
		in.b.gate.RUnlock()
	}
}

func (in *inbound) recv(m any) error {
	rm, ok := m.(*remote.RemoteMessage)
	if !ok {
		return in.ServerStream.RecvMsg(m)
	}
	in.release()
	var f frame
	if err := in.ServerStream.RecvMsg(&f); err != nil {
		if status.Code(err) == codes.ResourceExhausted { // over the size limit
			return in.b.reject(in.peer, err)
		}
		return err
	}
	defer f.free()
	raw := f.buf.ReadOnlyData()
	cost, err := in.b.insp.inspect(raw)
	if err != nil {
		return in.b.reject(in.peer, err)
	}
	if err := in.b.mem.acquire(in.Context(), cost); err != nil {
		return status.FromContextError(err).Err()
	}
	in.held = cost
	if err := proto.Unmarshal(raw, rm); err != nil {
		return in.b.reject(in.peer, err)
	}
	in.b.deliverable(rm)
	return nil
}

func (in *inbound) release() {
	if in.held > 0 {
		in.b.mem.release(in.held)
		in.held = 0
	}
}

// frame is a Receive message as bytes; frameCodec fills it.
type frame struct{ buf mem.Buffer }

func (f *frame) free() {
	if f.buf != nil {
		f.buf.Free()
	}
}

// frameCodec is the server's codec: protobuf, except that a *frame receives
// the message's bytes undecoded.
type frameCodec struct{ proto encoding.CodecV2 }

func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		f.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (frameCodec) Name() string { return grpcproto.Name }

// limitedCreds caps the connections the server holds: a connection takes
// a slot before its handshake (so the cap holds against peers that never
// authenticate) and gives it back when closed.
type limitedCreds struct {
	credentials.TransportCredentials
	b *boundary
}

var errTooManyConns = errors.New("protoactor: too many connections")

func (c *limitedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.b.conns.Add(1) > c.b.maxConns {
		c.b.conns.Add(-1)
		c.b.refuse(raw.RemoteAddr().String(), "a connection over the cap")
		return nil, nil, errTooManyConns
	}
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.b.conns.Add(-1)
		return nil, nil, err
	}
	return &countedConn{Conn: conn, b: c.b}, info, nil
}

func (c *limitedCreds) Clone() credentials.TransportCredentials {
	return &limitedCreds{TransportCredentials: c.TransportCredentials.Clone(), b: c.b}
}

// countedConn gives its slot back once: when closed, or at its first I/O
// error (gRPC closes the raw connection, not this one, if it fails before
// its transport is set up).
type countedConn struct {
	net.Conn
	b    *boundary
	once sync.Once
}

func (c *countedConn) done() { c.once.Do(func() { c.b.conns.Add(-1) }) }

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.done()
	}
	return n, err
}

func (c *countedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.done()
	}
	return n, err
}

func (c *countedConn) Close() error {
	c.done()
	return c.Conn.Close()
}

// memBudget is a weighted semaphore, first come first served: the bytes
// of decoded messages the host holds at once.
type memBudget struct {
	mu      sync.Mutex
	free    int
	waiters []*memWaiter
}

type memWaiter struct {
	n     int
	ready chan struct{}
}

func newMemBudget(n int) *memBudget { return &memBudget{free: n} }

// acquire waits until n bytes are free and takes them, or returns ctx's
// error. n must not exceed the budget.
func (m *memBudget) acquire(ctx context.Context, n int) error {
	m.mu.Lock()
	if len(m.waiters) == 0 && m.free >= n {
		m.free -= n
		m.mu.Unlock()
		return nil
	}
	w := &memWaiter{n: n, ready: make(chan struct{})}
	m.waiters = append(m.waiters, w)
	m.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		defer m.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			m.free += n
		default:
			for i, x := range m.waiters {
				if x == w {
					m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
					break
				}
			}
		}
		m.wake()
		return ctx.Err()
	}
}

func (m *memBudget) release(n int) {
	m.mu.Lock()
	m.free += n
	m.wake()
	m.mu.Unlock()
}

// wake grants waiting acquires in order while they fit. m.mu is held.
func (m *memBudget) wake() {
	for len(m.waiters) > 0 && m.free >= m.waiters[0].n {
		w := m.waiters[0]
		m.waiters[0] = nil
		m.waiters = m.waiters[1:]
		m.free -= w.n
		close(w.ready)
	}
}

// logLimiter lets one log line through per logInterval and counts the
// others.
type logLimiter struct {
	mu      sync.Mutex
	next    time.Time
	skipped int
}

// allow reports whether to log now, and how many lines were held back
// since the last one logged.
func (l *logLimiter) allow() (skipped int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Before(l.next) {
		l.skipped++
		return 0, false
	}
	l.next = now.Add(logInterval)
	skipped, l.skipped = l.skipped, 0
	return skipped, true
}

func peerOf(ctx context.Context) string {
	if p, ok := grpcpeer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}

// clip shortens a string from the network for a log line or an error.
func clip(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}
