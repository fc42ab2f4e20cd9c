// Package kvapi is the JSON of the kvstore example's HTTP API that is not
// about keys: the bodies of GET /status, GET and POST /membership, POST
// /transfer and every error response, and the checks a membership request
// passes before the server acts on it. The kvstore serves it; the admin
// CLI (cmd/asyncraft-admin) and the process-level chaos test speak it.
package kvapi

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
	// Code is the asyncraft status code (EPERM, EBUSY, EUNKNOWN, ...), or
	// EINVAL for a bad request and ENOTFOUND for a missing key; the
	// membership endpoints add EINPROGRESS, EUNCHANGED and ECONFSTALE
	// (CodeInProgress, CodeUnchanged, CodeConfStale).
	Code string `json:"code"`
	// Leader and LeaderHTTP name the leader, when this node is not it and
	// knows it (LeaderHTTP only if it was given -peer-http).
	Leader     string `json:"leader,omitempty"`
	LeaderHTTP string `json:"leader_http,omitempty"`
}

// MemberReply is one member of a configuration: its id, its Raft address,
// its election priority (asyncraft.Peer.Priority) and, if this node knows
// it (-peer-http), its HTTP address.
type MemberReply struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Priority uint32 `json:"priority,omitempty"`
	HTTP     string `json:"http,omitempty"`
}

// MembershipReply is the body of GET /membership and of a POST
// /membership that succeeded: the configuration in force on the node that
// answers (Status.Configuration).
type MembershipReply struct {
	// ID is the node that answers, Leader the leader it knows, in Term.
	ID     string `json:"id"`
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	// Index is the index of the configuration's log entry (0: the
	// bootstrap configuration, -peers); Committed whether this node's
	// commit index has reached it (a leader uses a configuration from the
	// moment it is appended).
	Index     uint64 `json:"index"`
	Committed bool   `json:"committed"`
	// Joint: a change of voters is half way (OldVoters and OldLearners
	// are the outgoing configuration; every decision needs a majority of
	// both).
	Joint    bool          `json:"joint"`
	Voters   []MemberReply `json:"voters"`
	Learners []MemberReply `json:"learners"`
	// Promoting lists the learners the leader makes voters once they have
	// caught up (op add-learner-to-promote).
	Promoting   []string      `json:"promoting,omitempty"`
	OldVoters   []MemberReply `json:"old_voters,omitempty"`
	OldLearners []MemberReply `json:"old_learners,omitempty"`
	// ClusterIdentity is the group's identity, for -join-identity.
	ClusterIdentity string `json:"cluster_identity,omitempty"`
	// ChangeIndex is, in the answer to a POST, the index of the entry
	// that completed the change (committed).
	ChangeIndex uint64 `json:"change_index,omitempty"`
}

// MembershipRequest is the body of POST /membership: one change.
//
//	{"op":"add-voter","id":"n4","addr":"10.0.0.4:7001"}   AddVoter: a learner until caught up, then a voter
//	{"op":"add-learner","id":"n4","addr":"..."}           AddLearner
//	{"op":"add-learner-to-promote","id":"n4","addr":"..."} AddLearnerToPromote: the leader promotes it once caught up
//	{"op":"promote","id":"n4"}                            PromoteLearner
//	{"op":"remove","id":"n2"}                             RemoveMember (voter or learner)
//	{"op":"remove-learner","id":"n4"}                     RemoveLearner (refuses a voter)
//	{"op":"replace","old":"n2","id":"n4","addr":"..."}    ReplaceVoter
//	{"op":"set-priority","id":"n2","priority":5}          SetPriority (0: none)
//	{"op":"set","voters":[{"id","addr"}...],"learners":[...]}  SetConfiguration
//
// IfIndex guards the change: it is made only if the configuration in
// force is still the one of that index (GET /membership's "index"). The
// server computes the target from that configuration and runs
// SetConfigurationIf, so that two operators who read the same
// configuration cannot both change it; otherwise it fails with 412
// ECONFSTALE.
type MembershipRequest struct {
	Op       string          `json:"op"`
	ID       string          `json:"id,omitempty"`
	Addr     string          `json:"addr,omitempty"`
	Old      string          `json:"old,omitempty"`
	Priority *uint32         `json:"priority,omitempty"`
	Voters   []MemberRequest `json:"voters,omitempty"`
	Learners []MemberRequest `json:"learners,omitempty"`
	IfIndex  *uint64         `json:"if_index,omitempty"`
}

// MemberRequest is a member of the target of op "set".
type MemberRequest struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Priority uint32 `json:"priority,omitempty"`
}

// TransferReply is the body of a POST /transfer that succeeded: the leader
// the old one knows of now.
type TransferReply struct {
	Leader     string `json:"leader"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	Term       uint64 `json:"term"`
}

// Error codes of the membership endpoints, besides the asyncraft status
// codes (asyncraft's membership errors carry none of their own).
const (
	CodeInProgress = "EINPROGRESS" // asyncraft.ErrChangeInProgress
	CodeUnchanged  = "EUNCHANGED"  // asyncraft.ErrConfigurationUnchanged
	CodeConfStale  = "ECONFSTALE"  // asyncraft.ErrConfigurationStale, or if_index is not the index in force
)

// Check says what r lacks, or has that its op does not take.
func (r MembershipRequest) Check() error {
	const ops = "add-voter, add-learner, add-learner-to-promote, promote, remove, remove-learner, replace, set-priority or set"
	var takes []string // the fields of r.Op; all but learners required
	switch r.Op {
	case "add-voter", "add-learner", "add-learner-to-promote":
		takes = []string{"id", "addr"}
	case "promote", "remove", "remove-learner":
		takes = []string{"id"}
	case "replace":
		takes = []string{"old", "id", "addr"}
	case "set-priority":
		takes = []string{"id", "priority"}
	case "set":
		takes = []string{"voters", "learners"}
	case "":
		return errors.New(`the body needs an "op": ` + ops)
	default:
		return fmt.Errorf("no op %q: %s", r.Op, ops)
	}
	has := map[string]bool{"id": r.ID != "", "addr": r.Addr != "", "old": r.Old != "", "priority": r.Priority != nil,
		"voters": len(r.Voters) > 0, "learners": len(r.Learners) > 0}
	for _, f := range []string{"old", "id", "addr", "priority", "voters", "learners"} {
		switch want := slices.Contains(takes, f); {
		case want && !has[f] && f != "learners":
			return fmt.Errorf("op %q needs %q", r.Op, f)
		case !want && has[f]:
			return fmt.Errorf("op %q takes no %q", r.Op, f)
		}
	}
	return nil
}

// StatusReply is the body of GET /status.
type StatusReply struct {
	ID         string `json:"id"`
	Role       string `json:"role"`
	Term       uint64 `json:"term"`
	Leader     string `json:"leader"`
	LeaderHTTP string `json:"leader_http,omitempty"`
	Commit     uint64 `json:"commit"`
	Applied    uint64 `json:"applied"`
	LastIndex  uint64 `json:"last_index"`
	// FirstIndex is the first index the node's log holds (entries before
	// it were compacted after a snapshot), SnapshotIndex the last index
	// of its newest snapshot (0: none).
	FirstIndex    uint64 `json:"first_index"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Keys, Bytes and Digest describe the state machine (the kvstore's
	// Store.Stats; equal digests: equal maps); MaxBytes is this node's
	// -max-store-bytes.
	Keys     int    `json:"keys"`
	Bytes    int64  `json:"bytes"`
	MaxBytes int64  `json:"max_bytes"`
	Digest   string `json:"digest"`
	// HTTPConns is the number of open HTTP connections, HTTPConnsFull the
	// times the server reached -http-max-conns and stopped accepting.
	HTTPConns     int64  `json:"http_conns"`
	HTTPConnsFull uint64 `json:"http_conns_full"`
	Error         string `json:"error,omitempty"`
	// ClusterIdentity is the group's identity (asyncraft
	// Node.ClusterIdentity), as -join-identity takes it: what a new node
	// needs to join the group.
	ClusterIdentity string `json:"cluster_identity,omitempty"`
	// Peers is, on the leader, its view of each follower (see
	// asyncraft.Status.Peers): why one lags.
	Peers []PeerReply `json:"peers,omitempty"`
	// Metrics counts this process's snapshots and installs (nil if the
	// node does not expose them); the counters start at 0 in each process.
	Metrics *MetricsReply `json:"metrics,omitempty"`
}

// MetricsReply is the part of asyncraft.Metrics that GET /status shows:
// snapshots taken and failed; on a follower, the installs a leader began,
// completed and failed; on a leader, the installs its followers completed.
type MetricsReply struct {
	Snapshots        uint64 `json:"snapshots"`
	SnapshotFailures uint64 `json:"snapshot_failures"`
	InstallsStarted  uint64 `json:"installs_started"`
	InstallsDone     uint64 `json:"installs_done"`
	InstallFailures  uint64 `json:"install_failures"`
	SnapshotsSent    uint64 `json:"snapshots_sent"`
}

// PeerReply is the leader's view of one follower in a StatusReply.
type PeerReply struct {
	ID            string    `json:"id"`
	Match         uint64    `json:"match"`
	Next          uint64    `json:"next"`
	State         string    `json:"state"`
	Inflight      int       `json:"inflight"`
	InflightBytes uint64    `json:"inflight_bytes"`
	LastContact   time.Time `json:"last_contact,omitzero"`
	ReadFailures  int       `json:"read_failures,omitempty"`
	// Snapshot is the last index of the snapshot being installed on the
	// follower, in State "snapshot" (0 until the leader has one to offer).
	Snapshot uint64 `json:"snapshot,omitempty"`
}
