package main

import (
	"fmt"
	"math"
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
	"workload", "ops/s median (min–max)", "p50 ms", "p99 ms", "p99.9 ms",
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
			rows = append(rows, []string{s.Workload, "–", "–", "–", "–", "–", "–", "–", "–", "–", "–", reps})
			continue
		}
		rows = append(rows, []string{
			s.Workload,
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
