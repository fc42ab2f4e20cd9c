package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

func TestMap(t *testing.T) {
	m := NewMap()
	m.Put(EncodeCommand(7, []byte("seven")))
	m.Put([]byte{1, 2, 3}) // shorter than a key: ignored
	if v, ok := m.Get(7); !ok || string(v) != "seven" || m.Len() != 1 {
		t.Fatalf("get 7: %q %v, len %d", v, ok, m.Len())
	}
	snap := m.Snapshot()
	m.Put(EncodeCommand(8, nil))
	if len(snap) != 1 || m.Len() != 2 {
		t.Errorf("the snapshot follows the map: %d, %d", len(snap), m.Len())
	}
	m.Restore(snap)
	if _, ok := m.Get(8); ok {
		t.Error("restore kept a key")
	}
	if c := EncodeCommand(1, ValueBytes(120)); len(c) != 128 {
		t.Errorf("the standard command has %d bytes", len(c))
	}
}

func TestRecorderWindow(t *testing.T) {
	ws := time.Unix(100, 0)
	spec := Spec{Measure: 10 * time.Second}
	r := NewRecorder(spec, 2, 2, ws)
	r.OK(0, ws.Add(-2*time.Second), ws.Add(-time.Second)) // warm-up
	r.OK(0, ws, ws.Add(3*time.Millisecond))               // counts, group 0
	r.OK(1, ws, ws.Add(5*time.Millisecond))               // counts, group 1
	r.OK(1, ws, ws.Add(10*time.Second))                   // after the window
	r.Fail("EBUSY")
	r.Missing()
	if !r.Over(ws.Add(10*time.Second)) || r.Over(ws.Add(9*time.Second)) {
		t.Error("Over")
	}
	r.Stopped()
	select {
	case <-r.Done():
		t.Fatal("done with a client still issuing")
	default:
	}
	r.Stopped()
	<-r.Done()
	res, err := r.result([]string{"g0", "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 2 || res.PerGroup["g0"] != 1 || res.PerGroup["g1"] != 1 || res.Errors["EBUSY"] != 1 || res.Missing != 1 || res.Unfinished != 0 {
		t.Errorf("%+v", res)
	}
	h, err := hdr.Decode(res.Hist)
	if err != nil || h.TotalCount() != 2 || h.Max() < 4990 || h.Max() > 5010 {
		t.Errorf("histogram: %v, max %d µs", err, h.Max())
	}
	if ok, failed := r.Completed(); ok != 4 || failed != 1 {
		t.Errorf("completed %d ok, %d failed", ok, failed)
	}
}

func TestErrorName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	for err, want := range map[error]string{
		fmt.Errorf("apply: %w", ctx.Err()):   "deadline",
		context.Canceled:                     "canceled",
		errors.New("leadership lost"):        "leadership lost",
		errors.New(string(make([]byte, 99))): string(make([]byte, 60)),
	} {
		if got := ErrorName(err); got != want {
			t.Errorf("ErrorName(%v) = %q, want %q", err, got, want)
		}
	}
}

// fakeSystem is a one-node system whose operations complete at once;
// while flaky, every fifth proposal fails.
type fakeSystem struct {
	started  bool
	flaky    atomic.Bool
	proposed atomic.Int64
	m        *Map
}

func (f *fakeSystem) Addr() string    { return "127.0.0.1:1" }
func (f *fakeSystem) Version() string { return "fake v1" }
func (f *fakeSystem) Start(cmd Command) error {
	if len(cmd.Peers) != 1 || cmd.Groups != 1 {
		return fmt.Errorf("start %+v", cmd)
	}
	f.started = true
	return nil
}
func (f *fakeSystem) Status() []NodeStatus {
	return []NodeStatus{{Group: "g0", ID: "n1", Role: "leader", Leader: "n1", Term: 1, Applied: 1}}
}
func (f *fakeSystem) Targets(groups []string) ([]Target, error) {
	if len(groups) != 1 || groups[0] != "g0" {
		return nil, fmt.Errorf("groups %v", groups)
	}
	return []Target{f}, nil
}
func (f *fakeSystem) Propose(ctx context.Context, cmd []byte) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("no deadline")
	}
	if f.proposed.Add(1)%5 == 0 && f.flaky.Load() {
		return errors.New("busy")
	}
	f.m.Put(cmd)
	return nil
}
func (f *fakeSystem) Read(_ context.Context, key uint64) (bool, error) {
	_, ok := f.m.Get(key)
	return ok, nil
}

// TestServe drives a member through the whole protocol, as the
// orchestrator does: ready, start, status, prefill, run, quit.
func TestServe(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sys := &fakeSystem{m: NewMap()}
	sys.flaky.Store(true)
	served := make(chan error, 1)
	go func() { served <- Serve(sys, inR, outW); outW.Close() }()
	events := bufio.NewScanner(outR)
	next := func(want string) Event {
		t.Helper()
		for events.Scan() {
			var ev Event
			if err := json.Unmarshal(events.Bytes(), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Ev == "progress" {
				continue
			}
			if ev.Ev != want {
				t.Fatalf("event %+v, want %s", ev, want)
			}
			return ev
		}
		t.Fatalf("no event, want %s", want)
		return Event{}
	}
	var mu sync.Mutex
	send := func(c Command) {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(c)
		if _, err := inW.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}

	if ev := next("ready"); ev.Addr != "127.0.0.1:1" || ev.Version != "fake v1" {
		t.Errorf("ready %+v", ev)
	}
	send(Command{Op: "start", Peers: []Peer{{ID: "n1", Addr: "127.0.0.1:1"}}, Groups: 1})
	next("started")
	send(Command{Op: "status"})
	if ev := next("status"); len(ev.Nodes) != 1 || ev.Nodes[0].Role != "leader" {
		t.Errorf("status %+v", ev)
	}
	spec := Spec{Name: "read", Op: OpRead, Client: ClientGoroutine, Clients: 4, Keys: 16, ValueSize: 8,
		Warmup: 10 * time.Millisecond, Measure: 40 * time.Millisecond, OpTimeout: time.Second}
	send(Command{Op: "prefill", Spec: &spec, Drive: []string{"g0"}})
	if ev := next("error"); ev.Err == "" { // every fifth proposal fails: the prefill says so
		t.Errorf("prefill %+v", ev)
	}
	sys.flaky.Store(false)
	send(Command{Op: "prefill", Spec: &spec, Drive: []string{"g0"}})
	next("prefilled")
	if sys.m.Len() != 16 {
		t.Errorf("prefill wrote %d keys", sys.m.Len())
	}
	send(Command{Op: "run", Spec: &spec, Drive: []string{"g0"}, Start: time.Now().UnixNano(), Stall: time.Second})
	res := next("result").Result
	if res == nil || res.Ops == 0 || res.Missing != 0 || res.Unfinished != 0 || res.PerGroup["g0"] != res.Ops || res.Seconds != 0.04 {
		t.Errorf("result %+v", res)
	}
	callback := spec
	callback.Client = ClientCallback
	send(Command{Op: "run", Spec: &callback, Drive: []string{"g0"}, Start: time.Now().UnixNano()})
	if ev := next("error"); ev.Err != "fake v1 has no callback clients" {
		t.Errorf("callback clients: %+v", ev)
	}
	// A background load, cut twice, then stopped; an unknown command.
	send(Command{Op: "cut"})
	if ev := next("error"); ev.Err == "" {
		t.Errorf("cut without a load: %+v", ev)
	}
	load := spec
	load.Op = OpPropose
	send(Command{Op: "load", Spec: &load, Drive: []string{"g0"}})
	next("loading")
	send(Command{Op: "load", Spec: &load, Drive: []string{"g0"}})
	next("error")
	// Cut until the load has done something (each cut counts what was
	// done since the one before).
	var first *Result
	for deadline := time.Now().Add(10 * time.Second); ; {
		send(Command{Op: "cut"})
		first = next("cut").Result
		if first == nil || first.Ops > 0 || time.Now().After(deadline) {
			break
		}
	}
	send(Command{Op: "unload", Stall: time.Second})
	last := next("cut").Result
	if first == nil || last == nil || first.Ops == 0 || first.Seconds <= 0 || last.Unfinished != 0 || first.PerGroup["g0"] != first.Ops {
		t.Errorf("cuts %+v %+v", first, last)
	}
	if h, err := hdr.Decode(first.Hist); err != nil || uint64(h.TotalCount()) != first.Ops {
		t.Errorf("cut histogram: %v", err)
	}
	send(Command{Op: "cut"})
	next("error")
	send(Command{Op: "snapshot"})
	if ev := next("error"); ev.Err != `unknown command "snapshot"` {
		t.Errorf("unknown command: %+v", ev)
	}
	send(Command{Op: "quit"})
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	inW.Close()
}

func TestMeter(t *testing.T) {
	m := NewMeter(Spec{Clients: 2, ValueSize: 3}, []string{"g0", "g1"})
	now := time.Now()
	m.OK(0, now.Add(-2*time.Millisecond), now)
	m.OK(1, now.Add(-4*time.Millisecond), now)
	m.Fail("EBUSY")
	m.Missing()
	if m.Over(now) || len(m.Value()) != 3 {
		t.Error("over before Stop")
	}
	res, err := m.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 2 || res.PerGroup["g0"] != 1 || res.PerGroup["g1"] != 1 || res.Errors["EBUSY"] != 1 || res.Missing != 1 {
		t.Errorf("first cut %+v", res)
	}
	m.OK(0, now, now)
	if res, _ := m.Cut(); res.Ops != 1 || res.Errors != nil || res.Missing != 0 {
		t.Errorf("second cut %+v", res)
	}
	m.Stopped()
	go m.Stopped() // the second client stops while Stop waits (or before)
	if n := m.Stop(time.Second); n != 0 || !m.Over(now) {
		t.Errorf("Stop: %d clients left", n)
	}
}

func TestMeterTimeline(t *testing.T) {
	m := NewMeter(Spec{Clients: 1, Timeline: true}, []string{"g0"})
	now := time.Now()
	m.OK(0, now.Add(-time.Millisecond), now)
	m.Fail("EBUSY")
	m.OK(0, now, now.Add(time.Millisecond))
	res, err := m.Cut()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.OKAt) != 2 || res.OKAt[0] != now.UnixNano() || res.OKAt[1] != now.Add(time.Millisecond).UnixNano() {
		t.Errorf("OKAt %v", res.OKAt)
	}
	if len(res.Refused) != 1 || res.Refused[0].Kind != "EBUSY" || res.Refused[0].At < now.UnixNano() {
		t.Errorf("Refused %v", res.Refused)
	}
	if res, _ := m.Cut(); len(res.OKAt) != 0 || len(res.Refused) != 0 {
		t.Errorf("second cut kept the timeline: %+v", res)
	}
	// Without Timeline nothing is kept.
	p := NewMeter(Spec{Clients: 1}, []string{"g0"})
	p.OK(0, now, now)
	p.Fail("EBUSY")
	if res, _ := p.Cut(); res.OKAt != nil || res.Refused != nil {
		t.Errorf("a plain meter kept a timeline: %+v", res)
	}
}
