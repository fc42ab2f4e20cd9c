package chaos

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// procAttr makes a node process die with the test binary, should the
// test itself be killed before its cleanups run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// routeBySource: on Linux a proxy.Front can tell which node opened a
// connection (socketOwner), so every node reaches node j at one address
// and the cuts stay one-way (see newCluster).
const routeBySource = true

// socketOwner returns the index in pids of the process that holds the
// other end of c, a TCP connection accepted on 127.0.0.1, or -1: the
// kernel's table of IPv4 sockets (/proc/net/tcp) gives the inode of the
// socket whose local address is c's remote one and whose remote address is
// c's local one; the process whose file descriptors include that socket
// opened c.
func socketOwner(c net.Conn, pids []int) int {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1
	}
	inode, ok := socketInode(procAddr(remote), procAddr(local))
	if !ok {
		return -1
	}
	want := "socket:[" + inode + "]"
	for i, pid := range pids {
		if pid <= 0 {
			continue
		}
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(dir + "/" + fd.Name()); err == nil && link == want {
				return i
			}
		}
	}
	return -1
}

// procAddr writes an IPv4 address as /proc/net/tcp does: the address as a
// 32-bit word in host byte order, and the port, both in hexadecimal.
func procAddr(a *net.TCPAddr) string {
	ip := a.IP.To4()
	if ip == nil {
		return ""
	}
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip), a.Port)
}

// socketInode returns the inode of the IPv4 TCP socket from local to
// remote.
func socketInode(local, remote string) (string, bool) {
	if local == "" || remote == "" {
		return "", false
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) >= 10 && fields[1] == local && fields[2] == remote && fields[9] != "0" {
			return fields[9], true
		}
	}
	return "", false
}

// socketOwner finds the process that opened a connection: this one, among
// pids that do not exist or do not hold it.
func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	self := os.Getpid()
	if i := socketOwner(s, []int{0, 1 << 30, self}); i != 2 {
		t.Fatalf("socketOwner = %d, want 2 (this process)", i)
	}
	if i := socketOwner(s, []int{1 << 30}); i != -1 {
		t.Fatalf("socketOwner among processes that do not hold it = %d, want -1", i)
	}
	// The accepted end is this process's too, but it is not the one that
	// opened the connection: from c's side, the owner of s's peer (the
	// listener's accepted socket) is found the same way.
	if i := socketOwner(c, []int{self}); i != 0 {
		t.Fatalf("socketOwner of the dialled end = %d, want 0", i)
	}
}
