// Command counter is asyncraft's quick start: a replicated counter.
//
//	go run ./examples/counter
//
// It starts a three-node group inside this process (each node with its own
// log and hard state on disk, in a temporary directory), increments the
// counter through the leader with Node.Apply callbacks, stops the leader,
// watches the others elect a new one and carry on, then restarts the old
// leader from its data directory and watches it catch up.
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// counter is the replicated state machine. OnApply runs on the node's FSM
// caller; the mutex is for main's reads.
type counter struct {
	fsm.Base
	mu    sync.Mutex
	value uint64
	index uint64
}

func (c *counter) OnApply(it fsm.Iterator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for it.Next() {
		if len(it.Data()) == 8 {
			c.value += binary.BigEndian.Uint64(it.Data())
		}
		c.index = it.Index()
		it.SetResult(c.value) // handed to the proposal's closure
	}
}

func (c *counter) read() (value, index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value, c.index
}

var start = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%6.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

type demo struct {
	host  *asyncraft.Host
	peers []asyncraft.Peer
	nodes map[string]*asyncraft.Node
	sms   map[string]*counter
}

func run() error {
	dir, err := os.MkdirTemp("", "asyncraft-counter-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host, err := asyncraft.NewHost(asyncraft.HostOptions{
		Addr:    "127.0.0.1:0",
		DataDir: dir,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	d := &demo{host: host, nodes: map[string]*asyncraft.Node{}, sms: map[string]*counter{}}
	for _, id := range []string{"n1", "n2", "n3"} {
		d.peers = append(d.peers, asyncraft.Peer{ID: id, Addr: host.Addr()})
	}
	say("starting a 3-node group (data in %s)", dir)
	for _, p := range d.peers {
		if err := d.start(p.ID); err != nil {
			return err
		}
	}

	leader, err := d.waitLeader("")
	if err != nil {
		return err
	}
	if err := d.increment(leader, 10); err != nil {
		return err
	}

	term := leader.Status().Term
	say("stopping the leader %s", leader.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leader.Shutdown(ctx); err != nil {
		return err
	}
	old := leader.ID()
	delete(d.nodes, old)

	leader, err = d.waitLeader(old)
	if err != nil {
		return err
	}
	if leader.Status().Term <= term {
		return fmt.Errorf("new leader in term %d, not after %d", leader.Status().Term, term)
	}
	if err := d.increment(leader, 10); err != nil {
		return err
	}

	say("restarting %s from its data directory", old)
	if err := d.start(old); err != nil {
		return err
	}
	want, _ := d.sms[leader.ID()].read()
	if err := waitUntil(10*time.Second, func() bool { v, _ := d.sms[old].read(); return v == want }); err != nil {
		return fmt.Errorf("%s did not catch up: %w", old, err)
	}
	v, idx := d.sms[old].read()
	say("%s caught up: counter = %d (log index %d), and follows %s", old, v, idx, d.nodes[old].Status().Leader)

	for id, sm := range d.sms {
		if v, _ := sm.read(); v != want {
			return fmt.Errorf("%s has %d, want %d", id, v, want)
		}
	}
	say("done: every node agrees the counter is %d", want)
	return nil
}

func (d *demo) start(id string) error {
	sm := &counter{}
	n, err := d.host.StartNode(asyncraft.NodeOptions{
		Group:           "counter",
		ID:              id,
		Peers:           d.peers,
		StateMachine:    sm,
		ElectionTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	d.nodes[id], d.sms[id] = n, sm
	return nil
}

// waitLeader waits for a leader other than not.
func (d *demo) waitLeader(not string) (*asyncraft.Node, error) {
	var leader *asyncraft.Node
	err := waitUntil(10*time.Second, func() bool {
		for id, n := range d.nodes {
			if s := n.Status(); s.Role == asyncraft.Leader && id != not {
				leader = n
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("no leader elected: %w", err)
	}
	say("%s is the leader (term %d)", leader.ID(), leader.Status().Term)
	return leader, nil
}

// increment proposes n increments of 1 with Apply and a callback each, and
// waits for all of them.
func (d *demo) increment(leader *asyncraft.Node, n int) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last uint64
	var failed error
	one := make([]byte, 8)
	binary.BigEndian.PutUint64(one, 1)
	for i := 0; i < n; i++ {
		wg.Add(1)
		leader.Apply(asyncraft.Task{Data: one, Done: closure.ResultFunc(func(st closure.Status, v any) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if !st.OK() {
				failed = st.Err()
				return
			}
			last = max(last, v.(uint64))
		})})
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	say("applied %d increments through %s: counter = %d", n, leader.ID(), last)
	return nil
}

func waitUntil(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
