package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// RepResult is one run of one workload on a fresh cluster: the raw figures
// written by -json.
type RepResult struct {
	Workload string `json:"workload"`
	// System: the library; Client: the client model; Version: the
	// library's version as its member reported it.
	System  string    `json:"system,omitempty"`
	Client  string    `json:"client,omitempty"`
	Version string    `json:"version,omitempty"`
	Rep     int       `json:"rep"`     // 1-based repetition
	Attempt int       `json:"attempt"` // 1-based; > 1 when repeated for other load
	Started time.Time `json:"started"`
	// Accepted: the attempt the summary uses for this repetition.
	// Disturbed: other load above -max-other.
	Accepted  bool   `json:"accepted"`
	Disturbed bool   `json:"disturbed"`
	Err       string `json:"error,omitempty"`

	// Leaders: each group's leader; LeaderName: the process(es) that ran
	// the load. StartSeconds: from starting the processes to every node
	// started (hosts up, logs opened and created); SetupSeconds: to
	// settled leaders (the election timeout dominates).
	Leaders      map[string]string `json:"leaders,omitempty"`
	LeaderName   string            `json:"leader_process,omitempty"`
	StartSeconds float64           `json:"start_seconds"`
	SetupSeconds float64           `json:"setup_seconds"`

	Ops       uint64  `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	MaxMs     float64 `json:"max_ms"`
	MeanMs    float64 `json:"mean_ms"`

	// Peak RSS (VmHWM): of the process that ran the load (the largest, if
	// several did), and the sum over all member processes.
	LeaderRSSMiB float64 `json:"leader_rss_mib"`
	AllRSSMiB    float64 `json:"all_rss_mib"`
	// CPU over the measured window, in cores: the member processes, the
	// ones that ran load, the orchestrator, the kernel (threads and
	// interrupts), everything else, and hypervisor steal.
	Cores             float64 `json:"cores"`
	LeaderCores       float64 `json:"leader_cores"`
	OrchestratorCores float64 `json:"orchestrator_cores"`
	KernelCores       float64 `json:"kernel_cores"`
	OtherCores        float64 `json:"other_cores"`
	StealCores        float64 `json:"steal_cores"`
	OpsPerCPUSec      float64 `json:"ops_per_cpu_sec"`

	Members []memberFigures `json:"members"`

	Errors          map[string]uint64 `json:"errors,omitempty"`
	Missing         uint64            `json:"missing_reads,omitempty"`
	Unfinished      int64             `json:"unfinished,omitempty"`
	LogWrites       uint64            `json:"leader_log_writes"`
	LogEntries      uint64            `json:"leader_log_entries"`
	EntriesPerWrite float64           `json:"entries_per_write"`
	Reads           uint64            `json:"reads,omitempty"`
	ReadRounds      uint64            `json:"read_rounds,omitempty"`
	ReadsPerRound   float64           `json:"reads_per_round,omitempty"`
	Profiles        []string          `json:"cpu_profiles,omitempty"`
	// Hist: latencies of the window (µs), HdrHistogram V2 compressed.
	Hist []byte `json:"hist,omitempty"`

	// The snapshot workloads' own figures (snapruns.go).
	Soak    *SoakReport    `json:"soak,omitempty"`
	Restart *RestartReport `json:"restart,omitempty"`
	Install *InstallReport `json:"install,omitempty"`
	// The membership workloads' (membership.go).
	MemberAdd *MemberAddReport `json:"member_add,omitempty"`
	Transfer  *TransferReport  `json:"transfer,omitempty"`
}

// special reports whether r is a repetition of a workload with a report
// of its own (the snapshot and membership workloads).
func (r RepResult) special() bool {
	return r.Soak != nil || r.Restart != nil || r.Install != nil || r.MemberAdd != nil || r.Transfer != nil
}

type memberFigures struct {
	Name    string  `json:"name"`
	PID     int     `json:"pid"`
	RSSMiB  float64 `json:"rss_mib"`
	Cores   float64 `json:"cores"`
	Drove   bool    `json:"ran_load"`
	Members string  `json:"ids"`
}

// orchestrator runs workloads on fresh clusters of member processes.
type orchestrator struct {
	cfg        clusterConfig
	tmp        string
	reps       int
	retries    int
	maxOther   float64
	stall      time.Duration
	profileDir string
	ui         *ui
	// builds: the data directories of the restart workloads' histories,
	// by restartKey, kept for the next repetition (removed by cleanup).
	builds map[string]string
	// explicitReps: -reps was given (it then wins over Spec.Reps).
	explicitReps bool
}

// cleanup removes the kept histories.
func (o *orchestrator) cleanup() {
	for _, dir := range o.builds {
		os.RemoveAll(dir)
	}
}

// repsOf is the number of repetitions of spec.
func (o *orchestrator) repsOf(spec Spec) int {
	if spec.Reps > 0 && !o.explicitReps {
		return spec.Reps
	}
	return o.reps
}

// runAll runs every repetition of every workload, repetition by
// repetition (so that slow drift on the machine spreads over the
// workloads), and returns every attempt.
func (o *orchestrator) runAll(ctx context.Context, specs []Spec) []RepResult {
	var all []RepResult
	most := 0
	for _, spec := range specs {
		most = max(most, o.repsOf(spec))
	}
	for rep := 1; rep <= most; rep++ {
		for _, spec := range specs {
			if ctx.Err() != nil {
				return all
			}
			if rep > o.repsOf(spec) {
				continue
			}
			all = append(all, o.repetition(ctx, spec, rep)...)
		}
	}
	return all
}

// repetition runs one repetition of spec: again while other load disturbs
// it, at most -retries more times; the least disturbed attempt counts.
func (o *orchestrator) repetition(ctx context.Context, spec Spec, rep int) []RepResult {
	var out []RepResult
	best := -1
	if spec.Kind != "" {
		desc := fmt.Sprintf("%s %s rep %d/%d", spec.Name, runLabel(spec), rep, o.repsOf(spec))
		o.ui.beginRun(desc, runLength(spec), false)
		r := o.special(ctx, spec, rep, desc)
		o.ui.endRun()
		if r.Err != "" {
			o.ui.logf("%s FAILED: %s", desc, r.Err)
		} else {
			o.ui.logf("%s: %s", desc, oneLine(r))
		}
		return []RepResult{r}
	}
	for attempt := 1; attempt <= 1+o.retries; attempt++ {
		desc := fmt.Sprintf("%s %s rep %d/%d", spec.Name, runLabel(spec), rep, o.repsOf(spec))
		if attempt > 1 {
			desc += fmt.Sprintf(" (again, %d)", attempt)
		}
		o.ui.beginRun(desc, spec.Warmup+spec.Measure, attempt > 1)
		r := o.attempt(ctx, spec, rep, attempt, desc)
		o.ui.endRun()
		out = append(out, r)
		if r.Err != "" {
			o.ui.logf("%s FAILED: %s", desc, r.Err)
			if best >= 0 { // an earlier, disturbed attempt stands
				out[best].Accepted = true
			}
			return out
		}
		o.ui.logf("%s: %s ops/s, p50 %s p99 %s ms; led by %s; cores %.2f, kernel %.2f, other %.2f",
			desc, fmtInt(r.OpsPerSec), fmtMs(r.P50Ms), fmtMs(r.P99Ms), r.LeaderName, r.Cores, r.KernelCores, r.OtherCores)
		if best < 0 || r.OtherCores < out[best].OtherCores {
			best = len(out) - 1
		}
		if !r.Disturbed {
			break
		}
		if attempt <= o.retries {
			o.ui.logf("%s was disturbed: other load %.2f cores > %.2f; repeating it", desc, r.OtherCores, o.maxOther)
		} else {
			o.ui.logf("%s was disturbed (other load %.2f cores) after %d attempts; keeping the least disturbed one", desc, r.OtherCores, attempt)
		}
	}
	out[best].Accepted = true
	return out
}

// attempt runs spec once on a fresh cluster in a fresh directory.
func (o *orchestrator) attempt(ctx context.Context, spec Spec, rep, attempt int, desc string) RepResult {
	r := RepResult{Workload: spec.Name, System: spec.System, Client: spec.Client, Rep: rep, Attempt: attempt, Started: time.Now()}
	dir, err := os.MkdirTemp(o.tmp, "asyncraft-bench-")
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer os.RemoveAll(dir)
	c, err := startCluster(ctx, spec, dir, o.cfg)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	r.StartSeconds = time.Since(r.Started).Seconds()
	r.Version = c.procs[0].version
	if err := o.measure(ctx, c, spec, &r, desc); err != nil {
		c.kill()
		r.Err = err.Error()
		return r
	}
	c.stop()
	return r
}

// measure runs the workload on a started cluster and fills in r.
func (o *orchestrator) measure(ctx context.Context, c *cluster, spec Spec, r *RepResult, desc string) error {
	leaders, err := c.waitLeaders(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	r.SetupSeconds = time.Since(r.Started).Seconds()
	r.Leaders = leaders
	drive, order := c.drivers(leaders)
	r.LeaderName = c.procNames(order)

	if spec.Prefill() {
		for _, p := range order {
			if err := p.send(command{Op: "prefill", Spec: &spec, Drive: drive[p]}); err != nil {
				return err
			}
		}
		for _, p := range order {
			if _, err := c.await(ctx, p, "prefilled", o.stall+5*time.Second); err != nil {
				return fmt.Errorf("writing every key once: %w", err)
			}
		}
	}

	start := time.Now().Add(300 * time.Millisecond)
	ws := start.Add(spec.Warmup)
	we := ws.Add(spec.Measure)
	for _, p := range order {
		cmd := command{Op: "run", Spec: &spec, Drive: drive[p], Start: start.UnixNano(), Stall: o.stall}
		if o.profileDir != "" {
			cmd.Profile, err = filepath.Abs(filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%s-rep%d-a%d-%s.pprof", spec.Name, spec.System, spec.Client, r.Rep, r.Attempt, p.name)))
			if err != nil {
				return err
			}
			r.Profiles = append(r.Profiles, cmd.Profile)
		}
		if err := p.send(cmd); err != nil {
			return err
		}
	}

	if o.profileDir != "" {
		// The other members profile the same window.
		for _, p := range c.procs {
			if slices.Contains(order, p) {
				continue
			}
			path, err := filepath.Abs(filepath.Join(o.profileDir, fmt.Sprintf("%s-%s-%s-rep%d-a%d-%s.pprof", spec.Name, spec.System, spec.Client, r.Rep, r.Attempt, p.name)))
			if err != nil {
				return err
			}
			if err := p.send(command{Op: "profile", Spec: &spec, Start: start.UnixNano(), Profile: path}); err != nil {
				return err
			}
			r.Profiles = append(r.Profiles, path)
		}
	}

	pids := append(c.pids(), os.Getpid())
	sampleA := time.NewTimer(time.Until(ws))
	defer sampleA.Stop()
	sampleB := time.NewTimer(time.Until(we))
	defer sampleB.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	var sA, sB *cpuSample
	results := map[*proc]*memberResult{}
	progress := map[*proc]uint64{}
	var total, rateFrom uint64
	lastChange, rateAt := time.Now(), time.Now()
	rate := 0.0
	handle := func(t tagged) error {
		switch t.ev.Ev {
		case "progress":
			progress[t.p] = t.ev.Ops
			var sum uint64
			for _, v := range progress {
				sum += v
			}
			if sum != total {
				total, lastChange = sum, time.Now()
			}
			if d := time.Since(rateAt); d >= time.Second {
				rate = float64(total-rateFrom) / d.Seconds()
				rateFrom, rateAt = total, time.Now()
			}
			o.ui.progress(fmt.Sprintf("%s · %s ops/s", desc, fmtInt(rate)), time.Since(start))
		case "result":
			results[t.p] = t.ev.Result
		case "error", "exit":
			return c.failure(t, "running "+spec.Name)
		}
		return nil
	}
	for _, t := range c.pending {
		if err := handle(t); err != nil {
			return err
		}
	}
	c.pending = nil
	for len(results) < len(order) || sB == nil {
		select {
		case t := <-c.events:
			if err := handle(t); err != nil {
				return err
			}
		case <-sampleA.C:
			s, err := takeCPUSample(pids)
			if err != nil {
				return fmt.Errorf("sampling /proc: %w", err)
			}
			sA = &s
		case <-sampleB.C:
			s, err := takeCPUSample(pids)
			if err != nil {
				return fmt.Errorf("sampling /proc: %w", err)
			}
			sB = &s
		case <-tick.C:
			// Stalled: nothing completed for -stall, before the window
			// ended or long after (the members wait -stall themselves for
			// operations in flight at the end).
			quiet := time.Since(lastChange)
			if quiet > o.stall && (time.Now().Before(we) || time.Since(we) > o.stall+10*time.Second) {
				return fmt.Errorf("%s made no progress: no operation completed for %v (%s completed before; leaders %v)%s",
					spec.Name, quiet.Round(time.Second), fmtInt(float64(total)), leaders, c.tails(order))
			}
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	if sA == nil {
		return errors.New("the window's start was not sampled")
	}

	// Peak RSS, while the processes are still there.
	driving := map[*proc]bool{}
	for _, p := range order {
		driving[p] = true
	}
	use := cpuBetween(*sA, *sB)
	for _, p := range c.procs {
		rss, err := peakRSS(p.pid)
		if err != nil {
			return fmt.Errorf("peak RSS of %s: %w", p.name, err)
		}
		mib := float64(rss) / (1 << 20)
		f := memberFigures{Name: p.name, PID: p.pid, RSSMiB: mib, Cores: use.Procs[p.pid], Drove: driving[p], Members: strings.Join(p.ids, ",")}
		r.Members = append(r.Members, f)
		r.AllRSSMiB += mib
		r.Cores += f.Cores
		if f.Drove {
			r.LeaderRSSMiB = max(r.LeaderRSSMiB, mib)
			r.LeaderCores += f.Cores
		}
	}
	r.OrchestratorCores = use.Procs[os.Getpid()]
	r.KernelCores, r.OtherCores, r.StealCores = use.Kernel, use.Other, use.Steal
	r.Disturbed = r.OtherCores > o.maxOther

	// Operations and latency, over every process that ran load.
	h := loadgen.NewHist()
	r.Errors = map[string]uint64{}
	for _, p := range order {
		m := results[p]
		r.Ops += m.Ops
		r.Missing += m.Missing
		r.Unfinished += m.Unfinished
		r.LogWrites += m.LogWrites
		r.LogEntries += m.LogEntries
		r.Reads += m.Reads
		r.ReadRounds += m.ReadRounds
		for k, v := range m.Errors {
			r.Errors[k] += v
		}
		mh, err := hdr.Decode(m.Hist)
		if err != nil {
			return fmt.Errorf("latency histogram of %s: %w", p.name, err)
		}
		h.Merge(mh)
	}
	r.Seconds = spec.Measure.Seconds()
	r.OpsPerSec = float64(r.Ops) / r.Seconds
	r.P50Ms = float64(h.ValueAtQuantile(50)) / 1000
	r.P99Ms = float64(h.ValueAtQuantile(99)) / 1000
	r.P999Ms = float64(h.ValueAtQuantile(99.9)) / 1000
	r.MaxMs = float64(h.Max()) / 1000
	r.MeanMs = h.Mean() / 1000
	r.OpsPerCPUSec = ratio(r.OpsPerSec, r.Cores)
	r.EntriesPerWrite = ratio(float64(r.LogEntries), float64(r.LogWrites))
	r.ReadsPerRound = ratio(float64(r.Reads), float64(r.ReadRounds))
	if r.Hist, err = h.Encode(hdr.V2CompressedEncodingCookieBase); err != nil {
		return err
	}
	if r.Ops == 0 {
		return fmt.Errorf("no operation completed in the measured window (errors: %v)", r.Errors)
	}
	return nil
}

// tails is the end of the stderr of ps, for a stall message.
func (c *cluster) tails(ps []*proc) string {
	var b strings.Builder
	for _, p := range slices.Clone(ps) {
		if t := p.logTail(10); t != "" {
			fmt.Fprintf(&b, "\n  member %s stderr:\n    %s", p.name, strings.ReplaceAll(t, "\n", "\n    "))
		}
	}
	return b.String()
}
