package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asyncraft/asyncraft"
)

// required are the flags every command line needs.
var required = []string{"-id", "n1", "-addr", "127.0.0.1:7001", "-http", "127.0.0.1:8001", "-data", "/tmp/x", "-peers", "n1=127.0.0.1:7001"}

func withFlags(extra ...string) []string { return append(append([]string(nil), required...), extra...) }

// -tls-cert, -tls-key and -tls-ca come together, and reach the host.
func TestTLSFlags(t *testing.T) {
	cfg, err := parseFlags(newFlagSet(), withFlags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.tls != nil || hostOptions(cfg, nil).TLS != nil {
		t.Fatalf("no -tls-* flags: TLS %+v", cfg.tls)
	}

	cfg, err = parseFlags(newFlagSet(), withFlags("-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-ca", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	want := asyncraft.TLSFiles{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
	if got := hostOptions(cfg, nil).TLS; got == nil || *got != want {
		t.Fatalf("host TLS %+v, want %+v", got, want)
	}

	for _, bad := range [][]string{
		{"-tls-cert", "c.pem"},
		{"-tls-key", "k.pem"},
		{"-tls-ca", "ca.pem"},
		{"-tls-cert", "c.pem", "-tls-key", "k.pem"},
		{"-tls-cert", "c.pem", "-tls-ca", "ca.pem"},
		{"-tls-key", "k.pem", "-tls-ca", "ca.pem"},
		{"-tls-cert", "", "-tls-key", "k.pem", "-tls-ca", "ca.pem"},
	} {
		_, err := parseFlags(newFlagSet(), withFlags(bad...))
		if err == nil || !strings.Contains(err.Error(), "go together") {
			t.Errorf("parseFlags(%q): %v, want an error saying the three go together", bad, err)
		}
	}
}

// A node whose TLS files do not load does not start, and says which file.
func TestTLSFilesMissing(t *testing.T) {
	dir := writeTestPKI(t, "kv")
	cfg, err := parseFlags(newFlagSet(), withFlags("-addr", "127.0.0.1:0",
		"-tls-cert", filepath.Join(dir, "cert.pem"), "-tls-key", filepath.Join(dir, "key.pem"), "-tls-ca", filepath.Join(dir, "nothere.pem")))
	if err != nil {
		t.Fatal(err)
	}
	cfg.data = ""
	host, _, _, err := startNode(cfg, hostOptions(cfg, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err == nil {
		host.Close(t.Context())
		t.Fatal("the node started without its CA file")
	}
	if !strings.Contains(err.Error(), "nothere.pem") {
		t.Fatalf("error %q does not name the missing file", err)
	}
}

func TestLimitAndHTTPFlags(t *testing.T) {
	cfg, err := parseFlags(newFlagSet(), withFlags())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.limits != DefaultLimits || cfg.httpOpts != DefaultHTTPOptions {
		t.Fatalf("defaults: %+v %+v", cfg.limits, cfg.httpOpts)
	}
	cfg, err = parseFlags(newFlagSet(), withFlags("-max-key-bytes", "16", "-max-value-bytes", "100", "-max-store-bytes", "5000",
		"-http-read-header-timeout", "1s", "-http-read-timeout", "2s", "-http-write-timeout", "9s", "-http-idle-timeout", "3s",
		"-http-max-header-bytes", "8192", "-http-max-conns", "7"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.limits != (Limits{MaxKeyBytes: 16, MaxValueBytes: 100, MaxStoreBytes: 5000}) {
		t.Errorf("limits %+v", cfg.limits)
	}
	if cfg.httpOpts != (HTTPOptions{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 9 * time.Second,
		IdleTimeout: 3 * time.Second, MaxHeaderBytes: 8192, MaxConns: 7}) {
		t.Errorf("HTTP options %+v", cfg.httpOpts)
	}
	for _, bad := range [][]string{
		{"-max-key-bytes", "0"},
		{"-max-key-bytes", "1025"},
		{"-max-value-bytes", "0"},
		{"-max-value-bytes", "4194304"},
		{"-max-store-bytes", "-1"},
		{"-http-write-timeout", "5s"}, // not over -timeout
		{"-http-max-conns", "0"},
		{"-http-idle-timeout", "0s"},
	} {
		if _, err := parseFlags(newFlagSet(), withFlags(bad...)); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}

// The snapshot and log flags reach the node's and the host's options; 0
// leaves the library's defaults.
func TestSnapshotFlags(t *testing.T) {
	cfg, err := parseFlags(newFlagSet(), withFlags())
	if err != nil {
		t.Fatal(err)
	}
	ho := hostOptions(cfg, nil)
	if cfg.snapshotEntries != 0 || cfg.snapshotTrailing != 0 || ho.SnapshotBytesPerSecond != 0 || ho.WALSegmentSize != 0 {
		t.Fatalf("defaults: entries %d trailing %d rate %d segment %d", cfg.snapshotEntries, cfg.snapshotTrailing, ho.SnapshotBytesPerSecond, ho.WALSegmentSize)
	}
	cfg, err = parseFlags(newFlagSet(), withFlags("-snapshot-entries", "100", "-snapshot-trailing", "20",
		"-snapshot-rate", "524288", "-wal-segment-bytes", "16384"))
	if err != nil {
		t.Fatal(err)
	}
	ho = hostOptions(cfg, nil)
	if cfg.snapshotEntries != 100 || cfg.snapshotTrailing != 20 || ho.SnapshotBytesPerSecond != 512<<10 || ho.WALSegmentSize != 16<<10 {
		t.Fatalf("entries %d trailing %d rate %d segment %d", cfg.snapshotEntries, cfg.snapshotTrailing, ho.SnapshotBytesPerSecond, ho.WALSegmentSize)
	}
	if cfg, err = parseFlags(newFlagSet(), withFlags("-rejoin-term", "7")); err != nil || cfg.rejoinTerm != 7 {
		t.Fatalf("-rejoin-term 7: %+v, %v", cfg, err)
	}
	// A negative rate means no cap, which the host accepts.
	if cfg, err = parseFlags(newFlagSet(), withFlags("-snapshot-rate", "-1")); err != nil || hostOptions(cfg, nil).SnapshotBytesPerSecond != -1 {
		t.Fatalf("-snapshot-rate -1: %+v, %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"-wal-segment-bytes", "1023"},
		{"-wal-segment-bytes", "-1"},
		{"-wal-segment-bytes", "2147483648"},
		{"-snapshot-trailing", "-1"},
	} {
		if _, err := parseFlags(newFlagSet(), withFlags(bad...)); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}
