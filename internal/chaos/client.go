package chaos

import (
	"fmt"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/closure"
)

// Clients are actors on a host of their own, outside the group's network:
// they reach a node through its handle, as an application embedding
// asyncraft would, and learn outcomes through closures. Each runs a closed
// loop: think, pick a key and an operation, propose it to the node it
// believes leads, wait for the outcome (or time out), record it.

const (
	opTimeout = 3 * time.Second
	maxThink  = 30 * time.Millisecond
)

type opState uint8

const (
	opPending opState = iota
	opOK
	opFailed  // definitely not applied
	opUnknown // may or may not have been applied
)

// op is one client operation and what became of it.
type op struct {
	id     int
	client int
	input  kvInput
	path   asyncraft.ReadMode // how a get read: through the log (default), ReadSafe or ReadLease
	call   time.Duration
	ret    time.Duration
	state  opState
	output kvOutput
	index  uint64 // the entry it became (when OK)
	status closure.Status
	// The node life the operation was proposed to, and how many times its
	// closure ran.
	node string
	life int
	runs int
}

type client struct {
	r      *run
	id     int
	seq    int
	target string
	cur    *op
	self   actors.Ref
}

// Client messages.
type (
	clientNext    struct{}
	clientReply   struct{ op *op }
	clientTimeout struct{ op *op }
)

func (c *client) Receive(env actors.Env, msg any) {
	switch m := msg.(type) {
	case actors.Started:
		c.self = env.Self()
		c.target = c.r.c.IDs[env.Rand().IntN(len(c.r.c.IDs))]
		env.After(time.Duration(env.Rand().Int64N(int64(maxThink))), clientNext{})
	case clientNext:
		c.next(env)
	case clientReply:
		if m.op != c.cur {
			return // it timed out; its outcome stays unknown
		}
		c.finish(env, m.op)
	case clientTimeout:
		if m.op != c.cur || m.op.state != opPending {
			return
		}
		m.op.state = opUnknown
		m.op.output = kvOutput{Unknown: true}
		c.retarget(env, "")
		c.cur = nil
		c.think(env)
	}
}

func (c *client) think(env actors.Env) {
	if c.r.stopClients {
		return
	}
	env.After(time.Duration(env.Rand().Int64N(int64(maxThink))), clientNext{})
}

// retarget picks the node to talk to next: the hinted leader, or another
// node at random.
func (c *client) retarget(env actors.Env, hint string) {
	if hint != "" {
		c.target = hint
		return
	}
	ids := c.r.c.IDs
	c.target = ids[env.Rand().IntN(len(ids))]
}

func (c *client) next(env actors.Env) {
	if c.r.stopClients {
		return
	}
	node := c.r.c.Node(c.target)
	if node == nil { // down: like a refused connection
		c.retarget(env, "")
		env.After(10*time.Millisecond, clientNext{})
		return
	}
	c.seq++
	rnd := env.Rand()
	in := kvInput{Key: fmt.Sprintf("k%d", rnd.IntN(c.r.cfg.Keys)), Value: fmt.Sprintf("c%d.%d", c.id, c.seq)}
	switch p := rnd.Float64(); {
	case p < c.r.cfg.Reads:
		in.Kind = opGet
	case p < c.r.cfg.Reads+c.r.cfg.Appends:
		in.Kind = opAppend
	default:
		in.Kind = opPut
	}
	if c.r.noWrites {
		in.Kind = opGet
	}
	target := c.target
	steer := c.r.steerWrites
	if in.Kind == opGet {
		steer = c.r.steerReads
	}
	if steer != "" && c.r.c.Node(steer) != nil {
		target, node = steer, c.r.c.Node(steer)
	}
	var path asyncraft.ReadMode // for a get: ReadDefault goes through the log
	if in.Kind == opGet {
		path = c.r.cfg.ReadPaths[rnd.IntN(len(c.r.cfg.ReadPaths))]
		if path == asyncraft.ReadDefault && c.r.noWrites {
			// No entries while writes pause: a get through the log is
			// an entry too, so read another way if there is one.
			for _, p := range c.r.cfg.ReadPaths {
				if p != asyncraft.ReadDefault {
					path = p
					break
				}
			}
		}
		if path != asyncraft.ReadDefault && rnd.IntN(2) == 0 && c.r.steerReads == "" {
			// Half the ReadIndex reads go to any node: followers
			// forward them to the leader and serve them locally.
			target = c.r.c.IDs[rnd.IntN(len(c.r.c.IDs))]
			if node = c.r.c.Node(target); node == nil {
				target, node = c.target, c.r.c.Node(c.target)
			}
		}
	}
	o := &op{id: len(c.r.ops), client: c.id, input: in, path: path, call: c.r.c.Sim.Now(), node: target, life: c.r.c.Life(target)}
	c.r.ops = append(c.r.ops, o)
	c.cur = o
	host := c.r.clientHost
	if path != asyncraft.ReadDefault {
		m := c.r.machines[target] // the state machine of the life that will answer
		node.Read(asyncraft.ReadRequest{Mode: path, Done: func(st closure.Status, index uint64, _ []byte) {
			o.runs++
			if o.runs > 1 {
				return
			}
			o.status = st
			if st.OK() {
				o.index = index
				o.output = kvOutput{Value: m.data[in.Key]}
			}
			host.Send(c.self, clientReply{op: o})
		}})
		env.After(opTimeout, clientTimeout{op: o})
		return
	}
	node.Apply(asyncraft.Task{Data: encode(in), Done: closure.ResultFunc(func(st closure.Status, v any) {
		o.runs++
		if o.runs > 1 {
			return
		}
		o.status = st
		if st.OK() {
			res, _ := v.(kvResult)
			o.index = res.Index
			o.output = kvOutput{Value: res.Value}
		}
		host.Send(c.self, clientReply{op: o})
	})})
	env.After(opTimeout, clientTimeout{op: o})
}

// finish records the outcome of the current operation.
func (c *client) finish(env actors.Env, o *op) {
	o.ret = c.r.c.Sim.Now()
	switch st := o.status; {
	case st.OK():
		o.state = opOK
		c.r.lastOK[c.id] = o.call
	case st.Indeterminate():
		o.state = opUnknown
		o.output = kvOutput{Unknown: true}
		c.retarget(env, "")
	default:
		o.state = opFailed
		c.retarget(env, st.Leader)
	}
	c.cur = nil
	c.think(env)
}

func (m clientReply) TraceString() string {
	return fmt.Sprintf("reply to op %d: %v", m.op.id, m.op.status)
}
func (m clientTimeout) TraceString() string { return fmt.Sprintf("timeout of op %d", m.op.id) }
