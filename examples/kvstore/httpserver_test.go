package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// serveTest serves the API of a fake leader on a real listener, with o,
// and returns its address and listener.
func serveTest(t *testing.T, o HTTPOptions) (string, *limitListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := NewServer(&fakeNode{status: asyncraft.Status{ID: "n1", Role: asyncraft.Leader, Leader: "n1"}}, NewStore("n1", nil), nil)
	srv, lim := newHTTPServer(api.Handler(), ln, o)
	api.conns = lim
	done := make(chan struct{})
	go func() { srv.Serve(lim); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), lim
}

// waitClosed reads conn until the server closes it, or fails the test if
// it is still open after limit. It returns what was read.
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration, what string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the server still holds the connection after %v", what, limit)
	}
	return string(b) // io.EOF (nil here) or a reset: closed either way
}

// shortTimeouts are HTTPOptions whose timeouts expire within the test's
// patience.
var shortTimeouts = HTTPOptions{
	ReadHeaderTimeout: 200 * time.Millisecond,
	ReadTimeout:       400 * time.Millisecond,
	WriteTimeout:      10 * time.Second,
	IdleTimeout:       200 * time.Millisecond,
	MaxHeaderBytes:    DefaultMaxHeaderBytes,
	MaxConns:          DefaultMaxConns,
}

// only returns shortTimeouts with every read and idle timeout but the ones
// set by short pushed beyond the test's patience, so that a case passes
// only through the timeout it is about (net/http falls back to
// ReadTimeout for a zero ReadHeaderTimeout or IdleTimeout, and would hide
// a missing one).
func only(short func(*HTTPOptions)) HTTPOptions {
	o := shortTimeouts
	o.ReadHeaderTimeout, o.ReadTimeout, o.IdleTimeout = time.Minute, time.Minute, time.Minute
	short(&o)
	return o
}

// The server closes connections that send nothing, too little, or nothing
// more: none is held for ever, and each case is closed by its own timeout.
func TestHTTPServerClosesSlowAndIdleConnections(t *testing.T) {
	const patience = 10 * time.Second
	dial := func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	headers := only(func(o *HTTPOptions) { o.ReadHeaderTimeout = 200 * time.Millisecond })
	for _, c := range []struct {
		name string
		o    HTTPOptions
		act  func(t *testing.T, c net.Conn)
	}{
		{"silent", headers, func(t *testing.T, c net.Conn) {}},
		{"partial headers", headers, func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n")
		}},
		{"partial body", only(func(o *HTTPOptions) {
			o.ReadHeaderTimeout, o.ReadTimeout = 200*time.Millisecond, 400*time.Millisecond
		}), func(t *testing.T, c net.Conn) {
			io.WriteString(c, "PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a few bytes")
		}},
		{"idle keep-alive", only(func(o *HTTPOptions) { o.IdleTimeout = 200 * time.Millisecond }), func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("GET /status: %d, close %v: want 200 and a keep-alive connection", resp.StatusCode, resp.Close)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, lim := serveTest(t, c.o)
			conn := dial(t, addr)
			c.act(t, conn)
			waitClosed(t, conn, patience, "the "+c.name+" connection")
			waitFor(t, patience, "the connection given back", func() bool { return lim.Active() == 0 })
		})
	}
}

// At -http-max-conns open connections the server stops accepting; a new
// connection is served once another closes.
func TestHTTPServerCapsConnections(t *testing.T) {
	o := shortTimeouts
	o.ReadHeaderTimeout, o.ReadTimeout, o.IdleTimeout = time.Minute, time.Minute, time.Minute // held, unless closed
	o.MaxConns = 2
	addr, lim := serveTest(t, o)
	var held []net.Conn
	for range o.MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, 10*time.Second, "the server full", func() bool { return lim.Active() == 2 && lim.Full() > 0 })

	// The kernel completes the handshake; the server does not accept.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if n := lim.Active(); n != 2 {
		t.Fatalf("%d connections open, over the limit of 2", n)
	}
	held[0].Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the waiting connection, after one closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /status: %d", resp.StatusCode)
	}
	if n := lim.Active(); n > 2 {
		t.Fatalf("%d connections open, over the limit of 2", n)
	}
}

// A request body larger than a value is cut short, whatever the method.
func TestHTTPBodyLimit(t *testing.T) {
	ts, _, _ := startSingle(t, "")
	big := strings.Repeat("v", DefaultMaxValueBytes+1)
	for _, m := range []string{"PUT", "POST"} {
		path := "/kv/k"
		if m == "POST" {
			path += "?append=1"
		}
		if r := call(t, ts, m, path, big); r.code != 413 {
			t.Errorf("%s with %d bytes: got %d %s, want 413", m, len(big), r.code, r.body)
		}
	}
}

func TestHTTPOptionsValidate(t *testing.T) {
	if err := DefaultHTTPOptions.validate(DefaultTimeout); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mod := range map[string]func(*HTTPOptions){
		"zero read header":        func(o *HTTPOptions) { o.ReadHeaderTimeout = 0 },
		"negative idle":           func(o *HTTPOptions) { o.IdleTimeout = -1 },
		"header longer than read": func(o *HTTPOptions) { o.ReadHeaderTimeout = o.ReadTimeout + 1 },
		"write not over -timeout": func(o *HTTPOptions) { o.WriteTimeout = DefaultTimeout },
		"tiny headers":            func(o *HTTPOptions) { o.MaxHeaderBytes = 100 },
		"no connections":          func(o *HTTPOptions) { o.MaxConns = 0 },
	} {
		o := DefaultHTTPOptions
		mod(&o)
		if err := o.validate(DefaultTimeout); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
