package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseSystems(t *testing.T) {
	for in, want := range map[string]string{
		"all":                   "asyncraft,dragonboat,hashicorp",
		"hashicorp, asyncraft":  "asyncraft,hashicorp",
		"dragonboat,dragonboat": "dragonboat",
	} {
		got, err := parseSystems(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("parseSystems(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "etcd", "asyncraft,nope"} {
		if _, err := parseSystems(bad); err == nil {
			t.Errorf("parseSystems(%q) accepted", bad)
		}
	}
	for _, ok := range []string{"auto", "both", "goroutine", "callback"} {
		if _, err := parseClient(ok); err != nil {
			t.Errorf("parseClient(%q): %v", ok, err)
		}
	}
	if _, err := parseClient("threads"); err == nil {
		t.Error("parseClient accepted threads")
	}
}

func runNames(runs []Spec) string {
	var n []string
	for _, r := range runs {
		n = append(n, r.Name+":"+runLabel(r))
	}
	return strings.Join(n, " ")
}

func TestExpandRuns(t *testing.T) {
	reg := registry(8)
	specs, err := selectWorkloads(reg, "tput,read64-lease,tput-v16", "")
	if err != nil {
		t.Fatal(err)
	}
	runs, skipped := expandRuns(specs, runOptions{systems: systemNames, client: clientAuto, opTimeout: 3 * time.Second})
	// auto: both models for a standard workload, goroutines for a sweep;
	// the peers: goroutines, standard workloads, no lease read.
	want := "tput:asyncraft/goroutine tput:asyncraft/callback tput:dragonboat/goroutine tput:hashicorp/goroutine " +
		"read64-lease:asyncraft/goroutine read64-lease:asyncraft/callback " +
		"tput-v16:asyncraft/goroutine"
	if got := runNames(runs); got != want {
		t.Errorf("runs:\n got %s\nwant %s", got, want)
	}
	wantSkipped := "dragonboat/goroutine: it has no lease read (read64-lease)|" +
		"hashicorp/goroutine: it has no lease read (read64-lease)|" +
		"dragonboat/goroutine: the peers run the standard workloads only (tput-v16)|" +
		"hashicorp/goroutine: the peers run the standard workloads only (tput-v16)"
	if got := strings.Join(skipped, "|"); got != wantSkipped {
		t.Errorf("skipped:\n got %s\nwant %s", got, wantSkipped)
	}
	for _, r := range runs {
		if r.OpTimeout != 3*time.Second || r.Warmup == 0 || r.Measure == 0 {
			t.Errorf("%s: op timeout %v, durations %v + %v", runLabel(r), r.OpTimeout, r.Warmup, r.Measure)
		}
	}
	if runs[0].Warmup != 2*time.Second || runs[0].Measure != 10*time.Second {
		t.Errorf("tput's own durations changed: %v + %v", runs[0].Warmup, runs[0].Measure)
	}

	runs, _ = expandRuns(specs[:1], runOptions{systems: []string{sysAsyncraft}, client: "callback", warmup: time.Second, measure: 2 * time.Second})
	if runNames(runs) != "tput:asyncraft/callback" || runs[0].Warmup != time.Second || runs[0].Measure != 2*time.Second {
		t.Errorf("callback, shortened: %s %v + %v", runNames(runs), runs[0].Warmup, runs[0].Measure)
	}
	if runs, skipped := expandRuns(specs[:1], runOptions{systems: []string{sysHashicorp}, client: "callback"}); len(runs) != 0 || len(skipped) != 1 {
		t.Errorf("hashicorp with callbacks: runs %s skipped %q", runNames(runs), skipped)
	}
}

// sum is a summary with the figures the tables use.
func sum(workload, system, client string, ops, p50, p99, opc float64) Summary {
	one := func(x float64) stat { return stat{Median: x, Min: x, Max: x, N: 1} }
	return Summary{Workload: workload, System: system, Client: client, Reps: 1,
		Spec:      Spec{Name: workload, System: system, Client: client, Sweep: "standard"},
		OpsPerSec: one(ops), P50Ms: one(p50), P99Ms: one(p99), OpsPerCPU: one(opc), LeaderRSS: one(40)}
}

func TestCompareTable(t *testing.T) {
	sums := []Summary{
		sum("tput", "asyncraft", "goroutine", 42000, 5, 7.3, 30000),
		sum("tput", "asyncraft", "callback", 130000, 1.5, 6.8, 90000),
		sum("tput", "dragonboat", "goroutine", 46000, 5, 10.3, 30000),
		sum("tput", "hashicorp", "goroutine", 18000, 12, 40, 20000),
		sum("lat1", "asyncraft", "goroutine", 1000, 1.02, 7.3, 700),
		sum("lat1", "hashicorp", "goroutine", 1300, 0.73, 3.9, 900),
		{Workload: "lat1", System: "dragonboat", Client: "goroutine", Failed: 3}, // no figure
		sum("read64-lease", "asyncraft", "goroutine", 900000, 0.1, 1, 1),         // no peer ran it
	}
	h, rows := compareTable(sums)
	wantHeader := "workload|asyncraft/goroutine|asyncraft/callback|dragonboat/goroutine|hashicorp/goroutine|asyncraft ÷ dragonboat|asyncraft ÷ hashicorp"
	if strings.Join(h, "|") != wantHeader {
		t.Errorf("header %q", h)
	}
	if len(rows) != 2 {
		t.Fatalf("rows %q", rows)
	}
	if got := strings.Join(rows[0], "|"); got != "tput|42,000 (5.00 / 7.30)|130,000 (1.50 / 6.80)|46,000 (5.00 / 10.3)|18,000 (12.0 / 40.0)|0.91×|2.33×" {
		t.Errorf("tput row %s", got)
	}
	if got := strings.Join(rows[1], "|"); got != "lat1|1,000 (1.02 / 7.30)|–|–|1,300 (0.730 / 3.90)|–|0.77×" {
		t.Errorf("lat1 row %s", got)
	}
	if h, rows := compareTable(sums[:2]); h != nil || rows != nil {
		t.Errorf("no peer, yet a table: %q %q", h, rows)
	}
}

func TestVersusTargetUsesMeasuredPeers(t *testing.T) {
	a := sum("tput", "asyncraft", "goroutine", 60000, 1, 5, 70000)
	d := sum("tput", "dragonboat", "goroutine", 40000, 2, 9, 30000)
	got := versusTarget(a, []Summary{a, d})
	for _, want := range []string{"1.50× dragonboat's 40,000, met", "ops/CPU-s ≥ 2× dragonboat's: 2.33× its 30,000, met"} {
		if !strings.Contains(got, want) {
			t.Errorf("with dragonboat measured: %q lacks %q", got, want)
		}
	}
	got = versusTarget(a, []Summary{a})
	if !strings.Contains(got, "not judged (dragonboat not measured in this run)") || strings.Contains(got, "dragonboat's") {
		t.Errorf("without dragonboat: %q", got)
	}
	// Reads: the best peer at read64-index, for both read workloads.
	l := sum("read64-lease", "asyncraft", "goroutine", 400000, 0.1, 1, 1)
	h := sum("read64-index", "hashicorp", "goroutine", 100000, 0.3, 4, 1)
	d = sum("read64-index", "dragonboat", "goroutine", 30000, 1, 6, 1)
	if got := versusTarget(l, []Summary{l, h, d}); !strings.Contains(got, "4.00× hashicorp's 100,000, met") {
		t.Errorf("lease: %q", got)
	}
	if got := versusTarget(d, []Summary{l, h, d}); got != "" {
		t.Errorf("a peer's row has a target: %q", got)
	}
}

func TestSummarizeBySystemAndClient(t *testing.T) {
	results := []RepResult{
		{Workload: "tput", System: "asyncraft", Client: "goroutine", Rep: 1, Accepted: true, OpsPerSec: 10, Version: "asyncraft (this tree)"},
		{Workload: "tput", System: "asyncraft", Client: "callback", Rep: 1, Accepted: true, OpsPerSec: 20},
		{Workload: "tput", System: "dragonboat", Client: "goroutine", Rep: 1, Accepted: true, OpsPerSec: 30, Version: "dragonboat v4"},
	}
	for _, c := range []struct {
		system, client string
		ops            float64
	}{{"asyncraft", "goroutine", 10}, {"asyncraft", "callback", 20}, {"dragonboat", "goroutine", 30}} {
		s := summarizeWorkload(Spec{Name: "tput", System: c.system, Client: c.client}, results)
		if s.Reps != 1 || s.OpsPerSec.Median != c.ops || s.System != c.system || s.Client != c.client {
			t.Errorf("%s/%s: %+v", c.system, c.client, s)
		}
	}
	if s := summarizeWorkload(Spec{Name: "tput", System: "dragonboat", Client: "goroutine"}, results); s.Version != "dragonboat v4" {
		t.Errorf("version %q", s.Version)
	}
}

func TestUpgradeReport(t *testing.T) {
	r := report{Summaries: []Summary{{Workload: "tput"}}, Results: []RepResult{{Workload: "tput"}}}
	upgradeReport(&r)
	if r.Summaries[0].System != "asyncraft" || r.Summaries[0].Client != "callback" || r.Results[0].Client != "callback" {
		t.Errorf("%+v %+v", r.Summaries[0], r.Results[0])
	}
}
