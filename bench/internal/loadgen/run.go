package loadgen

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

// RunConfig is one run of a workload in a member process that leads the
// groups it drives.
type RunConfig struct {
	Spec Spec
	// Groups: the names of the driven groups; client i drives group
	// i mod len(Groups).
	Groups []string
	// Start: when the warm-up begins (the measured window follows it).
	Start time.Time
	// Stall: how long to wait for operations in flight after the window
	// while none completes.
	Stall time.Duration
	// Profile: where to write a CPU profile of the window ("" none), and
	// a heap profile beside it at the window's end.
	Profile string
	// Gone is closed when the orchestrator is gone.
	Gone <-chan struct{}
	// Progress is called every 250 ms with the completions so far.
	Progress func(ok, failed uint64)
	// Launch starts Spec.Clients clients reporting to the recorder (see
	// GoroutineClients); it is called at Start.
	Launch func(Sink)
	// WindowStart and WindowEnd, if set, are called at the window's
	// edges (to read the library's counters); WindowEnd happens before
	// Run returns.
	WindowStart, WindowEnd func()
}

// Run runs cfg: a warm-up from Start, the measured window, then a wait
// for the operations still in flight (at most Stall without progress).
func Run(cfg RunConfig) (*Result, error) {
	spec := cfg.Spec
	if spec.Clients < 1 || len(cfg.Groups) == 0 {
		return nil, errors.New("no clients or no groups to drive")
	}
	ws := cfg.Start.Add(spec.Warmup)
	rec := NewRecorder(spec, len(cfg.Groups), spec.Clients, ws)

	stopProgress := make(chan struct{})
	defer close(stopProgress)
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					cfg.Progress(rec.Completed())
				case <-stopProgress:
					return
				}
			}
		}()
	}

	// The measured window: the counters, and the profile if asked for.
	var profErr error
	var prof *os.File
	windowDone := make(chan struct{})
	time.AfterFunc(time.Until(ws), func() {
		if cfg.WindowStart != nil {
			cfg.WindowStart()
		}
		if cfg.Profile != "" {
			if prof, profErr = os.Create(cfg.Profile); profErr == nil {
				if profErr = pprof.StartCPUProfile(prof); profErr != nil {
					prof.Close()
					prof = nil
				}
			}
		}
		time.AfterFunc(time.Until(ws.Add(spec.Measure)), func() {
			if cfg.WindowEnd != nil {
				cfg.WindowEnd()
			}
			if prof != nil {
				pprof.StopCPUProfile()
				if err := prof.Close(); err != nil && profErr == nil {
					profErr = err
				}
				if err := writeHeapProfile(heapPath(cfg.Profile)); err != nil && profErr == nil {
					profErr = err
				}
			}
			close(windowDone)
		})
	})

	time.Sleep(time.Until(cfg.Start))
	cfg.Launch(rec)

	stall := cfg.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	select {
	case <-windowDone:
	case <-cfg.Gone:
		return nil, errors.New("the orchestrator is gone")
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	total := func() uint64 { ok, failed := rec.Completed(); return ok + failed }
	last, lastAt := total(), time.Now()
wait:
	for {
		select {
		case <-rec.Done():
			break wait
		case <-cfg.Gone:
			return nil, errors.New("the orchestrator is gone")
		case <-t.C:
			if n := total(); n != last {
				last, lastAt = n, time.Now()
			} else if time.Since(lastAt) > stall {
				break wait
			}
		}
	}
	if profErr != nil {
		return nil, fmt.Errorf("CPU profile: %w", profErr)
	}
	return rec.result(cfg.Groups)
}

func heapPath(cpuProfile string) string {
	return strings.TrimSuffix(cpuProfile, ".pprof") + ".heap.pprof"
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

// profileWindow writes a CPU profile of the measured window of cmd's run
// (driven by another process) and a heap profile at its end.
func profileWindow(cmd Command) {
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
	_ = writeHeapProfile(heapPath(cmd.Profile))
}
