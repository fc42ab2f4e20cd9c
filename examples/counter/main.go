// Command counter is asyncraft's quick start: a replicated counter.
//
// With no arguments it runs a demonstration on this machine:
//
//	go run ./examples/counter
//
// It starts a three-node group as three processes on 127.0.0.1 (each with
// its own port and data directory, in a temporary directory), increments
// the counter through the leader with Node.Apply callbacks, kills the
// leader's process with SIGKILL, watches the other two elect a new leader
// and carry on, restarts the killed node from its data directory and
// watches it catch up.
//
// With flags, the same program runs one node of a real cluster in its own
// terminal; the leader increments the counter every second and every node
// prints what it applies:
//
//	counter -id n1 -addr 127.0.0.1:7001 -data /tmp/n1 -peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/fsm"
)

func main() {
	var (
		id      = flag.String("id", "", "this node's id (runs one node; see -peers)")
		addr    = flag.String("addr", "", "this node's address, host:port")
		peers   = flag.String("peers", "", "every node of the group: id=host:port,...")
		data    = flag.String("data", "", "this node's data directory")
		control = flag.Bool("control", false, "take commands on stdin (used by the demonstration)")
	)
	flag.Parse()
	var err error
	if *id == "" {
		err = demo()
	} else {
		err = runNode(*id, *addr, *peers, *data, *control)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "counter:", err)
		os.Exit(1)
	}
}

// counter is the replicated state machine: a number that commands add to.
// OnApply runs on the node's FSM caller; the mutex is for readers.
type counter struct {
	fsm.Base
	mu      sync.Mutex
	value   uint64
	index   uint64
	changed chan struct{}
}

func newCounter() *counter { return &counter{changed: make(chan struct{}, 1)} }

func (c *counter) OnApply(it fsm.Iterator) {
	c.mu.Lock()
	for it.Next() {
		if len(it.Data()) == 8 {
			c.value += binary.BigEndian.Uint64(it.Data())
		}
		c.index = it.Index()
		it.SetResult(c.value) // handed to the proposal's closure
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *counter) read() (value, index uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value, c.index
}

func increment(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func parsePeers(s string) ([]asyncraft.Peer, error) {
	var peers []asyncraft.Peer
	for _, p := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("-peers: %q is not id=host:port", p)
		}
		peers = append(peers, asyncraft.Peer{ID: id, Addr: addr})
	}
	return peers, nil
}

// startNode starts this process's host and node.
func startNode(id, addr, peersFlag, data string) (*asyncraft.Host, *asyncraft.Node, *counter, error) {
	if addr == "" || peersFlag == "" || data == "" {
		return nil, nil, nil, fmt.Errorf("-id needs -addr, -peers and -data")
	}
	peers, err := parsePeers(peersFlag)
	if err != nil {
		return nil, nil, nil, err
	}
	host, err := asyncraft.NewHost(asyncraft.HostOptions{
		Addr:    addr,
		DataDir: data,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	sm := newCounter()
	node, err := host.StartNode(asyncraft.NodeOptions{Group: "counter", ID: id, Peers: peers, StateMachine: sm})
	if err != nil {
		host.Close(context.Background())
		return nil, nil, nil, err
	}
	return host, node, sm, nil
}
