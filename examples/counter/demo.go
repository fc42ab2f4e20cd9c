package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var start = time.Now()

func say(format string, args ...any) {
	fmt.Printf("[%5.2fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

// proc is one node process of the demonstration, driven over its stdin
// and stdout.
type proc struct {
	id, addr, data string
	cmd            *exec.Cmd
	in             io.WriteCloser
	out            *bufio.Scanner
}

type status struct {
	role, leader string
	term, value  uint64
	index        uint64
}

// demo runs the three-node demonstration described in the package doc.
func demo() error {
	dir, err := os.MkdirTemp("", "asyncraft-counter-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ids := []string{"n1", "n2", "n3"}
	var peers []string
	procs := map[string]*proc{}
	for _, id := range ids {
		port, err := freePort()
		if err != nil {
			return err
		}
		p := &proc{id: id, addr: "127.0.0.1:" + strconv.Itoa(port), data: filepath.Join(dir, id)}
		procs[id] = p
		peers = append(peers, id+"="+p.addr)
	}
	say("starting a 3-node group: three processes on 127.0.0.1, data in %s", dir)
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, id := range ids {
		if err := procs[id].start(strings.Join(peers, ",")); err != nil {
			return err
		}
		say("%s is up at %s (pid %d)", id, procs[id].addr, procs[id].cmd.Process.Pid)
	}

	leader, term, err := waitLeader(procs, "", 0)
	if err != nil {
		return err
	}
	say("%s is the leader (term %d)", leader, term)
	if err := incrementThrough(procs[leader], 10); err != nil {
		return err
	}

	old := procs[leader]
	say("killing the leader %s (kill -9 of pid %d)", old.id, old.cmd.Process.Pid)
	old.kill()
	leader, term, err = waitLeader(procs, old.id, term)
	if err != nil {
		return err
	}
	say("%s is the new leader (term %d)", leader, term)
	if err := incrementThrough(procs[leader], 10); err != nil {
		return err
	}
	want := procs[leader].status().value

	say("restarting %s from its data directory", old.id)
	if err := old.start(strings.Join(peers, ",")); err != nil {
		return err
	}
	// A linearizable read on the restarted node: it asks the leader for a
	// read index and answers once it has caught up to it.
	var v, idx uint64
	if err := waitUntil(15*time.Second, func() bool {
		var err error
		v, idx, err = old.read()
		return err == nil
	}); err != nil {
		return fmt.Errorf("no linearizable read on %s: %w", old.id, err)
	}
	if v != want {
		return fmt.Errorf("linearizable read on %s gave %d, want %d", old.id, v, want)
	}
	say("%s caught up: a linearizable read on it (ReadIndex) says counter = %d (log index %d)", old.id, v, idx)

	for _, id := range ids {
		if v, _, err := procs[id].read(); err != nil || v != want {
			return fmt.Errorf("linearizable read on %s: %d (%v), want %d", id, v, err, want)
		}
	}
	say("done: linearizable reads on all three nodes agree the counter is %d", want)
	return nil
}

// read does a linearizable read on p.
func (p *proc) read() (value, index uint64, err error) {
	answer := p.ask("read")
	f := strings.Fields(answer)
	if len(f) != 3 || f[0] != "value" {
		return 0, 0, fmt.Errorf("%s: %s", p.id, answer)
	}
	value, _ = strconv.ParseUint(f[1], 10, 64)
	index, _ = strconv.ParseUint(f[2], 10, 64)
	return value, index, nil
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *proc) start(peers string) error {
	p.cmd = exec.Command(os.Args[0], "-id", p.id, "-addr", p.addr, "-peers", peers, "-data", p.data, "-control")
	p.cmd.Stderr = os.Stderr
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		return err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.id, err)
	}
	p.out = bufio.NewScanner(out)
	p.out.Buffer(nil, 1<<20)
	if line := p.readLine(); line != "ready" {
		p.kill()
		return fmt.Errorf("%s did not start (said %q)", p.id, line)
	}
	return nil
}

func (p *proc) readLine() string {
	if !p.out.Scan() {
		return ""
	}
	return p.out.Text()
}

// ask sends one command and returns the answer ("" if the process is gone).
func (p *proc) ask(cmd string) string {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return ""
	}
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return ""
	}
	return p.readLine()
}

func (p *proc) status() status {
	var s status
	f := strings.Fields(p.ask("status"))
	if len(f) == 6 && f[0] == "status" {
		s.role, s.leader = f[1], f[3]
		s.term, _ = strconv.ParseUint(f[2], 10, 64)
		s.value, _ = strconv.ParseUint(f[4], 10, 64)
		s.index, _ = strconv.ParseUint(f[5], 10, 64)
	}
	return s
}

// kill ends the process abruptly, as a crash would.
func (p *proc) kill() {
	if p.cmd != nil && p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// stop ends the process in order, or kills it if it does not exit soon.
func (p *proc) stop() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	fmt.Fprintln(p.in, "quit")
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// waitLeader waits for a leader other than not, in a term after term.
func waitLeader(procs map[string]*proc, not string, term uint64) (string, uint64, error) {
	var leader string
	var lt uint64
	err := waitUntil(15*time.Second, func() bool {
		for id, p := range procs {
			if id == not {
				continue
			}
			if s := p.status(); s.role == "leader" && s.term > term {
				leader, lt = id, s.term
				return true
			}
		}
		return false
	})
	if err != nil {
		return "", 0, fmt.Errorf("no leader elected: %w", err)
	}
	return leader, lt, nil
}

func incrementThrough(p *proc, n int) error {
	answer := p.ask(fmt.Sprintf("inc %d", n))
	value, ok := strings.CutPrefix(answer, "done ")
	if !ok {
		return fmt.Errorf("incrementing through %s: %s", p.id, answer)
	}
	say("applied %d increments through %s, each with its own callback: counter = %s", n, p.id, value)
	return nil
}

func waitUntil(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
