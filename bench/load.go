package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/closure"
)

// Latencies are recorded in microseconds, from 1 µs to 60 s, with 3
// significant digits (about 100 KiB for the histogram).
const (
	histLowest  = 1
	histHighest = 60_000_000
	histDigits  = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLowest, histHighest, histDigits) }

// memberResult is what a member process that ran load reports.
type memberResult struct {
	// Ops completed OK in the measured window, and the window's length.
	Ops     uint64  `json:"ops"`
	Seconds float64 `json:"seconds"`
	// Errors: non-OK completions by code, over the whole run.
	Errors map[string]uint64 `json:"errors,omitempty"`
	// Missing: reads that found no value for their key (after the
	// prefill every key has one).
	Missing uint64 `json:"missing,omitempty"`
	// Unfinished: operations still in flight when the member stopped
	// waiting for them after the run.
	Unfinished int64 `json:"unfinished,omitempty"`
	// Hist: the latencies of the window's operations, µs, HdrHistogram V2
	// compressed.
	Hist []byte `json:"hist"`
	// PerGroup: window ops by group.
	PerGroup map[string]uint64 `json:"per_group"`
	// The driven leaders' log writes (each one fsync) and entries written
	// during the window, and their reads and read quorum rounds.
	LogWrites  uint64 `json:"log_writes"`
	LogEntries uint64 `json:"log_entries"`
	Reads      uint64 `json:"reads,omitempty"`
	ReadRounds uint64 `json:"read_rounds,omitempty"`
}

// valueBytes is a value of n pseudo-random bytes.
func valueBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// runner is one member's load generator for one run.
type runner struct {
	spec   Spec
	value  []byte
	ws, we time.Time // the measured window (monotonic)

	ok, failed atomic.Uint64 // completions over the whole run
	missing    atomic.Uint64
	active     atomic.Int64 // clients still issuing
	done       chan struct{}

	mu       sync.Mutex // guards what follows
	hist     *hdr.Histogram
	inWindow uint64
	perGroup []uint64
	errors   map[string]uint64
}

// client is one closed-loop client: it issues its next operation from the
// callback of the previous one.
type client struct {
	r       *runner
	gi      int
	gn      *groupNode
	rng     *rand.Rand
	mode    asyncraft.ReadMode
	key     uint64
	issued  time.Time
	onApply closure.Func
	onRead  closure.ReadIndexClosure
}

func (c *client) next() {
	now := time.Now()
	if !now.Before(c.r.we) {
		if c.r.active.Add(-1) == 0 {
			close(c.r.done)
		}
		return
	}
	c.issued = now
	c.key = c.rng.Uint64N(uint64(c.r.spec.Keys))
	if c.r.spec.Op == "read" {
		c.gn.node.Read(asyncraft.ReadRequest{Mode: c.mode, Done: c.onRead})
		return
	}
	c.gn.node.Apply(asyncraft.Task{Data: encodeCommand(c.key, c.r.value), Done: c.onApply})
}

func (c *client) applied(st closure.Status) {
	c.complete(st, time.Now())
}

func (c *client) read(st closure.Status, _ uint64, _ []byte) {
	if st.OK() {
		if _, ok := c.gn.sm.get(c.key); !ok {
			c.r.missing.Add(1)
		}
	}
	c.complete(st, time.Now())
}

func (c *client) complete(st closure.Status, now time.Time) {
	r := c.r
	if !st.OK() {
		r.failed.Add(1)
		r.mu.Lock()
		r.errors[st.Code.String()]++
		r.mu.Unlock()
		time.AfterFunc(time.Millisecond, c.next) // no hot loop on a failing node
		return
	}
	r.ok.Add(1)
	if !now.Before(r.ws) && now.Before(r.we) {
		us := max(histLowest, now.Sub(c.issued).Microseconds())
		r.mu.Lock()
		_ = r.hist.RecordValue(min(us, histHighest))
		r.inWindow++
		r.perGroup[c.gi]++
		r.mu.Unlock()
	}
	c.next()
}

// profileWindow writes a CPU profile of the measured window of cmd's run
// (driven by another process) and a heap profile at its end.
func profileWindow(cmd command) {
	ws := time.Now().Add(time.Until(time.Unix(0, cmd.Start))).Add(cmd.Spec.Warmup)
	time.Sleep(time.Until(ws))
	f, err := os.Create(cmd.Profile)
	if err != nil {
		return
	}
	defer f.Close()
	if pprof.StartCPUProfile(f) != nil {
		return
	}
	time.Sleep(cmd.Spec.Measure)
	pprof.StopCPUProfile()
	_ = writeHeapProfile(strings.TrimSuffix(cmd.Profile, ".pprof") + ".heap.pprof")
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logCounters sums the driven leaders' log and read counters.
func logCounters(nodes []*groupNode) (writes, entries, reads, rounds uint64) {
	for _, gn := range nodes {
		writes += gn.node.LogStats().Writes.Load()
		entries += gn.node.LogStats().Entries.Load()
		reads += gn.node.Metrics().Reads.Load()
		rounds += gn.node.Metrics().ReadRounds.Load()
	}
	return
}

// run drives the groups of cmd.Drive (which this process leads) with the
// workload's closed-loop clients: a warm-up from cmd.Start, then the
// measured window, then it waits for the operations still in flight.
func (m *member) run(cmd command) (*memberResult, error) {
	nodes, err := m.driven(cmd)
	if err != nil {
		return nil, err
	}
	spec := *cmd.Spec
	// cmd.Start is wall-clock time; carry it over to the monotonic clock.
	start := time.Now().Add(time.Until(time.Unix(0, cmd.Start)))
	r := &runner{
		spec:     spec,
		value:    valueBytes(spec.ValueSize),
		ws:       start.Add(spec.Warmup),
		done:     make(chan struct{}),
		hist:     newHist(),
		perGroup: make([]uint64, len(nodes)),
		errors:   map[string]uint64{},
	}
	r.we = r.ws.Add(spec.Measure)
	mode := asyncraft.ReadSafe
	if spec.ReadMode == "lease" {
		mode = asyncraft.ReadLease
	}
	var clients []*client
	for i := 0; i < spec.Clients; i++ {
		gi := i % len(nodes)
		c := &client{r: r, gi: gi, gn: nodes[gi], mode: mode, rng: rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(i)))}
		c.onApply = c.applied
		c.onRead = c.read
		clients = append(clients, c)
	}
	if len(clients) == 0 {
		return nil, fmt.Errorf("no clients")
	}
	r.active.Store(int64(len(clients)))

	// Progress for the orchestrator's bar and stall watchdog.
	stopProgress := make(chan struct{})
	defer close(stopProgress)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				m.out.emit(event{Ev: "progress", Ops: r.ok.Load(), Errs: r.failed.Load()})
			case <-stopProgress:
				return
			}
		}
	}()

	// The measured window: counters, and the CPU profile if asked for.
	var w0, e0, rd0, rr0, w1, e1, rd1, rr1 uint64
	var profErr error
	var prof *os.File
	windowDone := make(chan struct{})
	time.AfterFunc(time.Until(r.ws), func() {
		w0, e0, rd0, rr0 = logCounters(nodes)
		if cmd.Profile != "" {
			if prof, profErr = os.Create(cmd.Profile); profErr == nil {
				if profErr = pprof.StartCPUProfile(prof); profErr != nil {
					prof.Close()
					prof = nil
				}
			}
		}
		time.AfterFunc(time.Until(r.we), func() {
			w1, e1, rd1, rr1 = logCounters(nodes)
			if prof != nil {
				pprof.StopCPUProfile()
				if err := prof.Close(); err != nil && profErr == nil {
					profErr = err
				}
				// And where the memory is, at the end of the window.
				if err := writeHeapProfile(strings.TrimSuffix(cmd.Profile, ".pprof") + ".heap.pprof"); err != nil && profErr == nil {
					profErr = err
				}
			}
			close(windowDone)
		})
	})

	time.Sleep(time.Until(start))
	for _, c := range clients {
		c.next()
	}

	// Wait for the window to end and for every client to finish its last
	// operation; give up when nothing completes for cmd.Stall.
	stall := cmd.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	select {
	case <-windowDone:
	case <-m.gone:
		return nil, fmt.Errorf("the orchestrator is gone")
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last, lastAt := r.ok.Load()+r.failed.Load(), time.Now()
wait:
	for {
		select {
		case <-r.done:
			break wait
		case <-m.gone:
			return nil, fmt.Errorf("the orchestrator is gone")
		case <-t.C:
			if n := r.ok.Load() + r.failed.Load(); n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > stall {
				break wait
			}
		}
	}
	if profErr != nil {
		return nil, fmt.Errorf("CPU profile: %w", profErr)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	enc, err := r.hist.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode the histogram: %w", err)
	}
	res := &memberResult{
		Ops:        r.inWindow,
		Seconds:    spec.Measure.Seconds(),
		Errors:     maps.Clone(r.errors),
		Missing:    r.missing.Load(),
		Unfinished: r.active.Load(),
		Hist:       enc,
		PerGroup:   map[string]uint64{},
		LogWrites:  w1 - w0,
		LogEntries: e1 - e0,
		Reads:      rd1 - rd0,
		ReadRounds: rr1 - rr0,
	}
	for i, gn := range nodes {
		res.PerGroup[gn.node.Group()] = r.perGroup[i]
	}
	return res, nil
}
