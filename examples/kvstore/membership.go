package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

// Membership over HTTP (docs/membership.md): GET /membership shows the
// leader's configuration, POST /membership changes it, POST /transfer
// hands the leadership to another voter. Each runs on the leader; another
// node answers 421 naming it (503 if it knows none), like a write.

// membershipNode is what the membership endpoints need of a node
// (*asyncraft.Node); a node without it answers 501.
type membershipNode interface {
	ChangeMembership(ctx context.Context, m asyncraft.MembershipChange) (uint64, error)
	TransferLeadership(ctx context.Context, to string) error
}

// identityNode is a node that tells its group's cluster identity
// (*asyncraft.Node), for GET /status and GET /membership: what a new node
// joins with (-join-identity).
type identityNode interface {
	ClusterIdentity() uint64
}

// formatIdentity writes a cluster identity as -join-identity reads it.
func formatIdentity(id uint64) string { return fmt.Sprintf("0x%016x", id) }

// parseIdentity reads a cluster identity: hexadecimal with a 0x prefix
// (as GET /status shows it), or decimal.
func parseIdentity(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	var v uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		v, err = strconv.ParseUint(h, 16, 64)
	} else {
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a cluster identity (0x and 16 hex digits, as GET /status shows cluster_identity, or a decimal number)", s)
	}
	if v == 0 {
		return 0, errors.New("a cluster identity is never 0")
	}
	return v, nil
}

// requestChange returns the MembershipChange r asks for (without its guard).
func requestChange(r kvapi.MembershipRequest) (asyncraft.MembershipChange, error) {
	if err := r.Check(); err != nil {
		return asyncraft.MembershipChange{}, err
	}
	p := asyncraft.Peer{ID: r.ID, Addr: r.Addr}
	switch r.Op {
	case "add-voter":
		return asyncraft.AddVoter(p), nil
	case "add-learner":
		return asyncraft.AddLearner(p), nil
	case "add-learner-to-promote":
		return asyncraft.AddLearnerToPromote(p), nil
	case "promote":
		return asyncraft.PromoteLearner(r.ID), nil
	case "remove":
		return asyncraft.RemoveMember(r.ID), nil
	case "remove-learner":
		return asyncraft.RemoveLearner(r.ID), nil
	case "set-priority":
		return asyncraft.SetPriority(r.ID, *r.Priority), nil
	case "replace":
		return asyncraft.ReplaceVoter(r.Old, p), nil
	default: // set
		return asyncraft.SetConfiguration(setTarget(r)), nil
	}
}

// setTarget is the configuration of op "set" r asks for.
func setTarget(r kvapi.MembershipRequest) asyncraft.Configuration {
	var t asyncraft.Configuration
	for _, m := range r.Voters {
		t.Voters = append(t.Voters, asyncraft.Peer{ID: m.ID, Addr: m.Addr, Priority: m.Priority})
	}
	for _, m := range r.Learners {
		t.Learners = append(t.Learners, asyncraft.Peer{ID: m.ID, Addr: m.Addr, Priority: m.Priority})
	}
	return t
}

// targetFrom is the configuration r leads to from cur (not joint), for a
// guarded change: what the library's change of the same name would
// compute, with its refusals.
func targetFrom(r kvapi.MembershipRequest, cur asyncraft.Configuration) (asyncraft.Configuration, error) {
	if cur.Joint() {
		return cur, fmt.Errorf("%w: the configuration is joint (%v)", asyncraft.ErrChangeInProgress, cur)
	}
	if r.Op == "set" {
		return setTarget(r), nil
	}
	byID := func(id string) func(asyncraft.Peer) bool { return func(p asyncraft.Peer) bool { return p.ID == id } }
	without := func(ps []asyncraft.Peer, id string) []asyncraft.Peer {
		return slices.DeleteFunc(slices.Clone(ps), byID(id))
	}
	t := asyncraft.Configuration{Voters: slices.Clone(cur.Voters), Learners: slices.Clone(cur.Learners), Promoting: slices.Clone(cur.Promoting)}
	voter, learner := slices.ContainsFunc(cur.Voters, byID(r.ID)), slices.ContainsFunc(cur.Learners, byID(r.ID))
	p := asyncraft.Peer{ID: r.ID, Addr: r.Addr}
	switch r.Op {
	case "add-voter":
		if voter {
			return t, fmt.Errorf("%w: %s is a voter already", asyncraft.ErrConfigurationUnchanged, r.ID)
		}
		t.Learners, t.Voters = without(t.Learners, r.ID), append(t.Voters, p)
	case "add-learner", "add-learner-to-promote":
		switch {
		case learner:
			return t, fmt.Errorf("%w: %s is a learner already", asyncraft.ErrConfigurationUnchanged, r.ID)
		case voter:
			return t, fmt.Errorf("%w: %s is a voter", asyncraft.ErrInvalidConfiguration, r.ID)
		}
		t.Learners = append(t.Learners, p)
		if r.Op == "add-learner-to-promote" {
			t.Promoting = append(t.Promoting, r.ID)
		}
	case "promote":
		i := slices.IndexFunc(cur.Learners, byID(r.ID))
		if i < 0 {
			return t, fmt.Errorf("%w: %s is not a learner", asyncraft.ErrInvalidConfiguration, r.ID)
		}
		t.Learners, t.Voters = without(t.Learners, r.ID), append(t.Voters, cur.Learners[i])
	case "remove":
		if !voter && !learner {
			return t, fmt.Errorf("%w: %s is not a member", asyncraft.ErrConfigurationUnchanged, r.ID)
		}
		t.Voters, t.Learners = without(t.Voters, r.ID), without(t.Learners, r.ID)
	case "remove-learner":
		if !learner {
			return t, fmt.Errorf("%w: %s is not a learner", asyncraft.ErrInvalidConfiguration, r.ID)
		}
		t.Learners = without(t.Learners, r.ID)
	case "set-priority":
		var found bool
		for _, list := range [][]asyncraft.Peer{t.Voters, t.Learners} {
			if i := slices.IndexFunc(list, byID(r.ID)); i >= 0 {
				if list[i].Priority == *r.Priority {
					return t, fmt.Errorf("%w: %s has priority %d already", asyncraft.ErrConfigurationUnchanged, r.ID, *r.Priority)
				}
				list[i].Priority, found = *r.Priority, true
			}
		}
		if !found {
			return t, fmt.Errorf("%w: %s is not a member", asyncraft.ErrInvalidConfiguration, r.ID)
		}
	case "replace":
		switch {
		case !slices.ContainsFunc(cur.Voters, byID(r.Old)):
			return t, fmt.Errorf("%w: %s is not a voter", asyncraft.ErrInvalidConfiguration, r.Old)
		case r.Old != r.ID && voter:
			return t, fmt.Errorf("%w: %s is a voter already", asyncraft.ErrInvalidConfiguration, r.ID)
		}
		t.Learners, t.Voters = without(t.Learners, r.ID), append(without(t.Voters, r.Old), p)
	}
	t.Promoting = slices.DeleteFunc(t.Promoting, func(id string) bool { return !slices.ContainsFunc(t.Learners, byID(id)) })
	return t, nil
}

// maxBodyBytes bounds the body of POST /membership.
const maxBodyBytes = 64 << 10

// requestTimeout is how long a membership request waits: ?timeout= (a Go
// duration, at most s.maxTimeout), or the server's timeout.
func (s *Server) requestTimeout(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("timeout")
	if v == "" {
		return s.timeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout=%q is not a positive duration (such as 30s)", v)
	}
	if d > s.maxTimeout {
		return 0, fmt.Errorf("timeout=%v exceeds %v (the HTTP server's -http-write-timeout less a second)", d, s.maxTimeout)
	}
	return d, nil
}

func (s *Server) handleMembership(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		st := s.node.Status()
		local := r.URL.Query().Get("local")
		if st.Role != asyncraft.Leader && local != "1" && local != "true" {
			code, body := s.httpError(closure.NotLeader(st.Leader))
			body.Error += " (GET /membership?local=1 shows this node's configuration)"
			writeJSON(w, code, body)
			return
		}
		writeJSON(w, http.StatusOK, s.membershipReply(st, 0))
	case http.MethodPost:
		s.changeMembership(w, r)
	default:
		methodNotAllowed(w, "GET, POST")
	}
}

func (s *Server) changeMembership(w http.ResponseWriter, r *http.Request) {
	mn, ok := s.node.(membershipNode)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, kvapi.APIError{Error: "this node does not change its membership", Code: closure.EINVAL.String()})
		return
	}
	timeout, err := s.requestTimeout(r)
	if err != nil {
		badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	var req kvapi.MembershipRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, http.StatusBadRequest, "the body is not a membership request: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		badRequest(w, http.StatusBadRequest, "the body holds more than one membership request")
		return
	}
	change, err := requestChange(req)
	if err != nil {
		badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.IfIndex != nil {
		st := s.node.Status()
		if st.Role != asyncraft.Leader {
			s.writeChangeError(w, closure.NotLeader(st.Leader).Err())
			return
		}
		if st.ConfigurationIndex != *req.IfIndex {
			writeJSON(w, http.StatusPreconditionFailed, kvapi.APIError{Code: kvapi.CodeConfStale,
				Error: fmt.Sprintf("if_index %d: the configuration in force is the one of index %d (%v)", *req.IfIndex, st.ConfigurationIndex, st.Configuration)})
			return
		}
		target, err := targetFrom(req, st.Configuration)
		if err != nil {
			s.writeChangeError(w, err)
			return
		}
		change = asyncraft.SetConfigurationIf(st.Configuration, target)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	index, err := mn.ChangeMembership(ctx, change)
	if err != nil {
		s.writeChangeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.membershipReply(s.node.Status(), index))
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	mn, ok := s.node.(membershipNode)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, kvapi.APIError{Error: "this node does not transfer its leadership", Code: closure.EINVAL.String()})
		return
	}
	timeout, err := s.requestTimeout(r)
	if err != nil {
		badRequest(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := mn.TransferLeadership(ctx, r.URL.Query().Get("to")); err != nil {
		s.writeChangeError(w, err)
		return
	}
	st := s.node.Status()
	writeJSON(w, http.StatusOK, kvapi.TransferReply{Leader: st.Leader, LeaderHTTP: s.peerHTTP[st.Leader], Term: st.Term})
}

// changeError maps the error of a membership change or a leadership
// transfer to an HTTP status code and body:
//
//	409 EINPROGRESS  another change is under way (or, for a transfer, the
//	                 configuration is changing): retry once it completes
//	409 EUNCHANGED   the change leads to the configuration in force (the
//	                 member is there already, or is no member)
//	412 ECONFSTALE   the guard (if_index) does not match
//	400 EINVAL       the change does not apply (a voter to remove as a
//	                 learner, an id listed twice, no voters left...)
//	504 ETIMEDOUT    new voters made no progress for the catch-up timeout
//	                 (they stay learners), or a transfer did not complete
//	                 within an election timeout
//	504 EUNKNOWN     the request's timeout passed or the leader lost its
//	                 leadership first: the change may still complete
//	                 (GET /membership tells)
//
// and otherwise as httpError (421/503 EPERM, 503 EBUSY or EAGAIN, ...).
func (s *Server) changeError(err error) (int, kvapi.APIError) {
	body := kvapi.APIError{Error: err.Error()}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		body.Code = closure.EUNKNOWN.String()
		body.Error += " (GET /membership and GET /status tell what became of it)"
		return http.StatusGatewayTimeout, body
	case errors.Is(err, asyncraft.ErrChangeInProgress):
		body.Code = kvapi.CodeInProgress
		return http.StatusConflict, body
	case errors.Is(err, asyncraft.ErrConfigurationUnchanged):
		body.Code = kvapi.CodeUnchanged
		return http.StatusConflict, body
	case errors.Is(err, asyncraft.ErrConfigurationStale):
		body.Code = kvapi.CodeConfStale
		return http.StatusPreconditionFailed, body
	case errors.Is(err, asyncraft.ErrInvalidConfiguration):
		body.Code = closure.EINVAL.String()
		return http.StatusBadRequest, body
	}
	st := closure.StatusOf(err)
	switch st.Code {
	case closure.ETIMEDOUT:
		body.Code = closure.ETIMEDOUT.String()
		return http.StatusGatewayTimeout, body
	case closure.EUNKNOWN:
		body.Code = closure.EUNKNOWN.String()
		return http.StatusGatewayTimeout, body
	}
	code, b := s.httpError(st)
	if st.Code != closure.EINTERNAL {
		b.Error = err.Error()
	}
	return code, b
}

func (s *Server) writeChangeError(w http.ResponseWriter, err error) {
	code, body := s.changeError(err)
	writeJSON(w, code, body)
}

// membershipReply describes st's configuration; index is the entry of a
// change just made (0: none).
func (s *Server) membershipReply(st asyncraft.Status, index uint64) kvapi.MembershipReply {
	members := func(ps []asyncraft.Peer) []kvapi.MemberReply {
		out := make([]kvapi.MemberReply, 0, len(ps))
		for _, p := range ps {
			out = append(out, kvapi.MemberReply{ID: p.ID, Addr: p.Addr, Priority: p.Priority, HTTP: s.peerHTTP[p.ID]})
		}
		return out
	}
	c := st.Configuration
	reply := kvapi.MembershipReply{
		ID: st.ID, Leader: st.Leader, Term: st.Term,
		Index: st.ConfigurationIndex, Committed: st.ConfigurationIndex <= st.Commit, Joint: c.Joint(),
		Voters: members(c.Voters), Learners: members(c.Learners), Promoting: c.Promoting,
		ChangeIndex: index,
	}
	if c.Joint() {
		reply.OldVoters, reply.OldLearners = members(c.OldVoters), members(c.OldLearners)
		if len(reply.OldLearners) == 0 {
			reply.OldLearners = nil
		}
	}
	if in, ok := s.node.(identityNode); ok {
		reply.ClusterIdentity = formatIdentity(in.ClusterIdentity())
	}
	return reply
}
