//go:build !invariants && !race

package invariants

// Enabled reports whether invariant violations panic (test builds).
const Enabled = false
