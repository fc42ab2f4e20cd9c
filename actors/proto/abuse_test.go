package protoactor

import (
	"crypto/tls"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	_ "google.golang.org/protobuf/types/known/structpb" // ListValue
)

// TestAbuseMemory measures how much memory abusive clients can make a host
// hold: for each scenario a fresh host process is started, the clients
// run against it from this process, and the host's peak RSS (VmHWM) is
// reported against its RSS before. It sends gigabytes, so it runs only
// with ASYNCRAFT_ABUSE=1; docs/operations.md reports its numbers.
func TestAbuseMemory(t *testing.T) {
	if os.Getenv("ASYNCRAFT_ABUSE") == "" {
		t.Skip("set ASYNCRAFT_ABUSE=1 to run (heavy: sends gigabytes)")
	}
	// No ownProcess: this process runs no remote, only raw clients.
	large := batchMsg(batchOf([]string{stringValueType}, []string{"nobody"},
		env(0, 0, 0, stringValue(strings.Repeat("x", 128<<20)))))
	// Empty envelopes: two bytes each on the wire, a struct each decoded.
	var empties [][]byte
	for n := 0; n < (4<<20-64)/2; n++ {
		empties = append(empties, nil)
	}
	amplify := batchMsg(batchOf([]string{stringValueType}, []string{"nobody"}, empties...))
	// One envelope whose payload amplifies: a ListValue of empty values.
	var list []byte
	for len(list) < 4<<20-256 {
		list = protowire.AppendTag(list, 1, protowire.BytesType)
		list = protowire.AppendVarint(list, 0)
	}
	amplifyPayload := batchMsg(batchOf([]string{"google.protobuf.ListValue"}, []string{"nobody"}, env(0, 0, 0, list)))
	full := batchMsg(batchOf([]string{stringValueType}, []string{"nobody"},
		env(0, 0, 0, stringValue(strings.Repeat("y", 4<<20-128)))))

	// A host with mutual TLS, and clients with a certificate from
	// another CA: peers that never authenticate.
	good, other := writeTestPKI(t, "good"), writeTestPKI(t, "other")
	otherTLS, err := loadTestTLS(other)
	if err != nil {
		t.Fatal(err)
	}
	nonPeer := otherTLS.Client.Clone()
	nonPeer.InsecureSkipVerify = true // it tries its best: trusts any server

	scenarios := []struct {
		name    string
		clients int
		msg     []byte
		tlsDir  string      // the host's TLS files, if any
		client  *tls.Config // the clients' TLS, if any
	}{
		{"4 clients × one 128 MiB batch", 4, large, "", nil},
		{"4 clients × one 4 MiB batch of empty envelopes", 4, amplify, "", nil},
		{"4 clients × one 4 MiB ListValue of empty values", 4, amplifyPayload, "", nil},
		{"300 clients × one 4 MiB batch", 300, full, "", nil},
		{"500 clients × an idle stream", 500, nil, "", nil},
		{"100 non-peers × one 4 MiB batch, host with TLS", 100, full, good, nonPeer},
	}
	for _, sc := range scenarios {
		p := startPeer(t, "127.0.0.1:0", sc.tlsDir)
		pid := p.cmd.Process.Pid
		before, err := vmStatus(pid, "VmRSS")
		if err != nil {
			t.Fatal(err)
		}
		var wg, ready sync.WaitGroup
		errs := make([]error, sc.clients)
		conns := make([]*grpc.ClientConn, sc.clients)
		release := make(chan struct{})
		for i := range sc.clients {
			conns[i] = rawConnTLS(t, p.addr, sc.client)
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				if sc.msg == nil {
					errs[i] = rawIdle(conns[i], func(error) { ready.Done() }, release)
					return
				}
				ready.Done()
				errs[i] = rawStream(conns[i], receiveMethodName, sc.msg)
			}()
		}
		// Idle streams are held open until the host has answered (or
		// refused) each of them.
		ready.Wait()
		close(release)
		wg.Wait()
		peak, err := vmStatus(pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, err := range errs {
			if err != nil {
				refused++
			}
		}
		for _, cc := range conns {
			cc.Close()
		}
		alive := p.cmd.ProcessState == nil && p.cmd.Process.Signal(syscall.Signal(0)) == nil
		t.Logf("%s: RSS %d MiB before, peak %d MiB (+%d MiB); %d of %d clients ended with an error; host alive: %v",
			sc.name, before>>10, peak>>10, (peak-before)>>10, refused, sc.clients, alive)
		p.stop()
	}
}
