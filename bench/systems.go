package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/asyncraft/asyncraft/bench/internal/loadgen"
)

// The systems the harness measures. asyncraft's member is this program;
// the peers' members are built from the bench/peers module, which holds
// their dependencies.
const (
	sysAsyncraft  = "asyncraft"
	sysDragonboat = "dragonboat"
	sysHashicorp  = "hashicorp"
)

var systemNames = []string{sysAsyncraft, sysDragonboat, sysHashicorp}

func isPeer(system string) bool { return system != sysAsyncraft }

// parseSystems resolves -system: a comma list of system names, or all.
// The result is in the canonical order, asyncraft first.
func parseSystems(s string) ([]string, error) {
	want := map[string]bool{}
	for _, f := range splitList(s) {
		switch {
		case f == "all":
			for _, n := range systemNames {
				want[n] = true
			}
		case slices.Contains(systemNames, f):
			want[f] = true
		default:
			return nil, fmt.Errorf("unknown system %q (one of %s, all)", f, strings.Join(systemNames, ", "))
		}
	}
	var out []string
	for _, n := range systemNames {
		if want[n] {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no system selected")
	}
	return out, nil
}

// The values of -client.
const (
	clientAuto = "auto" // both models for the standard workloads, goroutines for the sweeps
	clientBoth = "both"
)

// parseClient checks -client.
func parseClient(s string) (string, error) {
	switch s {
	case clientAuto, clientBoth, loadgen.ClientGoroutine, loadgen.ClientCallback:
		return s, nil
	}
	return "", fmt.Errorf("unknown client model %q (goroutine, callback, both or auto)", s)
}

// modelsFor lists the client models -client asks of workload spec.
func modelsFor(client string, spec Spec) []string {
	switch client {
	case clientBoth:
		return []string{loadgen.ClientGoroutine, loadgen.ClientCallback}
	case clientAuto:
		if spec.Sweep == "standard" {
			return []string{loadgen.ClientGoroutine, loadgen.ClientCallback}
		}
		return []string{loadgen.ClientGoroutine}
	}
	return []string{client}
}

// supports reports whether a system can run spec in its client model,
// and why not. The peers run the standard workloads (one group of three
// members, one process each) through their blocking API; neither has a
// lease read.
func supports(spec Spec) (bool, string) {
	if !isPeer(spec.System) {
		if spec.Follow && spec.Client != loadgen.ClientGoroutine {
			return false, "its clients that follow the leader are goroutines only"
		}
		return true, ""
	}
	switch {
	case spec.Client != loadgen.ClientGoroutine:
		return false, "its driver has goroutine clients only"
	case spec.Kind != "":
		return false, "the snapshot and membership workloads run on asyncraft only"
	case spec.Sweep != "standard":
		return false, "the peers run the standard workloads only"
	case spec.Op == loadgen.OpRead && spec.ReadMode == "lease":
		return false, "it has no lease read"
	}
	return true, ""
}

// runOptions are what every run of a workload shares.
type runOptions struct {
	systems   []string
	client    string        // -client
	warmup    time.Duration // 0: each workload's own
	measure   time.Duration // 0: each workload's own
	opTimeout time.Duration // a goroutine client's deadline per operation
	// The snapshot and membership workloads' sizes, if set (-history,
	// -state, -tail, -sample, -transfers).
	history    uint64
	stateBytes int64
	tail       int64 // -1: the workload's own
	sample     time.Duration
	transfers  int // 0: the workload's own
}

// sized applies the size flags to a snapshot workload.
func (o runOptions) sized(r Spec) Spec {
	if o.history > 0 && r.Kind == kindRestart {
		r.History = o.history
	}
	if o.stateBytes > 0 && (r.Kind == kindRestart || r.Kind == kindInstall || r.Kind == kindMemberAdd) {
		r.StateBytes = o.stateBytes
	}
	if o.tail >= 0 && r.Kind == kindRestart {
		r.Tail = uint64(o.tail)
	}
	if o.sample > 0 && r.Kind == kindSoak {
		r.SampleEvery = o.sample
	}
	if o.transfers > 0 && r.Kind == kindTransfer {
		r.Transfers = o.transfers
	}
	return r
}

// expandRuns turns the selected workloads into the runs of one
// repetition: each workload in each system and client model, in that
// order (so that a workload's systems run next to each other), with the
// durations overridden if asked. It also says which combinations were
// not run, and why, one line per system, model and reason. (With -client
// both or auto, a peer simply has no callback model: nothing to report.)
func expandRuns(specs []Spec, o runOptions) (runs []Spec, skipped []string) {
	var reasons []string
	names := map[string][]string{}
	for _, s := range specs {
		for _, sys := range o.systems {
			for _, model := range modelsFor(o.client, s) {
				r := s
				r.System, r.Client = sys, model
				if o.warmup > 0 {
					r.Warmup = o.warmup
				}
				if o.measure > 0 {
					r.Measure = o.measure
				}
				r.OpTimeout = o.opTimeout
				r = o.sized(r)
				if ok, why := supports(r); !ok {
					if isPeer(sys) && model == loadgen.ClientCallback && (o.client == clientBoth || o.client == clientAuto) {
						continue
					}
					key := runLabel(r) + ": " + why
					if _, seen := names[key]; !seen {
						reasons = append(reasons, key)
					}
					names[key] = append(names[key], r.Name)
					continue
				}
				runs = append(runs, r)
			}
		}
	}
	for _, k := range reasons {
		skipped = append(skipped, fmt.Sprintf("%s (%s)", k, strings.Join(names[k], ", ")))
	}
	return runs, skipped
}

// runLabel is "system/client", e.g. "asyncraft/goroutine".
func runLabel(s Spec) string { return s.System + "/" + s.Client }

// peersBinary builds the peers' member program from the module in dir
// (bench/peers) into out. Its dependencies (dragonboat, hashicorp/raft,
// raft-wal) come from the Go module proxy on the first build.
func peersBinary(dir, out string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("no peers module in %s (run from bench/, or give -peers): %w", dir, err)
	}
	path, err := filepath.Abs(filepath.Join(out, "peers-member"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", path, ".")
	cmd.Dir = dir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the peers' member in %s: %v\n%s", dir, err, strings.TrimSpace(string(msg)))
	}
	return path, nil
}

// Short names of the client models.
const (
	loadgenGoroutine = loadgen.ClientGoroutine
	loadgenCallback  = loadgen.ClientCallback
)
