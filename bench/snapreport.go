package main

import (
	"fmt"
	"strings"
)

// The reports of the snapshot workloads, printed after the standard table.

// oneLine sums up a repetition of a snapshot workload for the log.
func oneLine(r RepResult) string {
	switch {
	case r.Soak != nil:
		s := r.Soak
		return fmt.Sprintf("%s ops/s over %.0f s, leader RSS %.0f MiB at %.0f s and %.0f MiB at %.0f s (max %.0f), data ≤ %.0f MiB, %d snapshots",
			fmtInt(s.Window.OpsPerSec), s.Window.Seconds, s.EarlyRSSMiB, s.EarlyAt, s.LateRSSMiB, s.LateAt, s.MaxRSSMiB, s.MaxDataMiB, s.Snapshots)
	case r.Restart != nil:
		x := r.Restart
		return fmt.Sprintf("%s serving %.3f s after its spawn: StartNode %.3f s (snapshot load %.3f s), tail of %s replayed at %.3f s, serving at %.3f s",
			x.Member, x.TotalSeconds, x.Recovery.StartNode, x.Recovery.Load, fmtInt(float64(x.Tail)), x.Recovery.Replayed, x.Recovery.Serving)
	case r.Install != nil:
		x := r.Install
		return fmt.Sprintf("%.0f MiB installed on %s in %.1f s (%.0f MiB/s), caught up at %.1f s; lat1 p99 %s ms before, %s during",
			x.ReceivedMiB, x.Follower, x.InstallDone-x.InstallStarted, x.MiBps, x.CaughtUp, fmtMs(x.Before.P99Ms), fmtMs(x.During.P99Ms))
	case r.MemberAdd != nil || r.Transfer != nil:
		return membershipLine(r)
	}
	return ""
}

// check is "met" or "NOT met".
func check(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// snapReports prints the report of every snapshot workload's repetitions.
func snapReports(results []RepResult) string {
	var b strings.Builder
	for _, r := range results {
		if r.Err != "" && r.special() {
			fmt.Fprintf(&b, "\n%s %s rep %d FAILED: %s\n", r.Workload, r.System, r.Rep, r.Err)
			continue
		}
		switch {
		case r.Soak != nil:
			soakReport(&b, r)
		case r.Restart != nil:
			restartReport(&b, r)
		case r.Install != nil:
			installReport(&b, r)
		case r.MemberAdd != nil:
			memberAddReport(&b, r)
		case r.Transfer != nil:
			transferReport(&b, r)
		}
	}
	return b.String()
}

func soakReport(b *strings.Builder, r RepResult) {
	s := r.Soak
	fmt.Fprintf(b, "\n%s, %s/%s, rep %d: tput's load with snapshots on, %.0f s; led by %s\n", r.Workload, r.System, r.Client, r.Rep, s.Window.Seconds, r.LeaderName)
	header := []string{"at s", "ops/s", "p99 ms", "leader RSS MiB", "leader data MiB", "max data MiB", "snapshots", "log first–last", "snapshot KiB"}
	var rows [][]string
	step := max(1, len(s.Samples)/10) // about ten rows
	for i, x := range s.Samples {
		if i%step != step-1 && i != len(s.Samples)-1 {
			continue
		}
		rows = append(rows, []string{
			fmt.Sprintf("%.0f", x.At), fmtInt(x.OpsPerSec), fmtMs(x.P99Ms), fmt.Sprintf("%.1f", x.LeaderRSSMiB),
			fmt.Sprintf("%.0f", x.LeaderDataMiB), fmt.Sprintf("%.0f", x.MaxDataMiB), fmt.Sprint(x.Snapshots),
			fmt.Sprintf("%s–%s", fmtInt(float64(x.FirstIndex)), fmtInt(float64(x.LastIndex))), fmt.Sprintf("%.0f", float64(x.SnapshotBytes)/1024),
		})
	}
	b.WriteString(indent(renderTable(header, rows, 0)))
	fmt.Fprintf(b, "  window: %s ops/s, p50 %s / p99 %s / p99.9 %s ms, %d failed operations; cores %.2f, other load %.2f cores\n",
		fmtInt(s.Window.OpsPerSec), fmtMs(s.Window.P50Ms), fmtMs(s.Window.P99Ms), fmtMs(s.Window.P999Ms), s.Window.Errors, r.Cores, r.OtherCores)
	fmt.Fprintf(b, "  snapshots: %d taken, %d failed\n", s.Snapshots, s.SnapFailures)
	early, late := s.EarlyMaxRSSMiB, s.LateMaxRSSMiB
	if early == 0 { // a report of an older harness
		early, late = rssWindows(s.Samples, s.Window.Seconds)
	}
	within := early > 0 && late <= 1.1*early && late >= 0.9*early
	fmt.Fprintf(b, "  leader RSS (VmRSS): %.1f MiB at %.0f s, %.1f MiB at %.0f s; largest sample %.1f, peak (VmHWM) %.1f MiB\n",
		s.EarlyRSSMiB, s.EarlyAt, s.LateRSSMiB, s.LateAt, s.MaxRSSMiB, s.PeakRSSMiB)
	fmt.Fprintf(b, "    largest from 15 to 25 %% of the window (minutes 1.5–2.5 of 10) %.1f MiB, in its last 10 %% %.1f MiB (%+.1f %%)\n",
		early, late, 100*(late/early-1))
	fmt.Fprintf(b, "    target: the last within 10 %% of the first: %s; ≤ 64 MiB: %s (peak %s)\n",
		check(within), check(late <= 64), check(s.PeakRSSMiB <= 64))
	fmt.Fprintf(b, "  data directory (allocated): largest %.0f MiB, at the end %.0f MiB\n", s.MaxDataMiB, s.LastDataMiB)
	if s.Baseline != nil {
		x := s.Window.OpsPerSec / s.Baseline.OpsPerSec
		fmt.Fprintf(b, "  plain tput of this sitting (snapshots off, %.0f s): %s ops/s, p99 %s ms, leader peak RSS %.0f MiB; soak ÷ tput = %.2f: within 10 %%: %s\n",
			s.Baseline.Seconds, fmtInt(s.Baseline.OpsPerSec), fmtMs(s.Baseline.P99Ms), s.Baseline.LeaderRSSMiB, x, check(x >= 0.9))
	} else {
		fmt.Fprintf(b, "  plain tput of this sitting: FAILED (%s)\n", s.BaselineErr)
	}
	if s.Window.Seconds < 300 {
		b.WriteString("  (a short window: the figures of the issue are for 10 minutes)\n")
	}
}

func restartReport(b *strings.Builder, r RepResult) {
	x := r.Restart
	rc := x.Recovery
	fmt.Fprintf(b, "\n%s, %s, rep %d: the %s %s restarted (stopped in order, same data directory)\n", r.Workload, r.System, r.Rep, x.Target, x.Member)
	if x.Built {
		fmt.Fprintf(b, "  history built in this repetition: %.0f s\n", x.BuildSeconds)
	}
	fmt.Fprintf(b, "  history %s entries; state %s keys; its snapshot at %s, %.1f MiB (taken in %.2f s); %s entries after it; its log from %s; data dir %.0f MiB\n",
		fmtInt(float64(x.History)), fmtInt(float64(x.StateKeys)), fmtInt(float64(x.SnapshotIndex)), x.SnapshotMiB, x.SnapshotSeconds,
		fmtInt(float64(x.Tail)), fmtInt(float64(x.FirstIndex)), x.DataMiB)
	header := []string{"piece", "seconds", ""}
	rows := [][]string{
		{"orderly stop", fmt.Sprintf("%.3f", x.StopSeconds), "not counted"},
		{"process up (host listening)", fmt.Sprintf("%.3f", x.ReadySeconds), "from its spawn"},
		{"StartNode", fmt.Sprintf("%.3f", rc.StartNode), "from its call; includes:"},
		{"  snapshot load (OnSnapshotLoad)", fmt.Sprintf("%.3f", rc.Load), fmt.Sprintf("%.1f MiB read", float64(rc.LoadBytes)/(1<<20))},
		{"tail replay", fmt.Sprintf("%.3f", rc.Replayed-rc.StartNode), fmt.Sprintf("entries %s–%s, done at %.3f", fmtInt(float64(rc.SnapshotIndex+1)), fmtInt(float64(rc.Commit)), rc.Replayed)},
		{"leader known", fmt.Sprintf("%.3f", rc.Leader), "from the StartNode call"},
		{"first linearizable read served", fmt.Sprintf("%.3f", rc.Serving), fmt.Sprintf("from the StartNode call (%d attempts)", rc.Reads)},
		{"total: spawn to serving", fmt.Sprintf("%.3f", x.TotalSeconds), "target ≤ 2 s: " + check(x.TotalSeconds <= 2)},
	}
	b.WriteString(indent(renderTable(header, rows, 1)))
	fmt.Fprintf(b, "  restarted process's peak RSS: %.0f MiB\n", x.PeakRSSMiB)
}

func installReport(b *strings.Builder, r RepResult) {
	x := r.Install
	fmt.Fprintf(b, "\n%s, %s/%s, rep %d: a %.0f MiB snapshot installed on %s (data directory wiped), lat1 through the leader %s\n",
		r.Workload, r.System, r.Client, r.Rep, x.SnapshotMiB, x.Follower, x.Leader)
	fmt.Fprintf(b, "  (restarted with RejoinTerm %d, the others' highest term: it votes only in later terms)\n", x.RejoinTerm)
	fmt.Fprintf(b, "  the leader's snapshot at %s, taken in %.1f s; its log starts at %s\n", fmtInt(float64(x.SnapshotIndex)), x.SnapshotSeconds, fmtInt(float64(x.FirstIndex)))
	fmt.Fprintf(b, "  from the follower's spawn: host up %.2f s, StartNode returned %.2f s, install begun %.2f s, installed %.2f s, caught up %.2f s\n",
		x.Ready, x.Started, x.InstallStarted, x.InstallDone, x.CaughtUp)
	fmt.Fprintf(b, "  install: %.0f MiB received (%.0f MiB sent) in %.1f s = %.0f MiB/s; %d failed fetches\n",
		x.ReceivedMiB, x.SentMiB, x.InstallDone-x.InstallStarted, x.MiBps, x.Failures)
	fmt.Fprintf(b, "  RSS MiB: leader %.0f steady, %.0f peak during the install (%+.0f, ≤ +64: %s); follower %.0f peak (%+.0f over the other follower's %.0f, ≤ +64: %s), %.0f after\n",
		x.LeaderSteadyMiB, x.LeaderPeakMiB, x.LeaderPeakMiB-x.LeaderSteadyMiB, check(x.LeaderPeakMiB-x.LeaderSteadyMiB <= 64),
		x.FollowerPeakMiB, x.FollowerPeakMiB-x.OtherFollowerMiB, x.OtherFollowerMiB, check(x.FollowerPeakMiB-x.OtherFollowerMiB <= 64), x.FollowerAfterMiB)
	header := []string{"lat1 through the leader", "s", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"}
	var rows [][]string
	for _, w := range []struct {
		name string
		l    latency
	}{{"before", x.Before}, {"during the install", x.During}, {"after", x.After}} {
		rows = append(rows, []string{w.name, fmt.Sprintf("%.1f", w.l.Seconds), fmtInt(w.l.OpsPerSec), fmtMs(w.l.P50Ms), fmtMs(w.l.P99Ms), fmtMs(w.l.P999Ms), fmtMs(w.l.MaxMs), fmt.Sprint(w.l.Errors)})
	}
	b.WriteString(indent(renderTable(header, rows, 1)))
	fmt.Fprintf(b, "  p99 during ÷ before = %.2f: ≤ 2: %s\n", x.During.P99Ms/x.Before.P99Ms, check(x.During.P99Ms <= 2*x.Before.P99Ms))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
