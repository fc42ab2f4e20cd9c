package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPOptions bounds what clients can hold of the HTTP API's server: how
// long a connection may take to send a request, to read a response, or
// stay idle, and how many connections are open at once. Without them a
// client that opens connections and sends nothing holds them (and a file
// descriptor each) forever; enough of them exhaust the process's file
// descriptors, and the node's log storage fails when it next opens a file.
type HTTPOptions struct {
	// ReadHeaderTimeout bounds the wait for a request's headers, from the
	// connection's start or the end of the previous request: a connection
	// that sends nothing is closed when it expires.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds the reading of a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the
	// end of the response. It must exceed the request timeout (-timeout),
	// for which a write waits before answering 504.
	WriteTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (and its URL, hence keys).
	MaxHeaderBytes int
	// MaxConns bounds the open connections: at the limit the server stops
	// accepting until one closes (new connections wait in the kernel's
	// backlog).
	MaxConns int
}

// Defaults of HTTPOptions.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxConns          = 256
)

// DefaultHTTPOptions are the HTTPOptions of the kvstore command, unless
// its flags say otherwise.
var DefaultHTTPOptions = HTTPOptions{
	ReadHeaderTimeout: DefaultReadHeaderTimeout,
	ReadTimeout:       DefaultReadTimeout,
	WriteTimeout:      DefaultWriteTimeout,
	IdleTimeout:       DefaultIdleTimeout,
	MaxHeaderBytes:    DefaultMaxHeaderBytes,
	MaxConns:          DefaultMaxConns,
}

// validate checks o against requestTimeout, the wait of a request for its
// command.
func (o HTTPOptions) validate(requestTimeout time.Duration) error {
	switch {
	case o.ReadHeaderTimeout <= 0, o.ReadTimeout <= 0, o.WriteTimeout <= 0, o.IdleTimeout <= 0:
		return errors.New("-http-read-header-timeout, -http-read-timeout, -http-write-timeout and -http-idle-timeout must be positive")
	case o.ReadHeaderTimeout > o.ReadTimeout:
		return fmt.Errorf("-http-read-header-timeout %v exceeds -http-read-timeout %v", o.ReadHeaderTimeout, o.ReadTimeout)
	case o.WriteTimeout <= requestTimeout:
		return fmt.Errorf("-http-write-timeout %v must exceed -timeout %v (a write waits that long before answering)", o.WriteTimeout, requestTimeout)
	case o.MaxHeaderBytes < 4<<10:
		return fmt.Errorf("-http-max-header-bytes %d is below 4096 (a key alone may take 3 KiB, escaped)", o.MaxHeaderBytes)
	case o.MaxConns < 1:
		return errors.New("-http-max-conns must be at least 1")
	}
	return nil
}

// newHTTPServer returns a server of h with o's timeouts, and wraps ln to
// accept at most o.MaxConns connections at a time: serve it with
// srv.Serve(lim).
func newHTTPServer(h http.Handler, ln net.Listener, o HTTPOptions) (srv *http.Server, lim *limitListener) {
	srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
	}
	return srv, newLimitListener(ln, o.MaxConns)
}

// limitListener accepts at most max connections at a time: Accept takes a
// slot before accepting, and a connection gives it back when it closes.
// At the limit, Accept waits (counted in Full), and new connections wait
// in the kernel's backlog. It is golang.org/x/net/netutil.LimitListener,
// with counts, without the dependency.
type limitListener struct {
	net.Listener
	// sem holds a token per open connection; cap(sem) is the limit.
	sem       chan struct{}
	done      chan struct{} // closed by Close: a waiting Accept returns
	closeOnce sync.Once
	active    atomic.Int64  // open connections (= len(sem), but for races)
	full      atomic.Uint64 // times Accept found every slot taken
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.full.Add(1)
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.active.Add(1)
	return &limitConn{Conn: c, l: l}, nil
}

// Close closes the listener and wakes a waiting Accept; open connections
// stay open.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// Active returns the number of open connections.
func (l *limitListener) Active() int64 { return l.active.Load() }

// Full returns the number of times Accept found every slot taken.
func (l *limitListener) Full() uint64 { return l.full.Load() }

// limitConn gives its slot back when it is first closed.
type limitConn struct {
	net.Conn
	l        *limitListener
	released atomic.Bool
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.l.active.Add(-1)
		<-c.l.sem
	}
	return err
}
