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
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
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
	// OthersReadOnly vouches that no other hub writes to the remote storage collected,
	// where the replicas have no Redis through which collection could tell (replicas.go).
	OthersReadOnly bool
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

// CollectGarbageStorage collects the storage a distribution configuration names: a
// filesystem one as CollectGarbage(dir) does, a remote one (s3) only while no other hub
// writes to it: the replicas' Redis must list no writable replica (serve them
// --read-only, or stop them), or, without Redis, opts.OthersReadOnly must vouch for it.
// Afterwards the Redis blob descriptor cache is dropped, so no replica answers from it
// for a deleted blob.
func CollectGarbageStorage(ctx context.Context, dc *configuration.Configuration, opts GCOptions) (GCResult, error) {
	cfg := Config{Distribution: dc}
	remote, err := storageFromConfig(&cfg)
	switch {
	case err != nil:
		return GCResult{}, fmt.Errorf("gc: %w", err)
	case cfg.RootDirectory != "":
		return CollectGarbage(ctx, cfg.RootDirectory, opts)
	case remote == "":
		return GCResult{}, errors.New("gc: the configuration's storage is not a directory or a bucket (an in-memory hub is collected through itself)")
	}
	rdb, err := redisClient(dc)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: %w", err)
	}
	if rdb != nil {
		defer rdb.Close()
	}
	if !opts.DryRun {
		if err := othersQuiet(ctx, rdb, "", opts); err != nil {
			return GCResult{}, fmt.Errorf("gc: %w", err)
		}
	}
	d, err := remoteDriver(ctx, dc.Storage)
	if err != nil {
		return GCResult{}, fmt.Errorf("gc: %w", err)
	}
	configureLogging(logrus.ErrorLevel) // distribution's purger logs at info
	res, err := collect(ctx, d, opts)
	changed := !opts.DryRun && (len(res.DeletedBlobs) > 0 || len(res.DeletedManifests) > 0)
	if changed && rdb != nil {
		if ferr := forgetDescriptors(ctx, rdb); ferr != nil && err == nil {
			err = fmt.Errorf("blobs deleted, but their descriptors are still cached in Redis (flush it): %w", ferr)
		}
	}
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	return res, nil
}

// othersQuiet refuses a collection of shared storage while another replica may write
// to it (self is this hub's own writer ID, if it is one).
func othersQuiet(ctx context.Context, rdb redis.UniversalClient, self string, opts GCOptions) error {
	if rdb == nil {
		if opts.OthersReadOnly {
			return nil
		}
		return errors.New("the storage is shared by replicas, and without their Redis nothing tells whether one writes: " +
			"serve every other replica --read-only (or stop them), then collect with --others-read-only")
	}
	writers, err := liveWriters(ctx, rdb)
	if err != nil {
		return fmt.Errorf("redis: which replicas write: %w", err)
	}
	var others []string
	for _, w := range writers {
		if w != self {
			others = append(others, w)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%d other replica(s) serve this storage writable (%s): restart them with --read-only (or stop them) and collect again; "+
			"a collection racing their pushes could delete blobs a manifest is about to name", len(others), strings.Join(others, ", "))
	}
	return nil
}

// CollectGarbage collects the hub's own storage while it serves (see the package-level
// CollectGarbage); the only way to collect an in-memory hub.
func (s *Server) CollectGarbage(ctx context.Context, opts GCOptions) (GCResult, error) {
	if s.cfg.ReadOnly && !opts.DryRun {
		return GCResult{}, errors.New("gc: the hub is read-only")
	}
	if s.remote != "" && !opts.DryRun {
		if err := othersQuiet(ctx, s.rdb, s.writerID, opts); err != nil {
			return GCResult{}, fmt.Errorf("gc: %w", err)
		}
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
	if changed && s.rdb != nil {
		if ferr := forgetDescriptors(ctx, s.rdb); ferr != nil && err == nil {
			err = fmt.Errorf("blobs deleted, but their descriptors are still cached in Redis (flush it): %w", ferr)
		}
	}
	if changed {
		// a fresh App: its blob descriptor cache knows nothing of deleted blobs.
		// (writes wait on inproc until the App is stored with its generation)
		if app, aerr := s.newApp(); aerr == nil {
			s.mu.Lock()
			s.app.Store(app)
			if s.cfg.RootDirectory != "" {
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

// collector is one collection: what its mark phase found, and what it did.
type collector struct {
	ctx    context.Context
	d      storagedriver.StorageDriver
	opts   GCOptions
	reg    distribution.Namespace
	vacuum storage.Vacuum
	res    GCResult

	marked      map[digest.Digest]bool                     // blobs and manifests in use
	layerLinks  map[string][]digest.Digest                 // repository -> its layer links
	repoAliases map[string]map[digest.Digest]digest.Digest // repository -> blob aliases
}

// collect marks what the manifests of every repository use (deleting untagged manifests
// with DeleteUntagged), purges stale uploads and leftovers, then deletes unmarked blobs
// and the links to them. The caller holds the write gate exclusively.
func collect(ctx context.Context, d storagedriver.StorageDriver, opts GCOptions) (GCResult, error) {
	c := &collector{ctx: ctx, d: d, opts: opts,
		res:    GCResult{DryRun: opts.DryRun, DeletedBlobs: []digest.Digest{}, DeletedManifests: []string{}},
		marked: map[digest.Digest]bool{}, layerLinks: map[string][]digest.Digest{}, repoAliases: map[string]map[digest.Digest]digest.Digest{},
	}
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return c.res, err
	}
	enum, ok := reg.(distribution.RepositoryEnumerator)
	if !ok {
		return c.res, errors.New("registry cannot enumerate repositories")
	}
	c.reg, c.vacuum = reg, storage.NewVacuum(ctx, d)
	if err := enum.Enumerate(ctx, c.markRepository); err != nil && !isNotFound(err) { // not found: an empty registry
		return c.res, fmt.Errorf("mark: %w", err)
	}
	c.res.MarkedBlobs = len(c.marked)
	now := time.Now()
	if err := c.purgeUploads(now); err != nil {
		return c.res, err
	}
	if err := c.sweepLeftovers(); err != nil {
		return c.res, err
	}
	deleted, err := c.sweepBlobs(now)
	if err != nil || c.opts.DryRun {
		return c.res, err
	}
	return c.res, c.removeLayerLinks(deleted)
}

func (c *collector) logf(format string, a ...any) {
	if c.opts.Log != nil {
		fmt.Fprintf(c.opts.Log, format+"\n", a...)
	}
}

// markRepository marks what the kept manifests of a repository use, deletes the others
// (DeleteUntagged) and lists its layer links for removeLayerLinks.
func (c *collector) markRepository(repoName string) error {
	c.res.Repositories++
	named, err := reference.WithName(repoName)
	if err != nil {
		return fmt.Errorf("repository %s: %w", repoName, err)
	}
	repo, err := c.reg.Repository(c.ctx, named)
	if err != nil {
		return fmt.Errorf("repository %s: %w", repoName, err)
	}
	manifests, err := c.readManifests(repo, repoName)
	if err != nil {
		return err
	}
	// manifests and blobs named by other digests than their sha256 (digests.go)
	blobAliases, err := listAliases(c.ctx, c.d, repoName, layersDir)
	if err != nil {
		return err
	}
	manifestAliases, err := listAliases(c.ctx, c.d, repoName, revisionsDir)
	if err != nil {
		return err
	}
	c.repoAliases[repoName] = blobAliases
	keep := map[digest.Digest]bool{}
	if c.opts.DeleteUntagged {
		if keep, err = reachable(c.ctx, c.d, repo, repoName, manifests, manifestAliases); err != nil {
			return err
		}
	} else {
		for dg := range manifests {
			keep[dg] = true
		}
	}
	mark := func(dg digest.Digest) {
		c.marked[dg] = true
		if a, ok := blobAliases[dg]; ok {
			c.marked[a] = true
		}
		if a, ok := manifestAliases[dg]; ok {
			c.marked[a] = true
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
		for _, m := range r.Manifests {
			mark(m.Digest)
		}
	}
	var drop []digest.Digest
	for dg := range manifests {
		if !keep[dg] && !c.marked[dg] {
			drop = append(drop, dg)
		}
	}
	if err := c.dropManifests(repo, repoName, drop, manifests, manifestAliases); err != nil {
		return err
	}
	// layer links, checked against the final mark set after the walk
	lenum, ok := repo.Blobs(c.ctx).(distribution.ManifestEnumerator)
	if !ok {
		return errors.New("blob service cannot enumerate")
	}
	err = lenum.Enumerate(c.ctx, func(dg digest.Digest) error {
		c.layerLinks[repoName] = append(c.layerLinks[repoName], dg)
		return nil
	})
	if err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// readManifests reads what every manifest of a repository refers to.
func (c *collector) readManifests(repo distribution.Repository, repoName string) (map[digest.Digest]refs, error) {
	ms, err := repo.Manifests(c.ctx)
	if err != nil {
		return nil, err
	}
	menum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return nil, errors.New("manifest service cannot enumerate")
	}
	manifests := map[digest.Digest]refs{}
	err = menum.Enumerate(c.ctx, func(dg digest.Digest) error {
		// the stored bytes, read directly: the manifest service costs several times as
		// many file operations, and a collection runs with writes stopped
		payload, err := c.d.GetContent(c.ctx, blobData(dg))
		if err != nil || digest.FromBytes(payload) != dg {
			m, err := ms.Get(c.ctx, dg) // an alias, or content that is not what it is named
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
		return nil, err
	}
	return manifests, nil
}

// dropManifests deletes manifests of a repository (untagged ones), with their tags'
// index entries, aliases and referrer links.
func (c *collector) dropManifests(repo distribution.Repository, repoName string, drop []digest.Digest, manifests map[digest.Digest]refs, aliases map[digest.Digest]digest.Digest) error {
	if len(drop) == 0 {
		return nil
	}
	sort.Slice(drop, func(i, j int) bool { return drop[i] < drop[j] })
	allTags, err := repo.Tags(c.ctx).All(c.ctx)
	if err != nil {
		var unknown distribution.ErrRepositoryUnknown
		if !errors.As(err, &unknown) && !isNotFound(err) {
			return err
		}
	}
	for _, dg := range drop {
		c.logf("delete manifest %s@%s", repoName, dg)
		c.res.DeletedManifests = append(c.res.DeletedManifests, repoName+"@"+dg.String())
		if c.opts.DryRun {
			continue
		}
		if err := c.vacuum.RemoveManifest(repoName, dg, allTags); err != nil {
			return fmt.Errorf("delete manifest %s@%s: %w", repoName, dg, err)
		}
		if err := removeAliases(c.ctx, c.d, repoName, revisionsDir, aliases, dg); err != nil {
			return fmt.Errorf("delete manifest %s@%s: %w", repoName, dg, err)
		}
		if s := manifests[dg].Subject; s != nil && s.Digest.Validate() == nil {
			if err := c.d.Delete(c.ctx, referrerFile(repoName, s.Digest, dg)); err != nil && !isNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// purgeUploads deletes upload sessions started before PurgeUploads.
func (c *collector) purgeUploads(now time.Time) error {
	if c.opts.PurgeUploads <= 0 {
		return nil
	}
	// distribution reports a registry without repositories as an error (not one that
	// unwraps to PathNotFoundError): nothing to purge there
	if _, err := c.d.Stat(c.ctx, path.Join(registryRoot, "repositories")); err != nil {
		return nil
	}
	purged, errs := storage.PurgeUploads(c.ctx, c.d, now.Add(-c.opts.PurgeUploads), !c.opts.DryRun)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("purge uploads: %w", err)
	}
	for _, p := range purged {
		c.logf("delete upload %s", p)
	}
	c.res.PurgedUploads = len(purged)
	return nil
}

// sweepLeftovers removes what killed writers left on a directory (owner.go): with the
// gate held exclusively, no writer is alive.
func (c *collector) sweepLeftovers() error {
	sd, ok := c.d.(*syncingDriver)
	if !ok {
		return nil
	}
	swept, err := sweepDead(sd.root, false, true, c.opts.DryRun)
	if err != nil {
		return fmt.Errorf("sweep leftovers of killed hubs: %w", err)
	}
	c.res.PurgedUploads += swept.Uploads
	c.res.RemovedTemps = swept.Staged + swept.Temps
	c.res.FreedBytes += swept.Bytes
	if swept != (SweepResult{}) {
		c.logf("removed leftovers of killed hubs: %d upload sessions, %d staged blobs, %d temporary files", swept.Uploads, swept.Staged, swept.Temps)
	}
	return nil
}

// sweepBlobs deletes the blobs nothing marked, but those written after now-KeepRecent,
// and returns them.
func (c *collector) sweepBlobs(now time.Time) (map[digest.Digest]bool, error) {
	var sweep []digest.Digest
	err := c.reg.Blobs().Enumerate(c.ctx, func(dg digest.Digest) error {
		if !c.marked[dg] {
			sweep = append(sweep, dg)
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	sort.Slice(sweep, func(i, j int) bool { return sweep[i] < sweep[j] })
	deleted := map[digest.Digest]bool{}
	for _, dg := range sweep {
		fi, err := c.d.Stat(c.ctx, blobData(dg))
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, err
		}
		if c.opts.KeepRecent > 0 && now.Sub(fi.ModTime()) < c.opts.KeepRecent {
			c.res.KeptRecent++
			continue
		}
		c.logf("delete blob %s (%d bytes)", dg, fi.Size())
		c.res.DeletedBlobs = append(c.res.DeletedBlobs, dg)
		c.res.FreedBytes += fi.Size()
		deleted[dg] = true
		if c.opts.DryRun {
			continue
		}
		if err := c.vacuum.RemoveBlob(dg.String()); err != nil {
			return nil, fmt.Errorf("delete blob %s: %w", dg, err)
		}
	}
	return deleted, nil
}

// removeLayerLinks deletes the repositories' links to deleted blobs, aliases included.
func (c *collector) removeLayerLinks(deleted map[digest.Digest]bool) error {
	for repoName, links := range c.layerLinks {
		for _, dg := range links {
			if !deleted[dg] {
				continue
			}
			if err := c.vacuum.RemoveLayer(repoName, dg); err != nil && !isNotFound(err) {
				return fmt.Errorf("delete layer link %s@%s: %w", repoName, dg, err)
			}
			if err := removeAliases(c.ctx, c.d, repoName, layersDir, c.repoAliases[repoName], dg); err != nil {
				return fmt.Errorf("delete layer link %s@%s: %w", repoName, dg, err)
			}
		}
	}
	return nil
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
