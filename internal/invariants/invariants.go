// Package invariants checks conditions that can only fail through a bug in
// asyncraft. In test builds (the invariants or race build tags) a violated
// invariant panics at once; in production builds it is counted and
// reported to the caller, which turns it into a node error rather than a
// crash.
package invariants

import (
	"fmt"
	"sync/atomic"
)

var violations atomic.Uint64

// Violations is the number of invariant violations seen by this process
// (only non-zero in production builds, where they do not panic).
func Violations() uint64 { return violations.Load() }

// Check reports a violation if cond is false: it panics when Enabled, and
// otherwise counts it and returns an error describing it (nil if cond holds).
func Check(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return Violate(format, args...)
}

// Violate reports a violation unconditionally (see Check).
func Violate(format string, args ...any) error {
	err := fmt.Errorf("asyncraft invariant violated: "+format, args...)
	if Enabled {
		panic(err)
	}
	violations.Add(1)
	return err
}
