// Package buildinfo carries the version stamped into Drover's binaries at
// link time (-ldflags "-X github.com/drover-ml/drover/shared/buildinfo.Version=...").
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; "dev" for unstamped builds.
var Version = "dev"

// String returns a one-line description: "drover-agent dev (abc1234, go1.26.8 linux/amd64)".
func String(program string) string {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				rev = s.Value[:7]
			}
		}
	}
	return fmt.Sprintf("%s %s (%s, %s %s/%s)", program, Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
