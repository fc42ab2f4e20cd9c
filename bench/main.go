// Command bench runs asyncraft's standard workloads (see
// ../docs/benchmarks.md) on real clusters, beside the same workloads on
// dragonboat and hashicorp/raft: one OS process per member on 127.0.0.1,
// fsync on, a fresh cluster and data directories for every repetition,
// the load generator inside the leader's process calling the library's
// API directly, in two client models (goroutines calling the blocking
// API, or callbacks).
//
//	cd bench && go run . -workload all          # the standard workloads, every system, both models, 3 reps
//	go run . -workload tput,lat1 -reps 1 -system asyncraft
//	go run . -workload tput -reps 1 -warmup 1s -measure 2s   # a smoke run
//	go run . -sweep payload,size,multigroup,inproc -plot ../docs/img -json out.json
//	go run . -workload tput -cpuprofile /tmp/prof
//	go run . -list
//
// The same binary, started with -member as its first argument, is an
// asyncraft member process; the peers' members are built from the
// bench/peers module. The orchestrator drives them over stdin and stdout
// (package internal/loadgen).
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

func orchestrate() (code int) {
	var (
		workloads  = flag.String("workload", "all", "comma list of workloads or sweeps; all = tput, lat1, lat64, read64-index, read64-lease (see -list)")
		systems    = flag.String("system", "all", "comma list of systems to measure: "+strings.Join(systemNames, ", ")+", or all (the peers run the standard workloads)")
		client     = flag.String("client", clientAuto, "client model: goroutine (goroutines calling the blocking API with a per-operation deadline), callback (asyncraft only: the next operation from the previous one's callback), both, or auto (both for the standard workloads, goroutine for the sweeps)")
		warmup     = flag.Duration("warmup", 0, "warm-up of every workload (0: each workload's own); for smoke runs, not for figures")
		measure    = flag.Duration("measure", 0, "measured window of every workload (0: each workload's own); for smoke runs, not for figures")
		opTimeout  = flag.Duration("op-timeout", 5*time.Second, "deadline of each operation of a goroutine client")
		peersDir   = flag.String("peers", "peers", "directory of the bench/peers module, whose member program runs dragonboat and hashicorp/raft")
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
		history    = flag.Uint64("history", 0, "restart workloads: entries of history (0: the workload's own, 10 M)")
		stateMiB   = flag.Int64("state", 0, "restart, install and member-add workloads: MiB of state (0: the workload's own, 100, 1024 and 1024)")
		tail       = flag.Int64("tail", -1, "restart workloads: entries written after the member's snapshot (-1: the workload's own, 100,000)")
		sample     = flag.Duration("sample", 0, "soak: sampling interval (0: the workload's own, 10s)")
		transfers  = flag.Int("transfers", 0, "transfer: number of leadership transfers (0: the workload's own, 10)")
		replay     = flag.String("report", "", "run nothing: print the table (and -plot the charts) of a -json file")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run . [flags]\n\nRuns asyncraft's standard workloads, beside dragonboat and hashicorp/raft, on clusters of member processes on 127.0.0.1.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	reg := registry(*groups)
	if *list {
		for _, s := range reg {
			fmt.Printf("%-16s %-10s %s\n", s.Name, s.Sweep, describe(s))
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
	if *reps < 1 || *retries < 0 || *warmup < 0 || *measure < 0 || *opTimeout <= 0 || *transfers < 0 {
		fmt.Fprintln(os.Stderr, "bench: -reps must be at least 1, -retries, -warmup, -measure and -transfers not negative, -op-timeout positive")
		return 2
	}
	sysList, err := parseSystems(*systems)
	if err == nil {
		_, err = parseClient(*client)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	binDir, err := os.MkdirTemp(*tmp, "asyncraft-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	exes := map[string]string{}
	var notRun []string // systems that could not be built, and why
	if slices.Contains(sysList, sysAsyncraft) {
		exe, note, err := memberBinary(binDir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if note != "" {
			fmt.Fprintln(os.Stderr, "bench:", note)
		}
		exes[sysAsyncraft] = exe
	}
	if slices.ContainsFunc(sysList, isPeer) {
		fmt.Fprintf(os.Stderr, "building the peers' member program in %s …\n", *peersDir)
		exe, err := peersBinary(*peersDir, binDir)
		var kept []string
		for _, sys := range sysList {
			switch {
			case !isPeer(sys):
				kept = append(kept, sys)
			case err != nil:
				notRun = append(notRun, sys)
			default:
				exes[sys] = exe
				kept = append(kept, sys)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s NOT measured: %v\n", strings.Join(notRun, ", "), err)
			code = 1
		}
		sysList = kept
		if len(sysList) == 0 {
			return 1
		}
	}
	runs, skipped := expandRuns(specs, runOptions{systems: sysList, client: *client, warmup: *warmup, measure: *measure, opTimeout: *opTimeout,
		history: *history, stateBytes: *stateMiB << 20, tail: *tail, sample: *sample, transfers: *transfers})
	if len(runs) == 0 {
		fmt.Fprintln(os.Stderr, "bench: nothing to run:\n  "+strings.Join(skipped, "\n  "))
		return 2
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
	explicitReps := false
	flag.Visit(func(f *flag.Flag) { explicitReps = explicitReps || f.Name == "reps" })
	o := &orchestrator{
		cfg:          clusterConfig{exes: exes, leaderET: *leaderET, followerET: *followerET, startTimeout: 30 * time.Second},
		tmp:          *tmp,
		reps:         *reps,
		retries:      *retries,
		maxOther:     *maxOther,
		stall:        *stall,
		builds:       map[string]string{},
		explicitReps: explicitReps,
	}
	defer o.cleanup()
	var work time.Duration
	for _, s := range runs {
		work += time.Duration(o.repsOf(s)) * (runLength(s) + setupEstimate)
	}
	fmt.Fprintf(os.Stderr, "machine: %s\n", machine)
	fmt.Fprintf(os.Stderr, "running %d runs (about %v without repeats):\n", len(runs), work.Round(time.Second))
	for _, s := range runs {
		fmt.Fprintf(os.Stderr, "  %-16s %-20s %s; %s\n", s.Name, runLabel(s), describe(s), plural(o.repsOf(s), "rep"))
	}
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "  not run: %s\n", s)
	}

	u := newUI(work)
	o.ui = u
	if *profileDir != "" {
		o.profileDir = *profileDir
	}
	started := time.Now()
	results := o.runAll(ctx, runs)
	u.finish()
	killAll()

	var sums []Summary
	for _, s := range runs {
		sums = append(sums, summarizeWorkload(s, results))
	}
	var repCounts []string
	for _, s := range runs {
		if n := fmt.Sprint(o.repsOf(s)); !slices.Contains(repCounts, n) {
			repCounts = append(repCounts, n)
		}
	}
	fmt.Printf("\n%s; median of %s repetitions (min–max); %s\n", started.Format("2006-01-02 15:04"), strings.Join(repCounts, " or "), machine)
	var shortened []string
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "warmup", "measure", "history", "state", "tail", "transfers":
			shortened = append(shortened, "-"+f.Name+" "+f.Value.String())
		}
	})
	if len(shortened) > 0 {
		fmt.Printf("SHORTENED RUNS (%s): a smoke test, not figures to quote\n", strings.Join(shortened, " "))
	}
	printAll(sums, results, *markdown)
	for _, sys := range notRun {
		fmt.Printf("\n%s: NOT measured (its member program could not be built; see stderr)\n", sys)
	}

	if *jsonOut != "" {
		if err := writeJSON(*jsonOut, machine, runs, results, sums); err != nil {
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

// printAll prints the table of the standard kind of workloads (if any
// ran) and the reports of the snapshot workloads.
func printAll(sums []Summary, results []RepResult, markdown bool) {
	var standard []Summary
	for _, s := range sums {
		if s.Spec.Kind == "" {
			standard = append(standard, s)
		}
	}
	if len(standard) > 0 {
		var plain []RepResult
		for _, r := range results {
			if !r.special() {
				plain = append(plain, r)
			}
		}
		printTables(standard, plain, markdown)
	}
	fmt.Print(snapReports(results))
}

// printTables prints the results table, the systems side by side (when a
// peer ran), and the notes.
func printTables(sums []Summary, results []RepResult, markdown bool) {
	var versions []string
	for _, s := range sums {
		if s.Version != "" && !slices.Contains(versions, s.Version) {
			versions = append(versions, s.Version)
		}
	}
	if len(versions) > 0 {
		fmt.Printf("libraries: %s\n", strings.Join(versions, "; "))
	}
	fmt.Println()
	rows := tableRows(sums)
	fmt.Print(renderTable(tableHeader, rows, tableLeft))
	if markdown {
		fmt.Println()
		fmt.Print(renderMarkdown(tableHeader, rows, tableLeft))
	}
	if h, cmp := compareTable(sums); len(cmp) > 0 {
		fmt.Println("\nside by side, measured in this run: ops/s median (p50 / p99 ms); the ratios compare asyncraft's goroutine clients")
		fmt.Println("with the peers', which call their library's blocking API the same way")
		fmt.Println()
		fmt.Print(renderTable(h, cmp, 1))
		if markdown {
			fmt.Println()
			fmt.Print(renderMarkdown(h, cmp, 1))
		}
	}
	fmt.Print(notes(sums, results))
}

// notes are the lines under the table: who led, group commit, errors,
// repeats, and asyncraft's figures against the project's targets.
func notes(sums []Summary, results []RepResult) string {
	var b strings.Builder
	b.WriteString("\ncolumns: ops/s completed in the measured window; latency from the call to its completion, all clients merged;\n")
	b.WriteString("  client = goroutine: each client a goroutine calling the blocking API with a per-operation deadline;\n")
	b.WriteString("  callback: the next operation issued from the previous one's callback (asyncraft only);\n")
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
		if t := versusTarget(s, sums); t != "" {
			parts = append(parts, t)
		}
		fmt.Fprintf(&b, "  %-16s %-20s %s\n", s.Workload, s.System+"/"+s.Client, strings.Join(parts, "; "))
	}
	for _, r := range results {
		if r.Err != "" {
			fmt.Fprintf(&b, "\nFAILED %s %s/%s rep %d attempt %d: %s\n", r.Workload, r.System, r.Client, r.Rep, r.Attempt, r.Err)
		}
		if r.Missing > 0 || r.Unfinished > 0 {
			fmt.Fprintf(&b, "  note: %s %s/%s rep %d: %d reads found no value, %d clients never saw their last operation complete\n",
				r.Workload, r.System, r.Client, r.Rep, r.Missing, r.Unfinished)
		}
	}
	return b.String()
}

// versusTarget compares an asyncraft row with the project's targets
// (shared/PERFORMANCE.md). A target relative to a peer is judged only
// against that peer's figure measured in the same run (sums): a number
// the harness did not measure is never shown.
func versusTarget(s Summary, sums []Summary) string {
	if s.Reps == 0 || s.System != sysAsyncraft || s.Spec.Sweep != "standard" {
		return ""
	}
	ops, p50, p99 := s.OpsPerSec.Median, s.P50Ms.Median, s.P99Ms.Median
	// relative: "≥ k× peer" against the peer's ops/s at workload w.
	relative := func(k float64, w string, peers ...string) string {
		var best Summary
		found := false
		for _, p := range peers {
			if ps, ok := find(sums, w, p, loadgenGoroutine); ok && (!found || ps.OpsPerSec.Median > best.OpsPerSec.Median) {
				best, found = ps, true
			}
		}
		who := peers[0]
		if len(peers) > 1 {
			who = "the best peer"
		}
		if !found {
			return fmt.Sprintf("target ≥ %.1f× %s at %s: not judged (%s not measured in this run)", k, who, w, who)
		}
		x := ops / best.OpsPerSec.Median
		return fmt.Sprintf("target ≥ %.1f× %s at %s: %.2f× %s's %s, %s", k, who, w, x, best.System, fmtInt(best.OpsPerSec.Median), okMark(x >= k))
	}
	switch s.Workload {
	case "tput":
		rss := s.LeaderRSS.Median
		parts := []string{relative(1.5, "tput", sysDragonboat), fmt.Sprintf("leader RSS ≤ 64 MiB: %.0f, %s", rss, okMark(rss <= 64))}
		if d, ok := find(sums, "tput", sysDragonboat, loadgenGoroutine); ok && d.OpsPerCPU.Median > 0 {
			x := s.OpsPerCPU.Median / d.OpsPerCPU.Median
			parts = append(parts, fmt.Sprintf("ops/CPU-s ≥ 2× dragonboat's: %.2f× its %s, %s", x, fmtInt(d.OpsPerCPU.Median), okMark(x >= 2)))
		}
		return strings.Join(parts, "; ")
	case "lat1":
		return fmt.Sprintf("target p50 ≤ 0.9 ms, p99 ≤ 2.5 ms: %s", okMark(p50 <= 0.9 && p99 <= 2.5))
	case "lat64":
		return relative(1.5, "lat64", sysDragonboat) + fmt.Sprintf("; p99 ≤ 6 ms: %s", okMark(p99 <= 6))
	case "read64-index":
		return relative(2, "read64-index", sysDragonboat, sysHashicorp)
	case "read64-lease":
		return relative(4, "read64-index", sysDragonboat, sysHashicorp)
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

// upgradeReport reads a -json file written before the harness knew
// systems and client models: every run then was asyncraft's callback
// clients.
func upgradeReport(r *report) {
	for i := range r.Summaries {
		if r.Summaries[i].System == "" {
			r.Summaries[i].System, r.Summaries[i].Client = sysAsyncraft, loadgenCallback
			r.Summaries[i].Spec.System, r.Summaries[i].Spec.Client = sysAsyncraft, loadgenCallback
		}
	}
	for i := range r.Results {
		if r.Results[i].System == "" {
			r.Results[i].System, r.Results[i].Client = sysAsyncraft, loadgenCallback
		}
	}
}

// fromReport prints the tables of a -json file and draws its charts.
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
	upgradeReport(&r)
	fmt.Printf("%s (%s)\n", path, r.Machine)
	printAll(r.Summaries, r.Results, markdown)
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
