package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ParseSizes reads a comma-separated list of event sizes in bytes, as the
// bench commands' --event-sizes flags take it.
func ParseSizes(s string) ([]int, error) {
	var out []int
	nonzero := false
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		nonzero = nonzero || n > 0
		out = append(out, n)
	}
	if !nonzero {
		return nil, errors.New("event sizes: give at least one non-zero size")
	}
	return out, nil
}

// FormatSizes writes sizes as ParseSizes reads them.
func FormatSizes(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}
