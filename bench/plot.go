//go:build !benchmember

package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Charts, written by -plot DIR as small PNGs:
//
//	throughput.png         median ops/s per workload, min–max bars
//	latency.png            p50, p99, p99.9 per workload (log scale)
//	clients-throughput.png ops/s against clients in flight (the client sweep)
//	clients-latency.png    p50 and p99 against clients in flight

// errPoints are points with vertical error bars.
type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

var glyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.PyramidGlyph{}}

// pointsOf is the median of s at x, with the min–max as error bars.
func pointsOf(xs []float64, stats []stat) errPoints {
	var p errPoints
	for i, s := range stats {
		p.XYs = append(p.XYs, plotter.XY{X: xs[i], Y: s.Median})
		p.YErrors = append(p.YErrors, struct{ Low, High float64 }{s.Median - s.Min, s.Max - s.Median})
	}
	return p
}

// markers is the scatter of series i's points, in its colour and glyph.
func markers(pts plotter.XYer, i int) (*plotter.Scatter, color.Color, error) {
	col := palette[i%len(palette)]
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, nil, err
	}
	sc.GlyphStyle.Color = col
	sc.GlyphStyle.Radius = vg.Points(3)
	sc.GlyphStyle.Shape = glyphs[i%len(glyphs)]
	return sc, col, nil
}

// addSeries draws points (joined by a line if line) with their error bars.
func addSeries(p *plot.Plot, name string, pts errPoints, i int, line bool) error {
	sc, col, err := markers(pts, i)
	if err != nil {
		return err
	}
	eb, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return err
	}
	eb.LineStyle.Color = col
	eb.CapWidth = vg.Points(4)
	p.Add(sc, eb)
	if line {
		l, err := plotter.NewLine(pts.XYs)
		if err != nil {
			return err
		}
		l.LineStyle.Color = col
		p.Add(l)
	}
	if name != "" {
		p.Legend.Add(name, sc)
	}
	return nil
}

// writePlots writes the charts for sums into dir and returns their paths.
func writePlots(dir string, sums []Summary) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	save := func(p *plot.Plot, name string, w, h vg.Length) error {
		path := filepath.Join(dir, name)
		if err := p.Save(w, h, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		written = append(written, path)
		return nil
	}
	var wl, sweep []Summary
	sweepClient := ""
	for _, s := range sums {
		if s.Reps == 0 {
			continue
		}
		if s.Spec.Sweep == "clients" {
			// The client sweep is asyncraft's, in one client model
			// (the first that ran).
			if sweepClient == "" {
				sweepClient = s.Client
			}
			if s.System == sysAsyncraft && s.Client == sweepClient {
				sweep = append(sweep, s)
			}
		} else {
			wl = append(wl, s)
		}
	}
	if len(wl) > 0 {
		// Horizontal dot plots, one row per workload, the first on top.
		names := make([]string, len(wl))
		ys := make([]float64, len(wl))
		var ops, p50, p99, p999 []stat
		for i, s := range wl {
			names[len(wl)-1-i], ys[i] = plotLabel(s), float64(len(wl)-1-i)
			ops = append(ops, s.OpsPerSec)
			p50, p99, p999 = append(p50, s.P50Ms), append(p99, s.P99Ms), append(p999, s.P999Ms)
		}
		height := vg.Length(math.Max(2.4, 0.28*float64(len(wl))+1.2)) * vg.Inch

		p := plot.New()
		p.Title.Text = "Throughput (median of reps, bars: min–max)"
		p.X.Label.Text = "ops/s (log scale)"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
		p.NominalY(names...)
		p.Add(plotter.NewGrid())
		if err := addHSeries(p, "", hPoints(ys, positive(ops)), 0); err != nil {
			return nil, err
		}
		p.X.Min, p.X.Max = lowest(ops)/2, highest(ops)*2 // no glyph cut at the edges
		p.Y.Min, p.Y.Max = -0.6, float64(len(wl))-0.4
		if err := save(p, "throughput.png", 6*vg.Inch, height); err != nil {
			return nil, err
		}

		p = plot.New()
		p.Title.Text = "Latency (median of reps, bars: min–max)"
		p.X.Label.Text = "ms (log scale)"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
		p.NominalY(names...)
		p.Add(plotter.NewGrid())
		for i, q := range []struct {
			name string
			s    []stat
			dy   float64
		}{{"p50", p50, 0.2}, {"p99", p99, 0}, {"p99.9", p999, -0.2}} {
			shifted := make([]float64, len(ys))
			for j := range ys {
				shifted[j] = ys[j] + q.dy
			}
			if err := addHSeries(p, q.name, hPoints(shifted, positive(q.s)), i); err != nil {
				return nil, err
			}
		}
		p.X.Min = lowest(p50) / 2
		p.Y.Min, p.Y.Max = -0.6, float64(len(wl))-0.4
		p.X.Max = highest(p999) * 20 // room for the legend on the right
		p.Legend.Top = true
		if err := save(p, "latency.png", 6*vg.Inch, height); err != nil {
			return nil, err
		}
	}
	if len(sweep) > 0 {
		xs := make([]float64, len(sweep))
		var ops, p50, p99 []stat
		for i, s := range sweep {
			xs[i] = float64(s.Spec.Clients)
			ops = append(ops, s.OpsPerSec)
			p50, p99 = append(p50, s.P50Ms), append(p99, s.P99Ms)
		}
		p := plot.New()
		p.Title.Text = "Throughput against clients in flight (asyncraft, " + sweepClient + " clients, 128 B)"
		p.X.Label.Text = "closed-loop clients (log scale)"
		p.Y.Label.Text = "ops/s"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = clientTicks(xs)
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		if err := addSeries(p, "", pointsOf(xs, ops), 0, true); err != nil {
			return nil, err
		}
		if err := save(p, "clients-throughput.png", 5.5*vg.Inch, 3.2*vg.Inch); err != nil {
			return nil, err
		}

		p = plot.New()
		p.Title.Text = "Latency against clients in flight"
		p.X.Label.Text = "closed-loop clients (log scale)"
		p.Y.Label.Text = "ms (log scale)"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker = clientTicks(xs)
		p.Y.Tick.Marker = logTicks{}
		p.Add(plotter.NewGrid())
		for i, q := range []struct {
			name string
			s    []stat
		}{{"p50", p50}, {"p99", p99}} {
			if err := addSeries(p, q.name, pointsOf(xs, positive(q.s)), i, true); err != nil {
				return nil, err
			}
		}
		p.Y.Max = highest(p99) * 4 // room for the legend
		p.Legend.Top, p.Legend.Left = true, true
		if err := save(p, "clients-latency.png", 5.5*vg.Inch, 3.2*vg.Inch); err != nil {
			return nil, err
		}
	}
	return written, nil
}

// plotLabel names a row of the charts: the workload, then the system and
// client model.
func plotLabel(s Summary) string {
	return s.Workload + " " + s.System + "/" + s.Client
}

// hErrPoints are points with horizontal error bars.
type hErrPoints struct {
	plotter.XYs
	plotter.XErrors
}

// hPoints is the median of each stat at y, with the min–max as bars.
func hPoints(ys []float64, stats []stat) hErrPoints {
	var p hErrPoints
	for i, s := range stats {
		p.XYs = append(p.XYs, plotter.XY{X: s.Median, Y: ys[i]})
		p.XErrors = append(p.XErrors, struct{ Low, High float64 }{s.Median - s.Min, s.Max - s.Median})
	}
	return p
}

// addHSeries draws points with horizontal error bars.
func addHSeries(p *plot.Plot, name string, pts hErrPoints, i int) error {
	sc, col, err := markers(pts, i)
	if err != nil {
		return err
	}
	eb, err := plotter.NewXErrorBars(pts)
	if err != nil {
		return err
	}
	eb.LineStyle.Color = col
	eb.CapWidth = vg.Points(4)
	p.Add(sc, eb)
	if name != "" {
		p.Legend.Add(name, sc)
	}
	return nil
}

// logTicks labels 1, 2 and 5 times each power of ten (1 and 10 only when
// the range spans more than two decades), with k and M suffixes.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= lo {
		return nil
	}
	steps := []float64{1, 2, 5}
	if math.Log10(hi/lo) > 2 {
		steps = []float64{1}
	}
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			for _, s := range steps {
				if m == s {
					t.Label = siLabel(v)
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// siLabel writes v compactly: 0.05, 2, 500, 20k, 1M.
func siLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// lowest and highest are the extremes of the ranges of ss (at least
// 1e-3, for log scales).
func lowest(ss []stat) float64 {
	lo := math.Inf(1)
	for _, s := range ss {
		lo = min(lo, s.Min)
	}
	return max(lo, 1e-3)
}

func highest(ss []stat) float64 {
	hi := 1e-3
	for _, s := range ss {
		hi = max(hi, s.Max)
	}
	return hi
}

// positive keeps values plottable on a log scale.
func positive(ss []stat) []stat {
	out := make([]stat, len(ss))
	for i, s := range ss {
		s.Median, s.Min, s.Max = max(s.Median, 1e-3), max(s.Min, 1e-3), max(s.Max, 1e-3)
		out[i] = s
	}
	return out
}

// clientTicks labels exactly the swept client counts.
func clientTicks(xs []float64) plot.ConstantTicks {
	var t plot.ConstantTicks
	for _, x := range xs {
		t = append(t, plot.Tick{Value: x, Label: fmt.Sprint(x)})
	}
	return t
}
