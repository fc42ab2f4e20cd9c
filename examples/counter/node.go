package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
)

// runNode runs one node until SIGINT/SIGTERM (or, with control, until its
// stdin says quit or closes).
func runNode(id, addr, peers, data string, control bool) error {
	host, node, sm, err := startNode(id, addr, peers, data)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		host.Close(ctx)
	}()
	if control {
		return serveControl(node, sm)
	}
	fmt.Printf("%s: listening on %s, data in %s\n", id, host.Addr(), data)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastLeader string
	var lastValue uint64
	for {
		select {
		case <-stop:
			fmt.Printf("%s: shutting down\n", id)
			return nil
		case <-sm.changed:
			if v, idx := sm.read(); v != lastValue {
				lastValue = v
				fmt.Printf("%s: counter = %d (log index %d)\n", id, v, idx)
			}
		case <-tick.C:
			s := node.Status()
			if s.Leader != lastLeader {
				lastLeader = s.Leader
				fmt.Printf("%s: leader is %q (term %d)\n", id, s.Leader, s.Term)
			}
			if s.Role == asyncraft.Leader {
				node.Apply(asyncraft.Task{Data: increment(1), Done: closure.Func(func(st closure.Status) {
					if !st.OK() {
						fmt.Printf("%s: increment failed: %v\n", id, st)
					}
				})})
			}
		}
	}
}

// serveControl answers the demonstration's commands, one per line:
//
//	status        -> status <role> <term> <leader> <value> <index>
//	inc N         -> done <value>  (N increments, each through Node.Apply)
//	                 or failed <status>
//	read          -> value <value> <index>: a linearizable read (a ReadIndex
//	                 barrier, then the local state machine), or failed <status>
//	quit          -> exits
func serveControl(node *asyncraft.Node, sm *counter) error {
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "status":
			s := node.Status()
			v, idx := sm.read()
			leader := s.Leader
			if leader == "" {
				leader = "-"
			}
			fmt.Printf("status %s %d %s %d %d\n", s.Role, s.Term, leader, v, idx)
		case "inc":
			n, _ := strconv.Atoi(fields[1])
			fmt.Println(incrementMany(node, n))
		case "read":
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := node.ReadBarrier(ctx)
			cancel()
			if err != nil {
				fmt.Println("failed", err)
				continue
			}
			v, idx := sm.read()
			fmt.Printf("value %d %d\n", v, idx)
		case "quit":
			return nil
		}
	}
	return nil
}

// incrementMany proposes n increments at once, each with its own callback,
// and waits for all of them.
func incrementMany(node *asyncraft.Node, n int) string {
	type outcome struct {
		st closure.Status
		v  any
	}
	results := make(chan outcome, n)
	for i := 0; i < n; i++ {
		node.Apply(asyncraft.Task{Data: increment(1), Done: closure.ResultFunc(func(st closure.Status, v any) {
			results <- outcome{st, v}
		})})
	}
	var last uint64
	var failed *closure.Status
	for i := 0; i < n; i++ {
		o := <-results
		if !o.st.OK() {
			failed = &o.st
			continue
		}
		last = max(last, o.v.(uint64))
	}
	if failed != nil {
		return "failed " + strings.ReplaceAll(failed.String(), "\n", " ")
	}
	return fmt.Sprintf("done %d", last)
}
