// Package testseed gives randomized tests a seed that is printed and can be
// replayed: by default a fresh seed per run, or the one in the
// ASYNCRAFT_SEED environment variable.
package testseed

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// Env is the environment variable that fixes the seed of randomized tests.
const Env = "ASYNCRAFT_SEED"

// For returns the seed for the running test and logs how to replay it. The
// log line is printed with the test's output when it fails (and with -v).
func For(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(Env); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", Env, s, err)
		}
		seed = v
	}
	t.Logf("seed=%d (replay: %s=%d go test -run '^%s$')", seed, Env, seed, t.Name())
	return seed
}
