package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/asyncraft/asyncraft/closure"
)

// The orchestrator drives each member process over its stdin and stdout,
// one JSON object per line (see package loadgen): commands go in, events
// come out.

// memberFlag, as the first argument, makes the binary a member process.
const memberFlag = "-member"

// Short names for the protocol's types.
type (
	command      = loadgen.Command
	event        = loadgen.Event
	nodeStatus   = loadgen.NodeStatus
	memberResult = loadgen.Result
)

func groupName(g int) string { return loadgen.GroupName(g) }

// member is one asyncraft member process: a Host running this process's
// nodes of every group. It is a loadgen.System; loadgen.Serve calls it
// from one goroutine.
type member struct {
	host  *asyncraft.Host
	ids   []string
	nodes map[string]*groupNode
	order []string // group/id, in start order
	// recovered is called once a watched node serves (it ends the
	// -profile-recovery profile).
	recovered func()
}

// groupNode is a node of this process and its state machine.
type groupNode struct {
	node *asyncraft.Node
	sm   *kv
	// recovery, with NodeConfig.Watch: the node's recovery timeline,
	// sent once when it serves (or gives up).
	recovery chan *loadgen.Recovery
}

func memberMain(args []string) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	ids := fs.String("ids", "", "comma list of the node ids this process runs")
	addr := fs.String("addr", "127.0.0.1:0", `host address ("local": a host without a network)`)
	data := fs.String("data", "", "data directory")
	system := fs.String("system", "asyncraft", "the library (this binary runs asyncraft only)")
	segment := fs.Int64("wal-segment-size", 0, "HostOptions.WALSegmentSize (0: the library's default)")
	snapRate := fs.Int64("snapshot-rate", 0, "HostOptions.SnapshotBytesPerSecond (0: the library's default; negative: no cap)")
	recoveryProfile := fs.String("profile-recovery", "", "write a CPU profile from the process's start until its watched node serves (restart workloads)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *system != "asyncraft" {
		return fmt.Errorf("this member runs asyncraft, not %s (the peers' members are built from bench/peers)", *system)
	}
	stopProfile := func() {}
	if *recoveryProfile != "" {
		f, err := os.Create(*recoveryProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		var once sync.Once
		stopProfile = func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }
		defer stopProfile()
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: *addr, Local: *addr == "local", DataDir: *data, Logger: logger,
		WALSegmentSize: *segment, SnapshotBytesPerSecond: *snapRate})
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		host.Close(ctx)
	}()
	m := &member{host: host, ids: splitList(*ids), nodes: map[string]*groupNode{}, recovered: stopProfile}
	return loadgen.Serve(m, os.Stdin, os.Stdout)
}

func (m *member) Addr() string    { return m.host.Addr() }
func (m *member) Version() string { return "asyncraft (this tree)" }

func (m *member) Start(cmd command) error {
	if len(m.order) > 0 {
		return fmt.Errorf("already started")
	}
	if len(cmd.Peers) == 0 || cmd.Groups < 1 {
		return fmt.Errorf("start needs peers and groups")
	}
	peers := make([]asyncraft.Peer, len(cmd.Peers))
	for i, p := range cmd.Peers {
		peers[i] = asyncraft.Peer{ID: p.ID, Addr: p.Addr}
	}
	for g := 0; g < cmd.Groups; g++ {
		preferred := peers[g%len(peers)].ID
		for _, id := range m.ids {
			et := cmd.FollowerET
			if id == preferred {
				et = cmd.LeaderET
			}
			sm := newKV()
			opts := asyncraft.NodeOptions{
				Group: groupName(g), ID: id, Peers: peers, StateMachine: sm,
				ElectionTimeout: et, // 0: the library's default
			}
			var nc loadgen.NodeConfig
			if cmd.Node != nil {
				nc = *cmd.Node
			}
			opts.SnapshotEntries, opts.SnapshotLogBytes = nc.SnapshotEntries, nc.SnapshotLogBytes
			opts.SnapshotTrailingEntries, opts.RejoinTerm = nc.SnapshotTrailingEntries, nc.RejoinTerm
			opts.JoinIdentity, opts.CatchUpTimeout = nc.JoinIdentity, nc.CatchUpTimeout
			t0 := time.Now()
			n, err := m.host.StartNode(opts)
			if err != nil {
				return err
			}
			startNode := time.Since(t0)
			key := groupName(g) + "/" + id
			gn := &groupNode{node: n, sm: sm}
			if nc.Watch {
				gn.recovery = make(chan *loadgen.Recovery, 1)
				go func() {
					watchRecovery(gn, t0, startNode, n.Status())
					m.recovered()
				}()
			}
			m.nodes[key] = gn
			m.order = append(m.order, key)
		}
	}
	return nil
}

func (m *member) Status() []nodeStatus {
	out := make([]nodeStatus, 0, len(m.order))
	for _, key := range m.order {
		s := m.nodes[key].node.Status()
		gn := m.nodes[key]
		mt, st := gn.node.Metrics(), gn.node.SnapshotStats()
		ns := nodeStatus{Group: s.Group, ID: s.ID, Role: s.Role.String(), Term: s.Term,
			Leader: s.Leader, Commit: s.Commit, Applied: s.Applied,
			LastIndex: s.LastIndex, FirstIndex: s.FirstIndex, SnapshotIndex: s.SnapshotIndex,
			Snapshots: mt.Snapshots.Load(), SnapshotFailures: mt.SnapshotFailures.Load(),
			InstallsStarted: mt.InstallsStarted.Load(), InstallsDone: mt.InstallsDone.Load(),
			InstallFailures: mt.InstallFailures.Load(), SnapshotsSent: mt.SnapshotsSent.Load(),
			SnapBytesSent: st.BytesSent.Load(), SnapBytesReceived: st.BytesReceived.Load(),
			SnapshotBytes: gn.sm.snapBytes.Load(),
			Identity:      gn.node.ClusterIdentity(), Joint: s.Configuration.Joint(),
			Voters: peerIDs(s.Configuration.Voters), Learners: peerIDs(s.Configuration.Learners),
			MembershipChanges: mt.MembershipChanges.Load(), MembershipFailures: mt.MembershipFailures.Load(),
			TransfersStarted: mt.TransfersStarted.Load(), TransfersDone: mt.TransfersDone.Load(), TransfersFailed: mt.TransfersFailed.Load()}
		if s.Err != nil {
			ns.Err = s.Err.Error()
		}
		out = append(out, ns)
	}
	return out
}

// leaderOf returns this process's node of group, which must lead it.
func (m *member) leaderOf(group string) (*groupNode, error) {
	for _, key := range m.order {
		if g, _, _ := strings.Cut(key, "/"); g != group {
			continue
		}
		gn := m.nodes[key]
		s := gn.node.Status()
		if s.Role != asyncraft.Leader {
			return nil, fmt.Errorf("%s/%s is %s, not the leader (the leader is %q)", group, s.ID, s.Role, s.Leader)
		}
		return gn, nil
	}
	return nil, fmt.Errorf("this process has no node of group %s", group)
}

func (m *member) driven(groups []string) ([]*groupNode, error) {
	if len(groups) == 0 {
		return nil, errors.New("no groups to drive")
	}
	var out []*groupNode
	for _, g := range groups {
		gn, err := m.leaderOf(g)
		if err != nil {
			return nil, err
		}
		out = append(out, gn)
	}
	return out, nil
}

func (m *member) Targets(groups []string) ([]loadgen.Target, error) {
	nodes, err := m.driven(groups)
	if err != nil {
		return nil, err
	}
	out := make([]loadgen.Target, len(nodes))
	for i, gn := range nodes {
		out[i] = target{gn, asyncraft.ReadSafe}
	}
	return out, nil
}

// target is a leader as a goroutine client calls it: ApplyWait, or
// ReadBarrier and a read of the local map.
type target struct {
	gn   *groupNode
	mode asyncraft.ReadMode
}

func (t target) Propose(ctx context.Context, cmd []byte) error {
	_, err := t.gn.node.ApplyWait(ctx, cmd)
	return err
}

func (t target) Read(ctx context.Context, key uint64) (bool, error) {
	if err := t.gn.node.ReadBarrier(ctx, t.mode); err != nil {
		return false, err
	}
	_, ok := t.gn.sm.get(key)
	return ok, nil
}

// ErrorName counts a failed operation by its status code (EBUSY, EPERM,
// …), or as "deadline" when its context ended first.
func (m *member) ErrorName(err error) string {
	var ce *closure.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.As(err, &ce):
		return ce.Status.Code.String()
	}
	return loadgen.ErrorName(err)
}
