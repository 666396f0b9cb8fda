package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// GCOptions tune a garbage collection.
type GCOptions struct {
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// DeleteUntagged also deletes manifests that no tag reaches (directly, as a child of a
	// tagged index, or as a referrer of a kept manifest).
	DeleteUntagged bool
	// KeepRecent keeps unreferenced blobs written less than this long ago: a client may
	// have pushed them and not yet pushed the manifest that refers to them.
	KeepRecent time.Duration
	// PurgeUploads deletes upload sessions started longer ago than this (cut or
	// abandoned pushes); 0 keeps them (the hub itself purges them after a week). The
	// sessions of killed hubs, and their staged blobs and temporary files, go anyway,
	// whatever their age (owner.go).
	PurgeUploads time.Duration
	// Log, when set, gets one line per deletion (or would-be deletion).
	Log io.Writer
}

// GCResult is what a collection found and did.
type GCResult struct {
	Repositories     int             `json:"repositories"`
	MarkedBlobs      int             `json:"markedBlobs"`
	DeletedBlobs     []digest.Digest `json:"deletedBlobs"`
	DeletedManifests []string        `json:"deletedManifests"` // repo@digest
	KeptRecent       int             `json:"keptRecent"`
	PurgedUploads    int             `json:"purgedUploads"`
	RemovedTemps     int             `json:"removedTemps"` // staged blobs and temporary files of killed writers
	FreedBytes       int64           `json:"freedBytes"`
	DryRun           bool            `json:"dryRun"`
}

// CollectGarbage deletes the blobs (and, with DeleteUntagged, manifests) that nothing in
// the registry stored under dir refers to. It is safe while hubs serve dir: it waits for
// their writes in flight, blocks new writes while it runs, and makes them drop their
// caches afterwards.
func CollectGarbage(ctx context.Context, dir string, opts GCOptions) (GCResult, error) {
	if _, err := os.Stat(filepath.Join(dir, "docker", "registry", "v2")); err != nil {
		if _, lerr := os.Stat(filepath.Join(dir, lockFile)); lerr == nil {
			return GCResult{DryRun: opts.DryRun, DeletedBlobs: []digest.Digest{}, DeletedManifests: []string{}}, nil // a hub that never stored anything
		}
		return GCResult{}, fmt.Errorf("gc %s: not a registry storage directory (no docker/registry/v2): %w", dir, err)
	}
	lock, err := lockForGC(ctx, dir)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc %s: %w", dir, err)
	}
	d := &syncingDriver{StorageDriver: filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100}), root: dir}
	res, err := collect(ctx, d, opts)
	changed := !opts.DryRun && (len(res.DeletedBlobs) > 0 || len(res.DeletedManifests) > 0 || res.PurgedUploads > 0 || res.RemovedTemps > 0)
	if uerr := lock.unlock(dir, changed); uerr != nil && err == nil {
		err = uerr
	}
	if err != nil {
		return res, fmt.Errorf("gc %s: %w", dir, err)
	}
	return res, nil
}

// CollectGarbage collects the hub's own storage while it serves (see the package-level
// CollectGarbage); the only way to collect an in-memory hub.
func (s *Server) CollectGarbage(ctx context.Context, opts GCOptions) (GCResult, error) {
	if s.cfg.ReadOnly && !opts.DryRun {
		return GCResult{}, errors.New("gc: the hub is read-only")
	}
	s.inproc.Lock() // new writes wait; writes in flight finish first
	defer s.inproc.Unlock()
	var lock *gcLock
	if s.gate != nil {
		var err error
		if lock, err = lockForGC(ctx, s.cfg.RootDirectory); err != nil {
			return GCResult{}, fmt.Errorf("gc: %w", err)
		}
	}
	res, err := collect(ctx, s.driver, opts)
	changed := !opts.DryRun && (len(res.DeletedBlobs) > 0 || len(res.DeletedManifests) > 0)
	if lock != nil {
		if uerr := lock.unlock(s.cfg.RootDirectory, changed); uerr != nil && err == nil {
			err = uerr
		}
	}
	if changed {
		// a fresh App: its blob descriptor cache knows nothing of deleted blobs.
		// (writes wait on inproc until the App is stored with its generation)
		if app, aerr := s.newApp(); aerr == nil {
			s.mu.Lock()
			s.app.Store(app)
			if !s.cfg.InMemory {
				s.gen = readGeneration(s.cfg.RootDirectory)
			}
			s.mu.Unlock()
		}
	}
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	return res, nil
}

// refs are the descriptors a manifest or index points at.
type refs struct {
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
	Subject   *v1.Descriptor  `json:"subject"`
}

func collect(ctx context.Context, d storagedriver.StorageDriver, opts GCOptions) (GCResult, error) {
	res := GCResult{DryRun: opts.DryRun, DeletedBlobs: []digest.Digest{}, DeletedManifests: []string{}}
	logf := func(format string, a ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", a...)
		}
	}
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return res, err
	}
	enum, ok := reg.(distribution.RepositoryEnumerator)
	if !ok {
		return res, errors.New("registry cannot enumerate repositories")
	}
	vacuum := storage.NewVacuum(ctx, d)
	marked := map[digest.Digest]bool{}
	layerLinks := map[string][]digest.Digest{}
	repoAliases := map[string]map[digest.Digest]digest.Digest{} // blob aliases

	err = enum.Enumerate(ctx, func(repoName string) error {
		res.Repositories++
		named, err := reference.WithName(repoName)
		if err != nil {
			return fmt.Errorf("repository %s: %w", repoName, err)
		}
		repo, err := reg.Repository(ctx, named)
		if err != nil {
			return fmt.Errorf("repository %s: %w", repoName, err)
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			return err
		}
		menum, ok := ms.(distribution.ManifestEnumerator)
		if !ok {
			return errors.New("manifest service cannot enumerate")
		}
		manifests := map[digest.Digest]refs{}
		err = menum.Enumerate(ctx, func(dg digest.Digest) error {
			// the stored bytes, read directly: the manifest service costs several times
			// as many file operations, and a collection runs with writes stopped
			payload, err := d.GetContent(ctx, blobData(dg))
			if err != nil || digest.FromBytes(payload) != dg {
				m, err := ms.Get(ctx, dg) // an alias, or content that is not what it is named
				if err != nil {
					return fmt.Errorf("%s@%s: %w", repoName, dg, err)
				}
				if _, payload, err = m.Payload(); err != nil {
					return err
				}
			}
			var r refs
			_ = json.Unmarshal(payload, &r)
			manifests[dg] = r
			return nil
		})
		if err != nil && !isNotFound(err) {
			return err
		}

		// manifests and blobs named by other digests than their sha256 (digests.go)
		blobAliases, err := listAliases(ctx, d, repoName, layersDir)
		if err != nil {
			return err
		}
		manifestAliases, err := listAliases(ctx, d, repoName, revisionsDir)
		if err != nil {
			return err
		}
		repoAliases[repoName] = blobAliases
		keep := map[digest.Digest]bool{}
		if opts.DeleteUntagged {
			keep, err = reachable(ctx, d, repo, repoName, manifests, manifestAliases)
			if err != nil {
				return err
			}
		} else {
			for dg := range manifests {
				keep[dg] = true
			}
		}
		mark := func(dg digest.Digest) {
			marked[dg] = true
			if c, ok := blobAliases[dg]; ok {
				marked[c] = true
			}
			if c, ok := manifestAliases[dg]; ok {
				marked[c] = true
			}
		}
		for dg, r := range manifests {
			if !keep[dg] {
				continue
			}
			mark(dg)
			if r.Config != nil {
				mark(r.Config.Digest)
			}
			for _, l := range r.Layers {
				mark(l.Digest)
			}
			for _, c := range r.Manifests {
				mark(c.Digest)
			}
		}
		// untagged manifests to delete
		var drop []digest.Digest
		for dg := range manifests {
			if !keep[dg] && !marked[dg] {
				drop = append(drop, dg)
			}
		}
		sort.Slice(drop, func(i, j int) bool { return drop[i] < drop[j] })
		if len(drop) > 0 {
			allTags, err := repo.Tags(ctx).All(ctx)
			if err != nil {
				var unknown distribution.ErrRepositoryUnknown
				if !errors.As(err, &unknown) && !isNotFound(err) {
					return err
				}
			}
			for _, dg := range drop {
				logf("delete manifest %s@%s", repoName, dg)
				res.DeletedManifests = append(res.DeletedManifests, repoName+"@"+dg.String())
				if opts.DryRun {
					continue
				}
				if err := vacuum.RemoveManifest(repoName, dg, allTags); err != nil {
					return fmt.Errorf("delete manifest %s@%s: %w", repoName, dg, err)
				}
				if err := removeAliases(ctx, d, repoName, revisionsDir, manifestAliases, dg); err != nil {
					return fmt.Errorf("delete manifest %s@%s: %w", repoName, dg, err)
				}
				if s := manifests[dg].Subject; s != nil && s.Digest.Validate() == nil {
					if err := d.Delete(ctx, referrerFile(repoName, s.Digest, dg)); err != nil && !isNotFound(err) {
						return err
					}
				}
			}
		}
		// layer links, checked against the final mark set after the walk
		lenum, ok := repo.Blobs(ctx).(distribution.ManifestEnumerator)
		if !ok {
			return errors.New("blob service cannot enumerate")
		}
		err = lenum.Enumerate(ctx, func(dg digest.Digest) error {
			layerLinks[repoName] = append(layerLinks[repoName], dg)
			return nil
		})
		if err != nil && !isNotFound(err) {
			return err
		}
		return nil
	})
	if err != nil && !isNotFound(err) { // not found: an empty registry
		return res, fmt.Errorf("mark: %w", err)
	}
	res.MarkedBlobs = len(marked)

	now := time.Now()
	if opts.PurgeUploads > 0 {
		// distribution reports a registry without repositories as an error (not one that
		// unwraps to PathNotFoundError): nothing to purge there
		if _, err := d.Stat(ctx, path.Join(registryRoot, "repositories")); err == nil {
			purged, errs := storage.PurgeUploads(ctx, d, now.Add(-opts.PurgeUploads), !opts.DryRun)
			if err := errors.Join(errs...); err != nil {
				return res, fmt.Errorf("purge uploads: %w", err)
			}
			for _, p := range purged {
				logf("delete upload %s", p)
			}
			res.PurgedUploads = len(purged)
		}
	}

	if sd, ok := d.(*syncingDriver); ok {
		// leftovers of killed writers: the gate held exclusively, no writer is alive
		swept, err := sweepDead(sd.root, false, true, opts.DryRun)
		if err != nil {
			return res, fmt.Errorf("sweep leftovers of killed hubs: %w", err)
		}
		res.PurgedUploads += swept.Uploads
		res.RemovedTemps = swept.Staged + swept.Temps
		res.FreedBytes += swept.Bytes
		if swept != (SweepResult{}) {
			logf("removed leftovers of killed hubs: %d upload sessions, %d staged blobs, %d temporary files", swept.Uploads, swept.Staged, swept.Temps)
		}
	}

	var sweep []digest.Digest
	err = reg.Blobs().Enumerate(ctx, func(dg digest.Digest) error {
		if marked[dg] {
			return nil
		}
		sweep = append(sweep, dg)
		return nil
	})
	if err != nil && !isNotFound(err) {
		return res, fmt.Errorf("sweep: %w", err)
	}
	sort.Slice(sweep, func(i, j int) bool { return sweep[i] < sweep[j] })
	deleted := map[digest.Digest]bool{}
	for _, dg := range sweep {
		fi, err := d.Stat(ctx, blobData(dg))
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return res, err
		}
		if opts.KeepRecent > 0 && now.Sub(fi.ModTime()) < opts.KeepRecent {
			res.KeptRecent++
			continue
		}
		logf("delete blob %s (%d bytes)", dg, fi.Size())
		res.DeletedBlobs = append(res.DeletedBlobs, dg)
		res.FreedBytes += fi.Size()
		deleted[dg] = true
		if opts.DryRun {
			continue
		}
		if err := vacuum.RemoveBlob(dg.String()); err != nil {
			return res, fmt.Errorf("delete blob %s: %w", dg, err)
		}
	}
	if opts.DryRun {
		return res, nil
	}
	for repoName, links := range layerLinks {
		for _, dg := range links {
			if !deleted[dg] {
				continue
			}
			if err := vacuum.RemoveLayer(repoName, dg); err != nil && !isNotFound(err) {
				return res, fmt.Errorf("delete layer link %s@%s: %w", repoName, dg, err)
			}
			if err := removeAliases(ctx, d, repoName, layersDir, repoAliases[repoName], dg); err != nil {
				return res, fmt.Errorf("delete layer link %s@%s: %w", repoName, dg, err)
			}
		}
	}
	return res, nil
}

// removeAliases deletes the links under a repository's dir (layersDir or revisionsDir)
// of the aliases that name c.
func removeAliases(ctx context.Context, d storagedriver.StorageDriver, repoName, dir string, aliases map[digest.Digest]digest.Digest, c digest.Digest) error {
	for a, t := range aliases {
		if t != c {
			continue
		}
		if err := d.Delete(ctx, path.Join(repoPath(repoName), dir, a.Algorithm().String(), a.Encoded())); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

// reachable is the set of manifests of a repository that its tags reach: the tagged
// ones, children of reachable indexes, and referrers of reachable manifests.
func reachable(ctx context.Context, d storagedriver.StorageDriver, repo distribution.Repository, repoName string, manifests map[digest.Digest]refs, aliases map[digest.Digest]digest.Digest) (map[digest.Digest]bool, error) {
	keep := map[digest.Digest]bool{}
	tags, err := repo.Tags(ctx).All(ctx)
	if err != nil {
		var unknown distribution.ErrRepositoryUnknown
		if !errors.As(err, &unknown) && !isNotFound(err) {
			return nil, err
		}
	}
	var queue []digest.Digest
	for _, t := range tags {
		desc, err := repo.Tags(ctx).Get(ctx, t)
		if err != nil {
			continue
		}
		queue = append(queue, desc.Digest)
	}
	for len(queue) > 0 {
		dg := queue[0]
		queue = queue[1:]
		if keep[dg] {
			continue
		}
		keep[dg] = true
		if c, ok := aliases[dg]; ok { // a child or referrer named by an alias
			queue = append(queue, c)
		}
		for _, c := range manifests[dg].Manifests {
			queue = append(queue, c.Digest)
		}
		descs, err := listReferrers(ctx, d, repoName, dg)
		if err != nil {
			return nil, err
		}
		for _, r := range descs {
			queue = append(queue, r.Digest)
		}
	}
	return keep, nil
}
