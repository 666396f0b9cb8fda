package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/cluster-image/sealos/internal/procowner"
)

// Who owns what a hub leaves behind when it is killed.
//
// Upload sessions (repositories/<name>/_uploads/<id>) and staged blobs (.sealos-uploads)
// live only while a hub writes them; one killed mid-push leaves them for good. They are
// swept by ownership, not by age:
//
//   - the owner is a process, named "<pid>_<start>_<boot>" (start: the process's start
//     time in clock ticks since boot; boot: the first characters of the kernel's boot
//     ID), so a reused pid or a reboot never passes for the owner;
//   - a staged blob carries its owner in its name (blob-o<owner>-...); an upload session
//     in a file "owner" beside distribution's, written when a hub opens the session and
//     rewritten by any other hub that takes a request of it (replicas behind one name),
//     so the owner is the last hub that wrote to it;
//   - every writable hub holds a flock on a file of its own in .sealos-hubs for as long
//     as it lives, so a starting hub knows whether another serves the directory.
//
// A hub starting on a directory removes the sessions and staged blobs whose owner is dead
// and leaves those of live processes alone, however old. What names no owner (written by
// an older version, or a session cut between distribution creating it and the owner file
// being written, which holds no data) is removed only when no other hub is alive on the
// directory. Temporary files of distribution's writes (link.<uuid>.tmp, ...) name no
// owner; the starting hub removes them when it is alone, and every collection removes them
// (sweepTemps): it holds the write gate exclusively, so no write that could own one runs.

// stagePrefix is how staged blobs of this process are named (see stage).
func stagePrefix() string {
	if t := procowner.Tag(); t != "" {
		return "blob-o" + t + "-"
	}
	return "blob-"
}

// stagedOwner is the owner in a staged blob's name ("" for none).
func stagedOwner(name string) string {
	rest, ok := strings.CutPrefix(name, "blob-o")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, '-'); i > 0 {
		return rest[:i]
	}
	return ""
}

const (
	hubsDir          = ".sealos-hubs"
	uploadsDir       = "_uploads"
	sessionOwnerFile = "owner"
)

// hubLock is a hub's presence on its directory: a flocked file in hubsDir, at path
// (f.Name() is the name it was created with).
type hubLock struct {
	f    *os.File
	path string
}

// registerHub announces a hub on root. The file is locked before it gets its name, so
// that no starting hub ever sees it unlocked and takes it for a dead hub's.
func registerHub(root string) (*hubLock, error) {
	dir := filepath.Join(root, hubsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := procowner.Tag() + "-" + hex.EncodeToString(rnd[:])
	tmp := filepath.Join(dir, ".new-"+name)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("lock %s: %w", tmp, err)
	}
	p := filepath.Join(dir, name)
	if err := os.Rename(tmp, p); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return &hubLock{f: f, path: p}, nil
}

func (l *hubLock) close() error {
	if l == nil {
		return nil
	}
	os.Remove(l.path) // a hub that is closed is gone; its lock file with it
	return l.f.Close()
}

// otherHubsAlive tells whether a hub other than self holds its lock in root's hubsDir,
// and removes the files of dead ones.
func otherHubsAlive(root string, self *hubLock) bool {
	dir := filepath.Join(root, hubsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	alive := false
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if self != nil && p == self.path {
			continue
		}
		if strings.HasPrefix(e.Name(), ".new-") {
			// a hub between creating and naming its file (alive), or one killed there
			owner, _, _ := strings.Cut(strings.TrimPrefix(e.Name(), ".new-"), "-")
			if dead, ok := procowner.Dead(owner); ok && dead {
				os.Remove(p)
			} else {
				alive = true
			}
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			alive = true
		} else {
			os.Remove(p) // unlinked while locked: no other starter takes it for a live hub
		}
		f.Close()
	}
	return alive
}

// SweepResult is what a sweep of a dead hub's leftovers removed.
type SweepResult struct {
	Uploads int   `json:"uploads"` // upload sessions
	Staged  int   `json:"staged"`  // staged blobs
	Temps   int   `json:"temps"`   // temporary files of distribution's writes
	Bytes   int64 `json:"bytes"`
}

// sweepDead removes what dead hubs left in root (see the top of this file) and, with
// dryRun, only counts it. alone: no other hub is alive on root, so what names no owner
// is dead too. writesStopped: the caller holds the write gate exclusively (a
// collection), so no staged blob or temporary file has a live writer, whatever its name
// says; upload sessions outlive requests, and go by owner still.
func sweepDead(root string, alone, writesStopped, dryRun bool) (SweepResult, error) {
	var res SweepResult
	dead := func(owner string) bool {
		if owner == "" {
			return alone
		}
		d, ok := procowner.Dead(owner)
		if !ok {
			return alone
		}
		return d
	}
	remove := func(p string, size int64, count *int) {
		if dryRun || os.RemoveAll(p) == nil {
			*count++
			res.Bytes += size
		}
	}
	staging := filepath.Join(root, stagingDir)
	ents, err := os.ReadDir(staging)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	for _, e := range ents {
		if writesStopped || dead(stagedOwner(e.Name())) {
			if fi, err := e.Info(); err == nil {
				remove(filepath.Join(staging, e.Name()), fi.Size(), &res.Staged)
			}
		}
	}
	temps := alone || writesStopped
	repos := filepath.Join(root, filepath.FromSlash(registryRoot), "repositories")
	err = filepath.WalkDir(repos, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			switch e.Name() {
			case uploadsDir:
				sessions, err := os.ReadDir(p)
				if err != nil {
					return err
				}
				for _, s := range sessions {
					sp := filepath.Join(p, s.Name())
					owner, _ := os.ReadFile(filepath.Join(sp, sessionOwnerFile))
					if dead(strings.TrimSpace(string(owner))) {
						remove(sp, dirSize(sp), &res.Uploads)
					}
				}
				return filepath.SkipDir
			case "_layers", "_manifests":
				if !temps {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if temps && isWriteTemp(e.Name()) {
			if fi, err := e.Info(); err == nil {
				remove(p, fi.Size(), &res.Temps)
			}
		}
		return nil
	})
	return res, err
}

// writeTempRE matches the temporary names of distribution's filesystem driver
// ("<name>.<uuid>.tmp", its PutContent) and of syncingDriver.PutContent ("<name>.tmp-<hex>").
var writeTempRE = regexp.MustCompile(`(\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp|\.tmp-[0-9a-f]{8})$`)

func isWriteTemp(name string) bool { return writeTempRE.MatchString(name) }

func dirSize(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// claimSession records this process as the owner of an upload session that exists (a
// request on it is being served), unless it is already.
func claimSession(root, repo, id string) {
	if id == "" || strings.ContainsAny(id, "/.") || procowner.Tag() == "" {
		return
	}
	dir := filepath.Join(root, filepath.FromSlash(repoPath(repo)), uploadsDir, id)
	p := filepath.Join(dir, sessionOwnerFile)
	if b, err := os.ReadFile(p); err == nil && string(b) == procowner.Tag() {
		return
	}
	if _, err := os.Stat(filepath.Join(dir, "startedat")); err != nil {
		return // no such session: never create one
	}
	// not synced: after a crash the owner is dead whatever the file says
	_ = os.WriteFile(p, []byte(procowner.Tag()), 0o644)
}
