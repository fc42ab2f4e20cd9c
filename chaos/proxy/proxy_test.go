package proxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes a line and reads it back within d.
func roundTrip(c net.Conn, d time.Duration) error {
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("got " + line)
	}
	return nil
}

func dial(t *testing.T, l *Link) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLinkModes(t *testing.T) {
	l, err := Listen(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	c1 := dial(t, l)
	if err := roundTrip(c1, 5*time.Second); err != nil {
		t.Fatalf("up: %v", err)
	}

	l.SetMode(Reset)
	if err := roundTrip(c1, 5*time.Second); err == nil {
		t.Fatal("reset: an existing connection still works")
	}
	if c, err := net.Dial("tcp", l.Addr()); err == nil { // or reset before the dial returned
		if err := roundTrip(c, 5*time.Second); err == nil {
			t.Fatal("reset: a new connection works")
		}
		c.Close()
	}

	l.SetMode(Up)
	c2 := dial(t, l)
	if err := roundTrip(c2, 5*time.Second); err != nil {
		t.Fatalf("up again: %v", err)
	}

	l.SetMode(Blackhole)
	err = roundTrip(c2, 200*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackhole: existing connection: got %v, want a timeout", err)
	}
	c3 := dial(t, l) // accepted, never forwarded
	if err := roundTrip(c3, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackhole: new connection: got %v, want a timeout", err)
	}

	l.SetMode(Up)
	// The connections that lived through the blackhole are closed.
	for _, c := range []net.Conn{c2, c3} {
		if err := roundTrip(c, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after blackhole: got %v, want the connection closed", err)
		}
	}
	if err := roundTrip(dial(t, l), 5*time.Second); err != nil {
		t.Fatalf("up after blackhole: %v", err)
	}
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		return // reset before the dial returned: fine too
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want the connection closed", err)
	}
}

// A Front hands each connection to the Link its route names: cutting one
// sender's Link leaves the other's connections up; a connection no Link
// takes is reset.
func TestFront(t *testing.T) {
	target := echo(t)
	a, b := NewLink(target), NewLink(target)
	defer a.Close()
	defer b.Close()
	type routed struct {
		c    net.Conn
		link chan *Link
	}
	routes := make(chan routed)
	f, err := ListenFront(func(c net.Conn) *Link {
		r := routed{c, make(chan *Link)}
		routes <- r
		return <-r.link
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// connect dials the Front and routes the connection to l.
	connect := func(l *Link) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", f.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := <-routes
		if r.c.RemoteAddr().String() != c.LocalAddr().String() {
			t.Fatalf("the Front routes %v, the test dialled from %v", r.c.RemoteAddr(), c.LocalAddr())
		}
		r.link <- l
		return c
	}
	ca, cb := connect(a), connect(b)
	for _, c := range []net.Conn{ca, cb} {
		if err := roundTrip(c, 5*time.Second); err != nil {
			t.Fatalf("up: %v", err)
		}
	}
	if a.Accepted() != 1 || b.Accepted() != 1 || a.Addr() != "" {
		t.Fatalf("accepted: a %d b %d; a's address %q", a.Accepted(), b.Accepted(), a.Addr())
	}
	a.SetMode(Reset)
	if err := roundTrip(ca, 5*time.Second); err == nil {
		t.Fatal("a reset: a's connection still works")
	}
	if err := roundTrip(cb, 5*time.Second); err != nil {
		t.Fatalf("a reset: b's connection: %v", err)
	}
	a.SetMode(Up)
	if err := roundTrip(connect(a), 5*time.Second); err != nil {
		t.Fatalf("a up again: %v", err)
	}
	// No Link: reset.
	c := connect(nil)
	if err := roundTrip(c, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unrouted: got %v, want the connection closed", err)
	}
	if f.Unrouted() != 1 {
		t.Fatalf("unrouted %d, want 1", f.Unrouted())
	}
}
