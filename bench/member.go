package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft"
)

// The orchestrator drives each member process over its stdin and stdout,
// one JSON object per line. Commands go in, events come out.

// memberFlag, as the first argument, makes the binary a member process.
const memberFlag = "-member"

// command is one line on a member's stdin.
type command struct {
	// Op: start | status | prefill | run | profile | quit. profile
	// (no answer): write a CPU profile of the window of a run that
	// another process drives, and a heap profile at its end.
	Op string `json:"op"`
	// start: the group's members (this process's ids among them), the
	// number of groups, and the election timeouts of a group's preferred
	// leader (members[g mod len]) and of the others.
	Peers      []asyncraft.Peer `json:"peers,omitempty"`
	Groups     int              `json:"groups,omitempty"`
	LeaderET   time.Duration    `json:"leader_et,omitempty"`
	FollowerET time.Duration    `json:"follower_et,omitempty"`
	// prefill, run: the workload, and the groups this process drives (it
	// leads them). run: when the warm-up begins (Unix ns), where to write
	// a CPU profile of the measured interval, how long to wait for
	// operations still in flight at the end.
	Spec    *Spec         `json:"spec,omitempty"`
	Drive   []string      `json:"drive,omitempty"`
	Start   int64         `json:"start,omitempty"`
	Profile string        `json:"profile,omitempty"`
	Stall   time.Duration `json:"stall,omitempty"`
}

// event is one line on a member's stdout.
type event struct {
	// Ev: ready | started | status | prefilled | progress | result |
	// error; the orchestrator adds exit when the stream ends.
	Ev   string `json:"ev"`
	PID  int    `json:"pid,omitempty"`
	Addr string `json:"addr,omitempty"`
	// status
	Nodes []nodeStatus `json:"nodes,omitempty"`
	// progress: operations completed OK and failed since the run began.
	Ops  uint64 `json:"ops,omitempty"`
	Errs uint64 `json:"errs,omitempty"`
	// result
	Result *memberResult `json:"result,omitempty"`
	Err    string        `json:"err,omitempty"`
}

type nodeStatus struct {
	Group   string `json:"group"`
	ID      string `json:"id"`
	Role    string `json:"role"`
	Term    uint64 `json:"term"`
	Leader  string `json:"leader"`
	Commit  uint64 `json:"commit"`
	Applied uint64 `json:"applied"`
	Err     string `json:"err,omitempty"`
}

// emitter writes events to stdout, one per line, from any goroutine.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev) // a broken pipe means the orchestrator is gone; stdin EOF ends us
}

// groupName is the name of group g.
func groupName(g int) string { return fmt.Sprintf("g%d", g) }

// member is one member process: a Host running this process's nodes of
// every group.
type member struct {
	host  *asyncraft.Host
	ids   []string
	out   *emitter
	gone  chan struct{} // closed when stdin ends: the orchestrator is gone
	nodes map[string]*groupNode
	order []string // group/id, in start order
}

// groupNode is a node of this process and its state machine.
type groupNode struct {
	node *asyncraft.Node
	sm   *kv
}

func memberMain(args []string) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	ids := fs.String("ids", "", "comma list of the node ids this process runs")
	addr := fs.String("addr", "127.0.0.1:0", `host address ("local": a host without a network)`)
	data := fs.String("data", "", "data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Addr: *addr, Local: *addr == "local", DataDir: *data, Logger: logger})
	if err != nil {
		return err
	}
	m := &member{
		host:  host,
		ids:   splitList(*ids),
		out:   &emitter{enc: json.NewEncoder(os.Stdout)},
		gone:  make(chan struct{}),
		nodes: map[string]*groupNode{},
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		host.Close(ctx)
	}()
	cmds := make(chan command)
	go readCommands(os.Stdin, cmds, m.gone, m.out)
	m.out.emit(event{Ev: "ready", PID: os.Getpid(), Addr: host.Addr()})
	for cmd := range cmds {
		switch cmd.Op {
		case "start":
			if err := m.start(cmd); err != nil {
				m.out.emit(event{Ev: "error", Err: err.Error()})
				continue
			}
			m.out.emit(event{Ev: "started"})
		case "status":
			m.out.emit(event{Ev: "status", Nodes: m.status()})
		case "prefill":
			if err := m.prefill(cmd); err != nil {
				m.out.emit(event{Ev: "error", Err: err.Error()})
				continue
			}
			m.out.emit(event{Ev: "prefilled"})
		case "run":
			res, err := m.run(cmd)
			if err != nil {
				m.out.emit(event{Ev: "error", Err: err.Error()})
				continue
			}
			m.out.emit(event{Ev: "result", Result: res})
		case "profile":
			go profileWindow(cmd)
		case "quit":
			return nil
		default:
			m.out.emit(event{Ev: "error", Err: fmt.Sprintf("unknown command %q", cmd.Op)})
		}
	}
	return nil // stdin ended: the orchestrator is gone
}

// readCommands decodes stdin into cmds until it ends, then closes gone
// and cmds.
func readCommands(r io.Reader, cmds chan<- command, gone chan<- struct{}, out *emitter) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var cmd command
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			out.emit(event{Ev: "error", Err: fmt.Sprintf("bad command %q: %v", sc.Text(), err)})
			continue
		}
		cmds <- cmd
	}
	close(gone)
	close(cmds)
}

func (m *member) start(cmd command) error {
	if len(m.order) > 0 {
		return fmt.Errorf("already started")
	}
	if len(cmd.Peers) == 0 || cmd.Groups < 1 {
		return fmt.Errorf("start needs peers and groups")
	}
	for g := 0; g < cmd.Groups; g++ {
		preferred := cmd.Peers[g%len(cmd.Peers)].ID
		for _, id := range m.ids {
			et := cmd.FollowerET
			if id == preferred {
				et = cmd.LeaderET
			}
			sm := newKV()
			n, err := m.host.StartNode(asyncraft.NodeOptions{
				Group: groupName(g), ID: id, Peers: cmd.Peers, StateMachine: sm,
				ElectionTimeout: et, // 0: the library's default
			})
			if err != nil {
				return err
			}
			key := groupName(g) + "/" + id
			m.nodes[key] = &groupNode{node: n, sm: sm}
			m.order = append(m.order, key)
		}
	}
	return nil
}

func (m *member) status() []nodeStatus {
	out := make([]nodeStatus, 0, len(m.order))
	for _, key := range m.order {
		s := m.nodes[key].node.Status()
		ns := nodeStatus{Group: s.Group, ID: s.ID, Role: s.Role.String(), Term: s.Term,
			Leader: s.Leader, Commit: s.Commit, Applied: s.Applied}
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

func (m *member) driven(cmd command) ([]*groupNode, error) {
	if cmd.Spec == nil || len(cmd.Drive) == 0 {
		return nil, fmt.Errorf("%s needs a spec and groups to drive", cmd.Op)
	}
	var out []*groupNode
	for _, g := range cmd.Drive {
		gn, err := m.leaderOf(g)
		if err != nil {
			return nil, err
		}
		out = append(out, gn)
	}
	return out, nil
}

// prefill writes every key once in each driven group, 64 writes in
// flight per group, and waits until all are applied on the leader.
func (m *member) prefill(cmd command) error {
	nodes, err := m.driven(cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := valueBytes(cmd.Spec.ValueSize)
	errs := make(chan error, len(nodes)*64)
	var wg sync.WaitGroup
	for _, gn := range nodes {
		keys := make(chan uint64, cmd.Spec.Keys)
		for k := 0; k < cmd.Spec.Keys; k++ {
			keys <- uint64(k)
		}
		close(keys)
		for w := 0; w < 64; w++ {
			wg.Go(func() {
				for k := range keys {
					if _, err := gn.node.ApplyWait(ctx, encodeCommand(k, value)); err != nil {
						errs <- fmt.Errorf("prefill of key %d in %s: %w", k, gn.node.Group(), err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}
