// Package platform parses the os/arch[/variant] strings users give to --platform, and
// refuses what no image can be built or pulled for, instead of matching nothing later.
package platform

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The operating systems and architectures Go targets (`go tool dist list`): the set OCI
// images use.
var (
	knownOS   = []string{"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"}
	knownArch = []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x", "wasm"}
)

// Parse reads os/arch[/variant] (or arch alone, for this machine's OS), normalised as
// containerd does (x86_64 is amd64, aarch64 is arm64, ...); an unknown OS or
// architecture is an error that lists the known ones.
func Parse(s string) (v1.Platform, error) {
	p, err := platforms.Parse(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/amd64", s)
	}
	if !slices.Contains(knownOS, p.OS) {
		return v1.Platform{}, fmt.Errorf("platform %q: unknown operating system %q (known: %s)", s, p.OS, strings.Join(knownOS, ", "))
	}
	if !slices.Contains(knownArch, p.Architecture) {
		return v1.Platform{}, fmt.Errorf("platform %q: unknown architecture %q (known: %s)", s, p.Architecture, strings.Join(knownArch, ", "))
	}
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}, nil
}
