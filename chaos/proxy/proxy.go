// Package proxy is a userspace TCP proxy for one directed network link,
// which a test can cut and restore.
//
// A Link listens on 127.0.0.1 and forwards every connection it accepts to
// its target. In the chaos test there is one Link per directed pair of
// nodes i→j: node i's configuration names j at the Link's address, so
// every byte i sends to j (and the replies on those connections) passes
// through it, while j→i traffic uses j's own connections and another Link.
// Cutting the Link i→j therefore stops i's messages to j and nothing else:
// a one-way cut.
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

// Link forwards connections from its listener to a target address.
type Link struct {
	ln     net.Listener
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

// Addr is the address the link listens on.
func (l *Link) Addr() string { return l.ln.Addr().String() }

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
	err := l.ln.Close()
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
