module github.com/asyncraft/asyncraft/chaos

go 1.26

replace github.com/asyncraft/asyncraft => ../

require github.com/anishathalye/porcupine v1.3.1
