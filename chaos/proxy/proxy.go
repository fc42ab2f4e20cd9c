// Package proxy is a userspace TCP proxy for one directed network link,
// which a test can cut and restore.
//
// A Link forwards connections to its target. In the chaos test there is
// one Link per directed pair of nodes i→j, and every byte i sends to j
// (and the replies on those connections) passes through it, while j→i
// traffic uses j's own connections and another Link. Cutting the Link i→j
// therefore stops i's messages to j and nothing else: a one-way cut.
//
// A Link gets its connections in one of two ways:
//
//   - Listen: it listens on 127.0.0.1 itself, and node i's configuration
//     names j at the Link's address (each node then sees the others at
//     addresses of its own).
//   - NewLink and a Front: one Front per node j listens for the
//     connections to j from every other node, asks its route function
//     which node opened each one, and hands it to that node's Link (Serve).
//     Every node then names j at the same address — what a configuration
//     replicated through the log needs, since it holds one address per
//     member — and the cuts stay one-way.
//
// A Link is in one of three modes:
//
//   - Up: connections are forwarded.
//   - Reset: existing connections are closed (with RST) and new ones are
//     accepted and reset at once, like a refused connection.
//   - Blackhole: nothing gets through and nobody is told: bytes of
//     existing connections are read and dropped, new connections are
//     accepted and never forwarded. On the way back to Up every
//     connection that lived through the blackhole is closed (its byte
//     stream has holes), as a TCP connection would eventually be reset.
package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Mode is the state of a Link.
type Mode int

const (
	Up Mode = iota
	Reset
	Blackhole
)

func (m Mode) String() string {
	switch m {
	case Up:
		return "up"
	case Reset:
		return "reset"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Link forwards connections from its listener (or a Front) to a target
// address.
type Link struct {
	ln     net.Listener // nil for a Link served by a Front
	target string

	mu     sync.Mutex
	mode   Mode
	conns  map[*conn]struct{}
	closed bool
	wg     sync.WaitGroup
	// Accepted counts the connections accepted so far (for tests).
	accepted int
}

// conn is one proxied connection: the accepted side and, once dialled,
// the upstream side.
type conn struct {
	down, up net.Conn
	// dirty: bytes were dropped (a blackhole), so the connection must not
	// carry traffic again.
	dirty bool
}

// Listen starts a link on 127.0.0.1 (a free port) to target.
func Listen(target string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &Link{ln: ln, target: target, conns: map[*conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// NewLink returns a link to target without a listener of its own: a
// Front hands it its connections (Serve).
func NewLink(target string) *Link {
	return &Link{target: target, conns: map[*conn]struct{}{}}
}

// Addr is the address the link listens on ("" for a link served by a
// Front).
func (l *Link) Addr() string {
	if l.ln == nil {
		return ""
	}
	return l.ln.Addr().String()
}

// Target is the address the link forwards to.
func (l *Link) Target() string { return l.target }

// Mode returns the link's mode.
func (l *Link) Mode() Mode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// Accepted returns the number of connections accepted so far.
func (l *Link) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// SetMode changes the link's mode (see the package doc).
func (l *Link) SetMode(m Mode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || m == l.mode {
		return
	}
	l.mode = m
	for c := range l.conns {
		switch m {
		case Reset:
			c.close()
			delete(l.conns, c)
		case Blackhole:
			c.dirty = true
		case Up:
			if c.dirty {
				c.close()
				delete(l.conns, c)
			}
		}
	}
}

// Close stops the link and closes its connections.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var err error
	if l.ln != nil {
		err = l.ln.Close()
	}
	for c := range l.conns {
		c.close()
	}
	l.conns = nil
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *Link) acceptLoop() {
	defer l.wg.Done()
	for {
		down, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off
			continue
		}
		l.Serve(down)
	}
}

// Serve takes down, a connection accepted for this link (by its own
// listener or a Front), and forwards it as the link's mode says. It does
// not block.
func (l *Link) Serve(down net.Conn) {
	l.mu.Lock()
	l.accepted++
	mode, closed := l.mode, l.closed
	c := &conn{down: down}
	if !closed && mode != Reset {
		c.dirty = mode == Blackhole
		l.conns[c] = struct{}{}
		l.wg.Add(1)
	}
	l.mu.Unlock()
	switch {
	case closed || mode == Reset:
		reset(down)
	default:
		go l.serve(c)
	}
}

// serve dials the target for c (unless c is blackholed from the start)
// and copies both ways.
func (l *Link) serve(c *conn) {
	defer l.wg.Done()
	defer l.forget(c)
	l.mu.Lock()
	dirty := c.dirty
	l.mu.Unlock()
	if dirty {
		// Accepted during a blackhole: swallow everything until the link
		// comes back up (which closes c) or the peer gives up.
		io.Copy(io.Discard, c.down)
		return
	}
	up, err := net.DialTimeout("tcp", l.target, time.Second)
	if err != nil {
		reset(c.down)
		return
	}
	l.mu.Lock()
	if _, ok := l.conns[c]; !ok { // closed meanwhile
		l.mu.Unlock()
		up.Close()
		return
	}
	c.up = up
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { l.pipe(c, c.up, c.down); done <- struct{}{} }()
	go func() { l.pipe(c, c.down, c.up); done <- struct{}{} }()
	<-done
	c.close()
	<-done
}

// pipe copies src to dst until either fails, dropping what it reads while
// c is dirty.
func (l *Link) pipe(c *conn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.mu.Lock()
			drop := c.dirty
			l.mu.Unlock()
			if !drop {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (l *Link) forget(c *conn) {
	c.close()
	l.mu.Lock()
	if l.conns != nil {
		delete(l.conns, c)
	}
	l.mu.Unlock()
}

func (c *conn) close() {
	reset(c.down)
	if c.up != nil {
		reset(c.up)
	}
}

// reset closes a TCP connection with RST rather than FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// A Front listens on 127.0.0.1 for the connections to one node and hands
// each to the Link of the node that opened it, which route names (nil: no
// Link takes it, and it is reset, as a refused connection; the sender
// tries again).
type Front struct {
	ln    net.Listener
	route func(net.Conn) *Link
	wg    sync.WaitGroup

	mu       sync.Mutex
	unrouted int
}

// ListenFront starts a Front on 127.0.0.1 (a free port).
func ListenFront(route func(net.Conn) *Link) (*Front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Front{ln: ln, route: route}
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

// Addr is the address the Front listens on.
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Unrouted returns the number of connections no Link took.
func (f *Front) Unrouted() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unrouted
}

// Close stops accepting (the Links close their own connections).
func (f *Front) Close() error {
	err := f.ln.Close()
	f.wg.Wait()
	return err
}

func (f *Front) acceptLoop() {
	defer f.wg.Done()
	for {
		down, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: back off
			continue
		}
		// route may take a while (it may read /proc): not on the accept
		// loop.
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if l := f.route(down); l != nil {
				l.Serve(down)
				return
			}
			f.mu.Lock()
			f.unrouted++
			f.mu.Unlock()
			reset(down)
		}()
	}
}
