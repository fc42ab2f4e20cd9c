package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// proc is one member process, driven over its stdin and stdout.
type proc struct {
	name    string   // "n1", or "all" in-process
	ids     []string // the node ids it runs
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	pid     int
	addr    string
	version string // the library, as the process reported it
	logPath string
	dataDir string
	exited  chan struct{} // closed once the process has been waited for
	// retired: stopped on purpose (a restart workload); its exit is
	// expected. Set and read on the orchestrator's goroutine.
	retired bool
}

// live holds every member process started and not yet waited for, so
// that any exit path (an error, Ctrl-C) can kill them by PID.
var live struct {
	sync.Mutex
	procs map[*proc]bool
}

func register(p *proc) {
	live.Lock()
	defer live.Unlock()
	if live.procs == nil {
		live.procs = map[*proc]bool{}
	}
	live.procs[p] = true
}

func unregister(p *proc) {
	live.Lock()
	defer live.Unlock()
	delete(live.procs, p)
}

// killAll kills every live member process by its PID and waits for it.
func killAll() {
	live.Lock()
	procs := make([]*proc, 0, len(live.procs))
	for p := range live.procs {
		procs = append(procs, p)
	}
	live.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

func (p *proc) send(cmd command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s (pid %d): %w", p.name, p.pid, err)
	}
	return nil
}

// kill sends SIGKILL to the process and waits until it is reaped.
func (p *proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// stop asks the process to quit (it closes its host) and kills it if it
// has not exited within limit.
func (p *proc) stop(limit time.Duration) {
	_ = p.send(command{Op: "quit"})
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(limit):
		p.kill()
	}
}

// logTail is the end of the process's stderr, for error messages.
func (p *proc) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// tagged is an event and the process it came from.
type tagged struct {
	p  *proc
	ev event
}

// cluster is one repetition's member processes.
type cluster struct {
	spec   Spec
	dir    string
	procs  []*proc
	byID   map[string]*proc
	peers  []loadgen.Peer
	events chan tagged
	// pending: events that arrived while await waited for another.
	pending []tagged
	// onProgress, if set, sees the progress events await skips.
	onProgress func(tagged)
	closed     chan struct{}
}

// clusterConfig is what a cluster needs beyond the workload.
type clusterConfig struct {
	// exes: the member program of each system.
	exes                 map[string]string
	leaderET, followerET time.Duration
	startTimeout         time.Duration
}

func memberIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("n%d", i+1)
	}
	return ids
}

// startCluster starts the member processes of spec in dir, each on a
// free port of 127.0.0.1 (or one process without a network, in-process),
// then its nodes.
func startCluster(ctx context.Context, spec Spec, dir string, cfg clusterConfig) (*cluster, error) {
	c := &cluster{spec: spec, dir: dir, byID: map[string]*proc{}, events: make(chan tagged, 1024), closed: make(chan struct{})}
	ids := memberIDs(spec.Members)
	exe := cfg.exes[spec.System]
	if exe == "" {
		return nil, fmt.Errorf("no member program for %s", spec.System)
	}
	if spec.InProc {
		if _, err := c.spawn(exe, "all", ids, "local"); err != nil {
			c.stop()
			return nil, err
		}
	} else {
		for _, id := range ids {
			if _, err := c.spawn(exe, id, []string{id}, "127.0.0.1:0"); err != nil {
				c.stop()
				return nil, err
			}
		}
	}
	for _, p := range c.procs {
		ev, err := c.await(ctx, p, "ready", cfg.startTimeout)
		if err != nil {
			c.stop()
			return nil, err
		}
		p.addr, p.version = ev.Addr, ev.Version
	}
	for _, id := range ids {
		c.peers = append(c.peers, loadgen.Peer{ID: id, Addr: c.byID[id].addr})
	}
	for _, p := range c.procs {
		err := p.send(c.startCommand(cfg, spec.Node))
		if err == nil {
			_, err = c.await(ctx, p, "started", cfg.startTimeout)
		}
		if err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// startCommand is the "start" command of the cluster's members.
func (c *cluster) startCommand(cfg clusterConfig, node *loadgen.NodeConfig) command {
	return command{Op: "start", Peers: c.peers, Groups: c.spec.Groups, LeaderET: cfg.leaderET, FollowerET: cfg.followerET, Node: node}
}

// spawn starts a member process and adds it to the cluster (in place of
// the process of the same name, if any).
func (c *cluster) spawn(exe, name string, ids []string, addr string, extra ...string) (*proc, error) {
	p := &proc{name: name, ids: ids, logPath: filepath.Join(c.dir, name+".log"), dataDir: filepath.Join(c.dir, name), exited: make(chan struct{})}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	args := []string{memberFlag, "-system", c.spec.System, "-ids", strings.Join(ids, ","), "-addr", addr, "-data", p.dataDir}
	if n := c.spec.Node; n != nil {
		if n.WALSegmentSize != 0 {
			args = append(args, "-wal-segment-size", fmt.Sprint(n.WALSegmentSize))
		}
		if n.SnapshotBytesPerSecond != 0 {
			args = append(args, "-snapshot-rate", fmt.Sprint(n.SnapshotBytesPerSecond))
		}
	}
	p.cmd = exec.Command(exe, append(args, extra...)...)
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = memberProcAttr()
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start member %s: %w", name, err)
	}
	p.pid = p.cmd.Process.Pid
	register(p)
	if i := slices.IndexFunc(c.procs, func(q *proc) bool { return q.name == name }); i >= 0 {
		c.procs[i] = p
	} else {
		c.procs = append(c.procs, p)
	}
	for _, id := range ids {
		c.byID[id] = p
	}
	go c.read(p, stdout)
	return p, nil
}

// restartTimes are the moments of a member's restart.
type restartTimes struct {
	Spawned, Ready, Started time.Time
}

// restart stops p in order (its host closes), wipes its data directory
// if asked, and starts it again at the same address with the same data
// directory, then its nodes with node's options. It returns the new
// process and when it was spawned, was ready (its host up) and had
// started its nodes (StartNode returned). extra: more flags of the
// member.
func (c *cluster) restart(ctx context.Context, p *proc, wipe bool, cfg clusterConfig, node *loadgen.NodeConfig, extra ...string) (*proc, restartTimes, error) {
	var t restartTimes
	p.retired = true
	p.stop(30 * time.Second)
	if wipe {
		if err := os.RemoveAll(p.dataDir); err != nil {
			return nil, t, err
		}
	}
	exe := cfg.exes[c.spec.System]
	t.Spawned = time.Now()
	np, err := c.spawn(exe, p.name, p.ids, p.addr, extra...)
	if err != nil {
		return nil, t, err
	}
	ev, err := c.await(ctx, np, "ready", cfg.startTimeout)
	if err != nil {
		return nil, t, err
	}
	t.Ready = time.Now()
	np.addr, np.version = ev.Addr, ev.Version
	if np.addr != p.addr {
		return nil, t, fmt.Errorf("member %s came back at %s, not at %s", p.name, np.addr, p.addr)
	}
	if err := np.send(c.startCommand(cfg, node)); err != nil {
		return nil, t, err
	}
	if _, err := c.await(ctx, np, "started", 5*time.Minute); err != nil {
		return nil, t, err
	}
	t.Started = time.Now()
	return np, t, nil
}

// read forwards p's events until its stdout ends, then reaps it.
func (c *cluster) read(p *proc, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue // not ours (a library printing to stdout)
		}
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			continue
		}
		select {
		case c.events <- tagged{p, ev}:
		case <-c.closed:
		}
	}
	err := p.cmd.Wait()
	unregister(p)
	close(p.exited)
	msg := "exited"
	if err != nil {
		msg = err.Error()
	}
	select {
	case c.events <- tagged{p, event{Ev: "exit", Err: msg}}:
	case <-c.closed:
	}
}

// failure describes an unexpected event from p.
func (c *cluster) failure(t tagged, doing string) error {
	what := t.ev.Err
	if t.ev.Ev == "exit" {
		what = "the process ended (" + t.ev.Err + ")"
	}
	msg := fmt.Sprintf("member %s (pid %d) while %s: %s", t.p.name, t.p.pid, doing, what)
	if tail := t.p.logTail(15); tail != "" {
		msg += "\n  its stderr ends with:\n    " + strings.ReplaceAll(tail, "\n", "\n    ")
	}
	return errors.New(msg)
}

// await waits for event want from p; other processes' events wait in
// pending. An error event from p, or any process ending, fails it.
func (c *cluster) await(ctx context.Context, p *proc, want string, limit time.Duration) (event, error) {
	for i, t := range c.pending {
		if t.p == p && t.ev.Ev == want {
			c.pending = slices.Delete(c.pending, i, i+1)
			return t.ev, nil
		}
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case t := <-c.events:
			switch {
			case t.p.retired && t.ev.Ev == "exit":
				// stopped on purpose
			case t.p == p && t.ev.Ev == want:
				return t.ev, nil
			case t.ev.Ev == "exit" || (t.p == p && t.ev.Ev == "error"):
				return event{}, c.failure(t, "waiting for "+want)
			case t.ev.Ev != "progress":
				c.pending = append(c.pending, t)
			case c.onProgress != nil:
				c.onProgress(t)
			}
		case <-timer.C:
			return event{}, fmt.Errorf("member %s (pid %d) did not answer %q within %v", p.name, p.pid, want, limit)
		case <-ctx.Done():
			return event{}, ctx.Err()
		}
	}
}

// status asks every process for its nodes' status.
func (c *cluster) status(ctx context.Context) ([]nodeStatus, error) {
	var all []nodeStatus
	for _, p := range c.procs {
		if err := p.send(command{Op: "status"}); err != nil {
			return nil, err
		}
		ev, err := c.await(ctx, p, "status", 10*time.Second)
		if err != nil {
			return nil, err
		}
		all = append(all, ev.Nodes...)
	}
	return all, nil
}

// leaders checks that every group has one leader that every member of
// the group follows and that has applied an entry of its term (its
// no-op): then proposals and reads go straight through. It returns each
// group's leader.
func leaders(spec Spec, nodes []nodeStatus) (map[string]string, bool) {
	out := map[string]string{}
	byGroup := map[string][]nodeStatus{}
	for _, n := range nodes {
		byGroup[n.Group] = append(byGroup[n.Group], n)
	}
	for g := 0; g < spec.Groups; g++ {
		members := byGroup[groupName(g)]
		if len(members) != spec.Members {
			return nil, false
		}
		var leader *nodeStatus
		for i, n := range members {
			if n.Role == "leader" {
				if leader != nil {
					return nil, false
				}
				leader = &members[i]
			}
		}
		if leader == nil || leader.Applied < 1 {
			return nil, false
		}
		for _, n := range members {
			if n.Leader != leader.ID || n.Term != leader.Term {
				return nil, false
			}
		}
		out[groupName(g)] = leader.ID
	}
	return out, true
}

// waitLeaders polls until every group has a settled leader.
func (c *cluster) waitLeaders(ctx context.Context, limit time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(limit)
	var last []nodeStatus
	for {
		nodes, err := c.status(ctx)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if n.Err != "" {
				return nil, fmt.Errorf("%s/%s is in the error state: %s", n.Group, n.ID, n.Err)
			}
		}
		if ls, ok := leaders(c.spec, nodes); ok {
			return ls, nil
		}
		last = nodes
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, n := range last {
				fmt.Fprintf(&b, "\n  %s/%s %s term %d leader %q applied %d", n.Group, n.ID, n.Role, n.Term, n.Leader, n.Applied)
			}
			return nil, fmt.Errorf("no settled leader within %v:%s", limit, b.String())
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// drivers maps each process that leads at least one group to the groups
// it leads, in group order.
func (c *cluster) drivers(leaders map[string]string) (map[*proc][]string, []*proc) {
	out := map[*proc][]string{}
	var order []*proc
	for g := 0; g < c.spec.Groups; g++ {
		p := c.byID[leaders[groupName(g)]]
		if _, ok := out[p]; !ok {
			order = append(order, p)
		}
		out[p] = append(out[p], groupName(g))
	}
	return out, order
}

func (c *cluster) pids() []int {
	out := make([]int, len(c.procs))
	for i, p := range c.procs {
		out[i] = p.pid
	}
	return out
}

// stop ends every process: in order if it can, killed if it must. Events
// still coming are dropped.
func (c *cluster) stop() {
	c.closeEvents()
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Go(func() { p.stop(15 * time.Second) })
	}
	wg.Wait()
}

// kill ends every process at once.
func (c *cluster) kill() {
	c.closeEvents()
	for _, p := range c.procs {
		p.kill()
	}
}

func (c *cluster) closeEvents() {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
}

func (c *cluster) procNames(ps []*proc) string {
	var names []string
	for _, p := range ps {
		names = append(names, p.name)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}
