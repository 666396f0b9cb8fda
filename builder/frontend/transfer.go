package frontend

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cluster-image/sealos/builder/kubefile"
)

// OwnTransferPaths returns the sources of f's COPY instructions (from the context, one
// plain path each) that contextDir holds as a regular file or directory with no symlink on
// the way: those can be transferred alone (ConvertOptions.OwnTransfer), where a symlink
// would need the whole context to be resolved. Sources with variables or wildcards are
// left out: they are known only later.
func OwnTransferPaths(f *kubefile.File, contextDir string) map[string]bool {
	out := map[string]bool{}
	for _, st := range f.Stages {
		for _, c := range st.Commands {
			cp, ok := c.(*kubefile.CopyCommand)
			if !ok || cp.From != "" || cp.Add {
				continue
			}
			for _, s := range cp.Sources {
				if s.Heredoc != nil || isURL(s.Path) || strings.ContainsAny(s.Path, "$*?[\\") {
					continue
				}
				p := path.Clean("/" + s.Path)
				if plainPath(contextDir, p) {
					out[p] = true
				}
			}
		}
	}
	return out
}

// plainPath reports whether every component of p under dir exists and is no symlink.
func plainPath(dir, p string) bool {
	cur := dir
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return false
		}
	}
	return true
}
