package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Pushable is what Push sends: a v1.Image or a v1.ImageIndex.
type Pushable interface {
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

// Push uploads src (a v1.Image or v1.ImageIndex, with every child and blob it refers to)
// to dst and returns the descriptor of the pushed manifest. Manifest and blob bytes are sent
// exactly as src holds them, so the digest at the target equals src's digest. Blobs move in
// parallel (WithJobs); a blob or manifest the target already has is not sent again (HEAD);
// blobs named by WithMountFrom are mounted across repositories of the same registry instead
// of uploaded; transient failures are retried (WithRetry).
func Push(ctx context.Context, src Pushable, dst string, opts ...Option) (v1.Descriptor, error) {
	o := makeOptions(opts...)
	ref, err := name.ParseReference(dst, o.nameOptions()...)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("push to %q: %w", dst, err)
	}
	desc, err := describe(src)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	if err := push(ctx, src, desc, ref, o); err != nil {
		return v1.Descriptor{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	return desc, nil
}

// pushPlan is everything one push sends: blobs (deduplicated) and child manifests in an
// order where every manifest comes after what it refers to.
type pushPlan struct {
	blobs     []planBlob
	seen      map[v1.Hash]bool
	manifests []planManifest
}

type planBlob struct {
	h    v1.Hash
	size int64
	open func() (io.ReadCloser, error)
	// optional: a non-distributable layer the source may not hold; skipped if unreadable.
	optional bool
}

type planManifest struct {
	h   v1.Hash
	raw []byte
	mt  types.MediaType
}

func (p *pushPlan) addBlob(b planBlob) {
	if p.seen[b.h] {
		return
	}
	p.seen[b.h] = true
	p.blobs = append(p.blobs, b)
}

func (p *pushPlan) addImage(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	p.addBlob(planBlob{h: m.Config.Digest, size: int64(len(cfg)), open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(cfg)), nil
	}})
	for _, d := range m.Layers {
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		p.addBlob(planBlob{h: d.Digest, size: d.Size, open: l.Compressed, optional: !d.MediaType.IsDistributable()})
	}
	return nil
}

func (p *pushPlan) addIndex(idx v1.ImageIndex, depth int) error {
	if depth > 8 {
		return fmt.Errorf("index nesting deeper than 8")
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range m.Manifests {
		var child Pushable
		switch {
		case d.MediaType.IsIndex():
			ci, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return fmt.Errorf("index child %s: %w", d.Digest, err)
			}
			if err := p.addIndex(ci, depth+1); err != nil {
				return err
			}
			child = ci
		case d.MediaType.IsImage():
			img, err := idx.Image(d.Digest)
			if err != nil {
				return fmt.Errorf("index child %s: %w", d.Digest, err)
			}
			if err := p.addImage(img); err != nil {
				return fmt.Errorf("index child %s: %w", d.Digest, err)
			}
			child = img
		default:
			return fmt.Errorf("index child %s has media type %q, which push does not handle", d.Digest, d.MediaType)
		}
		raw, err := child.RawManifest()
		if err != nil {
			return err
		}
		p.manifests = append(p.manifests, planManifest{h: d.Digest, raw: raw, mt: d.MediaType})
	}
	return nil
}

// mountRepositories returns the repositories of ref's registry (other than ref's own)
// that o.mounts names, as a set and in order.
func mountRepositories(o *options, ref name.Reference) ([]name.Repository, map[string]bool) {
	var repos []name.Repository
	seen := map[string]bool{}
	for _, r := range o.mounts {
		rr := r.Context()
		if rr.Registry.RegistryStr() == ref.Context().RegistryStr() && rr.RepositoryStr() != ref.Context().RepositoryStr() && !seen[rr.RepositoryStr()] {
			seen[rr.RepositoryStr()] = true
			repos = append(repos, rr)
		}
	}
	return repos, seen
}

func push(ctx context.Context, src Pushable, desc v1.Descriptor, ref name.Reference, o *options) error {
	mountRepos, seenRepo := mountRepositories(o, ref)
	start := time.Now()
	repo := ref.Context().RepositoryStr()
	w, err := newWire(ctx, ref.Context().Registry, o, repoScopes(ref.Context(), true, mountRepos))
	if err != nil {
		return err
	}
	slog.Debug("push: connected", "registry", ref.Context().RegistryStr(), "elapsed", time.Since(start))
	// Re-push of what the target already has: one HEAD.
	if got, ok, err := w.headManifest(ctx, repo, ref.Identifier()); err == nil && ok && got.Digest == desc.Digest {
		slog.Debug("push: target has the manifest already", "digest", desc.Digest, "elapsed", time.Since(start))
		return nil
	}
	// Mount sources from the store are looked up only now that blobs may have to move;
	// the session is renewed when they add repositories to its token scopes.
	if o.mountStore != nil && o.mounts == nil {
		if m, err := MountSources(ctx, o.mountStore, ref); err == nil && len(m) > 0 {
			o.mounts = m
			if mountRepos, seenRepo = mountRepositories(o, ref); len(mountRepos) > 0 {
				if w, err = newWire(ctx, ref.Context().Registry, o, repoScopes(ref.Context(), true, mountRepos)); err != nil {
					return err
				}
			}
		}
	}
	defer func() { slog.Debug("push: done", "elapsed", time.Since(start)) }()

	plan := &pushPlan{seen: map[v1.Hash]bool{}}
	switch v := src.(type) {
	case v1.ImageIndex:
		err = plan.addIndex(v, 0)
	case v1.Image:
		err = plan.addImage(v)
	default:
		err = fmt.Errorf("unsupported source %T", src)
	}
	if err != nil {
		return err
	}
	for _, b := range plan.blobs {
		o.progress.expect("push", b.h, b.size)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for _, b := range plan.blobs {
		g.Go(func() error {
			from := ""
			if r, ok := o.mounts[b.h]; ok && seenRepo[r.Context().RepositoryStr()] {
				from = r.Context().RepositoryStr()
			}
			open := b.open
			if o.progress.counting() {
				open = func() (io.ReadCloser, error) {
					rc, err := b.open()
					if err != nil {
						return nil, err
					}
					return o.progress.reader(b.h, rc), nil
				}
			}
			if b.optional {
				rc, err := b.open()
				if err != nil {
					o.progress.done(b.h, "skipped (not distributable)")
					return nil
				}
				rc.Close()
			}
			outcome, err := w.pushBlob(gctx, repo, b.h, b.size, open, from, true)
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.h, err)
			}
			o.progress.done(b.h, outcome)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	slog.Debug("push: blobs sent", "blobs", len(plan.blobs), "elapsed", time.Since(start))
	for _, m := range plan.manifests {
		if _, err := w.putManifest(ctx, repo, m.h.String(), manifest{raw: m.raw, mediaType: m.mt, digest: m.h}); err != nil {
			return err
		}
	}
	raw, err := src.RawManifest()
	if err != nil {
		return err
	}
	_, err = w.putManifest(ctx, repo, ref.Identifier(), manifest{raw: raw, mediaType: desc.MediaType, digest: desc.Digest})
	return err
}

// describe returns the descriptor of a manifest as a registry would see it.
func describe(t Pushable) (v1.Descriptor, error) {
	raw, err := t.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := t.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, n, err := v1.SHA256(bytesReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: h}, nil
}

// wrapper makes the layers of images pulled through go-containerregistry report progress.
type wrapper struct {
	p      *Progress
	action string
}

func (w *wrapper) layer(l v1.Layer) v1.Layer {
	if w.p == nil {
		return l
	}
	h, err := l.Digest()
	if err != nil {
		return l
	}
	if size, err := l.Size(); err == nil {
		w.p.expect(w.action, h, size)
	}
	return &progressLayer{Layer: l, p: w.p, h: h}
}

type progressLayer struct {
	v1.Layer
	p *Progress
	h v1.Hash
}

func (l *progressLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return l.p.reader(l.h, rc), nil
}

type progressImage struct {
	v1.Image
	w *wrapper
}

func (i *progressImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for n, l := range ls {
		out[n] = i.w.layer(l)
	}
	return out, nil
}

func (i *progressImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.w.layer(l), nil
}

// index is v1.ImageIndex under a name that does not clash with its ImageIndex method.
type index = v1.ImageIndex

type progressIndex struct {
	index
	w *wrapper
}

func (x *progressIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.index.Image(h)
	if err != nil {
		return nil, err
	}
	return &progressImage{Image: img, w: x.w}, nil
}

func (x *progressIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := x.index.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return &progressIndex{index: idx, w: x.w}, nil
}

// Manifests lets ggcr's partial.Manifests see wrapped children, including non-image
// children (artifacts) that the inner index may expose as layers.
func (x *progressIndex) Manifests() ([]partial.Describable, error) {
	ms, err := partial.Manifests(x.index)
	if err != nil {
		return nil, err
	}
	out := make([]partial.Describable, len(ms))
	for n, m := range ms {
		switch v := m.(type) {
		case v1.ImageIndex:
			out[n] = &progressIndex{index: v, w: x.w}
		case v1.Image:
			out[n] = &progressImage{Image: v, w: x.w}
		case v1.Layer:
			out[n] = x.w.layer(v)
		default:
			out[n] = m
		}
	}
	return out, nil
}
