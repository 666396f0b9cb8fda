package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// SyncOptions says what Sync and Copy move. Transport, credentials, TLS, retries, blob
// parallelism (WithJobs), the platform (WithPlatform) and progress come from the Options.
type SyncOptions struct {
	// Repos keeps only source repositories whose whole name matches one of these regular
	// expressions (empty: every repository of the catalog).
	Repos []string
	// Tags keeps only tags matching this regular expression (unanchored; empty: all).
	Tags string
	// All copies every manifest of an index. Otherwise an index is copied as it is (so its
	// digest is kept) with only the child of the selected platform (WithPlatform, default
	// the host); a registry that refuses such an index gets the platform's image instead.
	All bool
	// NoReferrers leaves referrers (signatures, SBOMs, attestations) behind.
	NoReferrers bool
	// ImageJobs is how many images (repository:tag) move at once; default 8. Blobs are
	// bounded separately by WithJobs across all images.
	ImageJobs int
	// OnImage, when set, is called as each image finishes (from several goroutines).
	OnImage func(ImageResult)
}

// Image statuses.
const (
	StatusCopied  = "copied"
	StatusSkipped = "skipped" // the destination already had the same digest
	StatusFailed  = "failed"
)

// ImageResult is what happened to one image (a tag, or a digest for Copy by digest).
type ImageResult struct {
	Source       string `json:"source"`
	Destination  string `json:"destination"`
	Digest       string `json:"digest,omitempty"`
	Status       string `json:"status"`
	Error        string `json:"error,omitempty"`
	Manifests    int    `json:"manifests"`
	Referrers    int    `json:"referrers"`
	Blobs        int    `json:"blobs"`        // blobs sent or mounted
	BlobsSkipped int    `json:"blobsSkipped"` // blobs the destination had
	Bytes        int64  `json:"bytes"`        // bytes sent
}

// SyncReport sums up a Sync or Copy. Err is non-nil when any image failed.
type SyncReport struct {
	Source       string        `json:"source"`
	Destination  string        `json:"destination"`
	Images       []ImageResult `json:"images"`
	Copied       int           `json:"copied"`
	Skipped      int           `json:"skipped"`
	Failed       int           `json:"failed"`
	Blobs        int           `json:"blobs"`
	BlobsSkipped int           `json:"blobsSkipped"`
	Bytes        int64         `json:"bytes"`
	// Requests sent to each side; DestinationHeads of them HEADs on the destination.
	SourceRequests      int64         `json:"sourceRequests"`
	DestinationRequests int64         `json:"destinationRequests"`
	DestinationHeads    int64         `json:"destinationHeads"`
	Duration            time.Duration `json:"durationNs"`
}

// Err returns an error naming the failed images, or nil.
func (r *SyncReport) Err() error {
	if r.Failed == 0 {
		return nil
	}
	var names []string
	for _, im := range r.Images {
		if im.Status == StatusFailed {
			names = append(names, im.Source)
		}
	}
	return fmt.Errorf("%d of %d images failed: %s", r.Failed, len(r.Images), strings.Join(names, ", "))
}

// Location is a registry and an optional repository path in it, as sync takes them:
// "host[:port][/path]".
type Location struct {
	Registry name.Registry
	Path     string
}

// ParseLocation parses "host[:port][/path]". A bare name without a dot, colon or
// "localhost" is not taken as a host: Docker Hub's "library/x" style needs "docker.io/".
func ParseLocation(s string, opts ...Option) (Location, error) {
	o := makeOptions(opts...)
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), "/")
	host, p, _ := strings.Cut(s, "/")
	if host == "" || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return Location{}, fmt.Errorf("%q: want a registry host[:port], optionally followed by /repository", s)
	}
	reg, err := name.NewRegistry(host, o.nameOptions()...)
	if err != nil {
		return Location{}, fmt.Errorf("%q: %w", s, err)
	}
	if p != "" {
		if _, err := name.NewRepository(reg.RegistryStr()+"/"+p, o.nameOptions()...); err != nil {
			return Location{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	return Location{Registry: reg, Path: p}, nil
}

func (l Location) String() string {
	if l.Path == "" {
		return l.Registry.RegistryStr()
	}
	return l.Registry.RegistryStr() + "/" + l.Path
}

// Sync copies repositories from src to dst ("host[:port][/path]"). Registry to registry:
// src without a path means every repository of its catalog (filtered by Repos), and each
// source repository R lands at dst's path joined with R ("dst.example/mirror" +
// "library/nginx" = "dst.example/mirror/library/nginx"). Repository to repository: src
// with a path names one repository, copied to dst's path (or to the same name, when dst
// is a bare registry). Every tag (filtered by Tags) is
// copied with its manifests as raw bytes (digests unchanged), the blobs they need, and
// their referrers. A tag the destination already holds with the same digest costs one HEAD
// there; blobs the destination has are not sent again, so an interrupted sync resumes.
// Per-image failures are in the report (see SyncReport.Err); the error is for failures
// that stop the whole sync (unreachable registry, catalog refused).
func Sync(ctx context.Context, src, dst string, so SyncOptions, opts ...Option) (*SyncReport, error) {
	o := makeOptions(opts...)
	sl, err := ParseLocation(src, opts...)
	if err != nil {
		return nil, fmt.Errorf("sync source: %w", err)
	}
	dl, err := ParseLocation(dst, opts...)
	if err != nil {
		return nil, fmt.Errorf("sync destination: %w", err)
	}
	start := time.Now()
	s, err := newSyncer(ctx, sl.Registry, dl.Registry, so, o, []string{"registry:catalog:*"})
	if err != nil {
		return nil, err
	}
	repos := []string{sl.Path}
	named := sl.Path != "" // repositories the user named (not listed by the catalog)
	if sl.Path == "" {
		if repos, err = s.src.catalog(ctx); err != nil {
			// registries without a catalog (Docker Hub): --repo values that are plain
			// names are the list.
			lit := literalRepos(so.Repos)
			if lit == nil {
				return nil, fmt.Errorf("sync: %w (name a repository in the source, or give --repo with plain names)", err)
			}
			repos, named = lit, true
		}
	}
	repos, err = filterRepos(repos, so.Repos)
	if err != nil {
		return nil, err
	}
	rep := &SyncReport{Source: sl.String(), Destination: dl.String()}
	target := func(r string) string { return path.Join(dl.Path, r) }
	if sl.Path != "" && dl.Path != "" {
		target = func(string) string { return dl.Path } // repository to repository
	}
	// tags of every repository (in parallel), then every image (in parallel).
	type job struct{ srcRepo, dstRepo, tag string }
	var (
		mu   sync.Mutex
		jobs []job
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.imageJobs)
	for _, r := range repos {
		g.Go(func() error {
			tags, err := s.src.tags(gctx, r)
			if err != nil {
				if isNotFound(err) && !named { // listed but empty (all tags deleted)
					return nil
				}
				s.record(rep, ImageResult{Source: sl.Registry.RegistryStr() + "/" + r, Destination: dl.Registry.RegistryStr() + "/" + target(r), Status: StatusFailed, Error: err.Error()})
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			for _, t := range tags {
				if s.tagRe != nil && !s.tagRe.MatchString(t) {
					continue
				}
				if !so.NoReferrers && isFallbackTag(t) {
					continue // moved along with its subject
				}
				jobs = append(jobs, job{srcRepo: r, dstRepo: target(r), tag: t})
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.Slice(jobs, func(i, j int) bool {
		if jobs[i].srcRepo != jobs[j].srcRepo {
			return jobs[i].srcRepo < jobs[j].srcRepo
		}
		return jobs[i].tag < jobs[j].tag
	})
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(s.imageJobs)
	for _, j := range jobs {
		g.Go(func() error {
			s.record(rep, s.copyImage(gctx, j.srcRepo, j.dstRepo, j.tag, j.tag))
			return nil
		})
	}
	_ = g.Wait()
	s.finish(rep, start)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// Copy copies one image (a tag or a digest, with its referrers) from src to dst, both full
// references; dst without a tag takes src's tag (or only the digest, for src@digest).
func Copy(ctx context.Context, src, dst string, so SyncOptions, opts ...Option) (*SyncReport, error) {
	o := makeOptions(opts...)
	sr, err := name.ParseReference(src, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("copy source %q: %w", src, err)
	}
	dr, err := parseDestination(dst, sr, o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	s, err := newSyncer(ctx, sr.Context().Registry, dr.Context().Registry, so, o, []string{
		sr.Context().Scope("pull"),
	})
	if err != nil {
		return nil, err
	}
	rep := &SyncReport{Source: sr.String(), Destination: dr.String()}
	dstRef := sr.Identifier()
	if t, ok := dr.(name.Tag); ok {
		dstRef = t.TagStr()
	}
	s.record(rep, s.copyImage(ctx, sr.Context().RepositoryStr(), dr.Context().RepositoryStr(), sr.Identifier(), dstRef))
	s.finish(rep, start)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// parseDestination reads dst as a full reference, or as a repository that takes src's
// tag or digest.
func parseDestination(dst string, src name.Reference, o *options) (name.Reference, error) {
	if !strings.Contains(dst[strings.LastIndex(dst, "/")+1:], ":") && !strings.Contains(dst, "@") {
		repo, err := name.NewRepository(dst, o.nameOptions()...)
		if err != nil {
			return nil, fmt.Errorf("copy destination %q: %w", dst, err)
		}
		switch s := src.(type) {
		case name.Tag:
			return repo.Tag(s.TagStr()), nil
		default:
			return repo.Digest(src.Identifier()), nil
		}
	}
	r, err := name.ParseReference(dst, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("copy destination %q: %w", dst, err)
	}
	return r, nil
}

func filterRepos(repos, patterns []string) ([]string, error) {
	if len(patterns) == 0 {
		return repos, nil
	}
	var res []*regexp.Regexp
	for _, p := range patterns {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			return nil, fmt.Errorf("--repo %q: %w", p, err)
		}
		res = append(res, re)
	}
	var out []string
	for _, r := range repos {
		for _, re := range res {
			if re.MatchString(r) {
				out = append(out, r)
				break
			}
		}
	}
	return out, nil
}

// literalRepos returns patterns when every one is a plain repository name, else nil.
func literalRepos(patterns []string) []string {
	if len(patterns) == 0 {
		return nil
	}
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil
		}
		if _, complete := re.LiteralPrefix(); !complete && !plainName.MatchString(p) {
			return nil
		}
	}
	return patterns
}

// plainName is a repository name whose only regexp metacharacters are the dots of a name.
var plainName = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)

var fallbackTagRe = regexp.MustCompile(`^sha256-[a-f0-9]{64}$`)

func isFallbackTag(t string) bool { return fallbackTagRe.MatchString(t) }

// syncer holds what one Sync or Copy shares: both wires, the blob semaphore and the blobs
// already moved in this run (so a blob shared by images is sent once and mounted after).
type syncer struct {
	o         *options
	so        SyncOptions
	src, dst  *wire
	tagRe     *regexp.Regexp
	platform  v1.Platform
	blobSem   chan struct{}
	imageJobs int

	mu    sync.Mutex
	blobs map[v1.Hash]*blobCopy
}

// blobCopy is one blob moving to the destination in this run.
type blobCopy struct {
	done chan struct{}
	repo string // destination repository that holds it once done
	err  error
}

func newSyncer(ctx context.Context, src, dst name.Registry, so SyncOptions, o *options, srcScopes []string) (*syncer, error) {
	s := &syncer{o: o, so: so, blobs: map[v1.Hash]*blobCopy{}, imageJobs: so.ImageJobs}
	if s.imageJobs <= 0 {
		s.imageJobs = 8
	}
	s.blobSem = make(chan struct{}, o.jobs)
	s.platform = HostPlatform()
	if o.platform != nil {
		s.platform = *o.platform
	}
	if so.Tags != "" {
		re, err := regexp.Compile(so.Tags)
		if err != nil {
			return nil, fmt.Errorf("--tags %q: %w", so.Tags, err)
		}
		s.tagRe = re
	}
	var err error
	if s.src, err = newWire(ctx, src, o, srcScopes); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if s.dst, err = newWire(ctx, dst, o, nil); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return s, nil
}

func (s *syncer) record(rep *SyncReport, r ImageResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rep.Images = append(rep.Images, r)
	switch r.Status {
	case StatusCopied:
		rep.Copied++
	case StatusSkipped:
		rep.Skipped++
	default:
		rep.Failed++
	}
	rep.Blobs += r.Blobs
	rep.BlobsSkipped += r.BlobsSkipped
	rep.Bytes += r.Bytes
	if s.so.OnImage != nil {
		s.so.OnImage(r)
	}
}

func (s *syncer) finish(rep *SyncReport, start time.Time) {
	sort.SliceStable(rep.Images, func(i, j int) bool { return rep.Images[i].Source < rep.Images[j].Source })
	rep.SourceRequests = s.src.requests.Load()
	rep.DestinationRequests = s.dst.requests.Load()
	rep.DestinationHeads = s.dst.heads.Load()
	rep.Duration = time.Since(start)
}

// imageCopy counts what one image moved (shared by the goroutines copying its parts).
type imageCopy struct {
	srcRepo, dstRepo     string
	manifests, referrers atomic.Int64
	blobs, skipped       atomic.Int64
	bytes                atomic.Int64
	seenMu               sync.Mutex
	seenManifest         map[v1.Hash]bool
	referrersDone        map[v1.Hash]bool
	fallbackUpdates      sync.Mutex
}

// copyImage copies srcRepo:ref to dstRepo:dstRef (ref and dstRef are tags, or digests).
func (s *syncer) copyImage(ctx context.Context, srcRepo, dstRepo, ref, dstRef string) ImageResult {
	res := ImageResult{
		Source:      s.src.reg.RegistryStr() + "/" + srcRepo + sep(ref) + ref,
		Destination: s.dst.reg.RegistryStr() + "/" + dstRepo + sep(dstRef) + dstRef,
	}
	ic := &imageCopy{srcRepo: srcRepo, dstRepo: dstRepo, seenManifest: map[v1.Hash]bool{}, referrersDone: map[v1.Hash]bool{}}
	err := s.copyTop(ctx, ic, ref, dstRef, &res)
	res.Manifests = int(ic.manifests.Load())
	res.Referrers = int(ic.referrers.Load())
	res.Blobs = int(ic.blobs.Load())
	res.BlobsSkipped = int(ic.skipped.Load())
	res.Bytes = ic.bytes.Load()
	switch {
	case err != nil:
		res.Status, res.Error = StatusFailed, err.Error()
	case res.Status == "":
		res.Status = StatusCopied
	}
	return res
}

func sep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

func (s *syncer) copyTop(ctx context.Context, ic *imageCopy, ref, dstRef string, res *ImageResult) error {
	m, found, err := s.src.getManifest(ctx, ic.srcRepo, ref)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%s: manifest unknown", res.Source)
	}
	res.Digest = m.digest.String()
	have, found, err := s.dst.headManifest(ctx, ic.dstRepo, dstRef)
	if err != nil {
		return fmt.Errorf("%s: %w", res.Destination, err)
	}
	if found && have.Digest == m.digest {
		complete, err := s.childrenPresent(ctx, ic, m)
		if err != nil {
			return err
		}
		if complete {
			res.Status = StatusSkipped
			if !s.so.NoReferrers {
				return s.copyReferrers(ctx, ic, m.digest)
			}
			return nil
		}
	}
	return s.copyManifest(ctx, ic, m, dstRef)
}

// childrenPresent says whether the destination holds every child of index m that this
// sync would copy (always true for an image manifest: the manifest PUT checked its blobs).
func (s *syncer) childrenPresent(ctx context.Context, ic *imageCopy, m manifest) (bool, error) {
	if !m.mediaType.IsIndex() {
		return true, nil
	}
	idx, err := v1.ParseIndexManifest(bytesReader(m.raw))
	if err != nil {
		return false, err
	}
	for _, c := range s.selectChildren(idx) {
		_, ok, err := s.dst.headManifest(ctx, ic.dstRepo, c.Digest.String())
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// selectChildren returns the children of an index that this sync copies.
func (s *syncer) selectChildren(idx *v1.IndexManifest) []v1.Descriptor {
	if s.so.All {
		return idx.Manifests
	}
	var out []v1.Descriptor
	for _, c := range idx.Manifests {
		switch {
		case c.Platform == nil:
			// no platform: a nested index or an artifact, keep it
			out = append(out, c)
		case c.Platform.OS == "unknown":
			// attestation manifests: they belong to the platforms copied
			if ref := c.Annotations["vnd.docker.reference.digest"]; ref != "" {
				for _, o := range idx.Manifests {
					if o.Digest.String() == ref && o.Platform != nil && o.Platform.Satisfies(s.platform) {
						out = append(out, c)
					}
				}
			}
		case c.Platform.Satisfies(s.platform):
			out = append(out, c)
		}
	}
	return out
}

// copyManifest copies manifest m (already fetched from the source), everything it refers
// to, and its referrers; then stores it under ref at the destination.
func (s *syncer) copyManifest(ctx context.Context, ic *imageCopy, m manifest, ref string) error {
	var partialIndex *v1.Descriptor // the platform image, if an index is copied in part
	switch {
	case m.mediaType.IsIndex():
		idx, err := v1.ParseIndexManifest(bytesReader(m.raw))
		if err != nil {
			return fmt.Errorf("index %s: %w", m.digest, err)
		}
		kids := s.selectChildren(idx)
		if len(kids) < len(idx.Manifests) {
			for _, k := range kids {
				if k.Platform != nil && k.Platform.OS != "unknown" {
					k := k
					partialIndex = &k
					break
				}
			}
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, c := range kids {
			g.Go(func() error { return s.copyChild(gctx, ic, c.Digest) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	default:
		var mf struct {
			Config *v1.Descriptor  `json:"config"`
			Layers []v1.Descriptor `json:"layers"`
			Blobs  []v1.Descriptor `json:"blobs"` // OCI artifact manifest (draft)
		}
		if err := json.Unmarshal(m.raw, &mf); err != nil {
			return fmt.Errorf("manifest %s: %w", m.digest, err)
		}
		blobs := append(mf.Layers, mf.Blobs...)
		if mf.Config != nil {
			blobs = append([]v1.Descriptor{*mf.Config}, blobs...)
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, b := range blobs {
			if len(b.URLs) > 0 || !b.MediaType.IsDistributable() {
				continue // foreign layers stay where their URLs point
			}
			g.Go(func() error { return s.copyBlob(gctx, ic, b) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	hdr, err := s.dst.putManifest(ctx, ic.dstRepo, ref, m)
	if err != nil && partialIndex != nil && !strings.Contains(ref, ":") {
		// the registry wants every child of an index: give it the platform's image.
		child, found, gerr := s.src.getManifest(ctx, ic.srcRepo, partialIndex.Digest.String())
		if gerr == nil && found {
			hdr, err = s.dst.putManifest(ctx, ic.dstRepo, ref, child)
		}
	}
	if err != nil {
		return err
	}
	ic.manifests.Add(1)
	s.noteSubject(ctx, ic, m, hdr)
	if !s.so.NoReferrers {
		return s.copyReferrers(ctx, ic, m.digest)
	}
	return nil
}

// copyChild copies the manifest d of the source repository by digest, unless the
// destination has it already.
func (s *syncer) copyChild(ctx context.Context, ic *imageCopy, d v1.Hash) error {
	ic.seenMu.Lock()
	seen := ic.seenManifest[d]
	ic.seenManifest[d] = true
	ic.seenMu.Unlock()
	if seen {
		return nil
	}
	_, ok, err := s.dst.headManifest(ctx, ic.dstRepo, d.String())
	if err != nil {
		return err
	}
	if ok {
		if !s.so.NoReferrers {
			return s.copyReferrers(ctx, ic, d)
		}
		return nil
	}
	m, found, err := s.src.getManifest(ctx, ic.srcRepo, d.String())
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("manifest %s/%s@%s: not found in the source", s.src.reg, ic.srcRepo, d)
	}
	return s.copyManifest(ctx, ic, m, d.String())
}

// copyReferrers copies the manifests that refer to d (and theirs, recursively).
func (s *syncer) copyReferrers(ctx context.Context, ic *imageCopy, d v1.Hash) error {
	ic.seenMu.Lock()
	done := ic.referrersDone[d]
	ic.referrersDone[d] = true
	ic.seenMu.Unlock()
	if done {
		return nil
	}
	descs, fallback, err := s.src.referrers(ctx, ic.srcRepo, d)
	if err != nil {
		return err
	}
	for _, r := range descs {
		before := ic.manifests.Load()
		if err := s.copyChild(ctx, ic, r.Digest); err != nil {
			return fmt.Errorf("referrer %s of %s: %w", r.Digest, d, err)
		}
		if ic.manifests.Load() > before {
			ic.referrers.Add(1)
		}
	}
	if fallback != nil {
		// the source keeps referrers under the tag schema: so does the destination.
		if have, ok, err := s.dst.headManifest(ctx, ic.dstRepo, fallbackTag(d)); err == nil && (!ok || have.Digest != fallback.digest) {
			if _, err := s.dst.putManifest(ctx, ic.dstRepo, fallbackTag(d), *fallback); err != nil {
				return err
			}
		}
	}
	return nil
}

// noteSubject keeps the destination's fallback tag up to date when m has a subject and the
// destination did not answer with OCI-Subject (it has no referrers API).
func (s *syncer) noteSubject(ctx context.Context, ic *imageCopy, m manifest, hdr http.Header) {
	if hdr.Get("OCI-Subject") != "" {
		return
	}
	var mf struct {
		MediaType    types.MediaType   `json:"mediaType"`
		ArtifactType string            `json:"artifactType"`
		Config       *v1.Descriptor    `json:"config"`
		Subject      *v1.Descriptor    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if json.Unmarshal(m.raw, &mf) != nil || mf.Subject == nil {
		return
	}
	ic.fallbackUpdates.Lock()
	defer ic.fallbackUpdates.Unlock()
	tag := fallbackTag(mf.Subject.Digest)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if cur, ok, err := s.dst.getManifest(ctx, ic.dstRepo, tag); err == nil && ok {
		_ = json.Unmarshal(cur.raw, &idx)
	}
	for _, d := range idx.Manifests {
		if d.Digest == m.digest {
			return
		}
	}
	desc := v1.Descriptor{MediaType: m.mediaType, Digest: m.digest, Size: int64(len(m.raw)), ArtifactType: mf.ArtifactType, Annotations: mf.Annotations}
	if desc.ArtifactType == "" && mf.Config != nil {
		desc.ArtifactType = string(mf.Config.MediaType)
	}
	idx.Manifests = append(idx.Manifests, desc)
	raw, err := json.Marshal(idx)
	if err != nil {
		return
	}
	h, _, _ := v1.SHA256(bytesReader(raw))
	_, _ = s.dst.putManifest(ctx, ic.dstRepo, tag, manifest{raw: raw, mediaType: types.OCIImageIndex, digest: h})
}

// copyBlob makes the destination repository hold blob b: skipped when it has it, mounted
// from the repository that received it earlier in this run (or from the source repository
// when source and destination are one registry), else streamed from the source.
func (s *syncer) copyBlob(ctx context.Context, ic *imageCopy, b v1.Descriptor) error {
	s.mu.Lock()
	bc, moving := s.blobs[b.Digest]
	if !moving {
		bc = &blobCopy{done: make(chan struct{}), repo: ic.dstRepo}
		s.blobs[b.Digest] = bc
	}
	s.mu.Unlock()

	if moving {
		select {
		case <-bc.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if bc.err == nil {
			if bc.repo == ic.dstRepo {
				ic.skipped.Add(1)
				return nil
			}
			return s.sendBlob(ctx, ic, b, bc.repo)
		}
		// the first attempt failed: try on our own.
		return s.sendBlob(ctx, ic, b, "")
	}
	from := ""
	if s.src.reg.RegistryStr() == s.dst.reg.RegistryStr() && ic.srcRepo != ic.dstRepo {
		from = ic.srcRepo // within one registry: a mount, no bytes move
	}
	err := s.sendBlob(ctx, ic, b, from)
	bc.err = err
	close(bc.done)
	return err
}

// sendBlob mounts or uploads one blob (unless the destination has it), holding a slot of
// the blob semaphore. The bytes stream from the source as they are sent; a failed upload
// fetches them again.
func (s *syncer) sendBlob(ctx context.Context, ic *imageCopy, b v1.Descriptor, mountFrom string) error {
	select {
	case s.blobSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.blobSem }()
	var sent *countReader
	open := func() (io.ReadCloser, error) {
		rc, err := s.src.getBlob(ctx, ic.srcRepo, b.Digest)
		if err != nil {
			return nil, err
		}
		s.o.progress.expect("copy", b.Digest, b.Size)
		body := s.o.progress.reader(b.Digest, rc)
		sent = &countReader{r: body, c: body}
		return sent, nil
	}
	outcome, err := s.dst.pushBlob(ctx, ic.dstRepo, b.Digest, b.Size, open, mountFrom, false)
	if err != nil {
		return fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	switch outcome {
	case blobExisted:
		ic.skipped.Add(1)
	case blobMounted:
		ic.blobs.Add(1)
	default:
		if sent.n != b.Size {
			return fmt.Errorf("blob %s: sent %d bytes, descriptor says %d", b.Digest, sent.n, b.Size)
		}
		ic.blobs.Add(1)
		ic.bytes.Add(sent.n)
	}
	return nil
}

// countReader counts what is read through it.
type countReader struct {
	r io.Reader
	c io.Closer
	n int64
}

func (c *countReader) Close() error { return c.c.Close() }

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
