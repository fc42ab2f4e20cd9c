package main

import (
	"testing"

	"github.com/asyncraft/asyncraft/internal/testpki"
)

// writeTestPKI writes a CA and a certificate it signed: see testpki.Write.
func writeTestPKI(t *testing.T, name string) string { return testpki.Write(t, name) }
