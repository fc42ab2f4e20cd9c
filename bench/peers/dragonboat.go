package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
	"github.com/lni/dragonboat/v4"
	"github.com/lni/dragonboat/v4/client"
	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/logger"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// dragonboat's timing is in RTTs of rttMillisecond; it has no defaults
// for them. An election timeout of 10 RTTs (1 s) and a heartbeat of 1 RTT
// (100 ms) match asyncraft's and hashicorp/raft's defaults.
const (
	rttMillisecond = 100
	electionRTT    = 10
	heartbeatRTT   = 1
)

// dbMember is one dragonboat NodeHost running this process's replica of
// every group (group g is shard g+1).
type dbMember struct {
	nh     *dragonboat.NodeHost
	addr   string
	id     string
	peers  []loadgen.Peer
	shards []*dbShard
}

type dbShard struct {
	group   string
	shardID uint64
	replica uint64
	sm      *dbSM
	session *client.Session
}

func newDragonboat(id, addr, data string) (*dbMember, error) {
	for _, pkg := range []string{"config", "dragonboat", "gossip", "logdb", "LogDB", "pebblekv", "raft", "raftpb",
		"registry", "rsm", "server", "settings", "tan", "transport"} {
		logger.GetLogger(pkg).SetLevel(logger.WARNING)
	}
	// The address is the replica's identity in dragonboat, so it must be
	// known before the NodeHost starts: pick a free port, and again if
	// another process took it meanwhile.
	var lastErr error
	for range 5 {
		a, err := freeAddr(addr)
		if err != nil {
			return nil, err
		}
		nh, err := dragonboat.NewNodeHost(config.NodeHostConfig{
			NodeHostDir:    filepath.Join(data, "nodehost"),
			RTTMillisecond: rttMillisecond,
			RaftAddress:    a,
		})
		if err == nil {
			return &dbMember{nh: nh, addr: a, id: id}, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("start the dragonboat NodeHost: %w", lastErr)
}

// freeAddr returns addr, or with port 0 a port free right now.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (m *dbMember) Addr() string { return m.addr }

func (m *dbMember) Version() string {
	return "dragonboat " + moduleVersion("github.com/lni/dragonboat/v4")
}

func (m *dbMember) Close() { m.nh.Close() }

func (m *dbMember) Start(cmd loadgen.Command) error {
	if len(m.shards) > 0 {
		return errors.New("already started")
	}
	replica, err := replicaOf(m.id, cmd.Peers)
	if err != nil {
		return err
	}
	m.peers = cmd.Peers
	members := map[uint64]dragonboat.Target{}
	for i, p := range cmd.Peers {
		members[uint64(i+1)] = p.Addr
	}
	for g := 0; g < cmd.Groups; g++ {
		et := cmd.FollowerET
		if cmd.Peers[g%len(cmd.Peers)].ID == m.id {
			et = cmd.LeaderET
		}
		rtts := uint64(electionRTT)
		if et > 0 {
			rtts = max(uint64(et/(rttMillisecond*time.Millisecond)), 3*heartbeatRTT)
		}
		s := &dbShard{group: loadgen.GroupName(g), shardID: uint64(g + 1), replica: replica, sm: newDBSM()}
		err := m.nh.StartReplica(members, false, func(uint64, uint64) sm.IStateMachine { return s.sm }, config.Config{
			ReplicaID:    replica,
			ShardID:      s.shardID,
			ElectionRTT:  rtts,
			HeartbeatRTT: heartbeatRTT,
		})
		if err != nil {
			return fmt.Errorf("start replica %d of shard %d: %w", replica, s.shardID, err)
		}
		s.session = m.nh.GetNoOPSession(s.shardID)
		m.shards = append(m.shards, s)
	}
	return nil
}

func (m *dbMember) name(replica uint64) string {
	if replica < 1 || int(replica) > len(m.peers) {
		return ""
	}
	return m.peers[replica-1].ID
}

func (m *dbMember) Status() []loadgen.NodeStatus {
	var out []loadgen.NodeStatus
	for _, s := range m.shards {
		ns := loadgen.NodeStatus{Group: s.group, ID: m.id, Role: "follower", Applied: s.sm.applied.Load()}
		leader, term, valid, err := m.nh.GetLeaderID(s.shardID)
		if err != nil {
			ns.Err = err.Error()
		}
		ns.Term = term
		if valid {
			ns.Leader = m.name(leader)
		}
		if valid && leader == s.replica {
			ns.Role = "leader"
			// dragonboat applies no no-op to the state machine: a
			// ReadIndex that succeeds shows an entry of this term
			// committed.
			if ns.Applied == 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				if _, err := m.nh.SyncRead(ctx, s.shardID, uint64(0)); err == nil {
					ns.Applied = 1
				}
				cancel()
			}
		}
		out = append(out, ns)
	}
	return out
}

func (m *dbMember) Targets(groups []string) ([]loadgen.Target, error) {
	var out []loadgen.Target
	for _, g := range groups {
		i := slices.IndexFunc(m.shards, func(s *dbShard) bool { return s.group == g })
		if i < 0 {
			return nil, fmt.Errorf("this process has no replica of group %s", g)
		}
		s := m.shards[i]
		leader, _, valid, err := m.nh.GetLeaderID(s.shardID)
		if err != nil || !valid || leader != s.replica {
			return nil, fmt.Errorf("%s/%s is not the leader (the leader is %q)", g, m.id, m.name(leader))
		}
		out = append(out, dbTarget{m.nh, s})
	}
	return out, nil
}

// dbTarget calls dragonboat's blocking API.
type dbTarget struct {
	nh *dragonboat.NodeHost
	s  *dbShard
}

func (t dbTarget) Propose(ctx context.Context, cmd []byte) error {
	_, err := t.nh.SyncPropose(ctx, t.s.session, cmd)
	return err
}

func (t dbTarget) Read(ctx context.Context, key uint64) (bool, error) {
	v, err := t.nh.SyncRead(ctx, t.s.shardID, key)
	if err != nil {
		return false, err
	}
	found, _ := v.(bool)
	return found, nil
}

// dbSM is the benchmark's map as a dragonboat IStateMachine (Update and
// Lookup may run at once: the map locks).
type dbSM struct {
	m       *loadgen.Map
	applied atomic.Uint64
}

func newDBSM() *dbSM { return &dbSM{m: loadgen.NewMap()} }

func (s *dbSM) Update(e sm.Entry) (sm.Result, error) {
	s.m.Put(slices.Clone(e.Cmd)) // Cmd is read-only and not ours to keep
	s.applied.Store(e.Index)
	return sm.Result{Value: uint64(len(e.Cmd))}, nil
}

// Lookup takes a key (uint64) and reports whether it has a value.
func (s *dbSM) Lookup(q interface{}) (interface{}, error) {
	key, ok := q.(uint64)
	if !ok {
		return nil, fmt.Errorf("lookup of a %T", q)
	}
	_, found := s.m.Get(key)
	return found, nil
}

func (s *dbSM) SaveSnapshot(w io.Writer, _ sm.ISnapshotFileCollection, _ <-chan struct{}) error {
	return writeMap(w, s.m.Snapshot())
}

func (s *dbSM) RecoverFromSnapshot(r io.Reader, _ []sm.SnapshotFile, _ <-chan struct{}) error {
	m, err := readMap(r)
	if err != nil {
		return err
	}
	s.m.Restore(m)
	return nil
}

func (s *dbSM) Close() error { return nil }

// writeMap and readMap are the snapshot format of both peers: per key, 8
// bytes of key, 4 of value length, the value.
func writeMap(w io.Writer, m map[uint64][]byte) error {
	var hdr [12]byte
	for k, v := range m {
		binary.BigEndian.PutUint64(hdr[:8], k)
		binary.BigEndian.PutUint32(hdr[8:], uint32(len(v)))
		if _, err := w.Write(hdr[:]); err != nil {
			return err
		}
		if _, err := w.Write(v); err != nil {
			return err
		}
	}
	return nil
}

func readMap(r io.Reader) (map[uint64][]byte, error) {
	m := map[uint64][]byte{}
	var hdr [12]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			return m, nil
		} else if err != nil {
			return nil, err
		}
		v := make([]byte, binary.BigEndian.Uint32(hdr[8:]))
		if _, err := io.ReadFull(r, v); err != nil {
			return nil, err
		}
		m[binary.BigEndian.Uint64(hdr[:8])] = v
	}
}
