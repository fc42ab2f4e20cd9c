package protoactor

import (
	"path/filepath"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testpki"
)

// writeTestPKI writes a CA and a certificate it signed: see testpki.Write.
func writeTestPKI(t *testing.T, name string) string { return testpki.Write(t, name) }

func loadTestTLS(dir string) (*TLS, error) {
	return LoadTLS(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem"))
}

func TestLoadTLSErrors(t *testing.T) {
	dir := writeTestPKI(t, "x")
	if _, err := LoadTLS(filepath.Join(dir, "missing.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")); err == nil {
		t.Fatal("missing certificate accepted")
	}
	if _, err := LoadTLS(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.pem")); err == nil {
		t.Fatal("a key accepted as CA")
	}
}
