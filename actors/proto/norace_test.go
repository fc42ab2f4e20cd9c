//go:build !race

package protoactor

const raceEnabled = false
