package asyncraft_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/logmgr"
)

func TestNodeOptionsAreValidated(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	peers := []asyncraft.Peer{{ID: "a", Addr: "local"}, {ID: "b", Addr: "local"}}
	good := func() asyncraft.NodeOptions {
		return asyncraft.NodeOptions{Group: "g", ID: "a", Peers: peers, StateMachine: &counter{}}
	}
	cases := []struct {
		name string
		mod  func(*asyncraft.NodeOptions)
		want string
	}{
		{"no group", func(o *asyncraft.NodeOptions) { o.Group = "" }, "Group is required"},
		{"slash in id", func(o *asyncraft.NodeOptions) { o.ID = "a/b" }, "contains '/'"},
		{"no state machine", func(o *asyncraft.NodeOptions) { o.StateMachine = nil }, "StateMachine is required"},
		{"no peers", func(o *asyncraft.NodeOptions) { o.Peers = nil }, "Peers is empty"},
		{"self not a peer", func(o *asyncraft.NodeOptions) { o.ID = "c" }, "not among Peers"},
		{"duplicate peer", func(o *asyncraft.NodeOptions) { o.Peers = append(o.Peers, peers[0]) }, "listed twice"},
		{"peer without address", func(o *asyncraft.NodeOptions) { o.Peers = []asyncraft.Peer{{ID: "a"}} }, "no address"},
		{"heartbeat below a tick", func(o *asyncraft.NodeOptions) { o.HeartbeatInterval = time.Millisecond }, "shorter than a tick"},
		{"election too short", func(o *asyncraft.NodeOptions) {
			o.ElectionTimeout = 100 * time.Millisecond
			o.HeartbeatInterval = 50 * time.Millisecond
		}, "at least 3×HeartbeatInterval"},
		{"batch above queue", func(o *asyncraft.NodeOptions) { o.ApplyBatch, o.MaxPendingTasks = 64, 32 }, "exceeds MaxPendingTasks"},
		{"half storage", func(o *asyncraft.NodeOptions) { o.LogStorage = logmgr.NewMemoryStorage() }, "both LogStorage and MetaStorage"},
		{"negative election timeout", func(o *asyncraft.NodeOptions) { o.ElectionTimeout = -time.Second }, "ElectionTimeout -1s is negative"},
		{"negative heartbeat", func(o *asyncraft.NodeOptions) { o.HeartbeatInterval = -time.Millisecond }, "HeartbeatInterval -1ms is negative"},
		{"negative read timeout", func(o *asyncraft.NodeOptions) { o.ReadTimeout = -time.Second }, "ReadTimeout -1s is negative"},
		{"negative clock drift", func(o *asyncraft.NodeOptions) { o.MaxClockDrift = -time.Millisecond }, "MaxClockDrift -1ms is negative"},
		{"read timeout below a tick", func(o *asyncraft.NodeOptions) { o.ReadTimeout = time.Millisecond }, "ReadTimeout 1ms is shorter than a tick"},
		{"inflight window below one RPC", func(o *asyncraft.NodeOptions) { o.MaxInflightBytes, o.MaxBytesPerRPC = 64<<10, 128<<10 }, "MaxInflightBytes 65536 is below MaxBytesPerRPC 131072"},
		{"RPC above a message", func(o *asyncraft.NodeOptions) { o.MaxBytesPerRPC = asyncraft.DefaultMaxMessageBytes }, "does not fit the host's MaxMessageBytes"},
		{"lease ratio above 1", func(o *asyncraft.NodeOptions) { o.LeaseRatio = 1.5 }, "LeaseRatio 1.5 must be in (0, 1]"},
		{"lease outliving the voters' promise", func(o *asyncraft.NodeOptions) { o.LeaseRatio = 1 }, "exceeds the election timeout in ticks less one"},
		{"lease eaten by drift", func(o *asyncraft.NodeOptions) { o.MaxClockDrift = time.Second }, "must be positive"},
		{"lease reads without stickiness", func(o *asyncraft.NodeOptions) {
			o.ReadMode, o.DisablePreVote, o.DisableCheckQuorum = asyncraft.ReadLease, true, true
		}, "ReadLease needs leader stickiness"},
	}
	for _, c := range cases {
		o := good()
		c.mod(&o)
		_, err := host.StartNode(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := host.StartNode(good()); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	if _, err := host.StartNode(good()); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Fatalf("second start of the same node: %v", err)
	}
}

func TestHostOptionsAreValidated(t *testing.T) {
	tls := &asyncraft.TLSFiles{CertFile: "host.pem", KeyFile: "host-key.pem", CAFile: "ca.pem"}
	cases := []struct {
		name string
		opts asyncraft.HostOptions
		want string
	}{
		{"no address", asyncraft.HostOptions{}, "Addr is required"},
		{"a name without a port", asyncraft.HostOptions{Addr: "local"}, `Addr "local": not host:port`},
		{"an IP without a port", asyncraft.HostOptions{Addr: "127.0.0.1"}, "set Local"},
		{"a named port", asyncraft.HostOptions{Addr: "127.0.0.1:raft"}, `port "raft" is not a number`},
		{"a port out of range", asyncraft.HostOptions{Addr: "127.0.0.1:70000"}, `port "70000" is not a number in [0, 65535]`},
		{"local with a port", asyncraft.HostOptions{Local: true, Addr: "127.0.0.1:0"}, "but Local is set"},
		{"local with TLS", asyncraft.HostOptions{Local: true, TLS: tls}, "TLS is set on a Local host"},
		{"TLS without a key", asyncraft.HostOptions{Addr: "127.0.0.1:0", TLS: &asyncraft.TLSFiles{CertFile: "host.pem", CAFile: "ca.pem"}}, "TLS needs CertFile, KeyFile and CAFile"},
		{"TLS without a CA", asyncraft.HostOptions{Addr: "127.0.0.1:0", TLS: &asyncraft.TLSFiles{CertFile: "host.pem", KeyFile: "host-key.pem"}}, "TLS needs CertFile, KeyFile and CAFile"},
		{"messages above a WAL record", asyncraft.HostOptions{Local: true, MaxMessageBytes: asyncraft.MaxMessageBytesLimit + 1}, "exceeds 67108864 (MaxMessageBytesLimit)"},
		{"messages below the overhead", asyncraft.HostOptions{Local: true, MaxMessageBytes: 64 << 10}, "MaxMessageBytes 65536 is below"},
		{"tiny WAL segments", asyncraft.HostOptions{Local: true, WALSegmentSize: 100}, "WALSegmentSize 100 is outside"},
		{"tiny snapshot chunks", asyncraft.HostOptions{Local: true, SnapshotChunkBytes: 1000}, "SnapshotChunkBytes 1000 is outside"},
		{"snapshot chunks past the limit", asyncraft.HostOptions{Local: true, SnapshotChunkBytes: 3 << 20}, "SnapshotChunkBytes 3145728 is outside"},
		{"snapshot chunks past the message size", asyncraft.HostOptions{Local: true, MaxMessageBytes: 512 << 10, SnapshotChunkBytes: 1 << 20}, "SnapshotChunkBytes 1048576 is outside"},
		{"tick below 1ms", asyncraft.HostOptions{Local: true, TickInterval: time.Microsecond}, "below 1ms"},
	}
	for _, c := range cases {
		h, err := asyncraft.NewHost(c.opts)
		if err == nil {
			h.Close(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// NewHostOn shares the checks that do not concern the network, and
	// refuses the network's options: its runtime has its own network.
	rt := sim.New(sim.Config{Seed: 1}).AddHost("h", sim.HostConfig{})
	for _, c := range []struct {
		name string
		opts asyncraft.HostOptions
		want string
	}{
		{"messages above a WAL record", asyncraft.HostOptions{MaxMessageBytes: asyncraft.MaxMessageBytesLimit + 1}, "MaxMessageBytesLimit"},
		{"local", asyncraft.HostOptions{Local: true}, "a runtime given to NewHostOn has its own"},
		{"TLS", asyncraft.HostOptions{TLS: tls}, "a runtime given to NewHostOn has its own"},
	} {
		if _, err := asyncraft.NewHostOn(rt, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewHostOn, %s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// The bounds themselves are accepted.
	for _, o := range []asyncraft.HostOptions{
		{Local: true, MaxMessageBytes: asyncraft.MaxMessageBytesLimit},
		{Local: true, Addr: "local"},
		{Addr: "127.0.0.1:0"},
	} {
		h, err := asyncraft.NewHost(o)
		if err != nil {
			t.Errorf("%+v refused: %v", o, err)
			continue
		}
		h.Close(context.Background())
	}
	dir := t.TempDir()
	h, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, Addr: "a", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if _, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, Addr: "b", DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second host on one data directory: %v", err)
	}
}

func TestApplyWait(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	n, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}},
		StateMachine: &counter{}, ElectionTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Before the node leads, the answer is EPERM.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.ApplyWait(ctx, []byte("xx")); !errors.Is(err, closure.ErrNotLeader) {
		t.Fatalf("apply before election: %v", err)
	}
	waitFor(t, "leadership", 10*time.Second, func() bool { return n.Status().Role == asyncraft.Leader })
	v, err := n.ApplyWait(ctx, []byte("xx"))
	if err != nil || v.(int) != 2 {
		t.Fatalf("ApplyWait = %v, %v; want 2", v, err)
	}
	v, err = n.ApplyWait(ctx, []byte("yyy"))
	if err != nil || v.(int) != 5 {
		t.Fatalf("ApplyWait = %v, %v; want 5", v, err)
	}
	// A context that ends first: the outcome is unknown, and says so.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	_, err = n.ApplyWait(done, []byte("z"))
	if !errors.Is(err, closure.ErrUnknownOutcome) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ApplyWait: %v", err)
	}
	if s := n.Status(); s.Role != asyncraft.Leader || s.Applied < 3 || s.Commit < s.Applied {
		t.Fatalf("status %v", s)
	}
}

func TestApplyAfterCloseStillCompletes(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true})
	if err != nil {
		t.Fatal(err)
	}
	n, err := host.StartNode(asyncraft.NodeOptions{
		Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "local"}}, StateMachine: &counter{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := host.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := make(chan closure.Status, 1)
	n.Apply(asyncraft.Task{Data: []byte("x"), Done: closure.Func(func(st closure.Status) { got <- st })})
	select {
	case st := <-got:
		if st.Code != closure.ESHUTDOWN {
			t.Fatalf("apply after close: %v", st)
		}
	case <-ctx.Done():
		t.Fatal("the closure of an apply after Close never ran")
	}
}

// A host with a network refuses a peer it could never reach: one listed
// without a port.
func TestPeerWithoutPortRefused(t *testing.T) {
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	_, err = host.StartNode(asyncraft.NodeOptions{Group: "g", ID: "a", StateMachine: &counter{},
		Peers: []asyncraft.Peer{{ID: "a", Addr: host.Addr()}, {ID: "b", Addr: "nowhere"}}})
	if err == nil || !strings.Contains(err.Error(), `peer "b" at "nowhere": not host:port`) {
		t.Fatalf("peer without a port: %v", err)
	}
	if _, err := host.StartNode(asyncraft.NodeOptions{Group: "g", ID: "a", StateMachine: &counter{},
		Peers: []asyncraft.Peer{{ID: "a", Addr: host.Addr()}, {ID: "b", Addr: "127.0.0.1:1"}}}); err != nil {
		t.Fatalf("peers with ports refused: %v", err)
	}
}

// TestLargestCommandFitsTheLog: with the largest MaxMessageBytes a host
// accepts, the largest command Apply accepts is persisted in the WAL and
// read back after a restart; one byte more fails with EINVAL at once and
// never reaches the log.
func TestLargestCommandFitsTheLog(t *testing.T) {
	s := sim.New(sim.Config{Seed: 1, OnPanic: func(ref actors.Ref, v any, _ []byte) { t.Fatalf("%v panicked: %v", ref, v) }})
	sh := s.AddHost("h", sim.HostConfig{})
	start := func() *asyncraft.Node {
		t.Helper()
		host, err := asyncraft.NewHostOn(sh, asyncraft.HostOptions{
			DataDir: "/data", FS: sh.Disk(), MaxMessageBytes: asyncraft.MaxMessageBytesLimit, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		n, err := host.StartNode(asyncraft.NodeOptions{Group: "g", ID: "a", Peers: []asyncraft.Peer{{ID: "a", Addr: "h"}}, StateMachine: &counter{}})
		if err != nil {
			t.Fatal(err)
		}
		if !s.RunUntil(func() bool { s := n.Status(); return s.Role == asyncraft.Leader && s.Applied == s.LastIndex }, 10*time.Second) {
			t.Fatalf("no leader: %v", n.Status())
		}
		return n
	}
	n := start()
	largest := asyncraft.MaxMessageBytesLimit - 64<<10
	apply := func(size int) closure.Status {
		t.Helper()
		var got *closure.Status
		cmd := make([]byte, size)
		cmd[0], cmd[size-1] = 1, 2
		n.Apply(asyncraft.Task{Data: cmd, Done: closure.Func(func(st closure.Status) { got = &st })})
		if !s.RunUntil(func() bool { return got != nil }, 10*time.Second) {
			t.Fatalf("a command of %d bytes did not complete: %v", size, n.Status())
		}
		return *got
	}
	last := n.Status().LastIndex
	if st := apply(largest + 1); st.Code != closure.EINVAL {
		t.Fatalf("a command of %d bytes: %v, want EINVAL", largest+1, st)
	}
	if got := n.Status().LastIndex; got != last {
		t.Fatalf("the refused command reached the log: last index %d, was %d", got, last)
	}
	if st := apply(largest); !st.OK() {
		t.Fatalf("a command of %d bytes: %v (node %v)", largest, st, n.Status())
	}
	index := n.Status().Applied
	sh.Crash()
	sh.Restart()
	n = start()
	ents, err := n.Log().Entries(index, index+1, 1)
	if err != nil || len(ents) != 1 {
		t.Fatalf("entry %d after a restart: %v, %v", index, ents, err)
	}
	if d := ents[0].Data; len(d) != largest || d[0] != 1 || d[largest-1] != 2 {
		t.Fatalf("entry %d after a restart holds %d bytes, want the %d proposed", index, len(d), largest)
	}
}
