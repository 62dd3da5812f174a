package main

import (
	"runtime"
	"runtime/debug"

	"github.com/rpcproxy/rpcproxy/internal/membership"
)

// version and commit are stamped at build time by the Makefile and the
// Dockerfile:
//
//	-ldflags "-X main.version=$(git describe --tags --always --dirty) -X main.commit=$(git rev-parse HEAD)"
//
// A build without them (plain `go build`, `go install`) takes what the Go
// toolchain recorded instead (see init); "dev" is left when there is nothing.
var (
	version = "dev"
	commit  = ""
	// modified is true when the build info says the work tree had changes
	// (ldflags carry that in version, as git describe's "-dirty").
	modified = false
)

func init() {
	info, _ := debug.ReadBuildInfo()
	version, commit, modified = stampFromBuildInfo(version, commit, info)
}

// stampFromBuildInfo fills what ldflags left unset from the build info: the
// main module's version (a tag or pseudo-version, with Go 1.24+ VCS
// stamping or `go install module@version`) and vcs.revision/vcs.modified.
// Values given by ldflags always win.
func stampFromBuildInfo(version, commit string, info *debug.BuildInfo) (string, string, bool) {
	modified := false
	if info == nil {
		return version, commit, modified
	}
	if version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		version = info.Main.Version
	}
	if commit == "" {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	return version, commit, modified
}

// versionLine is what `rpcproxy version` prints, such as
// "rpcproxy v0.3-12-gabc1234 (commit abc1234…, go1.26.8)".
func versionLine() string {
	line := "rpcproxy " + version + " ("
	if commit != "" {
		line += "commit " + commit
		if modified {
			line += ", modified"
		}
		line += ", "
	}
	return line + runtime.Version() + ")"
}

// metaVersion is the version agents and proxies publish in their gossip
// metadata, cut to the length the metadata format allows.
func metaVersion() string {
	if len(version) > membership.MaxVersionLen {
		return version[:membership.MaxVersionLen]
	}
	return version
}
