package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// RemoveOptions tune RemoveImages.
type RemoveOptions struct {
	// Force removes every name of an image given by ID or digest; without it such a
	// removal fails with ErrInUse when the image has several names (like docker rmi).
	Force bool
	// NoPrune keeps the blobs no image refers to any more.
	NoPrune bool
}

// RemoveReport says what RemoveImages did.
type RemoveReport struct {
	// Untagged lists the names removed.
	Untagged []string `json:"untagged"`
	// Deleted lists the manifests and indexes no name refers to any more.
	Deleted []v1.Hash `json:"deleted"`
	// GC is what garbage collection freed.
	GC GCReport `json:"gc"`
}

// GCReport says what GC removed. Bytes counts only what left the disk: a blob the build
// engine's cache also holds (the two share the file by hard link) is removed from the
// store, but its bytes stay until the build cache lets go of it too; those are Held.
type GCReport struct {
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	Held  int64 `json:"held,omitempty"`
}

// Remove removes the images refs name and then the blobs no image refers to any more.
// A name removes just that name (the image stays while other names refer to it); an ID or
// digest removes the image, failing with ErrInUse if it has several names.
func (s *Store) Remove(ctx context.Context, refs ...string) error {
	_, err := s.RemoveImages(ctx, RemoveOptions{}, refs...)
	return err
}

// RemoveImages is Remove with options and a report. It goes on after a reference fails
// and returns every error joined.
func (s *Store) RemoveImages(ctx context.Context, opts RemoveOptions, refs ...string) (RemoveReport, error) {
	var rep RemoveReport
	var errs []error
	for _, ref := range refs {
		var untagged []string
		var deleted []v1.Hash
		err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
			untagged, deleted = nil, nil
			m, err := s.match(idx, ref)
			if err != nil {
				return false, err
			}
			drop := map[int]bool{}
			switch {
			case m.byName:
				drop[m.named] = true
			case len(m.entries) == 0:
				return false, fmt.Errorf("%s is part of an image index; remove the index instead", m.desc.Digest)
			default:
				var names []string
				for _, i := range m.entries {
					if n := entryName(idx.Manifests[i]); n != "" {
						names = append(names, DisplayName(n))
					}
				}
				if len(names) > 1 && !opts.Force {
					sort.Strings(names)
					return false, fmt.Errorf("%w: image %s is named %s; remove the names one by one, or all at once with force (sealos rmi --force)",
						ErrInUse, shortHex(m.desc.Digest), strings.Join(names, ", "))
				}
				for _, i := range m.entries {
					drop[i] = true
				}
			}
			keep := idx.Manifests[:0]
			var gone []v1.Descriptor
			for i, d := range idx.Manifests {
				if drop[i] {
					gone = append(gone, d)
				} else {
					keep = append(keep, d)
				}
			}
			idx.Manifests = keep
			for _, d := range gone {
				if n := entryName(d); n != "" {
					untagged = append(untagged, n)
				}
				if len(sameDigest(idx, d.Digest)) == 0 && !containsHash(deleted, d.Digest) && !containsHash(rep.Deleted, d.Digest) {
					deleted = append(deleted, d.Digest)
				}
			}
			return true, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("remove: %w", err))
			continue
		}
		rep.Untagged = append(rep.Untagged, untagged...)
		rep.Deleted = append(rep.Deleted, deleted...)
	}
	if len(rep.Deleted) > 0 && !opts.NoPrune {
		gc, err := s.GC(ctx)
		rep.GC = gc
		if err != nil {
			errs = append(errs, err)
		}
	} else {
		s.sweepTemps() // leftovers of killed writers (GC does it too)
	}
	return rep, errors.Join(errs...)
}

func containsHash(hs []v1.Hash, h v1.Hash) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

func shortHex(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Hex[:12]
	}
	return h.Hex
}

// maxManifestSize bounds the blobs GC reads as manifests.
const maxManifestSize = 8 << 20

// tmpMaxAge is how old a temporary file without an owner in its name (written by an older
// version) must be before it is deleted as the leftover of a crashed writer.
const tmpMaxAge = time.Hour

// GC deletes every blob no image in index.json refers to, waiting for writers holding a
// Lease to finish first.
func (s *Store) GC(ctx context.Context) (GCReport, error) {
	var rep GCReport
	l := flock.New(s.path(privateDir, gcLockFile))
	if ok, err := l.TryLock(); err != nil || !ok {
		slog.Info("waiting for other sealos processes (builds, pulls, loads) to finish writing to the store before deleting unused blobs", "store", s.dir)
		if err := lockCtx(ctx, l, true); err != nil {
			return rep, fmt.Errorf("gc: %w", err)
		}
	}
	defer l.Close()
	idx, err := s.readIndex()
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	keep := map[string]bool{}
	for _, d := range idx.Manifests {
		s.mark(d.Digest, keep, 0)
	}
	dir := s.path("blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return rep, fmt.Errorf("gc: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if keep[n] || !e.Type().IsRegular() || !hexLike(n) || len(n) != 64 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("gc: %w", err)
		}
		rep.Blobs++
		if linkCount(info) > 1 {
			rep.Held += info.Size()
		} else {
			rep.Bytes += info.Size()
		}
	}
	if rep.Blobs > 0 {
		_ = syncDir(dir)
	}
	s.sweepTemps() // leftovers of killed writers
	return rep, nil
}

// mark adds h and every blob it refers to (config, layers, child manifests) to keep.
// Blobs that are not JSON manifests, or missing, end the walk there.
func (s *Store) mark(h v1.Hash, keep map[string]bool, depth int) {
	if keep[h.Hex] || depth > 16 {
		return
	}
	keep[h.Hex] = true
	if fi, err := os.Stat(s.blobPath(h)); err != nil || fi.Size() > maxManifestSize {
		return
	}
	b, err := os.ReadFile(s.blobPath(h))
	if err != nil || len(b) == 0 || b[0] != '{' {
		return
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
		Blobs     []v1.Descriptor `json:"blobs"`
	}
	if json.Unmarshal(b, &m) != nil {
		return
	}
	if m.Config != nil {
		keep[m.Config.Digest.Hex] = true
	}
	for _, l := range append(m.Layers, m.Blobs...) {
		keep[l.Digest.Hex] = true
	}
	for _, c := range m.Manifests {
		s.mark(c.Digest, keep, depth+1)
	}
}

// linkCount is how many names the file has (1 when unknown).
func linkCount(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
