package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want stat
	}{
		{nil, stat{}},
		{[]float64{math.NaN()}, stat{}},
		{[]float64{5}, stat{Median: 5, Min: 5, Max: 5, N: 1}},
		{[]float64{3, 1, 2}, stat{Median: 2, Min: 1, Max: 3, N: 3}},
		{[]float64{4, 1, 3, 2}, stat{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{[]float64{7, math.NaN(), 1, 4}, stat{Median: 4, Min: 1, Max: 7, N: 3}},
	} {
		if got := summarize(c.in); got != c.want {
			t.Errorf("summarize(%v) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestSummarizeWorkload(t *testing.T) {
	spec := Spec{Name: "tput"}
	results := []RepResult{
		{Workload: "tput", Rep: 1, Attempt: 1, Accepted: true, OpsPerSec: 100, LeaderName: "n1", Errors: map[string]uint64{"EBUSY": 2}},
		{Workload: "tput", Rep: 2, Attempt: 1, Disturbed: true, OpsPerSec: 1},
		{Workload: "tput", Rep: 2, Attempt: 2, Accepted: true, OpsPerSec: 300, LeaderName: "n1"},
		{Workload: "tput", Rep: 3, Attempt: 1, Err: "boom"},
		{Workload: "lat1", Rep: 1, Attempt: 1, Accepted: true, OpsPerSec: 5},
	}
	s := summarizeWorkload(spec, results)
	if s.Reps != 2 || s.Failed != 1 || s.Repeated != 1 || s.Disturbed != 0 {
		t.Fatalf("counts: %+v", s)
	}
	if s.OpsPerSec != (stat{Median: 200, Min: 100, Max: 300, N: 2}) {
		t.Errorf("ops/s %+v", s.OpsPerSec)
	}
	if s.Errors["EBUSY"] != 2 || len(s.Leaders) != 2 {
		t.Errorf("errors %v leaders %v", s.Errors, s.Leaders)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.6: "1,234,568", -12345: "-12,345"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0.0234: "0.023", 1.234: "1.23", 12.34: "12.3", 123.4: "123"} {
		if got := fmtMs(in); got != want {
			t.Errorf("fmtMs(%v) = %q, want %q", in, got, want)
		}
	}
	if got := fmtRange(stat{Median: 2000, Min: 1000, Max: 3000, N: 3}, fmtInt); got != "2,000 (1,000–3,000)" {
		t.Errorf("fmtRange = %q", got)
	}
	if got := fmtRange(stat{Median: 2000, Min: 2000, Max: 2000, N: 1}, fmtInt); got != "2,000" {
		t.Errorf("fmtRange of one = %q", got)
	}
	if got := fmtRange(stat{}, fmtInt); got != "–" {
		t.Errorf("fmtRange of none = %q", got)
	}
}

func TestRenderTable(t *testing.T) {
	got := renderTable([]string{"workload", "ops/s (min–max)", "p50"}, [][]string{
		{"tput", "1,000 (900–1,100)", "1.23"},
		{"read64-lease", "12", "0.020"},
	}, 1)
	// Widths: 12, 17 and 5 runes; the text column left, numbers right.
	want := "" +
		"workload        ops/s (min–max)    p50\n" +
		"------------  -----------------  -----\n" +
		"tput          1,000 (900–1,100)   1.23\n" +
		"read64-lease                 12  0.020\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	md := renderMarkdown([]string{"a", "b"}, [][]string{{"x", "1"}}, 1)
	if md != "| a | b |\n|---|--:|\n| x | 1 |\n" {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestTableRows(t *testing.T) {
	rows := tableRows([]Summary{
		{Workload: "tput", System: "asyncraft", Client: "goroutine", Reps: 3, Disturbed: 1, OpsPerSec: stat{Median: 50000, Min: 40000, Max: 60000, N: 3},
			P50Ms: stat{Median: 1, N: 3}, P99Ms: stat{Median: 5, N: 3}, P999Ms: stat{Median: 9, N: 3},
			LeaderRSS: stat{Median: 60, N: 3}, AllRSS: stat{Median: 150, N: 3}, Cores: stat{Median: 1.5, N: 3},
			OpsPerCPU: stat{Median: 33333, N: 3}},
		{Workload: "lat1", Failed: 3},
	})
	if len(rows) != 2 || len(rows[0]) != len(tableHeader) || len(rows[1]) != len(tableHeader) {
		t.Fatalf("rows %v", rows)
	}
	if rows[0][3] != "50,000 (40,000–60,000)" || rows[0][7] != "60" || rows[0][9] != "1.50" || rows[0][13] != "3 (1 disturbed)" {
		t.Errorf("row %q", rows[0])
	}
	if rows[0][1] != "asyncraft" || rows[0][2] != "goroutine" {
		t.Errorf("system and client %q", rows[0][:3])
	}
	if rows[1][3] != "–" || rows[1][13] != "0 +3 failed" {
		t.Errorf("failed row %q", rows[1])
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses.
	line := "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.UTime != 250 || s.STime != 75 || s.Flags != 4194560 || s.Flags&pfKthread != 0 {
		t.Errorf("%+v", s)
	}
	kthread := "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 3 7 0 0 20 0 1 0 2 0 0"
	if s, err := parseProcStat([]byte(kthread)); err != nil || s.Flags&pfKthread == 0 || s.UTime+s.STime != 10 {
		t.Errorf("kthread: %+v %v", s, err)
	}
	if _, err := parseProcStat([]byte("1 (x) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
	// Our own, for real.
	if _, err := readProcStat(os.Getpid()); err != nil {
		t.Skip("no /proc:", err)
	}
}

func TestParseCPUTimesAndVmHWM(t *testing.T) {
	c, err := parseCPUTimes([]byte("cpu  793399 5 129162 772320 29527 11 7437 2612 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c != (cpuTimes{User: 793399, Nice: 5, System: 129162, Idle: 772320, IOWait: 29527, IRQ: 11, SoftIRQ: 7437, Steal: 2612}) {
		t.Errorf("%+v", c)
	}
	if _, err := parseCPUTimes([]byte("intr 1 2 3")); err == nil {
		t.Error("no cpu line parsed")
	}
	status := "Name:\tbench\nVmPeak:\t  100 kB\nVmHWM:\t   43200 kB\nVmRSS:\t 40000 kB\n"
	if v, err := parseVmHWM([]byte(status)); err != nil || v != 43200<<10 {
		t.Errorf("VmHWM %d %v", v, err)
	}
	if _, err := parseVmHWM([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("VmHWM of a kernel thread")
	}
}

func TestCPUBetween(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := cpuSample{At: t0, Procs: map[int]uint64{10: 1000, 11: 500}, Kthreads: 50,
		Machine: cpuTimes{User: 10000, System: 5000, IRQ: 10, SoftIRQ: 90}}
	// Over 2 s: ours 300+100 ticks = 2 cores; kthreads 20, irq+softirq 20
	// = 0.2 cores; machine user+system +500 ticks = 2.5 cores, so others
	// 500-400-20 = 80 ticks = 0.4 cores.
	b := cpuSample{At: t0.Add(2 * time.Second), Procs: map[int]uint64{10: 1300, 11: 600, 12: 999}, Kthreads: 70,
		Machine: cpuTimes{User: 10400, System: 5100, IRQ: 15, SoftIRQ: 105, Steal: 4}}
	u := cpuBetween(a, b)
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if !near(u.Ours, 2) || !near(u.Procs[10], 1.5) || !near(u.Procs[11], 0.5) || !near(u.Kernel, 0.2) || !near(u.Other, 0.4) || !near(u.Steal, 0.02) || u.Seconds != 2 {
		t.Errorf("%+v", u)
	}
	if _, ok := u.Procs[12]; ok {
		t.Error("a pid missing from the first sample was counted")
	}
}

func TestMountOf(t *testing.T) {
	info := "" +
		"22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"30 22 0:25 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw\n" +
		"31 22 0:26 / /tmpx rw shared:6 - xfs /dev/vdb rw\n" +
		"32 22 0:27 / /mnt/my\\040disk rw shared:7 - btrfs /dev/vdc rw\n"
	for path, want := range map[string][3]string{
		"/tmp/asyncraft-1": {"/tmp", "tmpfs", "tmpfs"},
		"/tmpx/a":          {"/tmpx", "xfs", "/dev/vdb"},
		"/work/main":       {"/", "ext4", "/dev/vda"},
		"/mnt/my disk/d":   {"/mnt/my disk", "btrfs", "/dev/vdc"},
	} {
		p, fs, src := mountOf([]byte(info), path)
		if [3]string{p, fs, src} != want {
			t.Errorf("mountOf(%q) = %q %q %q, want %q", path, p, fs, src, want)
		}
	}
}

func TestSelectWorkloads(t *testing.T) {
	reg := registry(8)
	names := func(specs []Spec) string {
		var n []string
		for _, s := range specs {
			n = append(n, s.Name)
		}
		return strings.Join(n, ",")
	}
	specs, err := selectWorkloads(reg, "all", "")
	if err != nil || names(specs) != "tput,lat1,lat64,read64-index,read64-lease" {
		t.Errorf("all: %s %v", names(specs), err)
	}
	specs, err = selectWorkloads(reg, "lat1,size", "multigroup")
	if err != nil || names(specs) != "lat1,tput-n1,tput-n3,tput-n5,tput-g8" {
		t.Errorf("lat1,size + multigroup: %s %v", names(specs), err)
	}
	if _, err := selectWorkloads(reg, "nope", ""); err == nil {
		t.Error("an unknown workload was accepted")
	}
	if _, err := selectWorkloads(reg, "tput", "nope"); err == nil {
		t.Error("an unknown sweep was accepted")
	}
	for _, s := range reg {
		if s.Kind != "" {
			continue // TestSnapshotWorkloads
		}
		if s.Keys != 1024 || s.Clients < 1 || s.Members < 1 || s.Groups < 1 || s.Measure <= 0 {
			t.Errorf("bad spec %+v", s)
		}
	}
}

func TestSnapshotWorkloads(t *testing.T) {
	reg := registry(8)
	specs, err := selectWorkloads(reg, "soak,restart,restart-leader,install", "all")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range specs {
		kinds[s.Kind]++
		if s.Kind != "" && (s.Node == nil || s.Members != 3 || s.Groups != 1 || s.Sweep != snapshotFamily) {
			t.Errorf("bad spec %+v", s)
		}
	}
	if kinds[kindSoak] != 1 || kinds[kindRestart] != 2 || kinds[kindInstall] != 1 {
		t.Errorf("kinds %v", kinds)
	}
	// Never run by "all", nor by -sweep all.
	all, _ := selectWorkloads(reg, "all", "all")
	for _, s := range all {
		if s.Kind != "" {
			t.Errorf("%s selected by all", s.Name)
		}
	}
	// asyncraft only; goroutine clients in auto; the size flags apply.
	sel, _ := selectWorkloads(reg, "soak,restart,install", "")
	runs, skipped := expandRuns(sel, runOptions{systems: systemNames, client: clientAuto, measure: time.Minute,
		history: 1000, stateBytes: 1 << 20, tail: 5, sample: time.Second})
	if got := runNames(runs); got != "soak:asyncraft/goroutine restart:asyncraft/goroutine install:asyncraft/goroutine" {
		t.Errorf("runs %s", got)
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0], "asyncraft only") {
		t.Errorf("skipped %q", skipped)
	}
	if r := runs[1]; r.History != 1000 || r.StateBytes != 1<<20 || r.Tail != 5 || r.Measure != time.Minute {
		t.Errorf("restart sized %+v", r)
	}
	if r := runs[0]; r.SampleEvery != time.Second || r.StateBytes != 0 {
		t.Errorf("soak sized %+v", r)
	}
	if r := runs[2]; r.StateBytes != 1<<20 || r.History != 0 {
		t.Errorf("install sized %+v", r)
	}
	o := &orchestrator{reps: 3}
	if o.repsOf(runs[0]) != 1 || o.repsOf(runs[1]) != 3 {
		t.Error("soak runs once unless -reps says otherwise")
	}
	o.explicitReps = true
	if o.repsOf(runs[0]) != 3 {
		t.Error("-reps does not win")
	}
}

func TestLeaders(t *testing.T) {
	spec := Spec{Members: 3, Groups: 1}
	ns := func(role1 string, applied uint64, leader3 string) []nodeStatus {
		return []nodeStatus{
			{Group: "g0", ID: "n1", Role: role1, Term: 2, Leader: "n1", Applied: applied},
			{Group: "g0", ID: "n2", Role: "follower", Term: 2, Leader: "n1"},
			{Group: "g0", ID: "n3", Role: "follower", Term: 2, Leader: leader3},
		}
	}
	if ls, ok := leaders(spec, ns("leader", 1, "n1")); !ok || ls["g0"] != "n1" {
		t.Errorf("settled: %v %v", ls, ok)
	}
	if _, ok := leaders(spec, ns("leader", 0, "n1")); ok {
		t.Error("a leader that applied nothing of its term is settled")
	}
	if _, ok := leaders(spec, ns("leader", 1, "")); ok {
		t.Error("settled while n3 knows no leader")
	}
	if _, ok := leaders(spec, ns("candidate", 1, "n1")); ok {
		t.Error("settled without a leader")
	}
}

func TestPlots(t *testing.T) {
	var sums []Summary
	for i, name := range []string{"tput", "lat1", "clients-1", "clients-4"} {
		s := Summary{Workload: name, System: "asyncraft", Client: "goroutine", Reps: 3, Spec: Spec{Name: name, Clients: 1 << (2 * i)},
			OpsPerSec: stat{Median: 1000 * float64(i+1), Min: 900, Max: 1100 * float64(i+1), N: 3},
			P50Ms:     stat{Median: 1, Min: 0.9, Max: 1.2, N: 3}, P99Ms: stat{Median: 5, Min: 4, Max: 6, N: 3},
			P999Ms: stat{Median: 9, Min: 8, Max: 10, N: 3}}
		if strings.HasPrefix(name, "clients") {
			s.Spec.Sweep = "clients"
		}
		sums = append(sums, s)
	}
	dir := t.TempDir()
	paths, err := writePlots(dir, sums)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 4 {
		t.Fatalf("wrote %v", paths)
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 || filepath.Dir(p) != dir {
			t.Errorf("%s: %v", p, err)
		}
	}
}
