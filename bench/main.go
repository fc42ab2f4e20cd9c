// Command bench runs asyncraft's standard workloads (see
// ../docs/benchmarks.md) on real clusters:
// one OS process per member on 127.0.0.1, fsync on, a fresh cluster and
// data directories for every repetition, the load generator inside the
// leader's process calling the API directly.
//
//	cd bench && go run . -workload all          # the standard workloads, 3 reps
//	go run . -workload tput,lat1 -reps 1
//	go run . -sweep payload,size,multigroup,inproc -plot ../docs/img -json out.json
//	go run . -workload tput -cpuprofile /tmp/prof
//	go run . -list
//
// The same binary, started with -member as its first argument, is a member
// process; the orchestrator drives it over stdin and stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == memberFlag {
		if err := memberMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench member:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(orchestrate())
}

// The project's targets and the peers' figures on the reference machine
// (docs/benchmarks.md), for the notes under the table.
const (
	dragonboatTput  = 38027
	dragonboatLat64 = 15762
	bestPeerRead    = 89387
)

func orchestrate() (code int) {
	var (
		workloads  = flag.String("workload", "all", "comma list of workloads or sweeps; all = tput, lat1, lat64, read64-index, read64-lease (see -list)")
		sweeps     = flag.String("sweep", "", "also run these sweeps: comma list of "+strings.Join(sweepNames, ", ")+", or all")
		reps       = flag.Int("reps", 3, "repetitions of each workload, each on a fresh cluster")
		retries    = flag.Int("retries", 2, "at most this many extra runs of a repetition disturbed by other load")
		maxOther   = flag.Float64("max-other", 0.3, "a run during which other processes used more than this many cores is disturbed")
		stall      = flag.Duration("stall", 30*time.Second, "fail a workload that completes no operation for this long")
		jsonOut    = flag.String("json", "", "write every repetition's raw results and the summaries to this file")
		plotDir    = flag.String("plot", "", "write PNG charts to this directory (adds the client sweep)")
		profileDir = flag.String("cpuprofile", "", "every member process writes a CPU profile of each measured window (and a heap profile at its end) into this directory")
		tmp        = flag.String("tmpdir", os.TempDir(), "where the data directories are created")
		leaderET   = flag.Duration("leader-et", 0, "election timeout of the member meant to lead (0: the library's default, 1s)")
		followerET = flag.Duration("follower-et", 3*time.Second, "election timeout of the other members (longer, so that n1 leads)")
		groups     = flag.Int("groups", 8, "groups per host in the multigroup sweep")
		markdown   = flag.Bool("markdown", false, "print the table in Markdown as well")
		list       = flag.Bool("list", false, "list the workloads and exit")
		replay     = flag.String("report", "", "run nothing: print the table (and -plot the charts) of a -json file")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run . [flags]\n\nRuns asyncraft's standard workloads on clusters of member processes on 127.0.0.1.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	reg := registry(*groups)
	if *list {
		for _, s := range reg {
			fmt.Printf("%-16s %-10s %s\n", s.Name, s.Sweep, s.Describe())
		}
		return 0
	}
	if *replay != "" {
		return fromReport(*replay, *plotDir, *markdown)
	}
	sw := *sweeps
	if *plotDir != "" && !strings.Contains(sw, "clients") && !strings.Contains(*workloads, "clients") {
		sw = strings.Trim(sw+",clients", ",")
	}
	specs, err := selectWorkloads(reg, *workloads, sw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if *reps < 1 || *retries < 0 {
		fmt.Fprintln(os.Stderr, "bench: -reps must be at least 1 and -retries not negative")
		return 2
	}
	binDir, err := os.MkdirTemp(*tmp, "asyncraft-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	exe, note, err := memberBinary(binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "bench:", note)
	}
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}

	// Every member process dies with us, whatever the exit path.
	defer killAll()
	defer func() {
		if v := recover(); v != nil {
			killAll()
			panic(v)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	machine := readMachine(*tmp)
	var work time.Duration
	for _, s := range specs {
		work += time.Duration(*reps) * (s.Warmup + s.Measure + setupEstimate)
	}
	fmt.Fprintf(os.Stderr, "machine: %s\n", machine)
	fmt.Fprintf(os.Stderr, "running %d workloads × %d reps (about %v without repeats):\n", len(specs), *reps, work.Round(time.Second))
	for _, s := range specs {
		fmt.Fprintf(os.Stderr, "  %-16s %s\n", s.Name, s.Describe())
	}

	u := newUI(work)
	o := &orchestrator{
		cfg:      clusterConfig{exe: exe, leaderET: *leaderET, followerET: *followerET, startTimeout: 30 * time.Second},
		tmp:      *tmp,
		reps:     *reps,
		retries:  *retries,
		maxOther: *maxOther,
		stall:    *stall,
		ui:       u,
	}
	if *profileDir != "" {
		o.profileDir = *profileDir
	}
	started := time.Now()
	results := o.runAll(ctx, specs)
	u.finish()
	killAll()

	var sums []Summary
	for _, s := range specs {
		sums = append(sums, summarizeWorkload(s, results))
	}
	rows := tableRows(sums)
	fmt.Printf("\nasyncraft, %s; median of %d repetitions (min–max); %s\n\n", started.Format("2006-01-02 15:04"), *reps, machine)
	fmt.Print(renderTable(tableHeader, rows, 1))
	if *markdown {
		fmt.Println()
		fmt.Print(renderMarkdown(tableHeader, rows, 1))
	}
	fmt.Print(notes(sums, results))

	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, machine, specs, results, sums); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			code = 1
		} else {
			fmt.Printf("\nraw results: %s\n", *jsonOut)
		}
	}
	if *plotDir != "" {
		paths, err := writePlots(*plotDir, sums)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: charts:", err)
			code = 1
		}
		for _, p := range paths {
			fmt.Printf("chart: %s\n", p)
		}
	}
	var profiles []string
	for _, r := range results {
		profiles = append(profiles, r.Profiles...)
	}
	if len(profiles) > 0 {
		fmt.Printf("\nCPU profiles of the member processes (measured window): %d files in %s, e.g.\n  go tool pprof -top %s\n",
			len(profiles), *profileDir, profiles[0])
	}

	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted; the results above are partial")
		return 130
	}
	for _, s := range sums {
		if s.Failed > 0 || s.Reps == 0 {
			return max(code, 1)
		}
	}
	return code
}

// notes are the lines under the table: who led, group commit, errors,
// repeats, and the figures against the project's targets.
func notes(sums []Summary, results []RepResult) string {
	var b strings.Builder
	b.WriteString("\ncolumns: ops/s completed in the measured window; latency from Apply/Read to its callback, all clients merged;\n")
	b.WriteString("  RSS = peak (VmHWM); cores = CPU of the member processes over the window; kernel = kernel threads + interrupts;\n")
	b.WriteString("  other = everything else on the machine (a run above -max-other is repeated); ops/CPU-s = ops/s ÷ cores\n\n")
	for _, s := range sums {
		var parts []string
		if len(s.Leaders) > 0 {
			ls := slices.Compact(slices.Sorted(slices.Values(s.Leaders)))
			parts = append(parts, "led by "+strings.Join(ls, " / "))
		}
		if s.EntriesPerWrite.N > 0 && s.EntriesPerWrite.Median > 0 {
			parts = append(parts, fmt.Sprintf("%.1f entries per leader fsync", s.EntriesPerWrite.Median))
		}
		if s.ReadsPerRound.N > 0 && s.ReadsPerRound.Median > 0 {
			parts = append(parts, fmt.Sprintf("%.1f reads per quorum round", s.ReadsPerRound.Median))
		}
		if s.P99Ms.N > 1 {
			parts = append(parts, "p99 "+fmtRange(s.P99Ms, fmtMs)+" ms")
		}
		if len(s.Errors) > 0 {
			parts = append(parts, fmt.Sprintf("failed operations %v", s.Errors))
		}
		if s.Repeated > 0 {
			parts = append(parts, fmt.Sprintf("%d runs repeated for other load", s.Repeated))
		}
		if s.Failed > 0 {
			parts = append(parts, fmt.Sprintf("%d runs FAILED", s.Failed))
		}
		if t := versusTarget(s); t != "" {
			parts = append(parts, t)
		}
		fmt.Fprintf(&b, "  %-16s %s\n", s.Workload, strings.Join(parts, "; "))
	}
	for _, r := range results {
		if r.Err != "" {
			fmt.Fprintf(&b, "\nFAILED %s rep %d attempt %d: %s\n", r.Workload, r.Rep, r.Attempt, r.Err)
		}
		if r.Missing > 0 || r.Unfinished > 0 {
			fmt.Fprintf(&b, "  note: %s rep %d: %d reads found no value, %d operations never completed\n", r.Workload, r.Rep, r.Missing, r.Unfinished)
		}
	}
	return b.String()
}

// versusTarget compares a standard workload with its target.
func versusTarget(s Summary) string {
	if s.Reps == 0 {
		return ""
	}
	ops, p50, p99 := s.OpsPerSec.Median, s.P50Ms.Median, s.P99Ms.Median
	switch s.Workload {
	case "tput":
		rss, opc := s.LeaderRSS.Median, s.OpsPerCPU.Median
		return fmt.Sprintf("target ≥ 57,000 ops/s: %.2f× dragonboat's %s, %s; leader RSS ≤ 64 MiB: %.0f, %s; ops/CPU-s ≥ 50,000: %s",
			ops/dragonboatTput, fmtInt(dragonboatTput), okMark(ops >= 57000), rss, okMark(rss <= 64), okMark(opc >= 50000))
	case "lat1":
		return fmt.Sprintf("target p50 ≤ 0.9 ms, p99 ≤ 2.5 ms: %s", okMark(p50 <= 0.9 && p99 <= 2.5))
	case "lat64":
		return fmt.Sprintf("target ≥ 24,000 ops/s, p99 ≤ 6 ms: %.2f× dragonboat's %s, %s", ops/dragonboatLat64, fmtInt(dragonboatLat64), okMark(ops >= 24000 && p99 <= 6))
	case "read64-index":
		return fmt.Sprintf("target ≥ 170,000 ops/s: %.2f× the best peer's %s, %s", ops/bestPeerRead, fmtInt(bestPeerRead), okMark(ops >= 170000))
	case "read64-lease":
		return fmt.Sprintf("target ≥ 340,000 ops/s: %.2f× the best peer's %s, %s", ops/bestPeerRead, fmtInt(bestPeerRead), okMark(ops >= 340000))
	}
	return ""
}

func okMark(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// report is the -json file.
type report struct {
	Machine   Machine     `json:"machine"`
	Args      []string    `json:"args"`
	Workloads []Spec      `json:"workloads"`
	Summaries []Summary   `json:"summaries"`
	Results   []RepResult `json:"results"`
}

func writeJSON(path string, m Machine, specs []Spec, results []RepResult, sums []Summary) error {
	b, err := json.MarshalIndent(report{Machine: m, Args: os.Args[1:], Workloads: specs, Summaries: sums, Results: results}, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return errors.Join(fmt.Errorf("write %s", path), err)
	}
	return nil
}

// fromReport prints the table of a -json file and draws its charts.
func fromReport(path, plotDir string, markdown bool) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", path, err)
		return 1
	}
	rows := tableRows(r.Summaries)
	fmt.Printf("%s (%s)\n\n", path, r.Machine)
	fmt.Print(renderTable(tableHeader, rows, 1))
	if markdown {
		fmt.Println()
		fmt.Print(renderMarkdown(tableHeader, rows, 1))
	}
	fmt.Print(notes(r.Summaries, r.Results))
	if plotDir != "" {
		paths, err := writePlots(plotDir, r.Summaries)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: charts:", err)
			return 1
		}
		for _, p := range paths {
			fmt.Printf("chart: %s\n", p)
		}
	}
	return 0
}
