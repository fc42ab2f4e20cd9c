package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Target is one group's leader as a goroutine client calls it. Both
// methods block until the operation has completed or ctx has ended, and
// may be called from many goroutines at once.
type Target interface {
	// Propose proposes cmd (the target may keep it) and returns once it
	// is committed and applied on this node.
	Propose(ctx context.Context, cmd []byte) error
	// Read is a linearizable read of key: the library's read barrier,
	// then a read of the local state machine. found reports whether key
	// had a value.
	Read(ctx context.Context, key uint64) (found bool, err error)
}

// Sink receives the completions of closed-loop clients, of any model:
// a Recorder (a run's fixed window) or a Meter (a background load, cut
// into intervals). Its methods may be called from many goroutines.
type Sink interface {
	// Spec is the workload; Value the value of every command
	// (EncodeCommand copies it).
	Spec() Spec
	Value() []byte
	// Over reports whether a client should stop at now: it then issues
	// nothing more and calls Stopped, once.
	Over(now time.Time) bool
	Stopped()
	// OK records an operation of group gi issued at issued that
	// completed OK at now; Fail a failed one, by kind; Missing a read
	// that found no value.
	OK(gi int, issued, now time.Time)
	Fail(kind string)
	Missing()
}

var _ Sink = (*Recorder)(nil)

// Recorder collects one run's completions. Clients of any model report
// to it: OK or Fail for every operation, Stopped once when they issue no
// more (after Over).
type Recorder struct {
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

// NewRecorder records a run of spec over groups groups whose measured
// window is [ws, ws+spec.Measure), for clients clients.
func NewRecorder(spec Spec, groups, clients int, ws time.Time) *Recorder {
	r := &Recorder{
		spec: spec, value: ValueBytes(spec.ValueSize),
		ws: ws, we: ws.Add(spec.Measure),
		done: make(chan struct{}), hist: NewHist(),
		perGroup: make([]uint64, groups), errors: map[string]uint64{},
	}
	r.active.Store(int64(clients))
	if clients == 0 {
		close(r.done)
	}
	return r
}

// Spec is the workload.
func (r *Recorder) Spec() Spec { return r.spec }

// Value is the value of every command (EncodeCommand copies it).
func (r *Recorder) Value() []byte { return r.value }

// Over reports whether the window has ended at now: a client issues
// nothing more and calls Stopped.
func (r *Recorder) Over(now time.Time) bool { return !now.Before(r.we) }

// Stopped records that a client issues no more operations.
func (r *Recorder) Stopped() {
	if r.active.Add(-1) == 0 {
		close(r.done)
	}
}

// Done is closed once every client has stopped.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Completed is the number of operations completed, OK or not, so far.
func (r *Recorder) Completed() (ok, failed uint64) { return r.ok.Load(), r.failed.Load() }

// OK records an operation of group gi issued at issued that completed OK
// at now; it counts if now falls in the window.
func (r *Recorder) OK(gi int, issued, now time.Time) {
	r.ok.Add(1)
	if now.Before(r.ws) || !now.Before(r.we) {
		return
	}
	us := max(HistLowest, now.Sub(issued).Microseconds())
	r.mu.Lock()
	_ = r.hist.RecordValue(min(us, HistHighest))
	r.inWindow++
	r.perGroup[gi]++
	r.mu.Unlock()
}

// Fail records a failed operation of the given kind.
func (r *Recorder) Fail(kind string) {
	r.failed.Add(1)
	r.mu.Lock()
	r.errors[kind]++
	r.mu.Unlock()
}

// Missing records a read that found no value.
func (r *Recorder) Missing() { r.missing.Add(1) }

// result is what was recorded, for groups named names.
func (r *Recorder) result(names []string) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	enc, err := r.hist.Encode(hdr.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode the histogram: %w", err)
	}
	res := &Result{
		Ops: r.inWindow, Seconds: r.spec.Measure.Seconds(),
		Missing: r.missing.Load(), Unfinished: r.active.Load(), Hist: enc,
		PerGroup: map[string]uint64{},
	}
	if len(r.errors) > 0 {
		res.Errors = map[string]uint64{}
		for k, v := range r.errors {
			res.Errors[k] = v
		}
	}
	for i, n := range names {
		if i < len(r.perGroup) {
			res.PerGroup[n] = r.perGroup[i]
		}
	}
	return res, nil
}

// ErrorName is the kind under which a failed operation is counted: the
// deadline, or the error's text (cut at 60 characters).
func ErrorName(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// DefaultOpTimeout is a goroutine client's deadline per operation when the
// spec names none.
const DefaultOpTimeout = 5 * time.Second

// GoroutineClients returns a Launch function that starts spec.Clients
// goroutine clients, client i on targets[i mod len]: each loops
// context.WithTimeout + one blocking call until the window is over. A
// failed operation is counted under name(err) and retried 1 ms later.
func GoroutineClients(targets []Target, name func(error) string) func(Sink) {
	if name == nil {
		name = ErrorName
	}
	return func(r Sink) {
		spec := r.Spec()
		value := r.Value()
		timeout := spec.OpTimeout
		if timeout <= 0 {
			timeout = DefaultOpTimeout
		}
		for i := 0; i < spec.Clients; i++ {
			gi := i % len(targets)
			t := targets[gi]
			rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(i)))
			go func() {
				defer r.Stopped()
				for {
					issued := time.Now()
					if r.Over(issued) {
						return
					}
					key := rng.Uint64N(uint64(spec.Keys))
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					found, err := true, error(nil)
					if spec.Op == OpRead {
						found, err = t.Read(ctx, key)
					} else {
						err = t.Propose(ctx, EncodeCommand(key, value))
					}
					cancel()
					now := time.Now()
					if err != nil {
						r.Fail(name(err))
						time.Sleep(time.Millisecond) // no hot loop on a failing node
						continue
					}
					if !found {
						r.Missing()
					}
					r.OK(gi, issued, now)
				}
			}()
		}
	}
}

// Prefill writes every key of spec once through each target, 64 writes in
// flight per target, and returns once all are applied (or one failed).
func Prefill(targets []Target, spec Spec) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	value := ValueBytes(spec.ValueSize)
	errs := make(chan error, len(targets)*64)
	var wg sync.WaitGroup
	for ti, t := range targets {
		keys := make(chan uint64, spec.Keys)
		for k := 0; k < spec.Keys; k++ {
			keys <- uint64(k)
		}
		close(keys)
		for w := 0; w < 64; w++ {
			wg.Go(func() {
				for k := range keys {
					if err := t.Propose(ctx, EncodeCommand(k, value)); err != nil {
						errs <- fmt.Errorf("prefill of key %d in group %d: %w", k, ti, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}
