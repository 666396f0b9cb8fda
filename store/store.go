// Package store is the local image store: one OCI image layout under <root>/store whose
// blobs are shared by every image, with names kept in index.json.
//
// Layout: every image (or multi-platform index) is a descriptor in index.json annotated
// with io.containerd.image.name (the full normalized reference, e.g.
// docker.io/library/app:v1) and org.opencontainers.image.ref.name (the tag), as
// BuildKit's client/ociindex, containerd and skopeo expect. Our own state lives in
// .sealos/ (lock files, temporary files), which OCI readers ignore.
//
// Concurrency: any number of goroutines and processes may use one store at once.
//   - index.json is only ever replaced by an atomic rename of a fully written, fsynced
//     temporary file, re-read and changed while holding two exclusive flocks:
//     .sealos/index.lock (ours, never deleted, so sealos processes always exclude each
//     other) and index.json.lock (BuildKit's lock file, so BuildKit's ociindex never
//     interleaves with us). BuildKit deletes index.json.lock after each use; we check the
//     path still names the file we locked, after locking and again just before the rename,
//     and start over if not, so no update is lost.
//   - Blobs are written to .sealos/tmp, digest-verified, fsynced and only then renamed into
//     blobs/sha256, so a crash never leaves a bad blob visible. Temporary files are
//     named for the process that writes them, and Open, rmi and GC delete those of
//     processes that are gone (tmp.go). Blobs announced with DeferSync (pulls) skip
//     the fsync; their digests are journaled first and re-checked after a reboot
//     (writeback.go), so no damaged blob is trusted by its name either.
//   - Writers hold a shared lease (.sealos/gc.lock) from their first blob to their index
//     update; garbage collection (after Remove) takes it exclusively, so it never deletes
//     the blobs of an image that is being written.
//
// Writing into Dir() from BuildKit: export with an OutputStore (containerd's local content
// store over Dir()) while holding Lease, then name the result with TagDescriptor. Letting
// BuildKit's client update index.json itself (OutputDir) works too, but its non-blocking
// lock makes the export fail while another process updates the index, and it rewrites
// index.json in place (readers retry torn reads).
//
// Readers: an Image or ImageIndex reads blobs lazily; hold a Lease while reading them for
// long (apply, save) so that a concurrent rmi cannot delete them underneath.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"github.com/gofrs/flock"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on index.json descriptors.
const (
	// AnnotationImageName holds the full normalized reference (containerd, BuildKit).
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName holds the tag (OCI image layout).
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// Errors callers branch on (use errors.Is).
var (
	// ErrNotFound: no image in the store matches the reference.
	ErrNotFound = errors.New("image not found in the local store")
	// ErrAmbiguous: an ID prefix matches more than one image.
	ErrAmbiguous = errors.New("ambiguous image reference")
	// ErrInUse: removing by ID or digest would remove several tags; use force.
	ErrInUse = errors.New("image is referenced by several tags")
)

const (
	indexFile     = "index.json"
	layoutFile    = "oci-layout"
	bkLockFile    = "index.json.lock" // BuildKit's client/ociindex lock file
	privateDir    = ".sealos"
	indexLockFile = "index.lock"
	gcLockFile    = "gc.lock"
	tmpDir        = "tmp"
	lockRetry     = 2 * time.Millisecond
)

// Store is a local image store. It is safe for concurrent use by goroutines and processes.
type Store struct {
	dir string

	cacheMu sync.Mutex
	cache   *indexCache // the last index.json read, with the stat it was read at

	journal journal // see writeback.go
}

// Open opens the store under <root>/store, creating it when it does not exist.
func Open(root string) (*Store, error) {
	return OpenDir(filepath.Join(root, "store"))
}

// OpenDir opens (or creates) a store directly in dir, which is or becomes an OCI layout.
func OpenDir(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{dir: abs}
	for _, d := range []string{s.path("blobs", "sha256"), s.path(privateDir, tmpDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	if rep := s.sweepTemps(); rep.Files > 0 {
		slog.Debug("store: removed temporary files of killed writers", "store", abs, "files", rep.Files, "bytes", rep.Bytes)
	}
	if _, err := os.Stat(s.path(layoutFile)); errors.Is(err, os.ErrNotExist) {
		if err := s.writeFileAtomic(layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	if _, err := os.Stat(s.path(indexFile)); errors.Is(err, os.ErrNotExist) {
		// Create an empty index under the locks, unless another process beat us to it.
		if err := s.updateIndex(context.Background(), func(*v1.IndexManifest) (bool, error) { return true, nil }); err != nil {
			return nil, fmt.Errorf("open store %s: %w", abs, err)
		}
	}
	if err := s.checkWriteback(context.Background()); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	return s, nil
}

// Dir is the OCI image layout directory of the store.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Store) blobPath(h v1.Hash) string {
	return s.path("blobs", h.Algorithm, h.Hex)
}

// NormalizeRef returns the full form of an image reference: registry, repository and tag
// or digest, with docker.io and :latest filled in as docker does ("app" ->
// "docker.io/library/app:latest", "localhost:5000/x" -> "localhost:5000/x:latest").
// It is the form stored in the io.containerd.image.name annotation.
func NormalizeRef(ref string) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	return refString(r), nil
}

// ParseRef parses an image reference with docker's defaults (docker.io, latest).
func ParseRef(ref string) (name.Reference, error) {
	ref = strings.TrimSpace(ref)
	// go-containerregistry's parser lets through names such as "../../x" or "a//b";
	// the distribution grammar (what registries and docker accept) does not.
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return nil, fmt.Errorf("%q is not a valid image reference: %w", bounded(ref), err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid image reference: %w", bounded(ref), err)
	}
	return r, nil
}

// refString is the normalized string of a parsed reference (docker.io, not index.docker.io).
func refString(r name.Reference) string {
	repo := repoString(r.Context())
	switch r := r.(type) {
	case name.Digest:
		return repo + "@" + r.DigestStr()
	case name.Tag:
		return repo + ":" + r.TagStr()
	}
	return r.Name()
}

func repoString(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + repo.RepositoryStr()
}

// refNameOf is the org.opencontainers.image.ref.name of a normalized reference, as
// BuildKit computes it: the tag, or "@digest".
func refNameOf(r name.Reference) string {
	switch r := r.(type) {
	case name.Tag:
		return r.TagStr()
	case name.Digest:
		return "@" + r.DigestStr()
	}
	return r.Identifier()
}

// entryName returns the normalized reference an index.json descriptor carries, or "".
func entryName(d v1.Descriptor) string {
	if n := d.Annotations[AnnotationImageName]; n != "" {
		if norm, ok := normalizeCached(n); ok {
			return norm
		}
		return n
	}
	// Layouts written by other tools may carry a full reference in ref.name alone.
	if n := d.Annotations[AnnotationRefName]; strings.ContainsAny(n, "/:@") {
		if norm, ok := normalizeCached(n); ok {
			return norm
		}
	}
	return ""
}

// normCache memoizes NormalizeRef for names read from index.json, which are read far
// more often than they change. It stops growing at normCacheMax names.
var (
	normMu    sync.RWMutex
	normCache = map[string]string{}
)

const normCacheMax = 1 << 16

func normalizeCached(n string) (string, bool) {
	normMu.RLock()
	norm, ok := normCache[n]
	normMu.RUnlock()
	if ok {
		return norm, norm != ""
	}
	norm, err := NormalizeRef(n)
	if err != nil {
		norm = ""
	}
	normMu.Lock()
	if len(normCache) < normCacheMax {
		normCache[n] = norm
	}
	normMu.Unlock()
	return norm, norm != ""
}

// readIndex reads index.json without taking the locks: we always replace it by rename, so
// a read sees a whole file. BuildKit rewrites it in place, so a torn read is retried under
// BuildKit's lock. The result is shared: callers must not modify it.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	fi, statErr := os.Stat(s.path(indexFile))
	if statErr == nil {
		s.cacheMu.Lock()
		c := s.cache
		s.cacheMu.Unlock()
		if c != nil && sameVersion(c.fi, fi) {
			return c.idx, nil
		}
	}
	idx, err := s.readIndexUncached()
	if err == nil && statErr == nil {
		// Cache only if the file did not change while we read it, and not if it changed so
		// recently that an in-place rewrite (BuildKit) could still keep its size and
		// coarse modification time (git's "racily clean" rule).
		if fi2, err := os.Stat(s.path(indexFile)); err == nil && sameVersion(fi, fi2) && time.Since(fi.ModTime()) > racyWindow {
			s.cacheMu.Lock()
			s.cache = &indexCache{fi: fi, idx: idx}
			s.cacheMu.Unlock()
		}
	}
	return idx, err
}

// sameVersion reports whether two stats of index.json are of the same content: the same
// file (we replace it by rename) with the same size and modification time (BuildKit
// rewrites it in place).
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// racyWindow is how old index.json must be before a read of it is cached.
const racyWindow = 100 * time.Millisecond

type indexCache struct {
	fi  os.FileInfo
	idx *v1.IndexManifest
}

func (s *Store) readIndexUncached() (*v1.IndexManifest, error) {
	idx, err := s.readIndexFile()
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return idx, err
	}
	var lastErr = err
	for range 50 {
		l := flock.New(s.path(bkLockFile))
		ok, lerr := l.TryRLock()
		if lerr == nil && ok {
			idx, err = s.readIndexFile()
			_ = l.Unlock()
			if err == nil {
				return idx, nil
			}
			return nil, err
		}
		time.Sleep(lockRetry)
		if idx, err = s.readIndexFile(); err == nil {
			return idx, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (s *Store) readIndexFile() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(s.path(indexFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return emptyIndex(), nil
		}
		return nil, fmt.Errorf("read %s: %w", s.path(indexFile), err)
	}
	idx := emptyIndex()
	if len(b) == 0 {
		return idx, nil
	}
	if err := json.Unmarshal(b, idx); err != nil {
		return nil, fmt.Errorf("parse %s: %w (the store index is damaged; restore it or remove the store)", s.path(indexFile), err)
	}
	return idx, nil
}

func emptyIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

// updateIndex runs fn on the current index under the index locks and, when fn reports a
// change, replaces index.json atomically. fn may run more than once (on a freshly read
// index each time), so it must not have effects outside idx.
func (s *Store) updateIndex(ctx context.Context, fn func(idx *v1.IndexManifest) (changed bool, err error)) error {
	for range maxLockAttempts {
		done, err := s.tryUpdateIndex(ctx, fn)
		if done || err != nil {
			return err
		}
		slog.Debug("store: index.json.lock was replaced while we held it; retrying", "store", s.dir)
	}
	return fmt.Errorf("update %s: %s keeps being replaced by another program; is something deleting it in a loop?", s.path(indexFile), bkLockFile)
}

// maxLockAttempts bounds the retries when BuildKit's lock file is replaced under us.
const maxLockAttempts = 10000

// tryUpdateIndex is one attempt of updateIndex; done is false when the attempt must be
// repeated because BuildKit's lock file was replaced under us.
func (s *Store) tryUpdateIndex(ctx context.Context, fn func(idx *v1.IndexManifest) (bool, error)) (done bool, err error) {
	unlock, bk, err := s.lockIndex(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	idx, err := s.readIndexFile()
	if err != nil {
		return false, err
	}
	changed, err := fn(idx)
	if err != nil || !changed {
		return true, err
	}
	if idx.SchemaVersion == 0 {
		idx.SchemaVersion = 2
	}
	if idx.MediaType == "" {
		idx.MediaType = types.OCIImageIndex
	}
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return false, err
	}
	tmp, err := s.writeTemp(indexFile, b)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	// BuildKit's ociindex deletes index.json.lock after unlocking it. If it did so while
	// we held the lock, another BuildKit writer may now hold a new lock file and be
	// updating index.json: do not overwrite it, start again under the new lock.
	if !stillLocked(bk) {
		return false, nil
	}
	if err := os.Rename(tmp, s.path(indexFile)); err != nil {
		return false, fmt.Errorf("write %s: %w", s.path(indexFile), err)
	}
	return true, syncDir(s.dir)
}

// stillLocked reports whether the lock file's path still names the file l holds locked.
func stillLocked(l *flock.Flock) bool {
	held, err1 := l.Stat()
	onDisk, err2 := os.Stat(l.Path())
	return err1 == nil && err2 == nil && os.SameFile(held, onDisk)
}

// lockIndex takes our index lock and then BuildKit's, returning the function that
// releases both and BuildKit's lock.
func (s *Store) lockIndex(ctx context.Context) (func(), *flock.Flock, error) {
	own := flock.New(s.path(privateDir, indexLockFile))
	if err := lockCtx(ctx, own, true); err != nil {
		return nil, nil, fmt.Errorf("lock store index: %w", err)
	}
	bk, err := s.lockBuildKit(ctx)
	if err != nil {
		_ = own.Close()
		return nil, nil, err
	}
	return func() {
		_ = bk.Close()
		_ = own.Close()
	}, bk, nil
}

// lockBuildKit takes index.json.lock exclusively. BuildKit deletes that file after each
// use, so a lock on a file that has since been unlinked or replaced protects nothing:
// after locking we check the path still names the locked file, and retry if not. We
// never delete it ourselves.
func (s *Store) lockBuildKit(ctx context.Context) (*flock.Flock, error) {
	p := s.path(bkLockFile)
	for range maxLockAttempts {
		l := flock.New(p, flock.SetPermissions(0o644))
		if err := lockCtx(ctx, l, true); err != nil {
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if stillLocked(l) {
			return l, nil
		}
		_ = l.Close()
	}
	return nil, fmt.Errorf("lock %s: the file keeps being replaced by another program", p)
}

// lockCtx takes l (exclusive or shared), waiting until ctx is done.
func lockCtx(ctx context.Context, l *flock.Flock, exclusive bool) error {
	try := l.TryRLock
	if exclusive {
		try = l.TryLock
	}
	ok, err := try()
	if err == nil && ok {
		return nil
	}
	if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
		return err
	}
	if exclusive {
		ok, err = l.TryLockContext(ctx, lockRetry)
	} else {
		ok, err = l.TryRLockContext(ctx, lockRetry)
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("could not lock %s", l.Path())
	}
	return nil
}

// Lease holds off garbage collection until release is called: blobs written into the
// store while a lease is held are not deleted before they are referenced from index.json.
// Hold one while writing into Dir() by other means (a BuildKit OCI export) or while
// reading an image's blobs for a long time.
func (s *Store) Lease(ctx context.Context) (release func(), err error) {
	l := flock.New(s.path(privateDir, gcLockFile))
	if err := lockCtx(ctx, l, false); err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	return func() { _ = l.Unlock(); _ = l.Close() }, nil
}

// writeFileAtomic writes rel (relative to the store) through a fsynced temporary file
// and a rename, then fsyncs the directory.
func (s *Store) writeFileAtomic(rel string, data []byte) error {
	tmp, err := s.writeTemp(rel, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	target := s.path(rel)
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	return syncDir(filepath.Dir(target))
}

// writeTemp writes data to a fsynced temporary file beside rel and returns its path.
func (s *Store) writeTemp(rel string, data []byte) (string, error) {
	target := s.path(rel)
	f, err := createOwnedTemp(filepath.Dir(target), "."+filepath.Base(rel)+".tmp")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("write %s: %w", target, err)
	}
	return tmp, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
