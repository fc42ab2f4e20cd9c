package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemGiB    float64 `json:"mem_gib"`
	Kernel    string  `json:"kernel"`
	GoVersion string  `json:"go_version"`
	// TmpDir holds the data directories: its mount and file system.
	TmpDir   string `json:"tmp_dir"`
	TmpMount string `json:"tmp_mount"`
	TmpFS    string `json:"tmp_fs"`
	TmpDev   string `json:"tmp_device"`
	// LoadAvg at the start, and the library's git revision.
	LoadAvg  string `json:"loadavg"`
	Revision string `json:"revision"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB, Linux %s, %s; data in %s: %s on %s (mounted at %s); load average %s; library %s",
		m.CPUs, m.CPUModel, m.MemGiB, m.Kernel, m.GoVersion, m.TmpDir, m.TmpFS, m.TmpDev, m.TmpMount, m.LoadAvg, m.Revision)
}

func readMachine(tmp string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), TmpDir: tmp}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemGiB = kb / (1 << 20)
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if real, err := filepath.EvalSymlinks(tmp); err == nil {
		if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			m.TmpMount, m.TmpFS, m.TmpDev = mountOf(b, real)
		}
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Revision = strings.TrimSpace(string(out))
	} else {
		m.Revision = "unknown"
	}
	return m
}

// mountOf finds the mount holding path in /proc/self/mountinfo: the
// longest mount point that contains it. Lines look like
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func mountOf(mountinfo []byte, path string) (point, fstype, source string) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp := unescapeMount(f[4])
		if !within(path, mp) || len(mp) < len(point) {
			continue
		}
		point, fstype, source = mp, g[0], g[1]
	}
	return point, fstype, source
}

func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
