package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Write-back journal: blobs whose durability is checked after a crash instead of waited for.
//
// Waiting for the disk is most of the cost of a pull: fsyncing each blob before it is
// renamed into place means 64 MiB cannot be stored faster than the disk writes it (here
// ~120 ms for 64 x 1 MiB, more than the whole transfer). A writer that knows the digests
// it is about to store (a pull knows them from the manifests) calls DeferSync first: the
// digests are appended to a journal file under .sealos/unsynced, and that small file is
// fsynced; the blobs themselves are then written, verified and renamed into place with
// their data still in the page cache, which the kernel writes back within seconds.
//
// What a crash can do to them, and what the store does about it:
//   - a process crash loses nothing: the page cache holds the data;
//   - a kernel crash or power loss can leave such a blob empty, short or missing. The
//     journal file's name carries the boot ID; the first Open after a reboot finds
//     journals of an earlier boot and, before anything else uses the store, re-hashes
//     every blob they list, deletes those whose content no longer matches their digest,
//     and drops the names of images that referred to one (with a warning: pull or load
//     them again). No blob is ever trusted by its name with other content.
//   - journals of the current boot are retired once the data is certainly on disk: an
//     Open that finds one older than writebackSettle syncs the filesystem (by then there
//     is next to nothing left to write) in the background and deletes it.
//
// Without a boot ID (not Linux), DeferSync records nothing and every blob is fsynced.
const (
	unsyncedDir     = "unsynced"
	writebackSettle = 2 * time.Minute
)

// bootID identifies the running kernel's boot; a variable so tests can pretend to reboot.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// journal is a Store's own write-back journal file, created on first use.
type journal struct {
	mu       sync.Mutex
	f        *os.File
	deferred map[v1.Hash]bool
	bg       sync.WaitGroup // retiring settled journals
}

// DeferSync announces blobs this Store is about to write with WriteBlob: they are stored
// without an fsync each, protected by the write-back journal (see above). Digests not
// announced are fsynced as always.
func (s *Store) DeferSync(hs []v1.Hash) error {
	boot := bootID()
	if boot == "" || len(hs) == 0 {
		return nil
	}
	j := &s.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		dir := s.path(privateDir, unsyncedDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write-back journal: %w", err)
		}
		f, err := os.CreateTemp(dir, boot+".*")
		if err != nil {
			return fmt.Errorf("write-back journal: %w", err)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("write-back journal: %w", err)
		}
		j.f = f
		j.deferred = map[v1.Hash]bool{}
	}
	var b strings.Builder
	for _, h := range hs {
		if !j.deferred[h] && h.Algorithm == "sha256" {
			b.WriteString(h.String() + "\n")
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := j.f.WriteString(b.String()); err != nil {
		return fmt.Errorf("write-back journal: %w", err)
	}
	// the record must be on disk before any of the blobs it covers gets its name
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("write-back journal: %w", err)
	}
	for _, h := range hs {
		j.deferred[h] = true
	}
	return nil
}

func (s *Store) syncDeferred(h v1.Hash) bool {
	if h.Hex == "" {
		return false
	}
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return s.journal.deferred[h]
}

// checkWriteback runs at Open: it repairs what the journals of an earlier boot cover, and
// retires settled journals of this boot in the background.
func (s *Store) checkWriteback(ctx context.Context) error {
	ents, err := os.ReadDir(s.path(privateDir, unsyncedDir))
	if err != nil || len(ents) == 0 {
		return nil // none: the usual case
	}
	boot := bootID()
	var stale, settled []string
	for _, e := range ents {
		b, _, _ := strings.Cut(e.Name(), ".")
		switch info, err := e.Info(); {
		case err != nil:
		case b != boot:
			stale = append(stale, e.Name())
		case time.Since(info.ModTime()) > writebackSettle:
			settled = append(settled, e.Name())
		}
	}
	if len(stale) > 0 {
		if err := s.recoverWriteback(ctx); err != nil {
			return fmt.Errorf("recover after an unclean shutdown: %w", err)
		}
	}
	if len(settled) > 0 {
		s.journal.bg.Add(1)
		go func() {
			defer s.journal.bg.Done()
			s.retire(settled)
		}()
	}
	return nil
}

// retire deletes journals whose blobs the kernel has written back, after a syncfs that
// makes sure of it.
func (s *Store) retire(names []string) {
	dir := s.path(privateDir, unsyncedDir)
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return
	}
	for _, n := range names {
		_ = os.Remove(filepath.Join(dir, n))
	}
}

// recoverWriteback checks every blob that journals of an earlier boot list, holding the
// GC lock so no writer or reader runs meanwhile.
func (s *Store) recoverWriteback(ctx context.Context) error {
	l := flock.New(s.path(privateDir, gcLockFile))
	if err := lockCtx(ctx, l, true); err != nil {
		return err
	}
	defer l.Close()
	dir := s.path(privateDir, unsyncedDir)
	ents, err := os.ReadDir(dir) // again: another process may have recovered meanwhile
	if err != nil {
		return nil
	}
	boot := bootID()
	lost := map[string]bool{}
	var done []string
	for _, e := range ents {
		if b, _, _ := strings.Cut(e.Name(), "."); b == boot {
			continue
		}
		hs, err := readJournal(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		for _, h := range hs {
			ok, err := s.blobIntact(h)
			if err != nil {
				return err
			}
			if !ok {
				lost[h.Hex] = true
			}
		}
		done = append(done, e.Name())
	}
	if len(lost) > 0 {
		if err := syncDir(s.path("blobs", "sha256")); err != nil {
			return err
		}
		err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
			kept := idx.Manifests[:0]
			for _, d := range idx.Manifests {
				refs := map[string]bool{}
				s.mark(d.Digest, refs, 0)
				broken := false
				for h := range refs {
					broken = broken || lost[h]
				}
				if broken {
					slog.Warn("store: an image lost blobs in an unclean shutdown and is removed; pull or load it again",
						"image", d.Annotations[AnnotationImageName], "digest", d.Digest)
					continue
				}
				kept = append(kept, d)
			}
			changed := len(kept) != len(idx.Manifests)
			idx.Manifests = kept
			return changed, nil
		})
		if err != nil {
			return err
		}
	}
	for _, n := range done {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return syncDir(dir)
}

// blobIntact re-hashes blob h; one that is absent or has other content is reported lost
// (and deleted).
func (s *Store) blobIntact(h v1.Hash) (bool, error) {
	f, err := os.Open(s.blobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sum := sha256.New()
	_, err = io.Copy(sum, f)
	f.Close()
	if err == nil && hex.EncodeToString(sum.Sum(nil)) == h.Hex {
		return true, nil
	}
	slog.Warn("store: a blob written before an unclean shutdown is incomplete and is removed", "blob", h)
	if err := os.Remove(s.blobPath(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return false, nil
}

func readJournal(p string) ([]v1.Hash, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []v1.Hash
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// a torn last line (the crash came mid-append) names no blob that was written
		if h, err := v1.NewHash(strings.TrimSpace(sc.Text())); err == nil {
			hs = append(hs, h)
		}
	}
	return hs, sc.Err()
}
