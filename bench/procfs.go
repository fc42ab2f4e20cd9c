package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// pfKthread is PF_KTHREAD in the flags field of /proc/<pid>/stat.
const pfKthread = 0x00200000

// procStat is what the bench needs from /proc/<pid>/stat.
type procStat struct {
	Flags uint64
	// UTime and STime are in clock ticks, all threads included.
	UTime, STime uint64
}

// parseProcStat parses the contents of /proc/<pid>/stat. The command name
// (field 2) is in parentheses and may itself contain spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	var s procStat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, errors.New("no ')' in /proc/<pid>/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/<pid>/stat has %d fields after the name, want at least 13", len(f))
	}
	var err error
	if s.Flags, err = strconv.ParseUint(f[9-3], 10, 64); err != nil {
		return s, fmt.Errorf("flags: %w", err)
	}
	if s.UTime, err = strconv.ParseUint(f[14-3], 10, 64); err != nil {
		return s, fmt.Errorf("utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(f[15-3], 10, 64); err != nil {
		return s, fmt.Errorf("stime: %w", err)
	}
	return s, nil
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// cpuTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// parseCPUTimes reads the first ("cpu ") line of /proc/stat.
func parseCPUTimes(b []byte) (cpuTimes, error) {
	var c cpuTimes
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return c, fmt.Errorf("/proc/stat does not start with a cpu line: %q", line)
	}
	dst := []*uint64{&c.User, &c.Nice, &c.System, &c.Idle, &c.IOWait, &c.IRQ, &c.SoftIRQ, &c.Steal}
	for i, p := range dst {
		v, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return c, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
		*p = v
	}
	return c, nil
}

// parseVmHWM returns the VmHWM line of /proc/<pid>/status (peak resident
// set size) in bytes.
func parseVmHWM(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmHWM line %q is not \"<n> kB\"", sc.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmHWM line (a kernel thread, or not Linux)")
}

// parseStatusKB returns the line "<field>: <n> kB" of /proc/<pid>/status
// in bytes.
func parseStatusKB(b []byte, field string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s line %q is not \"<n> kB\"", field, sc.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line (a kernel thread, or not Linux)", field)
}

// currentRSS is the resident set size of pid now (VmRSS), in bytes.
func currentRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmRSS")
}

// resetPeakRSS resets pid's VmHWM to its current RSS (writing 5 to
// /proc/<pid>/clear_refs, Linux 4.0 and later), so that a later peakRSS
// is the peak since now.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

// cpuSample is a snapshot of CPU time: the bench's processes, the kernel
// threads, and the whole machine.
type cpuSample struct {
	At       time.Time
	Procs    map[int]uint64 // pid → utime+stime ticks
	Kthreads uint64         // all kernel threads, utime+stime ticks
	Machine  cpuTimes
}

// takeCPUSample reads /proc for pids, every kernel thread and the machine.
func takeCPUSample(pids []int) (cpuSample, error) {
	s := cpuSample{At: time.Now(), Procs: map[int]uint64{}}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	if s.Machine, err = parseCPUTimes(b); err != nil {
		return s, err
	}
	for _, pid := range pids {
		ps, err := readProcStat(pid)
		if err != nil {
			return s, fmt.Errorf("pid %d: %w", pid, err)
		}
		s.Procs[pid] = ps.UTime + ps.STime
	}
	s.Kthreads = kthreadTicks()
	return s, nil
}

// kthreadTicks sums the CPU time of every kernel thread (PF_KTHREAD):
// journal commits, loopback soft interrupts, writeback workers.
func kthreadTicks() uint64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if ps, err := parseProcStat(b); err == nil && ps.Flags&pfKthread != 0 {
			sum += ps.UTime + ps.STime
		}
	}
	return sum
}

// cpuUse is CPU use between two samples, in cores (CPU-seconds per
// second).
type cpuUse struct {
	// Procs: per pid, the bench's processes.
	Procs map[int]float64
	// Ours: the sum of Procs.
	Ours float64
	// Kernel: kernel threads plus interrupt and soft-interrupt time, which
	// the kernel does not charge to any process (loopback TCP, disk
	// completions, the ext4 journal — mostly on the bench's behalf).
	Kernel float64
	// Other: everything else that ran on the machine meanwhile.
	Other float64
	// Steal: time the hypervisor gave to other guests.
	Steal float64
	// Seconds between the samples.
	Seconds float64
}

// cpuBetween computes the CPU use from a to b.
func cpuBetween(a, b cpuSample) cpuUse {
	u := cpuUse{Procs: map[int]float64{}}
	secs := b.At.Sub(a.At).Seconds()
	if secs <= 0 {
		return u
	}
	u.Seconds = secs
	cores := func(ticks int64) float64 { return float64(ticks) / clockTicks / secs }
	d := func(x, y uint64) int64 { return int64(y) - int64(x) }
	var ours int64
	for pid, t1 := range b.Procs {
		t0, ok := a.Procs[pid]
		if !ok {
			continue
		}
		ours += d(t0, t1)
		u.Procs[pid] = cores(d(t0, t1))
	}
	u.Ours = cores(ours)
	kthreads := d(a.Kthreads, b.Kthreads)
	irq := d(a.Machine.IRQ+a.Machine.SoftIRQ, b.Machine.IRQ+b.Machine.SoftIRQ)
	u.Kernel = cores(kthreads + irq)
	// Process time (ours, the kernel threads', everyone else's) is in
	// user, nice and system; interrupt time is in irq and softirq.
	busy := d(a.Machine.User+a.Machine.Nice+a.Machine.System, b.Machine.User+b.Machine.Nice+b.Machine.System)
	u.Other = max(0, cores(busy-ours-kthreads))
	u.Steal = cores(d(a.Machine.Steal, b.Machine.Steal))
	return u
}
