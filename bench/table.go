package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// fmtInt formats x rounded to an integer with thousands separators.
func fmtInt(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	n := int64(math.Round(x))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtMs formats a latency in milliseconds with about three significant
// digits.
func fmtMs(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case x < 1:
		return strconv.FormatFloat(x, 'f', 3, 64)
	case x < 10:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case x < 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// fmtRange is "median (min–max)", or the median alone for one value.
func fmtRange(s stat, f func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func fmtFixed(digits int) func(float64) string {
	return func(x float64) string { return strconv.FormatFloat(x, 'f', digits, 64) }
}

// orDash shows a median, or "–" when there is none (or it is 0).
func orDash(s stat, f func(float64) string) string {
	if s.N == 0 || s.Median == 0 {
		return "–"
	}
	return f(s.Median)
}

var tableHeader = []string{
	"workload", "system", "client", "ops/s median (min–max)", "p50 ms", "p99 ms", "p99.9 ms",
	"leader RSS MiB", "all RSS MiB", "cores", "kernel", "other", "ops/CPU-s", "reps",
}

// tableRows turns summaries into the cells of the results table.
func tableRows(sums []Summary) [][]string {
	var rows [][]string
	for _, s := range sums {
		reps := strconv.Itoa(s.Reps)
		if s.Failed > 0 {
			reps += fmt.Sprintf(" +%d failed", s.Failed)
		}
		if s.Disturbed > 0 {
			reps += fmt.Sprintf(" (%d disturbed)", s.Disturbed)
		}
		if s.Reps == 0 {
			rows = append(rows, []string{s.Workload, s.System, s.Client, "–", "–", "–", "–", "–", "–", "–", "–", "–", "–", reps})
			continue
		}
		rows = append(rows, []string{
			s.Workload, s.System, s.Client,
			fmtRange(s.OpsPerSec, fmtInt),
			fmtMs(s.P50Ms.Median), fmtMs(s.P99Ms.Median), fmtMs(s.P999Ms.Median),
			fmtInt(s.LeaderRSS.Median), fmtInt(s.AllRSS.Median),
			fmtFixed(2)(s.Cores.Median), fmtFixed(2)(s.Kernel.Median), fmtFixed(2)(s.Other.Median),
			fmtInt(s.OpsPerCPU.Median),
			reps,
		})
	}
	return rows
}

// renderTable aligns cells in columns two spaces apart, under a rule: the
// first left columns to the left, the others to the right.
func renderTable(header []string, rows [][]string, left int) string {
	widths := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		var l strings.Builder
		for i, cell := range row {
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i < left {
				l.WriteString(cell + pad)
			} else {
				l.WriteString(pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(header)
	rule := make([]string, len(header))
	for i, w := range widths {
		rule[i] = strings.Repeat("-", w)
	}
	line(rule)
	for _, row := range rows {
		line(row)
	}
	return b.String()
}

// renderMarkdown is the same table in Markdown.
func renderMarkdown(header []string, rows [][]string, left int) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for i := range header {
		if i < left {
			b.WriteString("---|")
		} else {
			b.WriteString("--:|")
		}
	}
	b.WriteString("\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// tableLeft is the number of text columns of the results table (aligned
// to the left).
const tableLeft = 3

// find returns the summary of workload in system and client model, if it
// has a repetition that counts.
func find(sums []Summary, workload, system, client string) (Summary, bool) {
	for _, s := range sums {
		if s.Workload == workload && s.System == system && s.Client == client && s.Reps > 0 && s.OpsPerSec.N > 0 {
			return s, true
		}
	}
	return Summary{}, false
}

// speedup is a's ops/s over b's as "1.23×", or "–" when either is
// missing.
func speedup(a, b Summary, okA, okB bool) string {
	if !okA || !okB || b.OpsPerSec.Median <= 0 {
		return "–"
	}
	return strconv.FormatFloat(a.OpsPerSec.Median/b.OpsPerSec.Median, 'f', 2, 64) + "×"
}

// compareTable puts the systems side by side: one row per workload that
// at least one peer ran, one column per system and client model that ran
// (ops/s median, p50 / p99 ms), and the ratios of asyncraft's ops/s in
// the goroutine model (as the peers are called) to each peer's. Every
// figure comes from sums, i.e. from this run. It returns no rows when no
// peer ran.
func compareTable(sums []Summary) (header []string, rows [][]string) {
	type col struct{ system, client string }
	var cols []col
	var peers []string
	var workloads []string
	for _, sys := range systemNames {
		for _, client := range []string{loadgenGoroutine, loadgenCallback} {
			for _, s := range sums {
				if s.System == sys && s.Client == client {
					cols = append(cols, col{sys, client})
					if isPeer(sys) {
						peers = append(peers, sys)
					}
					break
				}
			}
		}
	}
	for _, s := range sums {
		if isPeer(s.System) && !slices.Contains(workloads, s.Workload) {
			workloads = append(workloads, s.Workload)
		}
	}
	if len(peers) == 0 {
		return nil, nil
	}
	header = []string{"workload"}
	for _, c := range cols {
		header = append(header, c.system+"/"+c.client)
	}
	for _, p := range peers {
		header = append(header, "asyncraft ÷ "+p)
	}
	for _, w := range workloads {
		row := []string{w}
		for _, c := range cols {
			s, ok := find(sums, w, c.system, c.client)
			if !ok {
				row = append(row, "–")
				continue
			}
			row = append(row, fmt.Sprintf("%s (%s / %s)", fmtInt(s.OpsPerSec.Median), fmtMs(s.P50Ms.Median), fmtMs(s.P99Ms.Median)))
		}
		a, okA := find(sums, w, sysAsyncraft, loadgenGoroutine)
		for _, p := range peers {
			b, okB := find(sums, w, p, loadgenGoroutine)
			row = append(row, speedup(a, b, okA, okB))
		}
		rows = append(rows, row)
	}
	return header, rows
}
