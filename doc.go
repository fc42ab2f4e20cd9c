// Package asyncraft is the public API of a Raft framework for replicated
// state machines: a Host (one process's actor runtime, clock, callback
// executor and data directory) runs any number of Nodes, one per Raft group
// the process belongs to. Everything here is wiring: the protocol lives in
// the actor packages — node (roles, terms, commit, reads), replicator (one
// per follower), logmgr (the log and its disk writer) and fsm (the state
// machine's caller) — which the host builds from the options below.
//
// A complete embedding: a state machine, a host, a node, a proposal with a
// callback and a linearizable read.
//
//	type counter struct {
//		fsm.Base // no-op defaults for the optional callbacks
//		mu       sync.Mutex
//		n        uint64
//	}
//
//	// OnApply runs on the node's FSM caller, in log order.
//	func (c *counter) OnApply(it fsm.Iterator) {
//		c.mu.Lock()
//		defer c.mu.Unlock()
//		for it.Next() {
//			c.n += uint64(len(it.Data()))
//			it.SetResult(c.n) // handed to the proposal's closure
//		}
//	}
//
//	func run(ctx context.Context) error {
//		host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "127.0.0.1:7001", DataDir: "/var/lib/app"})
//		if err != nil {
//			return err
//		}
//		defer host.Close(context.Background())
//		sm := &counter{}
//		node, err := host.StartNode(asyncraft.NodeOptions{
//			Group: "counter", ID: "n1", StateMachine: sm,
//			Peers: []asyncraft.Peer{{ID: "n1", Addr: "127.0.0.1:7001"},
//				{ID: "n2", Addr: "127.0.0.1:7002"}, {ID: "n3", Addr: "127.0.0.1:7003"}},
//		})
//		if err != nil {
//			return err
//		}
//		// Asynchronous: Done runs on the host's callback executor once the
//		// entry is applied here, or with the reason it was not (EPERM
//		// names the leader on a follower).
//		node.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.ResultFunc(func(st closure.Status, v any) {
//			log.Println(st, v)
//		})})
//		// A linearizable read: once ReadBarrier returns, sm reflects every
//		// write acknowledged before the call.
//		if err := node.ReadBarrier(ctx); err != nil {
//			return err
//		}
//		sm.mu.Lock()
//		log.Println("counter:", sm.n)
//		sm.mu.Unlock()
//		return node.Shutdown(ctx)
//	}
//
// examples/counter runs this as three processes; docs/ explains each part
// (docs/architecture.md has the actors and a proposal's path).
package asyncraft
