package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/asyncraft/asyncraft/examples/kvstore/kvapi"
)

const (
	// serverTimeout is the kvstore's -timeout: how long it waits for a
	// command before answering 504 EUNKNOWN.
	serverTimeout = 2 * time.Second
	// clientTimeout bounds one HTTP request (a paused node never answers).
	clientTimeout = 3 * time.Second
	// maxThink is the longest pause of a client between operations.
	maxThink = 20 * time.Millisecond
	// retryEvery paces the attempts of until and the polls of eventually.
	retryEvery = 20 * time.Millisecond
)

type opState uint8

const (
	opOK      opState = iota
	opFailed          // definitely not applied (dropped from the history)
	opUnknown         // may or may not have been applied
)

func (s opState) String() string {
	return [...]string{"ok", "failed", "unknown"}[s]
}

// op is one HTTP request of a client and what became of it.
type op struct {
	client int
	input  kvInput
	// call and ret: since the start of the run (monotonic).
	call, ret time.Duration
	state     opState
	output    kvOutput
	node      string // HTTP address it went to
	detail    string // status code and error code, or the transport error
}

// history is every operation of every client, in order of invocation.
type history struct {
	start    time.Time
	mu       sync.Mutex
	ops      []*op
	problems []string // answers that should never happen
}

func (h *history) begin(client int, in kvInput, node string) *op {
	o := &op{client: client, input: in, node: node, call: time.Since(h.start)}
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
	return o
}

func (h *history) finish(o *op, state opState, out kvOutput, detail string) {
	ret := time.Since(h.start)
	h.mu.Lock()
	o.ret, o.state, o.output, o.detail = ret, state, out, detail
	h.mu.Unlock()
}

func (h *history) problem(format string, args ...any) {
	h.mu.Lock()
	h.problems = append(h.problems, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// mark is a position in the history: the operations begun after it are
// those that since(mark) visits.
func (h *history) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// since calls f, under the history's lock, for every operation begun after
// mark, finished or not (a finished one has ret > 0).
func (h *history) since(mark int, f func(o *op)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.ops[mark:] {
		f(o)
	}
}

// snapshot returns the operations and problems so far.
func (h *history) snapshot() ([]op, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]op, len(h.ops))
	for i, o := range h.ops {
		out[i] = *o
	}
	return out, append([]string(nil), h.problems...)
}

// client is one closed-loop client: one request at a time, to the node it
// believes leads.
type client struct {
	id      int
	h       *history
	servers []string
	rng     *rand.Rand
	http    *http.Client
	target  string
	seq     int
	// readAnywhere sends each read to a random node (for the self-check,
	// where followers answer reads).
	readAnywhere bool
	// backoff is added to the next pause of run (set on a 503).
	backoff time.Duration
}

func newClient(id int, h *history, servers []string, seed uint64) *client {
	// A transport per client: a connection stuck on a paused node holds
	// up no one else.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 500 * time.Millisecond}).DialContext,
		MaxIdleConnsPerHost: 1,
	}
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	return &client{
		id: id, h: h, servers: servers, rng: rng,
		http:   &http.Client{Transport: tr, Timeout: clientTimeout},
		target: servers[rng.IntN(len(servers))],
	}
}

func (cl *client) close() { cl.http.CloseIdleConnections() }

// retarget picks the next node: the hinted leader, or another at random.
func (cl *client) retarget(hint string) {
	if hint != "" {
		cl.target = hint
		return
	}
	cl.target = cl.servers[cl.rng.IntN(len(cl.servers))]
}

// next returns a new operation on a random key with a unique value.
func (cl *client) next(keys int, reads float64) kvInput {
	cl.seq++
	in := kvInput{Key: fmt.Sprintf("k%d", cl.rng.IntN(keys)), Value: fmt.Sprintf("c%d.%d;", cl.id, cl.seq)}
	switch p := cl.rng.Float64(); {
	case p < reads:
		in.Kind, in.Value = opGet, ""
	case p < reads+(1-reads)*0.5:
		in.Kind = opAppend
	case p < reads+(1-reads)*0.9:
		in.Kind = opPut
	default:
		in.Kind, in.Value = opDelete, ""
	}
	return in
}

// do sends one operation to the current target and records it.
func (cl *client) do(in kvInput) *op {
	if cl.readAnywhere && in.Kind == opGet {
		cl.retarget("")
	}
	o := cl.h.begin(cl.id, in, cl.target)
	state, out, detail := cl.send(in)
	cl.h.finish(o, state, out, detail)
	return o
}

func (cl *client) send(in kvInput) (opState, kvOutput, string) {
	unknown := kvOutput{Unknown: true}
	u := "http://" + cl.target + "/kv/" + url.PathEscape(in.Key)
	var method string
	var body io.Reader
	switch in.Kind {
	case opGet:
		method = http.MethodGet
	case opPut:
		method, body = http.MethodPut, strings.NewReader(in.Value)
	case opAppend:
		method, body, u = http.MethodPost, strings.NewReader(in.Value), u+"?append=1"
	case opDelete:
		method = http.MethodDelete
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, body)
	if err != nil {
		panic(err)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		cl.retarget("")
		if isDial(err) { // never sent
			return opFailed, kvOutput{}, err.Error()
		}
		return opUnknown, unknown, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		cl.retarget("")
		return opUnknown, unknown, fmt.Sprintf("%d, reading the body: %v", resp.StatusCode, err)
	}
	var e kvapi.APIError
	if resp.StatusCode >= 400 {
		json.Unmarshal(b, &e)
	}
	detail := fmt.Sprintf("%d %s", resp.StatusCode, e.Code)
	switch code := resp.StatusCode; {
	case code == http.StatusOK && in.Kind == opGet:
		var kv struct{ Value string }
		if err := json.Unmarshal(b, &kv); err != nil {
			cl.h.problem("%s: GET %s answered 200 with %q", cl.target, in.Key, b)
			return opUnknown, unknown, detail
		}
		return opOK, kvOutput{Value: kv.Value}, detail
	case code == http.StatusNotFound && in.Kind == opGet && e.Code == "ENOTFOUND":
		return opOK, kvOutput{}, detail
	case code == http.StatusNoContent && in.Kind != opGet:
		return opOK, kvOutput{}, detail
	case code == http.StatusMisdirectedRequest && e.Code == "EPERM":
		cl.retarget(e.LeaderHTTP)
		return opFailed, kvOutput{}, detail
	case code == http.StatusServiceUnavailable:
		// No leader yet, or one not ready: back off before the next
		// operation (see run).
		cl.retarget(e.LeaderHTTP)
		cl.backoff = time.Duration(10+cl.rng.IntN(40)) * time.Millisecond
		return opFailed, kvOutput{}, detail
	case code == http.StatusGatewayTimeout && e.Code == "EUNKNOWN":
		cl.retarget("")
		return opUnknown, unknown, detail
	default:
		// 500 (a node in error), 400 (a bad request from this harness)
		// or anything else: count it as unknown, and report it.
		cl.h.problem("%s: %s %s answered %d %s", cl.target, method, in.Key, code, strings.TrimSpace(string(b)))
		cl.retarget("")
		return opUnknown, unknown, detail
	}
}

// isDial reports whether err happened before the request was sent.
func isDial(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// run does random operations until stop is closed, with a random think
// time between them (and the backoff a 503 asked for).
func (cl *client) run(stop <-chan struct{}, keys int, reads float64) {
	for {
		pause := time.Duration(cl.rng.Int64N(int64(maxThink))) + cl.backoff
		cl.backoff = 0
		select {
		case <-stop:
			return
		case <-time.After(pause):
		}
		cl.do(cl.next(keys, reads))
	}
}

// until repeats an operation (with a new unique value each time, for
// writes), one attempt per retryEvery at most, until one succeeds or limit
// passes. Every attempt is recorded.
func (cl *client) until(limit time.Duration, mk func() kvInput) (*op, error) {
	var last *op
	if eventually(limit, retryEvery, func() bool {
		last = cl.do(mk())
		return last.state == opOK
	}) {
		return last, nil
	}
	if last == nil {
		return nil, fmt.Errorf("no attempt within %v", limit)
	}
	return nil, fmt.Errorf("no success within %v; last attempt: %s to %s: %s", limit, last.input.Kind, last.node, last.detail)
}

// eventually evaluates cond at once and then every interval until it holds
// (true) or limit has passed (false).
func eventually(limit, every time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

// newRand is the nemesis's RNG.
func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x6e656d65736973))
}
