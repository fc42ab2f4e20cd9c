package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/closure"
)

// client is one closed-loop client of the callback model: it issues its
// next operation from the callback of the previous one, on the host's
// callback executor.
type client struct {
	r       loadgen.Sink
	gi      int
	gn      *groupNode
	rng     *rand.Rand
	op      string
	keys    uint64
	value   []byte
	mode    asyncraft.ReadMode
	key     uint64
	issued  time.Time
	onApply closure.Func
	onRead  closure.ReadIndexClosure
}

func (c *client) next() {
	now := time.Now()
	if c.r.Over(now) {
		c.r.Stopped()
		return
	}
	c.issued = now
	c.key = c.rng.Uint64N(c.keys)
	if c.op == loadgen.OpRead {
		c.gn.node.Read(asyncraft.ReadRequest{Mode: c.mode, Done: c.onRead})
		return
	}
	c.gn.node.Apply(asyncraft.Task{Data: loadgen.EncodeCommand(c.key, c.value), Done: c.onApply})
}

func (c *client) applied(st closure.Status) {
	c.complete(st, time.Now())
}

func (c *client) read(st closure.Status, _ uint64, _ []byte) {
	if st.OK() {
		if _, ok := c.gn.sm.get(c.key); !ok {
			c.r.Missing()
		}
	}
	c.complete(st, time.Now())
}

func (c *client) complete(st closure.Status, now time.Time) {
	if !st.OK() {
		c.r.Fail(st.Code.String())
		time.AfterFunc(time.Millisecond, c.next) // no hot loop on a failing node
		return
	}
	c.r.OK(c.gi, c.issued, now)
	c.next()
}

// callbackClients returns the Launch function of the callback model.
func callbackClients(nodes []*groupNode, mode asyncraft.ReadMode) func(loadgen.Sink) {
	return func(r loadgen.Sink) {
		spec := r.Spec()
		for i := 0; i < spec.Clients; i++ {
			gi := i % len(nodes)
			c := &client{r: r, gi: gi, gn: nodes[gi], op: spec.Op, keys: uint64(spec.Keys), value: r.Value(), mode: mode,
				rng: rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(i)))}
			c.onApply = c.applied
			c.onRead = c.read
			c.next()
		}
	}
}

// logCounters sums the driven leaders' log and read counters.
func logCounters(nodes []*groupNode) (writes, entries, reads, rounds uint64) {
	for _, gn := range nodes {
		writes += gn.node.LogStats().Writes.Load()
		entries += gn.node.LogStats().Entries.Load()
		reads += gn.node.Metrics().Reads.Load()
		rounds += gn.node.Metrics().ReadRounds.Load()
	}
	return
}

// Run drives the groups of cmd.Drive (which this process leads) in the
// spec's client model, and adds the leaders' log and read counters of the
// window to the result.
func (m *member) Run(cmd command, cfg loadgen.RunConfig) (*memberResult, error) {
	nodes, err := m.driven(cmd.Drive)
	if err != nil {
		return nil, err
	}
	if cfg.Launch, err = m.launch(cfg.Spec, nodes); err != nil {
		return nil, err
	}
	var w0, e0, rd0, rr0, w1, e1, rd1, rr1 uint64
	cfg.WindowStart = func() { w0, e0, rd0, rr0 = logCounters(nodes) }
	cfg.WindowEnd = func() { w1, e1, rd1, rr1 = logCounters(nodes) }
	res, err := loadgen.Run(cfg)
	if err != nil {
		return nil, err
	}
	res.LogWrites, res.LogEntries = w1-w0, e1-e0
	res.Reads, res.ReadRounds = rd1-rd0, rr1-rr0
	return res, nil
}

// Launch starts a background load (loadgen.Loader) in the spec's client
// model on the groups this process leads.
func (m *member) Launch(spec loadgen.Spec, groups []string) (func(loadgen.Sink), error) {
	if spec.Follow {
		return m.launchFollow(spec, groups)
	}
	nodes, err := m.driven(groups)
	if err != nil {
		return nil, err
	}
	return m.launch(spec, nodes)
}

// launch returns the function that starts spec's clients on nodes.
func (m *member) launch(spec loadgen.Spec, nodes []*groupNode) (func(loadgen.Sink), error) {
	mode := asyncraft.ReadSafe
	if spec.ReadMode == "lease" {
		mode = asyncraft.ReadLease
	}
	switch spec.Client {
	case loadgen.ClientCallback:
		return callbackClients(nodes, mode), nil
	case loadgen.ClientGoroutine, "":
		targets := make([]loadgen.Target, len(nodes))
		for i, gn := range nodes {
			targets[i] = target{gn, mode}
		}
		return loadgen.GoroutineClients(targets, m.ErrorName), nil
	}
	return nil, fmt.Errorf("unknown client model %q", spec.Client)
}
