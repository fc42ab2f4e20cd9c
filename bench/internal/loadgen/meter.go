package loadgen

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Meter collects the completions of a background load (the "load"
// command): clients run until Stop, and Cut hands out what completed
// since the previous cut. It is a Sink.
type Meter struct {
	spec    Spec
	groups  []string
	value   []byte
	stopped atomic.Bool
	active  atomic.Int64 // clients still issuing
	done    chan struct{}

	mu       sync.Mutex // guards what follows
	hist     *hdr.Histogram
	ops      uint64
	missing  uint64
	perGroup []uint64
	errors   map[string]uint64
	since    time.Time
	// With Spec.Timeline: every completion's time and every refusal.
	okAt    []int64
	refused []Refusal
}

var _ Sink = (*Meter)(nil)

// NewMeter meters a load of spec.Clients clients over groups, from now.
func NewMeter(spec Spec, groups []string) *Meter {
	m := &Meter{
		spec: spec, groups: groups, value: ValueBytes(spec.ValueSize), done: make(chan struct{}),
		hist: NewHist(), perGroup: make([]uint64, len(groups)), errors: map[string]uint64{}, since: time.Now(),
	}
	m.active.Store(int64(spec.Clients))
	if spec.Clients == 0 {
		close(m.done)
	}
	return m
}

func (m *Meter) Spec() Spec              { return m.spec }
func (m *Meter) Value() []byte           { return m.value }
func (m *Meter) Over(now time.Time) bool { return m.stopped.Load() }

func (m *Meter) Stopped() {
	if m.active.Add(-1) == 0 {
		close(m.done)
	}
}

func (m *Meter) OK(gi int, issued, now time.Time) {
	us := max(HistLowest, now.Sub(issued).Microseconds())
	m.mu.Lock()
	_ = m.hist.RecordValue(min(us, HistHighest))
	m.ops++
	if gi < len(m.perGroup) {
		m.perGroup[gi]++
	}
	if m.spec.Timeline {
		m.okAt = append(m.okAt, now.UnixNano())
	}
	m.mu.Unlock()
}

func (m *Meter) Fail(kind string) {
	var at int64
	if m.spec.Timeline {
		at = time.Now().UnixNano()
	}
	m.mu.Lock()
	m.errors[kind]++
	if m.spec.Timeline {
		m.refused = append(m.refused, Refusal{At: at, Kind: kind})
	}
	m.mu.Unlock()
}

func (m *Meter) Missing() {
	m.mu.Lock()
	m.missing++
	m.mu.Unlock()
}

// Cut returns the completions since the previous cut (or the start) and
// starts a new interval.
func (m *Meter) Cut() (*Result, error) {
	now := time.Now()
	m.mu.Lock()
	h, ops, missing, perGroup, errs, since := m.hist, m.ops, m.missing, m.perGroup, m.errors, m.since
	m.hist, m.ops, m.missing, m.perGroup, m.errors, m.since = NewHist(), 0, 0, make([]uint64, len(m.groups)), map[string]uint64{}, now
	okAt, refused := m.okAt, m.refused
	m.okAt, m.refused = nil, nil
	m.mu.Unlock()
	enc, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode the histogram: %w", err)
	}
	res := &Result{Ops: ops, Seconds: now.Sub(since).Seconds(), Missing: missing, Hist: enc, PerGroup: map[string]uint64{},
		OKAt: okAt, Refused: refused}
	if len(errs) > 0 {
		res.Errors = errs
	}
	for i, g := range m.groups {
		res.PerGroup[g] = perGroup[i]
	}
	return res, nil
}

// Stop tells the clients to stop and waits for them, at most wait. It
// returns the clients still waiting for an operation then.
func (m *Meter) Stop(wait time.Duration) int64 {
	m.stopped.Store(true)
	select {
	case <-m.done:
	case <-time.After(wait):
	}
	return m.active.Load()
}
