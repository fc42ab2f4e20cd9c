package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
	"github.com/asyncraft/asyncraft/snapshot"
)

// raftNode is what the HTTP server needs of a node (*asyncraft.Node).
type raftNode interface {
	ApplyWait(ctx context.Context, data []byte) (any, error)
	ReadBarrier(ctx context.Context, mode ...asyncraft.ReadMode) error
	Status() asyncraft.Status
	Snapshot(ctx context.Context) (uint64, error)
}

// Server serves the HTTP API of one node:
//
//	GET    /kv/{key}           200 {"key","value"}, 404 when absent;
//	                           ?consistency= linearizable (default: ReadIndex,
//	                           one quorum round per batch of reads), lease
//	                           (the leader's lease), log (through the log),
//	                           stale (this node's state as is)
//	PUT    /kv/{key}           body = value; 204
//	POST   /kv/{key}?append=1  body appended to the value; 204
//	DELETE /kv/{key}           204 (absent or not)
//	GET    /status             200 the node's role, term, leader, indexes
//	                           (log, snapshot), on a leader its view of each
//	                           follower, snapshot and install counters, the
//	                           store's keys, size and digest (O(1))
//	POST   /snapshot           200 {"index"}: a snapshot of this node's store
//	                           taken now, in its data directory; 409 EBUSY if
//	                           one is being taken, 409 EEXIST if nothing was
//	                           applied since the newest, 501 without a data
//	                           directory
//	GET    /membership         200 the leader's configuration (voters,
//	                           learners, index, joint or not); ?local=1:
//	                           this node's, leader or not
//	POST   /membership         body = a kvapi.MembershipRequest: a change of the
//	                           configuration, run on the leader; 200 the new
//	                           configuration (see changeError for failures)
//	POST   /transfer?to=ID     hands the leader's leadership to voter ID
//	                           (empty: the most up-to-date one); 200
//	                           {"leader","leader_http","term"}
//
// The POST requests of membership.go take ?timeout= (a duration, at most
// the HTTP write timeout less a second) to wait longer than -timeout: a
// new voter catches up before it becomes one.
//
// Writes go through the Raft log. Reads are linearizable unless
// ?consistency=stale asks otherwise: a ReadIndex barrier (or the leader's
// lease), then this node's state machine; any node serves them, followers
// by asking the leader for the read index. Errors are JSON
// {"error","code","leader","leader_http"}; see httpError for the status
// codes.
//
// A put or an append that would break the limits (see Limits) is refused
// with 400 (key), 413 (value) or 507 (store full), before it is proposed
// when this node leads and sees it would be, and in any case when it is
// applied.
type Server struct {
	node  raftNode
	store *Store
	// peerHTTP maps node ids to their HTTP addresses, for leader hints.
	peerHTTP map[string]string
	// timeout bounds the wait for a command to be applied; past it the
	// answer is 504 EUNKNOWN.
	timeout time.Duration
	// maxTimeout bounds the ?timeout= of a membership change or a
	// transfer: less than the HTTP server's write timeout.
	maxTimeout time.Duration
	// limits are written into each put and append (see Limits); their
	// MaxValueBytes also bounds a request body.
	limits Limits
	// staleReads answers GET from this node's state machine without going
	// through the log: not linearizable (see -stale-reads).
	staleReads bool
	// conns, if set, is the listener the API is served on, for its counts
	// in GET /status.
	conns *limitListener
}

// Defaults of Server.
const (
	DefaultTimeout       = 5 * time.Second
	DefaultMaxKeyBytes   = maxKeyBytes
	DefaultMaxValueBytes = 1 << 20
	DefaultMaxStoreBytes = 256 << 20
)

// DefaultLimits are the limits of a Server, unless set otherwise.
var DefaultLimits = Limits{MaxKeyBytes: DefaultMaxKeyBytes, MaxValueBytes: DefaultMaxValueBytes, MaxStoreBytes: DefaultMaxStoreBytes}

// NewServer returns the HTTP server of node, whose state machine is store.
func NewServer(node raftNode, store *Store, peerHTTP map[string]string) *Server {
	return &Server{node: node, store: store, peerHTTP: peerHTTP, timeout: DefaultTimeout, maxTimeout: DefaultWriteTimeout - time.Second, limits: DefaultLimits}
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/kv/{key...}", s.handleKV)
	mux.HandleFunc("/status", s.handleStatus)
	mux.HandleFunc("/snapshot", s.handleSnapshot)
	mux.HandleFunc("/membership", s.handleMembership)
	mux.HandleFunc("/transfer", s.handleTransfer)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, kvapi.APIError{Error: "no such endpoint: " + r.URL.Path, Code: "ENOTFOUND"})
	})
	return mux
}

// KV is the body of a successful GET.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// metricsNode is a raftNode that counts what it does (*asyncraft.Node).
type metricsNode interface {
	Metrics() *asyncraft.Metrics
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	st := s.node.Status()
	reply := kvapi.StatusReply{
		ID: st.ID, Role: st.Role.String(), Term: st.Term, Leader: st.Leader, LeaderHTTP: s.peerHTTP[st.Leader],
		Commit: st.Commit, Applied: st.Applied, LastIndex: st.LastIndex, FirstIndex: st.FirstIndex, SnapshotIndex: st.SnapshotIndex,
	}
	if st.Err != nil {
		reply.Error = st.Err.Error()
	}
	if in, ok := s.node.(identityNode); ok {
		reply.ClusterIdentity = formatIdentity(in.ClusterIdentity())
	}
	for _, p := range st.Peers {
		reply.Peers = append(reply.Peers, kvapi.PeerReply{ID: p.Peer, Match: p.Match, Next: p.Next, State: p.State,
			Inflight: p.Inflight, InflightBytes: p.InflightBytes, LastContact: p.LastContact, ReadFailures: p.ReadFailures,
			Snapshot: p.Snapshot})
	}
	if mn, ok := s.node.(metricsNode); ok {
		m := mn.Metrics()
		reply.Metrics = &kvapi.MetricsReply{
			Snapshots: m.Snapshots.Load(), SnapshotFailures: m.SnapshotFailures.Load(),
			InstallsStarted: m.InstallsStarted.Load(), InstallsDone: m.InstallsDone.Load(),
			InstallFailures: m.InstallFailures.Load(), SnapshotsSent: m.SnapshotsSent.Load(),
		}
	}
	// O(1): the store keeps its statistics up to date as it applies.
	ss := s.store.Stats()
	reply.Keys, reply.Bytes, reply.MaxBytes, reply.Digest = ss.Keys, ss.Bytes, s.limits.MaxStoreBytes, fmt.Sprintf("%016x", ss.Digest)
	if s.conns != nil {
		reply.HTTPConns, reply.HTTPConnsFull = s.conns.Active(), s.conns.Full()
	}
	writeJSON(w, http.StatusOK, reply)
}

// SnapshotReply is the body of a POST /snapshot answer.
type SnapshotReply struct {
	Index uint64 `json:"index"`
}

func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	index, err := s.node.Snapshot(r.Context())
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, SnapshotReply{Index: index})
	case errors.Is(err, snapshot.ErrBusy):
		writeJSON(w, http.StatusConflict, kvapi.APIError{Error: err.Error(), Code: closure.EBUSY.String()})
	case errors.Is(err, snapshot.ErrExists):
		// Nothing was applied since the newest snapshot: the store holds
		// one of this very state already.
		writeJSON(w, http.StatusConflict, kvapi.APIError{Error: err.Error(), Code: "EEXIST"})
	case errors.Is(err, asyncraft.ErrNoSnapshots):
		writeJSON(w, http.StatusNotImplemented, kvapi.APIError{Error: err.Error(), Code: closure.EINVAL.String()})
	default:
		writeJSON(w, http.StatusInternalServerError, kvapi.APIError{Error: err.Error(), Code: closure.EIO.String()})
	}
}

func (s *Server) handleKV(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if err := validKey(key); err != nil {
		badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	c := Command{Key: key}
	switch r.Method {
	case http.MethodGet:
		c.Op = OpGet
	case http.MethodDelete:
		c.Op = OpDelete
	case http.MethodPut:
		c.Op = OpPut
	case http.MethodPost:
		switch r.URL.Query().Get("append") {
		case "1", "true":
			c.Op = OpAppend
		default:
			badRequest(w, http.StatusBadRequest, "POST /kv/{key} needs ?append=1")
			return
		}
	default:
		methodNotAllowed(w, "GET, PUT, POST, DELETE")
		return
	}
	// No request needs a body larger than a value.
	r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxValueBytes)
	if c.Op == OpPut || c.Op == OpAppend {
		body, err := io.ReadAll(r.Body)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			badRequest(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value exceeds %d bytes", s.limits.MaxValueBytes))
			return
		case err != nil:
			badRequest(w, http.StatusBadRequest, "reading the value: "+err.Error())
			return
		case !utf8.Valid(body):
			badRequest(w, http.StatusBadRequest, "value is not valid UTF-8")
			return
		}
		c.Value = string(body)
		c.Limits = s.limits
		// Refuse at once what OnApply would refuse, as far as this node
		// knows; only a leader knows the store well enough (a follower
		// answers 421).
		if s.node.Status().Role == asyncraft.Leader {
			if err := s.store.Check(s.limits, key, c.Op == OpAppend, len(body)); err != nil {
				refused(w, err)
				return
			}
		}
	}
	if c.Op == OpGet {
		consistency := r.URL.Query().Get("consistency")
		if s.staleReads && consistency == "" {
			consistency = "stale"
		}
		switch consistency {
		case "", "linearizable", "lease":
			mode := asyncraft.ReadSafe
			if consistency == "lease" {
				mode = asyncraft.ReadLease
			}
			ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
			defer cancel()
			if err := s.node.ReadBarrier(ctx, mode); err != nil {
				code, body := s.httpError(closure.StatusOf(err))
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, closure.ErrTimeout) {
					// A read has no effect: a timeout is just a retry.
					code, body = http.StatusServiceUnavailable, kvapi.APIError{Error: "read timed out: " + err.Error(), Code: closure.ETIMEDOUT.String()}
				}
				writeJSON(w, code, body)
				return
			}
			s.writeLocal(w, key)
			return
		case "stale":
			s.writeLocal(w, key)
			return
		case "log":
		default:
			badRequest(w, http.StatusBadRequest, "consistency must be linearizable, lease, log or stale")
			return
		}
	}
	data, err := c.Encode()
	if err != nil {
		badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	v, err := s.node.ApplyWait(ctx, data)
	if err != nil {
		code, body := s.httpError(closure.StatusOf(err))
		writeJSON(w, code, body)
		return
	}
	res, ok := v.(Result)
	if !ok || res.Err != "" {
		writeJSON(w, http.StatusInternalServerError, kvapi.APIError{Error: fmt.Sprintf("unexpected result %+v", v), Code: closure.EINTERNAL.String()})
		return
	}
	switch {
	case res.Refused != nil:
		refused(w, res.Refused)
	case c.Op != OpGet:
		w.WriteHeader(http.StatusNoContent)
	case !res.Found:
		writeJSON(w, http.StatusNotFound, kvapi.APIError{Error: "key not found", Code: "ENOTFOUND"})
	default:
		writeJSON(w, http.StatusOK, KV{Key: key, Value: res.Value})
	}
}

// writeLocal answers a GET from this node's state machine.
func (s *Server) writeLocal(w http.ResponseWriter, key string) {
	if v, ok := s.store.Get(key); ok {
		writeJSON(w, http.StatusOK, KV{Key: key, Value: v})
		return
	}
	writeJSON(w, http.StatusNotFound, kvapi.APIError{Error: "key not found", Code: "ENOTFOUND"})
}

// httpError maps the status of a failed command to an HTTP status code and
// body:
//
//	421 EPERM        not the leader, which is known: retry at Leader/LeaderHTTP
//	503 EPERM        not the leader, and no leader known: retry later/elsewhere
//	503 EBUSY, EAGAIN, ESHUTDOWN, ESTALE, ENEWLEADER
//	                 definitely not applied: retry
//	504 EUNKNOWN     the outcome is unknown (timeout, node stopped): the
//	                 command may or may not be applied
//	400 EINVAL       bad request
//	500 others       the node is in error (ESTATEMACHINE, EIO, ...)
func (s *Server) httpError(st closure.Status) (int, kvapi.APIError) {
	body := kvapi.APIError{Error: st.String(), Code: st.Code.String()}
	switch st.Code {
	case closure.EPERM:
		if st.Leader == "" {
			st.Leader = s.node.Status().Leader
		}
		body.Leader, body.LeaderHTTP = st.Leader, s.peerHTTP[st.Leader]
		if st.Leader == "" {
			return http.StatusServiceUnavailable, body
		}
		return http.StatusMisdirectedRequest, body
	case closure.EBUSY, closure.EAGAIN, closure.ESHUTDOWN, closure.ESTALE, closure.ENEWLEADER:
		return http.StatusServiceUnavailable, body
	case closure.EUNKNOWN, closure.ETIMEDOUT:
		body.Code = closure.EUNKNOWN.String()
		return http.StatusGatewayTimeout, body
	case closure.EINVAL:
		return http.StatusBadRequest, body
	default:
		return http.StatusInternalServerError, body
	}
}

// refused answers a put or an append refused by its limits (see Limits):
//
//	400 EINVAL  ErrKeyTooLarge
//	413 EINVAL  ErrValueTooLarge (the value the command would leave)
//	507 ENOSPC  ErrStoreFull
func refused(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrStoreFull):
		writeJSON(w, http.StatusInsufficientStorage, kvapi.APIError{Error: err.Error(), Code: "ENOSPC"})
	case errors.Is(err, ErrValueTooLarge):
		badRequest(w, http.StatusRequestEntityTooLarge, err.Error())
	default:
		badRequest(w, http.StatusBadRequest, err.Error())
	}
}

func badRequest(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, kvapi.APIError{Error: msg, Code: closure.EINVAL.String()})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeJSON(w, http.StatusMethodNotAllowed, kvapi.APIError{Error: "method not allowed; use " + allow, Code: closure.EINVAL.String()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
