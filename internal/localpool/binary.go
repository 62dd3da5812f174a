package localpool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrBinaryNotFound is wrapped by FindBinary's error when the CLI is missing.
var ErrBinaryNotFound = errors.New("copilot CLI not found")

// defaultBinary is the CLI's executable name; installHint tells a newcomer
// how to get the version the proxy was checked against.
const (
	defaultBinary = "copilot"
	installHint   = `install it with "npm install -g @github/copilot@1.0.102" or set pool.copilot_path`
)

// FindBinary resolves the copilot CLI to an absolute executable path. A name
// with a slash is taken as a path; any other name (empty means "copilot") is
// looked up on PATH. The error is one line a newcomer can act on, and wraps
// ErrBinaryNotFound when nothing executable is there.
func FindBinary(name string) (string, error) {
	if name == "" {
		name = defaultBinary
	}
	path := name
	if !strings.ContainsRune(name, os.PathSeparator) && !strings.ContainsRune(name, '/') {
		found, err := exec.LookPath(name)
		switch {
		case errors.Is(err, exec.ErrDot):
			return "", fmt.Errorf("%w: %q is found only through a relative PATH entry (%s); set pool.copilot_path", ErrBinaryNotFound, name, found)
		case err != nil && name == defaultBinary:
			return "", fmt.Errorf("%w on PATH: %s", ErrBinaryNotFound, installHint)
		case err != nil:
			return "", fmt.Errorf("%w: %q is not on PATH: %s", ErrBinaryNotFound, name, installHint)
		}
		path = found
	} else {
		info, err := os.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("%w at %s: %s", ErrBinaryNotFound, name, installHint)
		case err != nil:
			return "", fmt.Errorf("%w: %v", ErrBinaryNotFound, err)
		case info.IsDir():
			return "", fmt.Errorf("%w: %s is a directory: %s", ErrBinaryNotFound, name, installHint)
		case info.Mode().Perm()&0o111 == 0:
			return "", fmt.Errorf("%w: %s is not executable", ErrBinaryNotFound, name)
		}
	}
	// Absolute, so that Config.Dir cannot change what a relative path means.
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("localpool: copilot CLI path %s: %w", path, err)
	}
	return abs, nil
}
