package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The reports of the membership workloads, printed with the snapshot
// workloads' (snapreport.go).

// membershipLine sums up a repetition of a membership workload for the
// log.
func membershipLine(r RepResult) string {
	switch {
	case r.MemberAdd != nil:
		x := r.MemberAdd
		return fmt.Sprintf("%s added in %.1f s from its spawn (AddVoter %.1f s; %.0f MiB installed in %.1f s); lat1 p99 %s ms before, %s during",
			x.Member, x.Done, x.ChangeSeconds, x.ReceivedMiB, x.InstallDone-x.InstallStarted, fmtMs(x.Before.P99Ms), fmtMs(x.During.P99Ms))
	case r.Transfer != nil:
		x := r.Transfer
		gaps := transferGaps(x)
		return fmt.Sprintf("%d transfers (%d done, %d failed); write gap median %s ms, max %s ms; lat1 p99 %s ms steady, %s around",
			len(x.Transfers), x.TransfersDone, x.TransfersFailed, fmtMs(median(gaps)), fmtMs(slices.Max(append(gaps, 0))), fmtMs(x.Steady.P99Ms), fmtMs(x.Around.P99Ms))
	}
	return ""
}

func transferGaps(x *TransferReport) []float64 {
	var out []float64
	for _, f := range x.Transfers {
		out = append(out, f.GapMs)
	}
	return out
}

// latencyRows are the rows of a table of lat1 windows.
func latencyRows(windows ...namedLatency) [][]string {
	var rows [][]string
	for _, w := range windows {
		rows = append(rows, []string{w.name, fmt.Sprintf("%.1f", w.l.Seconds), fmtInt(w.l.OpsPerSec), fmtMs(w.l.P50Ms), fmtMs(w.l.P99Ms), fmtMs(w.l.P999Ms), fmtMs(w.l.MaxMs), fmt.Sprint(w.l.Errors)})
	}
	return rows
}

// namedLatency is a lat1 window and its name.
type namedLatency struct {
	name string
	l    latency
}

func memberAddReport(b *strings.Builder, r RepResult) {
	x := r.MemberAdd
	fmt.Fprintf(b, "\n%s, %s/%s, rep %d: %s added as a voter to a group holding a %.0f MiB snapshot, lat1 through the leader %s\n",
		r.Workload, r.System, r.Client, r.Rep, x.Member, x.SnapshotMiB, x.Leader)
	fmt.Fprintf(b, "  (%s started on an empty data directory with JoinIdentity %s, the leader's ClusterIdentity; then AddVoter on the leader)\n", x.Member, x.Identity)
	fmt.Fprintf(b, "  the leader's snapshot at %s, taken in %.1f s; its log starts at %s\n", fmtInt(float64(x.SnapshotIndex)), x.SnapshotSeconds, fmtInt(float64(x.FirstIndex)))
	at := func(v float64) string {
		if v == 0 {
			return "not seen"
		}
		return fmt.Sprintf("%.2f s", v)
	}
	fmt.Fprintf(b, "  from %s's spawn: host up %.2f s, StartNode returned %.2f s, AddVoter sent %.2f s; a learner %s, install begun %s, installed %s, joint %s (polled every 50 ms); the change done %.2f s\n",
		x.Member, x.Ready, x.Started, x.ChangeSent, at(x.Learner), at(x.InstallStarted), at(x.InstallDone), at(x.Joint), x.Done)
	fmt.Fprintf(b, "  AddVoter: %.2f s on the leader (index %s); %.2f s from the spawn\n", x.ChangeSeconds, fmtInt(float64(x.ChangeIndex)), x.Done)
	fmt.Fprintf(b, "  install: %.0f MiB received (%.0f MiB sent) in %.1f s = %.0f MiB/s; %d failed fetches\n",
		x.ReceivedMiB, x.SentMiB, x.InstallDone-x.InstallStarted, x.MiBps, x.Failures)
	fmt.Fprintf(b, "  RSS MiB: leader %.0f steady, %.0f peak during the change (%+.0f, ≤ +64: %s); %s %.0f peak (%+.0f over a follower's %.0f, ≤ +64: %s), %.0f after\n",
		x.LeaderSteadyMiB, x.LeaderPeakMiB, x.LeaderPeakMiB-x.LeaderSteadyMiB, check(x.LeaderPeakMiB-x.LeaderSteadyMiB <= 64),
		x.Member, x.MemberPeakMiB, x.MemberPeakMiB-x.FollowerSteadyMiB, x.FollowerSteadyMiB, check(x.MemberPeakMiB-x.FollowerSteadyMiB <= 64), x.MemberAfterMiB)
	conf := "voters " + strings.Join(x.Voters, ",")
	if len(x.Learners) > 0 {
		conf += ", learners " + strings.Join(x.Learners, ",")
	}
	if x.JointAtEnd {
		conf += " (joint)"
	}
	fmt.Fprintf(b, "  configuration at the end, on the leader: %s (4 voters: %s); on %s: voters %s\n",
		conf, check(len(x.Voters) == 4 && !x.JointAtEnd && len(x.Learners) == 0), x.Member, strings.Join(x.MemberVoters, ","))
	header := []string{"lat1 through the leader", "s", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"}
	rows := latencyRows(namedLatency{"before", x.Before}, namedLatency{"during the change", x.During}, namedLatency{"after (4 voters)", x.After})
	b.WriteString(indent(renderTable(header, rows, 1)))
	fmt.Fprintf(b, "  p99 during ÷ before = %.2f: ≤ 2: %s\n", ratio(x.During.P99Ms, x.Before.P99Ms), check(x.During.P99Ms <= 2*x.Before.P99Ms))
}

func transferReport(b *strings.Builder, r RepResult) {
	x := r.Transfer
	fmt.Fprintf(b, "\n%s, %s/%s, rep %d: %d leadership transfers under lat1 (a client in every member, writing while its node leads)\n",
		r.Workload, r.System, r.Client, r.Rep, len(x.Transfers))
	header := []string{"#", "from → to", "leads after", "call ms", "ET ms", "write gap ms", "gap from–to ms", "refused", "refused for ms", "p99 ms", "max ms", "gap ≤ ET"}
	var rows [][]string
	within := 0
	for i, f := range x.Transfers {
		gap := fmtMs(f.GapMs)
		if !f.Resumed {
			gap = "≥ " + gap + " (not resumed)"
		}
		ok := f.Resumed && f.GapMs <= f.ETMs
		if ok {
			within++
		}
		leads := f.Leader
		if f.Err != "" {
			leads += " (FAILED: " + f.Err + ")"
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), f.From + " → " + f.To, leads, fmt.Sprintf("%.1f", f.CallMs), fmt.Sprintf("%.0f", f.ETMs),
			gap, fmt.Sprintf("%.1f–%.1f", f.GapFromMs, f.GapToMs), refusedKinds(f.Refused), fmt.Sprintf("%.1f", f.RefusedMs),
			fmtMs(f.Around.P99Ms), fmtMs(f.Around.MaxMs), check(ok)})
	}
	b.WriteString(indent(renderTable(header, rows, 3)))
	b.WriteString("  (write gap: the longest time between successive successful writes, of any member's client, overlapping the transfer:\n" +
		"   from its start to the first write that succeeded after the call returned; gap from–to: its ends, from the transfer's start;\n" +
		"   refused: the refused attempts from its start to 1 s after it returned, each retried 1 ms later; p99/max: lat1 in that window)\n")
	gaps := transferGaps(x)
	fmt.Fprintf(b, "  transfers: %d started, %d done, %d failed (the members' Metrics, summed)\n", x.TransfersStarted, x.TransfersDone, x.TransfersFailed)
	fmt.Fprintf(b, "  write gap: median %s ms, max %s ms; %s ms at most in the steady \"before\" window; ≤ 1 election timeout: %s (%d of %d)\n",
		fmtMs(median(gaps)), fmtMs(slices.Max(append(gaps, 0))), fmtMs(x.SteadyGapMs), check(within == len(x.Transfers)), within, len(x.Transfers))
	if len(x.Refused) > 0 {
		fmt.Fprintf(b, "  every refusal of the run: %s\n", refusedKinds64(x.Refused))
	}
	header = []string{"lat1 through the leader", "s", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "failed"}
	rows = latencyRows(namedLatency{"steady state", x.Steady}, namedLatency{"around the transfers", x.Around})
	b.WriteString(indent(renderTable(header, rows, 1)))
	fmt.Fprintf(b, "  p99 around ÷ steady = %.2f: ≤ 2: %s\n", ratio(x.Around.P99Ms, x.Steady.P99Ms), check(x.Around.P99Ms <= 2*x.Steady.P99Ms))
}

// refusedKinds is "EBUSY 12, EPERM 1" (kinds sorted), or "0".
func refusedKinds(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func refusedKinds64(m map[string]uint64) string {
	c := map[string]int{}
	for k, v := range m {
		c[k] = int(v)
	}
	return refusedKinds(c)
}
