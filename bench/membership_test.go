package main

import (
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

func TestLongestGap(t *testing.T) {
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= 1e6
		}
		return v
	}
	ok := ms(1, 2, 3, 10, 11, 12, 30, 31)
	for _, c := range []struct {
		name     string
		from, to int64 // ms
		want     gap   // ms
	}{
		{"the gap inside the window", 4, 11, gap{3, 10, true}},
		{"a gap that began before the window counts", 5, 6, gap{3, 10, true}},
		{"a gap that ends after the window counts", 11, 13, gap{12, 30, true}},
		{"the longest of two", 2, 30, gap{12, 30, true}},
		{"steady: successive writes", 1, 3, gap{1, 2, true}},
		{"nothing before the window: from its start", 0, 2, gap{0, 1, true}},
		{"no write after the window's start: not resumed", 40, 50, gap{31, 50, false}},
		{"the timeline ends inside the window: not resumed", 30, 45, gap{31, 45, false}},
	} {
		g := longestGap(ok, c.from*1e6, c.to*1e6)
		want := gap{c.want.From * 1e6, c.want.To * 1e6, c.want.Resumed}
		if g != want {
			t.Errorf("%s: [%d, %d] ms: got %v, want %v", c.name, c.from, c.to, g, want)
		}
	}
	if g := longestGap(nil, 5, 9); g != (gap{5, 9, false}) {
		t.Errorf("no writes at all: %v", g)
	}
}

func TestTransferGap(t *testing.T) {
	ms := func(v ...int64) []int64 {
		for i := range v {
			v[i] *= 1e6
		}
		return v
	}
	// Writes every ms; the transfer from 10 to 14 ms; writes stop at 10
	// and resume at 17 (the new leader); a pause of steady state (30 to
	// 42) follows.
	ok := ms(7, 8, 9, 10, 17, 18, 19, 30, 42, 43)
	if g := transferGap(ok, 10e6, 14e6); g != (gap{10e6, 17e6, true}) {
		t.Errorf("the transfer's gap: %v", g)
	}
	// The new leader wrote before the old one learned it led (the call
	// returned at 18): the window ends at the first write after the call.
	if g := transferGap(ok, 10e6, 18e6); g != (gap{10e6, 17e6, true}) {
		t.Errorf("resumed before the call returned: %v", g)
	}
	// No write since the call returned: not resumed.
	if g := transferGap(ok, 43e6, 45e6); g != (gap{43e6, 45e6, false}) {
		t.Errorf("not resumed: %v", g)
	}
}

func TestRefusalsIn(t *testing.T) {
	refused := []loadgen.Refusal{{At: 5, Kind: "EBUSY"}, {At: 10, Kind: "EBUSY"}, {At: 12, Kind: "EPERM"}, {At: 40, Kind: "EBUSY"}}
	kinds, span := refusalsIn(refused, 6, 30)
	if kinds["EBUSY"] != 1 || kinds["EPERM"] != 1 || len(kinds) != 2 || span != 2 {
		t.Errorf("[6, 30]: %v over %d", kinds, span)
	}
	kinds, span = refusalsIn(refused, 5, 40)
	if kinds["EBUSY"] != 3 || span != 35 {
		t.Errorf("[5, 40] (bounds included): %v over %d", kinds, span)
	}
	if kinds, span := refusalsIn(refused, 13, 39); kinds != nil || span != 0 {
		t.Errorf("none: %v over %d", kinds, span)
	}
	if got := refusedKinds(map[string]int{"EPERM": 1, "EBUSY": 12}); got != "EBUSY 12, EPERM 1" {
		t.Errorf("refusedKinds %q", got)
	}
	if got := refusedKinds(nil); got != "0" {
		t.Errorf("refusedKinds of none %q", got)
	}
}

func TestNextMember(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	leader, seen := "n1", []string{}
	for range 4 {
		leader = nextMember(names, leader)
		seen = append(seen, leader)
	}
	if strings.Join(seen, ",") != "n2,n3,n1,n2" {
		t.Errorf("targets %v", seen)
	}
}

func TestElectionTimeout(t *testing.T) {
	o := &orchestrator{cfg: clusterConfig{followerET: 3 * time.Second}}
	if o.electionTimeout("n1") != time.Second || o.electionTimeout("n2") != 3*time.Second {
		t.Errorf("n1 %v, n2 %v", o.electionTimeout("n1"), o.electionTimeout("n2"))
	}
}

func TestLatencyAcross(t *testing.T) {
	cut := func(ops uint64, secs float64, us ...int64) *memberResult {
		h := loadgen.NewHist()
		for _, v := range us {
			_ = h.RecordValue(v)
		}
		b, err := h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		return &memberResult{Ops: ops, Seconds: secs, Hist: b, Errors: map[string]uint64{"EBUSY": 1}}
	}
	// Two windows of three processes: each window lasts as long as its
	// longest cut, the windows add up.
	l, err := latencyAcross(
		[]*memberResult{cut(2, 1.0, 1000, 1000), cut(0, 1.01), cut(0, 0.99)},
		[]*memberResult{cut(1, 2.0, 9000), cut(1, 2.02, 1000), cut(0, 2.0)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if l.Ops != 4 || l.Seconds < 3.02 || l.Seconds > 3.04 || l.Errors != 6 || l.MaxMs < 8.9 || l.P50Ms > 1.1 {
		t.Errorf("%+v", l)
	}
}

func TestMembershipWorkloads(t *testing.T) {
	reg := registry(8)
	specs, err := selectWorkloads(reg, "member-add,transfer", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 2 || specs[0].Kind != kindMemberAdd || specs[1].Kind != kindTransfer {
		t.Fatalf("selected %+v", specs)
	}
	add, tr := specs[0], specs[1]
	if add.StateBytes != 1<<30 || add.Node == nil || add.Node.CatchUpTimeout != 0 || add.Members != 3 || add.Clients != 1 {
		t.Errorf("member-add %+v", add)
	}
	if tr.Transfers != 10 || tr.TransferEvery <= transferAround || !tr.Follow || !tr.Timeline || tr.Members != 3 || tr.Clients != 1 {
		t.Errorf("transfer %+v", tr)
	}
	for _, s := range specs {
		if describe(s) == "" || s.Sweep != membershipFamily {
			t.Errorf("%s: %q, sweep %q", s.Name, describe(s), s.Sweep)
		}
	}
	// asyncraft only, goroutine clients; the size flags apply.
	runs, skipped := expandRuns(specs, runOptions{systems: systemNames, client: clientAuto, stateBytes: 8 << 20, transfers: 3, tail: -1})
	if got := runNames(runs); got != "member-add:asyncraft/goroutine transfer:asyncraft/goroutine" {
		t.Errorf("runs %s", got)
	}
	if len(skipped) != 2 {
		t.Errorf("skipped %q", skipped)
	}
	if runs[0].StateBytes != 8<<20 || runs[1].Transfers != 3 || runs[1].StateBytes != 0 {
		t.Errorf("sized %+v / %+v", runs[0], runs[1])
	}
	runs, skipped = expandRuns(specs[1:], runOptions{systems: []string{sysAsyncraft}, client: loadgen.ClientCallback, tail: -1})
	if len(runs) != 0 || len(skipped) != 1 || !strings.Contains(skipped[0], "goroutines only") {
		t.Errorf("transfer with callback clients: runs %v, skipped %q", runNames(runs), skipped)
	}
}

func TestMembershipReports(t *testing.T) {
	l := latency{Ops: 1000, Seconds: 1, OpsPerSec: 1000, P50Ms: 1, P99Ms: 2, P999Ms: 3, MaxMs: 4}
	results := []RepResult{
		{Workload: "member-add", System: sysAsyncraft, Client: "goroutine", Rep: 1, MemberAdd: &MemberAddReport{
			Leader: "n1", Member: "n4", Identity: "00000000000000ff", Done: 3, ChangeSeconds: 2.5, InstallStarted: 1, InstallDone: 2,
			ReceivedMiB: 8, Voters: []string{"n1", "n2", "n3", "n4"}, MemberVoters: []string{"n1", "n2", "n3", "n4"}, Before: l, During: l, After: l}},
		{Workload: "transfer", System: sysAsyncraft, Client: "goroutine", Rep: 1, Transfer: &TransferReport{
			Transfers: []TransferFigures{
				{From: "n1", To: "n2", Leader: "n2", CallMs: 3, ETMs: 1000, GapMs: 4, Resumed: true, Refused: map[string]int{"EBUSY": 2}, Around: l},
				{From: "n2", To: "n3", Leader: "n2", CallMs: 3000, ETMs: 3000, GapMs: 3001, Err: "ETIMEDOUT", Around: l},
			},
			TransfersStarted: 2, TransfersDone: 1, TransfersFailed: 1, Steady: l, Around: l, Refused: map[string]uint64{"EBUSY": 2}}},
		{Workload: "transfer", System: sysAsyncraft, Client: "goroutine", Rep: 2, Err: "boom", Transfer: &TransferReport{}},
	}
	out := snapReports(results)
	for _, want := range []string{"n4 added as a voter", "4 voters: met", "p99 during ÷ before = 1.00: ≤ 2: met",
		"n1 → n2", "EBUSY 2", "≥ 3001 (not resumed)", "ETIMEDOUT", "≤ 1 election timeout: NOT met (1 of 2)", "p99 around ÷ steady = 1.00",
		"transfer asyncraft rep 2 FAILED: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("the reports do not say %q:\n%s", want, out)
		}
	}
	for _, r := range results[:2] {
		if oneLine(r) == "" {
			t.Errorf("no line for %s", r.Workload)
		}
	}
}
