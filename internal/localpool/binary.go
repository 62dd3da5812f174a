package localpool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
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

// FindBinary resolves the copilot CLI to an executable path. A name with a
// slash is taken as a path; any other name (empty means "copilot") is looked
// up on PATH. The error is one line a newcomer can act on, and wraps
// ErrBinaryNotFound when nothing executable is there.
func FindBinary(name string) (string, error) {
	if name == "" {
		name = defaultBinary
	}
	if !strings.ContainsRune(name, os.PathSeparator) && !strings.ContainsRune(name, '/') {
		path, err := exec.LookPath(name)
		if err != nil {
			if name == defaultBinary {
				return "", fmt.Errorf("%w on PATH: %s", ErrBinaryNotFound, installHint)
			}
			return "", fmt.Errorf("%w: %q is not on PATH: %s", ErrBinaryNotFound, name, installHint)
		}
		return path, nil
	}
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
	return name, nil
}
