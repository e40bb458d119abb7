// Package version holds the version of Latchkey's binaries, stamped at build
// time by the release scripts (hack/image.sh, hack/release.sh):
//
//	go build -ldflags "-X github.com/latchkey-dev/latchkey/internal/version.Version=v0.2.0" ./cmd
//
// Every binary prints it for --version.
package version

import "runtime/debug"

// Version is the stamped version; "dev" in a build that was not stamped.
var Version = "dev"

// Get returns the stamped version or, in a build that was not stamped, the
// module version `go install …@v0.2.0` records, or "dev".
func Get() string {
	if Version != "dev" && Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
