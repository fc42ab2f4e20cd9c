package asyncraft_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/internal/cluster"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// faultyLog is a node's in-memory LogStorage that can be told to fail its
// next appends with EIO, or to panic in them (the disk writer actor, which
// calls it, then dies).
type faultyLog struct {
	logmgr.LogStorage
	failAppends, panicAppends bool
}

func (l *faultyLog) Append(ents []*raftpb.Entry) error {
	switch {
	case l.panicAppends:
		panic("faultyLog: append")
	case l.failAppends:
		return fmt.Errorf("faultyLog: append: %w", syscall.EIO)
	}
	return l.LogStorage.Append(ents)
}

// panicOn is a log handler that panics, once armed, on a record whose
// message contains msg: it makes the actor that logs it panic.
type panicOn struct {
	slog.Handler
	msg   string
	armed *bool
}

func (h panicOn) Enabled(context.Context, slog.Level) bool { return *h.armed }

func (h panicOn) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		panic("panicOn: " + r.Message)
	}
	return nil
}

func (h panicOn) WithAttrs(as []slog.Attr) slog.Handler {
	return panicOn{h.Handler.WithAttrs(as), h.msg, h.armed}
}

func (h panicOn) WithGroup(name string) slog.Handler {
	return panicOn{h.Handler.WithGroup(name), h.msg, h.armed}
}

// TestNodeFailureLeavesCommittedTasksIndeterminate: when a leader fails
// while entries it proposed are committed but not yet applied here, their
// tasks must not fail definitely — the rest of the group applies them (and
// so would this node after a restart). Each way a node fails is tried: its
// log storage fails; its state machine rolls back or panics on an entry
// with more committed entries behind it; a framework actor panics (the
// disk writer, in the storage; the node actor itself, in its logger).
//
// The leader's state machine is slow (it syncs a file on a 3 s disk on
// every pass; the logs are in memory), so at the failure many of its
// proposals are committed and not applied. Afterwards every outcome is
// checked against what the surviving members applied: a definite failure
// must name a command no member applied, and OK one they all applied.
func TestNodeFailureLeavesCommittedTasksIndeterminate(t *testing.T) {
	const total = 200
	poison := fmt.Sprintf("cmd-%d", total/2)
	// How the failure is set off, once every command is committed.
	const (
		byAppend    = iota // one more command, whose append fails
		byPoison           // the state machine fails on the poison command
		byIsolation        // the leader, cut off, steps down (check-quorum) and logs it
	)
	type failing struct {
		c        *cluster.Cluster
		l        string
		log      *faultyLog
		logPanic *bool
	}
	cases := []struct {
		name string
		// fail arms the failure of leader f.l.
		fail func(f failing)
		by   int
	}{
		{name: "log storage error", by: byAppend, fail: func(f failing) { f.log.failAppends = true }},
		{name: "log storage panics", by: byAppend, fail: func(f failing) { f.log.panicAppends = true }},
		{name: "state machine rolls back", by: byPoison, fail: func(f failing) {
			f.c.SM(f.l).Fail = func(e cluster.Entry) *closure.Status {
				if e.Data == poison {
					st := closure.Newf(closure.EIO, "the state machine cannot apply %s", e.Data)
					return &st
				}
				return nil
			}
		}},
		{name: "state machine panics", by: byPoison, fail: func(f failing) {
			f.c.SM(f.l).Fail = func(e cluster.Entry) *closure.Status {
				if e.Data == poison {
					panic("state machine bug on " + e.Data)
				}
				return nil
			}
		}},
		{name: "node actor panics", by: byIsolation, fail: func(f failing) { *f.logPanic = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := testseed.For(t)
			logs := map[string]*faultyLog{}
			logPanic := false
			logger := slog.New(panicOn{slog.DiscardHandler, "lost contact with a quorum", &logPanic})
			c := cluster.New(cluster.Options{Seed: seed, Memory: true, Logger: logger, Node: func(o *asyncraft.NodeOptions, _ *sim.Host) {
				logs[o.ID] = &faultyLog{LogStorage: logmgr.NewMemoryStorage()}
				o.LogStorage, o.MetaStorage = logs[o.ID], logmgr.NewMemoryMeta()
			}})
			l, err := c.WaitLeader(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			f := failing{c: c, l: l, log: logs[l], logPanic: &logPanic}
			disk := c.Sim.Host(l).Disk()
			c.Sim.Host(l).SetDisk(sim.DiskConfig{SyncMin: 3 * time.Second, SyncMax: 3 * time.Second})
			c.SM(l).Each = func() {
				f, err := disk.OpenReadWrite("/sm-journal")
				if err != nil {
					panic(err)
				}
				f.Write([]byte{1})
				f.Sync()
				f.Close()
			}
			if tc.by == byPoison {
				tc.fail(f)
			}
			node := c.Node(l)
			outcomes := map[string]closure.Status{}
			propose := func(cmd string) {
				node.Apply(asyncraft.Task{Data: []byte(cmd), Done: closure.Func(func(st closure.Status) {
					if _, dup := outcomes[cmd]; dup {
						t.Errorf("%s completed twice", cmd)
					}
					outcomes[cmd] = st
				})})
			}
			// The first command's pass keeps the state machine busy while
			// the others are committed.
			propose("cmd-0")
			first := node.Status().LastIndex + 1
			if !c.Sim.RunUntil(func() bool { return node.Status().Applied >= first }, 10*time.Second) {
				t.Fatalf("the first command was not applied:%s", c.Describe())
			}
			for i := 1; i < total; i++ {
				propose(fmt.Sprintf("cmd-%d", i))
			}
			last := first + total - 1
			if !c.Sim.RunUntil(func() bool { return node.Status().Commit >= last }, 10*time.Second) {
				t.Fatalf("the commands were not committed:%s", c.Describe())
			}
			if s := node.Status(); s.Applied+total/2 > s.Commit {
				t.Fatalf("the leader applied %d of %d: not enough committed and unapplied for the test", s.Applied, s.Commit)
			}
			switch tc.by {
			case byAppend:
				tc.fail(f)
				propose("trigger")
			case byIsolation:
				tc.fail(f)
				c.Sim.Isolate(l)
			}
			if !c.Sim.RunUntil(func() bool { return node.Status().Role == asyncraft.Errored }, 10*time.Second) {
				t.Fatalf("the leader did not fail:%s", c.Describe())
			}
			if tc.by == byIsolation && (len(c.Panics) != 1 || !strings.HasPrefix(c.Panics[0], l+":g/"+l+"/node:")) {
				t.Fatalf("want one panic, of the node actor of %s; got %q", l, c.Panics)
			}
			if !c.Sim.RunUntil(func() bool { return len(outcomes) == total+btoi(tc.by == byAppend) }, 10*time.Second) {
				t.Fatalf("%d closures of %d ran", len(outcomes), total)
			}
			// The others carry on and apply every committed entry.
			others := othersThan(c, l)
			var next string
			if !c.Sim.RunUntil(func() bool { next = leaderAmong(c, others); return next != "" }, 10*time.Second) {
				t.Fatalf("no leader among %v:%s", others, c.Describe())
			}
			commit := c.Node(next).Status().Commit
			if !c.Sim.RunUntil(func() bool {
				for _, id := range others {
					if c.Node(id).Status().Applied < commit {
						return false
					}
				}
				return true
			}, 10*time.Second) {
				t.Fatalf("the others did not apply up to %d:%s", commit, c.Describe())
			}
			applied := map[string]int{}
			for _, id := range others {
				for _, e := range c.SM(id).Applied {
					applied[e.Data]++
				}
			}
			unknownButApplied := 0
			var lies []string
			for i := 0; i <= total; i++ {
				cmd := fmt.Sprintf("cmd-%d", i)
				if i == total {
					cmd = "trigger"
				}
				st, ok := outcomes[cmd]
				if !ok {
					continue
				}
				n := applied[cmd]
				switch {
				case st.OK():
					if n != 2 {
						lies = append(lies, fmt.Sprintf("%s: OK, but %d of the 2 other members applied it", cmd, n))
					}
				case st.Indeterminate():
					if n > 0 {
						unknownButApplied++
					}
				default:
					if n > 0 {
						lies = append(lies, fmt.Sprintf("%s: definite failure %v (Indeterminate() false), but %d other members applied it", cmd, st, n))
					}
				}
			}
			if len(lies) > 0 {
				t.Fatalf("%d outcomes lie, the first: %s", len(lies), lies[0])
			}
			if unknownButApplied == 0 {
				codes := map[closure.Code]int{}
				for _, st := range outcomes {
					codes[st.Code]++
				}
				t.Logf("outcomes %v; the others applied %d commands; leader %v", codes, len(applied), node.Status())
				t.Fatalf("no task was committed and unapplied when the leader failed: the test tests nothing")
			}
			t.Logf("%d of %d tasks indeterminate and applied by the group", unknownButApplied, len(outcomes))
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func othersThan(c *cluster.Cluster, id string) []string {
	var out []string
	for _, x := range c.IDs {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// leaderAmong returns the node of ids that leads and that the others of
// ids follow, or "".
func leaderAmong(c *cluster.Cluster, ids []string) string {
	for _, id := range ids {
		s := c.Node(id).Status()
		if s.Role != asyncraft.Leader {
			continue
		}
		for _, other := range ids {
			if o := c.Node(other).Status(); o.Term != s.Term || o.Leader != id {
				return ""
			}
		}
		return id
	}
	return ""
}

// TestApplyCopiesTheCommand: a caller may reuse its buffer as soon as
// Apply returns. Here it overwrites the command at once, and again once the
// leader and one follower have applied it; the third member, cut off
// meanwhile, then catches up from the leader's log cache. Every member must
// apply the bytes proposed.
func TestApplyCopiesTheCommand(t *testing.T) {
	c, l := newGroup(t)
	lagging := othersThan(c, l)[0]
	c.Sim.Isolate(lagging)
	buf := []byte("the command as proposed")
	want := string(buf)
	var got closure.Status
	var index uint64 // the Recorder's result: the entry's index
	ran := false
	c.Node(l).Apply(asyncraft.Task{Data: buf, Done: closure.ResultFunc(func(st closure.Status, v any) {
		got, ran = st, true
		index, _ = v.(uint64)
	})})
	fill := func(b byte) {
		for i := range buf {
			buf[i] = b
		}
	}
	fill('X') // reused at once
	if !c.Sim.RunUntil(func() bool { return ran }, 10*time.Second) {
		t.Fatalf("the command did not complete:%s", c.Describe())
	}
	if !got.OK() {
		t.Fatalf("the command: %v", got)
	}
	fill('Y') // reused again, before the lagging member has it
	c.Sim.Heal()
	waitApplied(t, c, index, 10*time.Second)
	for _, id := range c.IDs {
		data := "(nothing)"
		for _, e := range c.SM(id).Applied {
			if e.Index == index {
				data = e.Data
			}
		}
		if data != want {
			t.Errorf("%s applied %q, want %q", id, data, want)
		}
	}
	if err := c.CheckApplied(); err != nil {
		t.Fatal(err)
	}
	noPanics(t, c)
}
