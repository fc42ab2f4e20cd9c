package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// hcMember is one hashicorp/raft server: raft-wal as its log and stable
// store, a file snapshot store, a TCP transport, the library's default
// configuration (DefaultConfig) except the election timeouts the
// orchestrator asks for and warnings-only logging.
type hcMember struct {
	id     string
	data   string
	logger hclog.Logger
	trans  *raft.NetworkTransport
	wal    *wal.WAL
	r      *raft.Raft
	fsm    *hcFSM
	group  string
}

func newHashicorp(id, addr, data string) (*hcMember, error) {
	logger := hclog.New(&hclog.LoggerOptions{Name: "raft-" + id, Level: hclog.Warn, Output: os.Stderr})
	// Port 0: the transport binds a free port and advertises it.
	trans, err := raft.NewTCPTransportWithLogger(addr, nil, 3, 10*time.Second, logger)
	if err != nil {
		return nil, err
	}
	return &hcMember{id: id, data: data, logger: logger, trans: trans}, nil
}

func (m *hcMember) Addr() string { return string(m.trans.LocalAddr()) }

func (m *hcMember) Version() string {
	return "hashicorp/raft " + moduleVersion("github.com/hashicorp/raft") + " + raft-wal " + moduleVersion("github.com/hashicorp/raft-wal")
}

func (m *hcMember) Close() {
	if m.r != nil {
		_ = m.r.Shutdown().Error()
	}
	if m.wal != nil {
		_ = m.wal.Close()
	}
	_ = m.trans.Close()
}

func (m *hcMember) Start(cmd loadgen.Command) error {
	if m.r != nil {
		return errors.New("already started")
	}
	if cmd.Groups != 1 {
		return fmt.Errorf("hashicorp/raft runs one group per server here, not %d", cmd.Groups)
	}
	if _, err := replicaOf(m.id, cmd.Peers); err != nil {
		return err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(m.id)
	cfg.Logger = m.logger
	et := cmd.FollowerET
	if cmd.Peers[0].ID == m.id {
		et = cmd.LeaderET
	}
	if et > 0 {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout = et, et
	}
	walDir := filepath.Join(m.data, "wal")
	if err := os.MkdirAll(walDir, 0o755); err != nil {
		return err
	}
	w, err := wal.Open(walDir)
	if err != nil {
		return fmt.Errorf("open raft-wal: %w", err)
	}
	m.wal = w
	snaps, err := raft.NewFileSnapshotStoreWithLogger(m.data, 2, m.logger)
	if err != nil {
		return err
	}
	m.fsm = &hcFSM{m: loadgen.NewMap()}
	r, err := raft.NewRaft(cfg, m.fsm, w, w, snaps, m.trans)
	if err != nil {
		return err
	}
	m.r = r
	m.group = loadgen.GroupName(0)
	var servers []raft.Server
	for _, p := range cmd.Peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	// Every server bootstraps with the same configuration, as the
	// library allows.
	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

func (m *hcMember) Status() []loadgen.NodeStatus {
	if m.r == nil {
		return nil
	}
	_, leader := m.r.LeaderWithID()
	return []loadgen.NodeStatus{{
		Group: m.group, ID: m.id,
		Role:   strings.ToLower(m.r.State().String()),
		Term:   m.r.CurrentTerm(),
		Leader: string(leader),
		Commit: m.r.CommitIndex(),
		// A leader's first entry of its term is a no-op; commit (and so
		// apply) advances only through its term's entries.
		Applied: m.r.AppliedIndex(),
	}}
}

func (m *hcMember) Targets(groups []string) ([]loadgen.Target, error) {
	if m.r == nil || len(groups) != 1 || groups[0] != m.group {
		return nil, fmt.Errorf("this server runs group %s only, not %v", m.group, groups)
	}
	if st := m.r.State(); st != raft.Leader {
		return nil, fmt.Errorf("%s/%s is %s, not the leader", m.group, m.id, st)
	}
	return []loadgen.Target{hcTarget{m}}, nil
}

// hcTarget calls hashicorp/raft's blocking API. Apply takes a timeout,
// not a context: the time left to the operation's deadline. (The timeout
// bounds the wait to enqueue the command; Error then waits for it to be
// applied.)
type hcTarget struct{ m *hcMember }

func (t hcTarget) Propose(ctx context.Context, cmd []byte) error {
	d, ok := ctx.Deadline()
	if !ok {
		return errors.New("no deadline")
	}
	return t.m.r.Apply(cmd, time.Until(d)).Error()
}

// Read verifies that this server still leads (a round of heartbeats to a
// quorum), then reads the local map.
func (t hcTarget) Read(ctx context.Context, key uint64) (bool, error) {
	if err := t.m.r.VerifyLeader().Error(); err != nil {
		return false, err
	}
	_, found := t.m.fsm.m.Get(key)
	return found, nil
}

// hcFSM is the benchmark's map as a hashicorp/raft FSM.
type hcFSM struct{ m *loadgen.Map }

func (f *hcFSM) Apply(l *raft.Log) interface{} {
	f.m.Put(slices.Clone(l.Data)) // the log's buffer is not ours to keep
	return nil
}

func (f *hcFSM) Snapshot() (raft.FSMSnapshot, error) { return hcSnapshot(f.m.Snapshot()), nil }

func (f *hcFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m, err := readMap(rc)
	if err != nil {
		return err
	}
	f.m.Restore(m)
	return nil
}

type hcSnapshot map[uint64][]byte

func (s hcSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeMap(sink, s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s hcSnapshot) Release() {}
