package main

import "testing"

func TestRSSWindows(t *testing.T) {
	var samples []SoakSample
	for i, rss := range []float64{40, 50, 45, 48, 47, 60, 55, 50, 51, 53} { // every 10 s of 100
		samples = append(samples, SoakSample{At: float64(10 * (i + 1)), LeaderRSSMiB: rss})
	}
	// 15–25 s: the sample at 20 s; from 90 s: 51 and 53.
	if early, late := rssWindows(samples, 100); early != 50 || late != 53 {
		t.Errorf("early %v late %v", early, late)
	}
	// Sparse samples: the nearest to a fifth, and the last.
	if early, late := rssWindows(samples[:3], 1000); early != 45 || late != 45 {
		t.Errorf("sparse: early %v late %v", early, late)
	}
	if early, late := rssWindows(nil, 100); early != 0 || late != 0 {
		t.Error("no samples")
	}
}
