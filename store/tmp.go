package store

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cluster-image/sealos/internal/procowner"
)

// Temporary files and their owners.
//
// Every temporary file the store writes (blobs being stored under .sealos/tmp, a load's
// spool, the new index.json beside the old one) is named for the process that writes it:
// "<kind>-o<pid>_<start>_<boot>-<random>", where start is the process's start time in
// clock ticks since boot and boot the first characters of the kernel's boot ID, so a
// reused pid or a reboot never passes for the owner. The writer also holds a flock on the
// file while it writes it, which covers writers whose pid we cannot see (another pid
// namespace sharing the store).
//
// sweepTemps runs at Open, rmi and GC: it removes a temporary file when its owner is dead
// (no process with that pid and start time on this boot) and nobody holds its lock. Age
// plays no part, except for files without an owner in their name (left by older
// versions), which go after tmpMaxAge as before.

// ownerRE finds the owner in a temporary file's name.
var ownerRE = regexp.MustCompile(`-o(` + procowner.Pattern + `)-`)

// createOwnedTemp creates a temporary file in dir named for this process, and locks it;
// the lock goes with the file's descriptor when it is closed.
func createOwnedTemp(dir, kind string) (*os.File, error) {
	pattern := kind + "-*"
	if tag := procowner.Tag(); tag != "" {
		pattern = kind + "-o" + tag + "-*"
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) // best effort: the name says who owns it
	return f, nil
}

// ownerDead reports whether the temporary file named n belongs to a process that is gone.
// A name without an owner reports ok == false; where this machine cannot tell, the file
// is kept.
func ownerDead(n string) (dead, ok bool) {
	m := ownerRE.FindStringSubmatch(n)
	if m == nil {
		return false, false
	}
	dead, ok = procowner.Dead(m[1])
	return dead && ok, true
}

// SweepReport says what a sweep of temporary files removed.
type SweepReport struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// sweepTemps removes the temporary files of dead writers (see above) from .sealos/tmp and
// the store's own directory.
func (s *Store) sweepTemps() SweepReport {
	var rep SweepReport
	sweep := func(dir string, isTemp func(string) bool) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range ents {
			n := e.Name()
			if !isTemp(n) {
				continue
			}
			dead, owned := ownerDead(n)
			if !owned {
				// no owner in the name: written by an older version
				info, err := e.Info()
				dead = err == nil && time.Since(info.ModTime()) > tmpMaxAge
			}
			if !dead {
				continue
			}
			if size, ok := removeUnlocked(filepath.Join(dir, n)); ok {
				rep.Files++
				rep.Bytes += size
			}
		}
	}
	sweep(s.path(privateDir, tmpDir), func(string) bool { return true })
	sweep(s.dir, func(n string) bool { return strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") })
	return rep
}

// removeUnlocked removes p unless a process holds its lock, and returns its size.
func removeUnlocked(p string) (int64, bool) {
	f, err := os.Open(p)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil && !errors.Is(err, unix.ENOLCK) {
		return 0, false // its writer is alive after all
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, false
	}
	if fi.IsDir() {
		return 0, os.RemoveAll(p) == nil // a directory left by an older version
	}
	if os.Remove(p) != nil {
		return 0, false
	}
	return fi.Size(), true
}
