package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/chaos/proxy"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// A cluster is three kvstore processes on 127.0.0.1, each with its own
// data directory and log file, whose Raft traffic goes through one proxy
// per directed link. Clients talk to the nodes' HTTP ports directly.
//
// On Linux every node reaches node j at one address, the Front fronts[j],
// which hands each connection to the Link of the node that opened it
// (socketOwner): the configuration entries of a membership change hold one
// address per member, and with the same address for everyone the cuts
// stay one-way after any change. Elsewhere node i reaches j at the Link
// links[i][j]'s own listener; a configuration entry then carries the
// addresses of the leader that made it (its own Links), and the cuts
// after a membership change are not what they say.
type cluster struct {
	t     *testing.T
	bin   string
	dir   string
	start time.Time
	nodes []*node
	// links[i][j] carries node i's traffic to node j (nil for i == j
	// without fronts).
	links [][]*proxy.Link
	// fronts[j] is where every node reaches node j (nil: not on Linux).
	fronts []*proxy.Front
	tl     *timeline
	// extra are the kvstore flags every node gets.
	extra []string
	// retired are the ids of nodes the membership nemesis replaced.
	retired map[string]bool

	mu         sync.Mutex
	unexpected []string // processes that exited on their own
}

type node struct {
	c   *cluster
	idx int
	// id is the node's id; a slot replaced by the membership nemesis
	// takes a new one (n2, then n2r1, ...), as the process it runs then
	// joined the group anew.
	id       string
	raftAddr string // where it listens (the proxies forward here)
	httpAddr string
	data     string
	logPath  string
	args     []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	running bool
	paused  bool
	killed  bool // the current process's exit is expected
	exited  chan struct{}
	lives   int
	// generation counts the times the slot was replaced by a new node.
	generation int
	// life is the largest of each counter the current process reported
	// in GET /status, past the sum over its earlier processes (each
	// process counts from 0): together, what this node did in the run, as
	// far as the harness saw (a process killed before it was asked again
	// took its last increments with it).
	life, past counters
}

// counters are the snapshot and install counters of GET /status, summed
// or merged across a node's lives.
type counters kvapi.MetricsReply

func (a counters) plus(b counters) counters {
	return counters{a.Snapshots + b.Snapshots, a.SnapshotFailures + b.SnapshotFailures, a.InstallsStarted + b.InstallsStarted,
		a.InstallsDone + b.InstallsDone, a.InstallFailures + b.InstallFailures, a.SnapshotsSent + b.SnapshotsSent}
}

func (a counters) max(b counters) counters {
	return counters{max(a.Snapshots, b.Snapshots), max(a.SnapshotFailures, b.SnapshotFailures), max(a.InstallsStarted, b.InstallsStarted),
		max(a.InstallsDone, b.InstallsDone), max(a.InstallFailures, b.InstallFailures), max(a.SnapshotsSent, b.SnapshotsSent)}
}

func (a counters) String() string {
	return fmt.Sprintf("snapshots taken %d (failed %d), installs started %d done %d failed %d, snapshots sent %d",
		a.Snapshots, a.SnapshotFailures, a.InstallsStarted, a.InstallsDone, a.InstallFailures, a.SnapshotsSent)
}

// buildKVStore builds the kvstore example into dir and returns the binary.
func buildKVStore(t *testing.T, dir string, race bool) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "examples", "kvstore")); err != nil {
		t.Fatalf("cannot find the kvstore example from %s: %v", root, err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "kvstore")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./examples/kvstore")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/kvstore: %v\n%s", err, out)
	}
	return bin
}

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
	portRand = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
)

// freePort returns a free port on 127.0.0.1 for a node to listen on, for
// all its lives. It picks one below the kernel's ephemeral range when it
// can: ports given out for :0 (the proxies) and for outgoing connections
// come from that range, and could take the port while the node is down.
func freePort(t *testing.T) string {
	t.Helper()
	lo, hi := 10000, ephemeralLow()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		if hi-lo < 1000 {
			break
		}
		p := lo + portRand.IntN(hi-lo)
		if portUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		portUsed[p] = true
		return l.Addr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ephemeralLow is the start of the kernel's ephemeral port range (32768
// if it cannot tell).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// newCluster prepares (but does not start) n nodes and their proxies,
// with extra flags for the kvstore. Every process and proxy is stopped by
// t.Cleanup.
func newCluster(t *testing.T, bin, dir string, n int, tl *timeline, extra ...string) *cluster {
	c := &cluster{t: t, bin: bin, dir: dir, start: tl.start, tl: tl}
	for i := range n {
		c.nodes = append(c.nodes, &node{
			c: c, idx: i, id: fmt.Sprintf("n%d", i+1),
			raftAddr: freePort(t), httpAddr: freePort(t),
			data:    filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			logPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1)),
		})
	}
	t.Cleanup(c.killAll)
	c.extra = extra
	c.links = make([][]*proxy.Link, n)
	for i := range n {
		c.links[i] = make([]*proxy.Link, n)
		for j := range n {
			var l *proxy.Link
			switch {
			case routeBySource:
				l = proxy.NewLink(c.nodes[j].raftAddr)
			case i == j:
				continue
			default:
				var err error
				if l, err = proxy.Listen(c.nodes[j].raftAddr); err != nil {
					t.Fatal(err)
				}
			}
			c.links[i][j] = l
			t.Cleanup(func() { l.Close() })
		}
	}
	if routeBySource {
		for j := range n {
			f, err := proxy.ListenFront(func(conn net.Conn) *proxy.Link {
				if i := socketOwner(conn, c.pids()); i >= 0 {
					return c.links[i][j]
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			c.fronts = append(c.fronts, f)
			t.Cleanup(func() { f.Close() })
		}
	}
	for i, nd := range c.nodes {
		nd.args = c.nodeArgs(i, c.peerList(i))
	}
	return c
}

// peerAddr is where node i reaches node j: j's Front, or the Link i→j
// (j's own address for i == j).
func (c *cluster) peerAddr(i, j int) string {
	switch {
	case c.fronts != nil:
		return c.fronts[j].Addr()
	case i == j:
		return c.nodes[j].raftAddr
	}
	return c.links[i][j].Addr()
}

// peerList is node i's -peers: every node's current id at the address
// where i reaches it.
func (c *cluster) peerList(i int) string {
	var peers []string
	for j, other := range c.nodes {
		peers = append(peers, other.id+"="+c.peerAddr(i, j))
	}
	return strings.Join(peers, ",")
}

// nodeArgs are the flags of node i, with peers as its -peers (a founder
// keeps those of its first start for all its lives: with its id they are
// its identity).
func (c *cluster) nodeArgs(i int, peers string) []string {
	nd := c.nodes[i]
	var peerHTTP []string
	for _, other := range c.nodes {
		peerHTTP = append(peerHTTP, other.id+"="+other.httpAddr)
	}
	args := []string{
		"-id", nd.id, "-addr", nd.raftAddr, "-http", nd.httpAddr, "-data", nd.data,
		"-peers", peers, "-peer-http", strings.Join(peerHTTP, ","),
		"-timeout", serverTimeout.String(),
	}
	return append(args, c.extra...)
}

// pids returns the process id of each node (0: not running).
func (c *cluster) pids() []int {
	out := make([]int, len(c.nodes))
	for i, nd := range c.nodes {
		nd.mu.Lock()
		if nd.running {
			out[i] = nd.cmd.Process.Pid
		}
		nd.mu.Unlock()
	}
	return out
}

// unrouted returns the number of connections to a Front whose sender was
// not found (reset; the sender connects again).
func (c *cluster) unrouted() int {
	n := 0
	for _, f := range c.fronts {
		n += f.Unrouted()
	}
	return n
}

// startAll starts every node and waits until each serves HTTP.
func (c *cluster) startAll() {
	for _, nd := range c.nodes {
		if err := nd.start(); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, nd := range c.nodes {
		if err := nd.waitServing(15 * time.Second); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (nd *node) start() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.running {
		return nil
	}
	logf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	nd.lives++
	nd.past, nd.life = nd.past.plus(nd.life), counters{}
	fmt.Fprintf(logf, "=== %s life %d starting at %s: %s %s\n", nd.id, nd.lives, nd.c.tl.now(), nd.c.bin, strings.Join(nd.args, " "))
	cmd := exec.Command(nd.c.bin, nd.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.id, err)
	}
	nd.cmd, nd.running, nd.paused, nd.killed = cmd, true, false, false
	nd.exited = make(chan struct{})
	exited, life := nd.exited, nd.lives
	nd.c.tl.add("%s started (life %d, pid %d)", nd.id, life, cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		nd.mu.Lock()
		expected := nd.killed
		nd.running, nd.paused = false, false
		nd.mu.Unlock()
		if !expected {
			msg := fmt.Sprintf("%s (pid %d, life %d) exited on its own at %s: %v (log: %s)", nd.id, cmd.Process.Pid, life, nd.c.tl.now(), err, nd.logPath)
			nd.c.tl.add("UNEXPECTED EXIT: %s", msg)
			nd.c.mu.Lock()
			nd.c.unexpected = append(nd.c.unexpected, msg)
			nd.c.mu.Unlock()
		}
		close(exited)
	}()
	return nil
}

// waitServing waits until the node answers GET /status.
func (nd *node) waitServing(limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	exited := false
	serving := eventually(limit, 50*time.Millisecond, func() bool {
		if _, err := nd.status(client); err == nil {
			return true
		}
		nd.mu.Lock()
		exited = !nd.running
		nd.mu.Unlock()
		return exited
	})
	switch {
	case exited:
		return fmt.Errorf("%s exited before serving (log: %s)", nd.id, nd.logPath)
	case !serving:
		return fmt.Errorf("%s does not serve HTTP at %s after %v (log: %s)", nd.id, nd.httpAddr, limit, nd.logPath)
	}
	return nil
}

// kill ends the node's process with SIGKILL and waits for it.
func (nd *node) kill() {
	nd.mu.Lock()
	if !nd.running {
		nd.mu.Unlock()
		return
	}
	nd.killed = true
	cmd, exited := nd.cmd, nd.exited
	nd.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// pause stops the process with SIGSTOP; resume continues it.
func (nd *node) pause() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if !nd.running || nd.paused {
		return false
	}
	if err := nd.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return false
	}
	nd.paused = true
	return true
}

func (nd *node) resume() {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.running && nd.paused {
		nd.cmd.Process.Signal(syscall.SIGCONT)
	}
	nd.paused = false
}

func (nd *node) isRunning() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.running
}

// stop ends the process in order (SIGTERM), or kills it after limit. It
// reports whether it exited in time and cleanly.
func (nd *node) stop(limit time.Duration) error {
	nd.mu.Lock()
	if !nd.running {
		nd.mu.Unlock()
		return nil
	}
	nd.killed = true
	cmd, exited := nd.cmd, nd.exited
	if nd.paused {
		cmd.Process.Signal(syscall.SIGCONT)
		nd.paused = false
	}
	nd.mu.Unlock()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			return fmt.Errorf("%s (pid %d) exited with %v after SIGTERM (log: %s)", nd.id, cmd.Process.Pid, cmd.ProcessState, nd.logPath)
		}
		return nil
	case <-time.After(limit):
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("%s (pid %d) did not exit within %v of SIGTERM; killed (log: %s)", nd.id, cmd.Process.Pid, limit, nd.logPath)
	}
}

// killAll kills whatever still runs: the safety net of t.Cleanup.
func (c *cluster) killAll() {
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.running {
			nd.killed = true
			nd.cmd.Process.Signal(syscall.SIGKILL)
		}
		exited := nd.exited
		nd.mu.Unlock()
		if exited != nil {
			<-exited
		}
	}
}

// setLink sets the mode of the link i→j.
func (c *cluster) setLink(i, j int, m proxy.Mode) {
	c.links[i][j].SetMode(m)
}

// healLinks brings every link up.
func (c *cluster) healLinks() {
	for i := range c.links {
		for j := range c.links[i] {
			if i != j {
				c.links[i][j].SetMode(proxy.Up)
			}
		}
	}
}

// statusReply is the kvstore's GET /status, with the test's helpers.
type statusReply kvapi.StatusReply

// installing returns the peer the leader is installing a snapshot on.
func (st statusReply) installing() (kvapi.PeerReply, bool) {
	for _, p := range st.Peers {
		if p.State == "snapshot" {
			return p, true
		}
	}
	return kvapi.PeerReply{}, false
}

func (nd *node) status(client *http.Client) (statusReply, error) {
	var st statusReply
	ctx, cancel := context.WithTimeout(context.Background(), client.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.httpAddr+"/status", nil)
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: /status: %s", nd.id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, err
	}
	if st.Metrics != nil {
		nd.mu.Lock()
		nd.life = nd.life.max(counters(*st.Metrics))
		nd.mu.Unlock()
	}
	return st, nil
}

// totals returns what the node counted in the run, over all its
// processes, as far as the harness saw.
func (nd *node) totals() counters {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.past.plus(nd.life)
}

// totals sums the nodes' counters.
func (c *cluster) totals() counters {
	var sum counters
	for _, nd := range c.nodes {
		sum = sum.plus(nd.totals())
	}
	return sum
}

// snapshot asks the node for a snapshot now (POST /snapshot); a 409 (one
// is being taken, or nothing was applied since the newest) is fine.
func (nd *node) snapshot(client *http.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), client.Timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+nd.httpAddr+"/snapshot", nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("%s: POST /snapshot: %s", nd.id, resp.Status)
	}
	return nil
}

// leader returns the index of the node that claims to lead in the highest
// term, or -1.
func (c *cluster) leader() int {
	client := &http.Client{Timeout: 300 * time.Millisecond}
	best, term := -1, uint64(0)
	for i, nd := range c.nodes {
		if !nd.isRunning() {
			continue
		}
		st, err := nd.status(client)
		if err == nil && st.Role == "leader" && st.Term >= term {
			best, term = i, st.Term
		}
	}
	return best
}

func (c *cluster) unexpectedExits() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.unexpected...)
}

// timeline records what happened when, for the failure report.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	lines []string
	t     *testing.T
}

func (tl *timeline) now() string {
	return fmt.Sprintf("%8.3fs", time.Since(tl.start).Seconds())
}

func (tl *timeline) add(format string, args ...any) {
	line := tl.now() + " " + fmt.Sprintf(format, args...)
	tl.mu.Lock()
	tl.lines = append(tl.lines, line)
	tl.mu.Unlock()
	if testing.Verbose() {
		fmt.Println("chaos:", line)
	}
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.lines, "\n")
}

// badLog marks log lines that should never appear: a data race (with
// -chaos.race), a panic or fatal error, an error logged by asyncraft or the
// kvstore.
var badLog = []string{"WARNING: DATA RACE", "panic:", "fatal error:", "level=ERROR"}

// scanLogs returns the bad lines of the nodes' logs (a few per node).
func (c *cluster) scanLogs() []string {
	var out []string
	for _, nd := range c.nodes {
		b, err := os.ReadFile(nd.logPath)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", nd.id, err))
			continue
		}
		n := 0
		for _, line := range strings.Split(string(b), "\n") {
			for _, bad := range badLog {
				if strings.Contains(line, bad) {
					if n < 5 {
						out = append(out, fmt.Sprintf("%s (%s): %.300s", nd.id, nd.logPath, line))
					}
					n++
					break
				}
			}
		}
		if n > 5 {
			out = append(out, fmt.Sprintf("%s: %d more bad lines in %s", nd.id, n-5, nd.logPath))
		}
	}
	return out
}
