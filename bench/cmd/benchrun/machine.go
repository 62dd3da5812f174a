package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/procstat"
	"github.com/rpcproxy/rpcproxy/bench/report"
)

// machineInfo describes the machine the bench runs on.
func machineInfo(haproxy string) report.Machine {
	m := report.Machine{NProc: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemTotalMiB = kb >> 10
				}
			}
		}
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		m.NoFile = lim.Cur
	}
	if haproxy != "" {
		if out, err := exec.Command(haproxy, "-v").Output(); err == nil {
			line, _, _ := strings.Cut(string(out), "\n")
			// "HAProxy version 2.6.12-1+deb12u3 2025/… - https://haproxy.org/"
			if f := strings.Fields(line); len(f) >= 3 {
				m.HAProxyVersion = f[2]
			} else {
				m.HAProxyVersion = strings.TrimSpace(line)
			}
		}
	}
	return m
}

// cpuOf is a process's CPU time, or 0 when it cannot be read.
func cpuOf(pid int) time.Duration {
	d, err := procstat.CPU(pid)
	if err != nil {
		return 0
	}
	return d
}
