//go:build race

package protoactor

const raceEnabled = true
