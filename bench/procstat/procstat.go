// Package procstat reads what the bench measures of a process from Linux's
// /proc: CPU time (user + system, all threads) and resident memory (current
// and peak).
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which
// Linux fixes at 100 for user space whatever the kernel's tick.
const userHZ = 100

// ErrFormat reports a /proc file that did not read as expected.
var ErrFormat = errors.New("procstat: unexpected /proc format")

// CPU returns the user plus system CPU time the process has used, over all
// its threads, to 10 ms.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	return parseStat(b)
}

// parseStat reads utime and stime (fields 14 and 15) from a stat line. The
// command name (field 2) is in parentheses and may hold spaces, so fields
// are counted from the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: no ')' in stat", ErrFormat)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state): utime is field 14, stime field 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("%w: %d fields in stat", ErrFormat, len(fields)+2)
	}
	utime, err1 := strconv.ParseUint(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseUint(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: utime %q stime %q", ErrFormat, fields[11], fields[12])
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// Memory is a process's resident set.
type Memory struct {
	// RSS is the resident set now (VmRSS), in bytes.
	RSS int64
	// Peak is the largest resident set so far (VmHWM), in bytes.
	Peak int64
}

// ReadMemory returns the process's VmRSS and VmHWM.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, fmt.Errorf("procstat: %w", err)
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	var haveRSS, havePeak bool
	for line := range bytes.Lines(b) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst, haveRSS = &m.RSS, true
		case "VmHWM":
			dst, havePeak = &m.Peak, true
		default:
			continue
		}
		f := bytes.Fields(value)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Memory{}, fmt.Errorf("%w: %s", ErrFormat, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("%w: %s", ErrFormat, bytes.TrimSpace(line))
		}
		*dst = kb << 10
	}
	if !haveRSS || !havePeak {
		return Memory{}, fmt.Errorf("%w: no VmRSS/VmHWM in status", ErrFormat)
	}
	return m, nil
}

// MachineCPU is the machine's CPU time so far, summed over all CPUs, from
// the first line of /proc/stat.
type MachineCPU struct {
	Busy, Idle time.Duration
}

// ReadMachineCPU reads /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, fmt.Errorf("procstat: %w", err)
	}
	return parseMachineStat(b)
}

func parseMachineStat(b []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return MachineCPU{}, fmt.Errorf("%w: /proc/stat starts %q", ErrFormat, line)
	}
	var m MachineCPU
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("%w: /proc/stat field %q", ErrFormat, v)
		}
		d := time.Duration(n) * time.Second / userHZ
		switch i {
		case 3, 4: // idle, iowait
			m.Idle += d
		case 8, 9: // guest, guest_nice: already counted in user and nice
		default:
			m.Busy += d
		}
	}
	return m, nil
}

// Utilization is the busy share of the machine's CPU time between two
// readings, from 0 to 1.
func Utilization(before, after MachineCPU) float64 {
	busy, idle := after.Busy-before.Busy, after.Idle-before.Idle
	if busy+idle <= 0 {
		return 0
	}
	return float64(busy) / float64(busy+idle)
}

// IO is a process's system-call I/O so far, from /proc/<pid>/io: every
// read and write call, sockets included.
type IO struct {
	// ReadCalls and WriteCalls count read- and write-family system calls.
	ReadCalls, WriteCalls uint64
	// ReadBytes and WriteBytes are the bytes they moved.
	ReadBytes, WriteBytes uint64
}

// ReadIO reads /proc/<pid>/io (the bench runs as the processes' owner).
func ReadIO(pid int) (IO, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return IO{}, fmt.Errorf("procstat: %w", err)
	}
	return parseIO(b)
}

func parseIO(b []byte) (IO, error) {
	var io IO
	seen := 0
	for line := range bytes.Lines(b) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(name) {
		case "syscr":
			dst = &io.ReadCalls
		case "syscw":
			dst = &io.WriteCalls
		case "rchar":
			dst = &io.ReadBytes
		case "wchar":
			dst = &io.WriteBytes
		default:
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil {
			return IO{}, fmt.Errorf("%w: %s", ErrFormat, bytes.TrimSpace(line))
		}
		*dst = n
		seen++
	}
	if seen != 4 {
		return IO{}, fmt.Errorf("%w: io has %d of rchar/wchar/syscr/syscw", ErrFormat, seen)
	}
	return io, nil
}

// Sockets counts the process's open socket descriptors (links to
// "socket:[inode]" in /proc/<pid>/fd): its listener plus its connections.
func Sockets(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed since the listing
		}
		if isSocketLink(target) {
			n++
		}
	}
	return n, nil
}

func isSocketLink(target string) bool {
	return len(target) > len("socket:[") && target[:len("socket:[")] == "socket:["
}
