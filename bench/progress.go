package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// setupEstimate is what the bar counts for starting and stopping a
// cluster (a leader is elected after 1–2 s).
const setupEstimate = 3 * time.Second

// ui shows a progress bar on the terminal (none when stdout is not one)
// and log lines on stderr above it.
type ui struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar // nil: no terminal
	start time.Time
	base  int64 // bar units (ms) of the runs finished
	unit  int64 // bar units of the current run
}

func newUI(totalWork time.Duration) *ui {
	u := &ui{start: time.Now()}
	if term.IsTerminal(int(os.Stdout.Fd())) {
		u.bar = progressbar.NewOptions64(totalWork.Milliseconds(),
			progressbar.OptionSetWriter(os.Stdout),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return u
}

// logf prints a line to stderr, above the bar.
func (u *ui) logf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		_ = u.bar.Clear()
	}
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(u.start).Seconds(), fmt.Sprintf(format, args...))
	if u.bar != nil {
		_ = u.bar.RenderBlank()
	}
}

// beginRun starts a run of warm-up + measured time; extra says that it was
// not in the plan (a repeated run), so the bar grows.
func (u *ui) beginRun(desc string, work time.Duration, extra bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.unit = (work + setupEstimate).Milliseconds()
	if u.bar == nil {
		return
	}
	if extra {
		u.bar.ChangeMax64(u.bar.GetMax64() + u.unit)
	}
	u.bar.Describe(desc)
	_ = u.bar.Set64(u.base)
}

// progress reports the run's elapsed load time and current rate.
func (u *ui) progress(desc string, elapsed time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar == nil {
		return
	}
	done := min(elapsed.Milliseconds()+setupEstimate.Milliseconds()/2, u.unit)
	u.bar.Describe(desc)
	_ = u.bar.Set64(u.base + max(0, done))
}

func (u *ui) endRun() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.base += u.unit
	if u.bar != nil {
		_ = u.bar.Set64(u.base)
	}
}

// finish removes the bar.
func (u *ui) finish() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.bar != nil {
		_ = u.bar.Finish()
		_ = u.bar.Clear()
		u.bar = nil
	}
}
