//go:build race

package chaos

// raceEnabled shortens the seed sweeps under the race detector, which
// slows the single-threaded simulator tenfold and finds nothing in it.
const raceEnabled = true
