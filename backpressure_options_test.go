package asyncraft_test

import (
	"context"
	"strings"
	"testing"

	"github.com/asyncraft/asyncraft"
)

// TestBackpressureOptionsAreValidated: a byte cap on proposals below the
// largest command the host accepts could never admit such a command, and
// is refused; the default follows a larger MaxMessageBytes; a negative
// callback bound is refused.
func TestBackpressureOptionsAreValidated(t *testing.T) {
	if _, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, MaxPendingCallbacks: -1}); err == nil || !strings.Contains(err.Error(), "MaxPendingCallbacks") {
		t.Fatalf("negative MaxPendingCallbacks: %v", err)
	}
	host, err := asyncraft.NewHost(asyncraft.HostOptions{Local: true, MaxMessageBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	peers := []asyncraft.Peer{{ID: "a", Addr: "local"}}
	o := asyncraft.NodeOptions{Group: "g", ID: "a", Peers: peers, StateMachine: &counter{}, MaxPendingBytes: 32 << 20}
	if _, err := host.StartNode(o); err == nil || !strings.Contains(err.Error(), "below the largest command") {
		t.Fatalf("MaxPendingBytes below the largest command: %v", err)
	}
	o.MaxPendingBytes, o.MaxPendingTasks = 0, 2<<20
	if _, err := host.StartNode(o); err == nil || !strings.Contains(err.Error(), "exceeds its limit") {
		t.Fatalf("MaxPendingTasks of 2 Mi: %v", err)
	}
	o.MaxPendingTasks = 0 // the defaults; MaxPendingBytes four times the largest command here
	if _, err := host.StartNode(o); err != nil {
		t.Fatalf("default MaxPendingBytes with 64 MiB messages: %v", err)
	}
}
