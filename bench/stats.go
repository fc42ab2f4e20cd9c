package main

import (
	"math"
	"slices"
)

// stat is the median and range of one figure over repetitions.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// summarize returns the median, min and max of xs (NaNs skipped; all
// zero with N 0 when nothing is left, as JSON has no NaN). The median of an
// even count is the mean of the two middle values.
func summarize(xs []float64) stat {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return stat{}
	}
	slices.Sort(v)
	s := stat{Min: v[0], Max: v[len(v)-1], N: len(v)}
	if m := len(v) / 2; len(v)%2 == 1 {
		s.Median = v[m]
	} else {
		s.Median = (v[m-1] + v[m]) / 2
	}
	return s
}

// ratio is a/b, 0 when b is not positive.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// Summary is one workload's figures over its accepted repetitions.
type Summary struct {
	Workload string `json:"workload"`
	// System, Client: as in the spec; Version: the library's version as
	// its members reported it.
	System    string            `json:"system,omitempty"`
	Client    string            `json:"client,omitempty"`
	Version   string            `json:"version,omitempty"`
	Spec      Spec              `json:"spec"`
	Reps      int               `json:"reps"`      // accepted repetitions
	Failed    int               `json:"failed"`    // repetitions that failed
	Repeated  int               `json:"repeated"`  // extra runs because of other load
	Disturbed int               `json:"disturbed"` // accepted although disturbed (retries exhausted)
	Leaders   []string          `json:"leaders"`   // the member that led (ran the load), per accepted rep
	Errors    map[string]uint64 `json:"errors"`    // failed operations by code, summed
	OpsPerSec stat              `json:"ops_per_sec"`
	P50Ms     stat              `json:"p50_ms"`
	P99Ms     stat              `json:"p99_ms"`
	P999Ms    stat              `json:"p999_ms"`
	LeaderRSS stat              `json:"leader_rss_mib"`
	AllRSS    stat              `json:"all_rss_mib"`
	Cores     stat              `json:"cores"`
	Kernel    stat              `json:"kernel_cores"`
	Other     stat              `json:"other_cores"`
	OpsPerCPU stat              `json:"ops_per_cpu_sec"`
	// Group commit: entries per leader log write (one fsync each); reads
	// per quorum round.
	EntriesPerWrite stat `json:"entries_per_write"`
	ReadsPerRound   stat `json:"reads_per_round"`
}

// summarizeWorkload builds the summary of spec (a workload in one system
// and client model) from all its attempts.
func summarizeWorkload(spec Spec, results []RepResult) Summary {
	s := Summary{Workload: spec.Name, System: spec.System, Client: spec.Client, Spec: spec, Errors: map[string]uint64{}}
	var ops, p50, p99, p999, lrss, arss, cores, kern, other, opc, epw, rpr []float64
	for _, r := range results {
		if r.Workload != spec.Name || r.System != spec.System || r.Client != spec.Client {
			continue
		}
		if r.Version != "" {
			s.Version = r.Version
		}
		switch {
		case r.Err != "":
			s.Failed++
			continue
		case !r.Accepted:
			s.Repeated++
			continue
		}
		s.Reps++
		if r.Disturbed {
			s.Disturbed++
		}
		s.Leaders = append(s.Leaders, r.LeaderName)
		for k, v := range r.Errors {
			s.Errors[k] += v
		}
		ops = append(ops, r.OpsPerSec)
		p50 = append(p50, r.P50Ms)
		p99 = append(p99, r.P99Ms)
		p999 = append(p999, r.P999Ms)
		lrss = append(lrss, r.LeaderRSSMiB)
		arss = append(arss, r.AllRSSMiB)
		cores = append(cores, r.Cores)
		kern = append(kern, r.KernelCores)
		other = append(other, r.OtherCores)
		opc = append(opc, r.OpsPerCPUSec)
		epw = append(epw, r.EntriesPerWrite)
		rpr = append(rpr, r.ReadsPerRound)
	}
	s.OpsPerSec = summarize(ops)
	s.P50Ms, s.P99Ms, s.P999Ms = summarize(p50), summarize(p99), summarize(p999)
	s.LeaderRSS, s.AllRSS = summarize(lrss), summarize(arss)
	s.Cores, s.Kernel, s.Other = summarize(cores), summarize(kern), summarize(other)
	s.OpsPerCPU = summarize(opc)
	s.EntriesPerWrite, s.ReadsPerRound = summarize(epw), summarize(rpr)
	return s
}
