// Package save pulls container images into a build context's registry/ directory, in the
// on-disk layout of docker distribution's filesystem storage (so `sealos registry serve
// filesystem <context>/registry` serves them as they were upstream, digests unchanged).
//
// Images are saved under their repository path without the registry host, as sealos
// images do (docker.io/library/nginx:1.25 -> library/nginx:1.25). Every blob goes through
// a cache shared by all builds (Options.CacheDir), so a blob is read from the network once
// and hard-linked (or reflinked, or copied) into each context. Blobs are fetched in
// parallel across all images, never recompressed, and an interrupted save resumes: verified
// blobs stay in the cache, partial downloads continue with range requests, and a tag is
// written only once everything it points at is in place.
package save

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cluster-image/sealos/builder/detect"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultJobs is how many blobs and manifests are fetched at once by default.
const DefaultJobs = 8

// Options control a save.
type Options struct {
	// RegistryDir is the distribution storage root to write (<context>/registry).
	RegistryDir string
	// CacheDir is the blob cache shared by all saves (<root>/cache). Required.
	CacheDir string
	// Platforms selects which manifests of a multi-platform index are saved (the index
	// itself is always kept byte for byte). Empty means the host platform.
	Platforms []v1.Platform
	// All keeps every manifest of an index, attestations included.
	All bool
	// Jobs is how many fetches run at once (DefaultJobs if <= 0).
	Jobs int
	// Keychain resolves registry credentials (authn.DefaultKeychain if nil).
	Keychain authn.Keychain
	// Retries is how often a failed request is tried again, the first time after
	// RetryDelay and then 3 times longer each time; 0 keeps go-containerregistry's default.
	Retries    int
	RetryDelay time.Duration
	// Transport is the base HTTP transport (remote.DefaultTransport if nil).
	Transport http.RoundTripper
	// Logger receives progress (slog.Default() if nil).
	Logger *slog.Logger
	// Detect tunes the detection Context runs (its Warn receives detection warnings).
	Detect detect.Options
}

// Saved describes one image written to the registry directory.
type Saved struct {
	Ref        string          `json:"image"`
	Repository string          `json:"repository"`
	Tag        string          `json:"tag,omitempty"`
	Digest     string          `json:"digest"`
	MediaType  string          `json:"mediaType"`
	Manifests  int             `json:"manifests"`
	Blobs      int             `json:"blobs"`
	Size       int64           `json:"size"`
	Sources    []detect.Source `json:"sources,omitempty"`
}

// Result summarizes a save.
type Result struct {
	Images []Saved `json:"images"`
	// Fetched is how many bytes came from the network; Reused how many blob bytes were
	// already in the cache or the registry directory.
	Fetched int64 `json:"fetched"`
	Reused  int64 `json:"reused"`
}

// ImageError is a failure to save one image; it names the image and the files that named it.
type ImageError struct {
	Image detect.Image
	Err   error
}

func (e *ImageError) Error() string {
	var where []string
	for _, s := range e.Image.Sources {
		where = append(where, fmt.Sprintf("%s (%s)", s.File, s.Reason))
	}
	msg := fmt.Sprintf("save image %s", e.Image.Ref)
	if len(where) > 0 {
		msg += " named in " + strings.Join(where, ", ")
	}
	return msg + ": " + e.Err.Error()
}

func (e *ImageError) Unwrap() error { return e.Err }

// CollisionError is two images that would be saved under the same repository and tag.
type CollisionError struct {
	Path string
	A, B detect.Image
}

func (e *CollisionError) Error() string {
	return fmt.Sprintf("images %s (from %s) and %s (from %s) would both be saved as %s: the registry directory keeps repositories without their registry host; list only one of them or add the other to .sealignore",
		e.A.Ref, strings.Join(e.A.Files(), ", "), e.B.Ref, strings.Join(e.B.Files(), ", "), e.Path)
}

// target is one image to save, parsed.
type target struct {
	img  detect.Image
	ref  name.Reference
	repo string // repository path in the layout
	tag  string // tag to write, or ""
	pin  string // digest the reference pins, or ""
}

// manifest is one manifest of a saved image.
type manifest struct {
	digest v1.Hash
	data   []byte
	mt     types.MediaType
}

// blob is one config or layer to fetch.
type blob struct {
	digest v1.Hash
	size   int64
	from   name.Repository
}

// plan is what one image needs: its manifests and blobs.
type plan struct {
	t         *target
	top       v1.Hash
	topMT     types.MediaType
	manifests []manifest
	blobs     []blob
}

type saver struct {
	opts     Options
	layout   Layout
	cache    Cache
	puller   *remote.Puller
	log      *slog.Logger
	mu       sync.Mutex
	rts      map[string]*rtEntry
	fetched  atomic.Int64
	reused   atomic.Int64
	progress atomic.Int64 // bytes received so far, partial blobs included
}

// progressEvery is how often a long save reports how far it got.
const progressEvery = 5 * time.Second

// reportProgress logs, every progressEvery until the returned stop is called, how much of
// want bytes have arrived.
func (s *saver) reportProgress(ctx context.Context, want int64) (stop func()) {
	if want == 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				s.log.Info("pulling images", "received_mb", s.progress.Load()>>20, "total_mb", want>>20)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

type rtEntry struct {
	once sync.Once
	rt   http.RoundTripper
	err  error
}

// Save pulls images into opts.RegistryDir (those with an Archive are read from it
// instead). All images are attempted; the error joins one
// ImageError per image that failed (images that succeeded stay saved and are reported).
func Save(ctx context.Context, images []detect.Image, opts Options) (*Result, error) {
	if opts.RegistryDir == "" {
		return nil, errors.New("save: no registry directory")
	}
	if opts.CacheDir == "" {
		return nil, errors.New("save: no cache directory")
	}
	if opts.Jobs <= 0 {
		opts.Jobs = DefaultJobs
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	if len(opts.Platforms) == 0 {
		opts.Platforms = []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}}
	}
	s := &saver{opts: opts, layout: Layout{Root: opts.RegistryDir}, rts: map[string]*rtEntry{}}
	s.cache = Cache{Dir: opts.CacheDir, Progress: &s.progress}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	var err error
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(opts.Keychain), remote.WithTransport(opts.Transport), remote.WithJobs(opts.Jobs)}
	if opts.Retries > 0 {
		ropts = append(ropts, remote.WithRetryBackoff(remote.Backoff{Duration: cmp.Or(opts.RetryDelay, time.Second), Factor: 3, Jitter: 0.1, Steps: opts.Retries + 1}))
	}
	s.puller, err = remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}
	targets, err := planTargets(images)
	if err != nil {
		return nil, err
	}
	var archived []*target
	targets, archived = splitArchived(targets)
	start := time.Now()

	// 1. Resolve every image's manifests, in parallel.
	plans := make([]*plan, len(targets))
	errs := make([]error, len(targets))
	parallel(ctx, len(targets), opts.Jobs, func(i int) {
		p, err := s.resolve(ctx, targets[i])
		if err != nil {
			errs[i] = &ImageError{Image: targets[i].img, Err: err}
			return
		}
		plans[i] = p
	})
	if err := checkTagConflicts(plans); err != nil {
		return nil, err
	}

	// 2. Fetch every distinct blob once, largest first, all images at once.
	var blobs []blob
	owners := map[v1.Hash][]int{}
	for i, p := range plans {
		if p == nil {
			continue
		}
		for _, b := range p.blobs {
			if _, ok := owners[b.digest]; !ok {
				blobs = append(blobs, b)
			}
			owners[b.digest] = append(owners[b.digest], i)
		}
	}
	sort.SliceStable(blobs, func(a, b int) bool { return blobs[a].size > blobs[b].size })
	var want int64
	for _, b := range blobs {
		if !s.layout.HasBlob(b.digest, b.size) && !s.cache.Has(b.digest, b.size) {
			want += b.size
		}
	}
	stopProgress := s.reportProgress(ctx, want)
	var mu sync.Mutex
	parallel(ctx, len(blobs), opts.Jobs, func(i int) {
		if err := s.placeBlob(ctx, blobs[i]); err != nil {
			mu.Lock()
			defer mu.Unlock()
			for _, o := range owners[blobs[i].digest] {
				if errs[o] == nil {
					errs[o] = &ImageError{Image: targets[o].img, Err: fmt.Errorf("blob %s: %w", blobs[i].digest, err)}
				}
			}
		}
	})

	stopProgress()

	// 3. Link blobs, manifests and finally tags into each repository.
	res := &Result{}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for i, p := range plans {
		if p == nil || errs[i] != nil {
			continue
		}
		if err := s.commit(p); err != nil {
			errs[i] = &ImageError{Image: targets[i].img, Err: err}
			continue
		}
		var size int64
		for _, b := range p.blobs {
			size += b.size
		}
		for _, m := range p.manifests {
			size += int64(len(m.data))
		}
		s.log.Info("saved image", "image", p.t.img.Ref, "digest", p.top.String())
		res.Images = append(res.Images, Saved{
			Ref: p.t.img.Ref, Repository: p.t.repo, Tag: p.t.tag, Digest: p.top.String(), MediaType: string(p.topMT),
			Manifests: len(p.manifests), Blobs: len(p.blobs), Size: size, Sources: p.t.img.Sources,
		})
	}
	for _, t := range archived {
		saved, err := s.saveArchive(ctx, t)
		if err != nil {
			errs = append(errs, &ImageError{Image: t.img, Err: err})
			continue
		}
		res.Images = append(res.Images, saved)
	}
	res.Fetched, res.Reused = s.fetched.Load(), s.reused.Load()
	s.log.Debug("saved images", "images", len(res.Images), "fetched", res.Fetched, "reused", res.Reused, "elapsed", time.Since(start).Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, errors.Join(errs...)
}

// planTargets parses the images and rejects two that would land on the same repository
// and tag from different registries (or with different pinned digests).
func planTargets(images []detect.Image) ([]*target, error) {
	var out []*target
	byPath := map[string]*target{}
	var errs []error
	for _, img := range images {
		ref, err := name.ParseReference(img.Ref)
		if err != nil {
			errs = append(errs, &ImageError{Image: img, Err: err})
			continue
		}
		t := &target{img: img, ref: ref, repo: ref.Context().RepositoryStr(), tag: img.Tag()}
		if d, ok := ref.(name.Digest); ok {
			t.pin = d.DigestStr()
		}
		if t.tag != "" {
			key := t.repo + ":" + t.tag
			if o, ok := byPath[key]; ok {
				if o.ref.Context().RegistryStr() != ref.Context().RegistryStr() || (o.pin != "" && t.pin != "" && o.pin != t.pin) {
					errs = append(errs, &CollisionError{Path: key, A: o.img, B: img})
					continue
				}
			} else {
				byPath[key] = t
			}
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// splitArchived separates the images read from an archive of the context from those
// pulled from their registry.
func splitArchived(all []*target) (remote, archived []*target) {
	for _, t := range all {
		if t.img.Archive != nil {
			archived = append(archived, t)
		} else {
			remote = append(remote, t)
		}
	}
	return remote, archived
}

// checkTagConflicts fails when one repository tag would point at two different manifests
// (e.g. "x:1" upstream moved away from a pinned "x:1@sha256:..").
func checkTagConflicts(plans []*plan) error {
	seen := map[string]*plan{}
	var errs []error
	for _, p := range plans {
		if p == nil || p.t.tag == "" {
			continue
		}
		key := p.t.repo + ":" + p.t.tag
		if o, ok := seen[key]; ok && o.top != p.top {
			errs = append(errs, fmt.Errorf("images %s and %s would both be saved as %s but resolve to %s and %s: pin one digest for both", o.t.img.Ref, p.t.img.Ref, key, o.top, p.top))
			continue
		}
		seen[key] = p
	}
	return errors.Join(errs...)
}

// parallel runs fn(0..n-1) on at most jobs goroutines, stopping early when ctx ends.
func parallel(ctx context.Context, n, jobs int, fn func(i int)) {
	if jobs > n {
		jobs = n
	}
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// transport returns an authenticated round tripper that may pull from repo.
func (s *saver) transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	s.mu.Lock()
	e, ok := s.rts[repo.Name()]
	if !ok {
		e = &rtEntry{}
		s.rts[repo.Name()] = e
	}
	s.mu.Unlock()
	e.once.Do(func() {
		auth, err := s.opts.Keychain.Resolve(repo)
		if err != nil {
			e.err = fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
			return
		}
		e.rt, e.err = transport.NewWithContext(ctx, repo.Registry, auth, s.opts.Transport, []string{repo.Scope(transport.PullScope)})
	})
	return e.rt, e.err
}

// resolve fetches the manifests of t (the top one, and the children the platforms select)
// and lists the blobs they need.
func (s *saver) resolve(ctx context.Context, t *target) (*plan, error) {
	p := &plan{t: t}
	var top manifest
	if t.pin != "" {
		h, err := v1.NewHash(t.pin)
		if err != nil {
			return nil, err
		}
		m, err := s.manifestByDigest(ctx, t.ref.Context(), h)
		if err != nil {
			return nil, err
		}
		top = m
	} else if h, err := remote.Head(t.ref, remote.WithContext(ctx), remote.Reuse(s.puller)); err == nil && s.cache.Has(h.Digest, h.Size) {
		// The tag still points at a manifest we have: a HEAD is enough (and, unlike a GET,
		// does not count against Docker Hub's pull limit).
		m, err := s.manifestByDigest(ctx, t.ref.Context(), h.Digest)
		if err != nil {
			return nil, err
		}
		top = m
	} else {
		d, err := remote.Get(t.ref, remote.WithContext(ctx), remote.Reuse(s.puller))
		if err != nil {
			return nil, err
		}
		top = manifest{digest: d.Digest, data: d.Manifest, mt: d.MediaType}
		if err := s.cache.Put(d.Digest, d.Manifest); err != nil {
			return nil, err
		}
	}
	p.top, p.topMT = top.digest, top.mt
	if err := s.walk(ctx, t.ref.Context(), top, p, true); err != nil {
		return nil, err
	}
	return p, nil
}

// manifestByDigest reads manifest d from the cache, or else from the registry.
func (s *saver) manifestByDigest(ctx context.Context, repo name.Repository, d v1.Hash) (manifest, error) {
	if b, err := os.ReadFile(s.cache.Path(d)); err == nil {
		if h, _, err := v1.SHA256(strings.NewReader(string(b))); err == nil && h == d {
			var probe struct {
				MediaType types.MediaType `json:"mediaType"`
			}
			var idx struct {
				Manifests json.RawMessage `json:"manifests"`
			}
			if json.Unmarshal(b, &probe) == nil && json.Unmarshal(b, &idx) == nil {
				mt := probe.MediaType
				switch {
				case mt != "":
				case idx.Manifests != nil:
					mt = types.OCIImageIndex
				default:
					mt = types.OCIManifestSchema1
				}
				return manifest{digest: d, data: b, mt: mt}, nil
			}
		}
	}
	desc, err := remote.Get(repo.Digest(d.String()), remote.WithContext(ctx), remote.Reuse(s.puller))
	if err != nil {
		return manifest{}, err
	}
	if desc.Digest != d {
		return manifest{}, fmt.Errorf("manifest %s: registry sent content with digest %s", d, desc.Digest)
	}
	if err := s.cache.Put(d, desc.Manifest); err != nil {
		return manifest{}, err
	}
	return manifest{digest: d, data: desc.Manifest, mt: desc.MediaType}, nil
}

// walk adds m and everything it references to p.
func (s *saver) walk(ctx context.Context, repo name.Repository, m manifest, p *plan, isTop bool) error {
	p.manifests = append(p.manifests, m)
	switch {
	case m.mt.IsIndex():
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(m.data)))
		if err != nil {
			return fmt.Errorf("parse index %s: %w", m.digest, err)
		}
		var chosen []v1.Descriptor
		for _, c := range idx.Manifests {
			if s.opts.All || s.wanted(c) {
				chosen = append(chosen, c)
			}
		}
		if len(chosen) == 0 {
			var have []string
			for _, c := range idx.Manifests {
				if c.Platform != nil {
					have = append(have, c.Platform.String())
				}
			}
			var want []string
			for _, w := range s.opts.Platforms {
				want = append(want, w.String())
			}
			return fmt.Errorf("no manifest for platform %s in index %s (it has %s); use --platform or --all", strings.Join(want, ","), m.digest, strings.Join(have, ", "))
		}
		for _, c := range chosen {
			if !c.MediaType.IsIndex() && !c.MediaType.IsImage() && !isManifestType(c.MediaType) {
				// An artifact blob referenced from an index: keep it as a blob.
				p.blobs = append(p.blobs, blob{digest: c.Digest, size: c.Size, from: repo})
				continue
			}
			cm, err := s.manifestByDigest(ctx, repo, c.Digest)
			if err != nil {
				return fmt.Errorf("manifest %s of index %s: %w", c.Digest, m.digest, err)
			}
			if err := s.walk(ctx, repo, cm, p, false); err != nil {
				return err
			}
		}
	case m.mt.IsSchema1():
		return fmt.Errorf("manifest %s is docker schema 1 (%s), which registries no longer serve: use a newer image", m.digest, m.mt)
	default:
		mf, err := v1.ParseManifest(strings.NewReader(string(m.data)))
		if err != nil {
			return fmt.Errorf("parse manifest %s (%s): %w", m.digest, m.mt, err)
		}
		p.blobs = append(p.blobs, blob{digest: mf.Config.Digest, size: mf.Config.Size, from: repo})
		for _, l := range mf.Layers {
			if len(l.URLs) > 0 && !l.MediaType.IsDistributable() {
				continue // foreign layer: not served by registries
			}
			p.blobs = append(p.blobs, blob{digest: l.Digest, size: l.Size, from: repo})
		}
	}
	return nil
}

func isManifestType(mt types.MediaType) bool {
	switch mt {
	case types.OCIManifestSchema1, types.DockerManifestSchema2, types.OCIImageIndex, types.DockerManifestList:
		return true
	}
	return false
}

// wanted says whether the index entry c matches one of the requested platforms.
func (s *saver) wanted(c v1.Descriptor) bool {
	if c.Platform == nil {
		return false
	}
	for _, w := range s.opts.Platforms {
		if c.Platform.Satisfies(w) {
			return true
		}
	}
	return false
}

// placeBlob makes blob b present in the registry directory, through the cache.
func (s *saver) placeBlob(ctx context.Context, b blob) error {
	if s.layout.HasBlob(b.digest, b.size) {
		s.reused.Add(b.size)
		return nil
	}
	n, err := s.cache.Fetch(ctx, s, b.from, b.digest, b.size)
	s.fetched.Add(n)
	if err != nil {
		return err
	}
	if n == 0 {
		s.reused.Add(b.size)
	}
	return placeFile(s.cache.Path(b.digest), s.layout.BlobPath(b.digest))
}

// commit links p's blobs and manifests into its repository and then writes its tag.
func (s *saver) commit(p *plan) error {
	repo := p.t.repo
	for _, b := range p.blobs {
		if !s.layout.HasBlob(b.digest, b.size) {
			return fmt.Errorf("blob %s was not saved", b.digest)
		}
		if err := writeLink(s.layout.LayerLinkPath(repo, b.digest), b.digest); err != nil {
			return err
		}
	}
	// Children before the index that names them.
	for i := len(p.manifests) - 1; i >= 0; i-- {
		m := p.manifests[i]
		if !s.layout.HasBlob(m.digest, int64(len(m.data))) {
			if err := s.cache.Put(m.digest, m.data); err != nil {
				return err
			}
			if err := placeFile(s.cache.Path(m.digest), s.layout.BlobPath(m.digest)); err != nil {
				return err
			}
		}
		if err := writeLink(s.layout.RevisionLinkPath(repo, m.digest), m.digest); err != nil {
			return err
		}
	}
	if p.t.tag != "" {
		if err := writeLink(s.layout.TagIndexPath(repo, p.t.tag, p.top), p.top); err != nil {
			return err
		}
		if err := writeLink(s.layout.TagCurrentPath(repo, p.t.tag), p.top); err != nil {
			return err
		}
	}
	return nil
}

// Context detects the images the build context dir needs (detect.Detect) and saves them
// into opts.RegistryDir, by default dir/registry. It returns the detected images too.
func Context(ctx context.Context, dir string, opts Options) ([]detect.Image, *Result, error) {
	imgs, err := detect.Detect(ctx, dir, opts.Detect)
	if err != nil {
		return nil, nil, err
	}
	if opts.RegistryDir == "" {
		opts.RegistryDir = filepath.Join(dir, "registry")
	}
	res, err := Save(ctx, imgs, opts)
	return imgs, res, err
}

// Refs lists the references of saved images as the imagespec.AnnotationImages annotation
// records them: comma separated, in order.
func (r *Result) Refs() string {
	if r == nil {
		return ""
	}
	refs := make([]string, 0, len(r.Images))
	for _, s := range r.Images {
		refs = append(refs, s.Ref)
	}
	return strings.Join(refs, ",")
}
