package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// ParseMicro reads `go test -bench -benchmem` output and returns its
// benchmark lines; other lines are ignored. Names lose their -GOMAXPROCS
// suffix and keep their package's last element as a prefix when a "pkg:"
// line precedes them ("frame.BenchmarkScan40KiB").
func ParseMicro(r io.Reader) ([]Micro, error) {
	var out []Micro
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = rest[strings.LastIndexByte(rest, '/')+1:]
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		if pkg != "" {
			name = pkg + "." + name
		}
		m := Micro{Name: name}
		ok := false
		// After the iteration count come value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			switch f[i+1] {
			case "ns/op":
				m.NsPerOp, ok = v, true
			case "MB/s":
				m.MBPerSec = v
			case "B/op":
				m.BytesPerOp = v
			case "allocs/op":
				m.AllocsPerOp = v
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}
