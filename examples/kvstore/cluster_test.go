package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The three-node test runs each node in a process of its own: the test
// binary re-executes itself with nodeEnv set, and TestMain then runs the
// kvstore's main loop instead of the tests. (Two networked hosts in one
// process trip the race detector inside protoactor-go.)
const nodeEnv = "KVSTORE_TEST_NODE_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(nodeEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			fmt.Fprintln(os.Stderr, "kvstore test node:", err)
			os.Exit(2)
		}
		cfg, err := parseFlags(flag.NewFlagSet("kvstore", flag.ContinueOnError), argv)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kvstore test node:", err)
			os.Exit(2)
		}
		if err := run(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "kvstore test node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type testProc struct {
	id, http, log string
	cmd           *exec.Cmd
	done          chan struct{}
}

// testCluster is three kvstore nodes, n1 to n3, each to run in a process
// of its own on 127.0.0.1, with data directories and logs under dir.
type testCluster struct {
	dir             string
	ids             []string
	procs           map[string]*testProc
	peers, peerHTTP []string // id=addr of each node's Raft and HTTP ports
	common          []string // flags every node gets
}

// newTestCluster picks the nodes' addresses; common are flags for every
// node, after the cluster's own.
func newTestCluster(t *testing.T, common ...string) *testCluster {
	c := &testCluster{dir: t.TempDir(), ids: []string{"n1", "n2", "n3"}, procs: map[string]*testProc{}, common: common}
	for _, id := range c.ids {
		p := &testProc{id: id, http: freeAddr(t), log: filepath.Join(c.dir, id+".log")}
		c.procs[id] = p
		c.peers = append(c.peers, id+"="+freeAddr(t))
		c.peerHTTP = append(c.peerHTTP, id+"="+p.http)
	}
	return c
}

// args are the flags of node i: the cluster's, common, then extra.
func (c *testCluster) args(i int, extra ...string) []string {
	id := c.ids[i]
	args := []string{
		"-id", id, "-addr", strings.TrimPrefix(c.peers[i], id+"="), "-http", c.procs[id].http,
		"-data", filepath.Join(c.dir, id), "-peers", strings.Join(c.peers, ","),
		"-peer-http", strings.Join(c.peerHTTP, ","), "-election-timeout", "300ms",
	}
	return append(append(args, c.common...), extra...)
}

// startAll starts every node.
func (c *testCluster) startAll(t *testing.T) {
	for i, id := range c.ids {
		c.procs[id].start(t, c.args(i))
	}
}

// logs returns every node's output so far, for a failure message.
func (c *testCluster) logs() string {
	var b strings.Builder
	for _, id := range c.ids {
		out, _ := os.ReadFile(c.procs[id].log)
		fmt.Fprintf(&b, "--- %s:\n%s", id, out)
	}
	return b.String()
}

// start runs p as a kvstore node with args, its output appended to p.log;
// the process is killed at the end of the test if still running.
func (p *testProc) start(t *testing.T, args []string) {
	t.Helper()
	argv, _ := json.Marshal(args)
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeEnv+"="+string(argv))
	cmd.Stdout, cmd.Stderr = logf, logf
	err = cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
}

// stop sends p SIGTERM and waits, at most 15 s, for a clean exit; logs
// gives the nodes' output for a failure.
func (p *testProc) stop(t *testing.T, logs func() string) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	select {
	case <-p.done:
		if !p.cmd.ProcessState.Success() {
			t.Errorf("%s exited with %v after SIGTERM\n%s", p.id, p.cmd.ProcessState, logs())
		}
	case <-deadline.C:
		t.Fatalf("%s did not exit within 15 s of SIGTERM\n%s", p.id, logs())
	}
}

// getJSON fetches url into v and returns the status code (0 on a
// transport error).
func getJSON(client *http.Client, method, url, body string, v any) int {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		json.Unmarshal(b, v)
	}
	return resp.StatusCode
}

// Three processes over loopback, with mutual TLS between them (-tls-*): a
// follower answers 421 naming the leader's HTTP address, the leader
// serves, every node applies the write, and SIGTERM stops each node
// cleanly. A client without a certificate cannot talk to a Raft port.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	pki := writeTestPKI(t, "kv")
	c := newTestCluster(t, "-tls-cert", filepath.Join(pki, "cert.pem"), "-tls-key", filepath.Join(pki, "key.pem"), "-tls-ca", filepath.Join(pki, "ca.pem"))
	c.startAll(t)
	dir, ids, procs, peers, logs := c.dir, c.ids, c.procs, c.peers, c.logs

	client := &http.Client{Timeout: 10 * time.Second}
	var leader string
	waitFor(t, 30*time.Second, "every node names the same leader", func() bool {
		leader = ""
		for _, id := range ids {
			var st kvapi.StatusReply
			if getJSON(client, "GET", "http://"+procs[id].http+"/status", "", &st) != 200 || st.Leader == "" {
				return false
			}
			if leader != "" && st.Leader != leader {
				return false
			}
			leader = st.Leader
		}
		return true
	})
	follower := "n1"
	if leader == follower {
		follower = "n2"
	}
	var e kvapi.APIError
	if code := getJSON(client, "PUT", "http://"+procs[follower].http+"/kv/k", "v", &e); code != 421 || e.Code != "EPERM" || e.Leader != leader || e.LeaderHTTP != procs[leader].http {
		t.Fatalf("PUT on follower %s: got %d %+v, want 421 naming %s at %s\n%s", follower, code, e, leader, procs[leader].http, logs())
	}
	if code := getJSON(client, "PUT", "http://"+e.LeaderHTTP+"/kv/k", "v", nil); code != 204 {
		t.Fatalf("PUT on the leader: %d\n%s", code, logs())
	}
	var kv KV
	if code := getJSON(client, "GET", "http://"+procs[leader].http+"/kv/k", "", &kv); code != 200 || kv != (KV{Key: "k", Value: "v"}) {
		t.Fatalf("GET on the leader: %d %+v", code, kv)
	}
	waitFor(t, 10*time.Second, "every node applies the write", func() bool {
		var digest string
		for _, id := range ids {
			var st kvapi.StatusReply
			if getJSON(client, "GET", "http://"+procs[id].http+"/status", "", &st) != 200 || st.Keys != 1 {
				return false
			}
			if digest != "" && st.Digest != digest {
				return false
			}
			digest = st.Digest
		}
		return true
	})

	// POST /snapshot on a follower: a snapshot of its store, at least the
	// write above, lands in its data directory.
	var sr SnapshotReply
	if code := getJSON(client, "POST", "http://"+procs[follower].http+"/snapshot", "", &sr); code != 200 || sr.Index < 2 {
		t.Fatalf("POST /snapshot on %s: %d %+v\n%s", follower, code, sr, logs())
	}
	if names, err := os.ReadDir(filepath.Join(dir, follower, group, follower, "snapshots")); err != nil || len(names) != 1 {
		t.Fatalf("%s's snapshot directory: %v, %v", follower, names, err)
	}
	// Its /status shows the snapshot and counts it.
	var st kvapi.StatusReply
	if code := getJSON(client, "GET", "http://"+procs[follower].http+"/status", "", &st); code != 200 ||
		st.SnapshotIndex != sr.Index || st.FirstIndex == 0 || st.Metrics == nil || st.Metrics.Snapshots != 1 {
		t.Fatalf("%s's status after POST /snapshot (index %d): %d %+v %+v", follower, sr.Index, code, st, st.Metrics)
	}

	// The Raft port is mutual TLS: it shows a certificate of the CA, and
	// answers a client without one with an alert.
	raftAddr := strings.TrimPrefix(peers[0], "n1=")
	if err := probeRaftTLS(raftAddr, pki); err != nil {
		t.Errorf("n1's Raft port %s: %v", raftAddr, err)
	}

	// Stop the nodes one at a time, each within 15 s of its SIGTERM.
	for _, id := range ids {
		procs[id].stop(t, logs)
	}
}

// probeRaftTLS checks that addr speaks mutual TLS with certificates of the
// CA in pki: a client with pki's certificate completes the handshake with
// a server certificate the CA signed, and a client without one is refused.
func probeRaftTLS(addr, pki string) error {
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "cert.pem"), filepath.Join(pki, "key.pem"))
	if err != nil {
		return err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	// NextProtos h2, as gRPC asks: a server that accepted the client would
	// then send its HTTP/2 settings.
	conf := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	c, err := tls.DialWithDialer(dialer, "tcp", addr, conf)
	if err != nil {
		return fmt.Errorf("with a certificate of the CA: %w", err)
	}
	c.Close()

	conf = &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}}
	c, err = tls.DialWithDialer(dialer, "tcp", addr, conf)
	if err != nil {
		return nil // refused during the handshake
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	switch {
	case err == nil:
		return errors.New("a client without a certificate was served")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errors.New("a client without a certificate is neither served nor refused")
	case !strings.Contains(err.Error(), "certificate required"):
		return fmt.Errorf("a client without a certificate: %w (want a certificate required alert)", err)
	}
	return nil
}
