module github.com/asyncraft/asyncraft/chaos

go 1.26

replace github.com/asyncraft/asyncraft => ../

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/asyncraft/asyncraft v0.0.0-00010101000000-000000000000
)
