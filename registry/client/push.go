package client

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
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
	w := &wrapper{p: o.progress, action: "push", mounts: o.mounts, repo: ref.Context()}
	var t remote.Taggable
	switch v := src.(type) {
	case v1.ImageIndex:
		t = &progressIndex{index: v, w: w}
	case v1.Image:
		t = &progressImage{Image: v, w: w}
	default:
		return v1.Descriptor{}, fmt.Errorf("push to %s: unsupported source %T", ref, src)
	}
	if err := remote.Push(ref, t, o.remoteOptions(ctx)...); err != nil {
		return v1.Descriptor{}, fmt.Errorf("push to %s: %w", ref, err)
	}
	return desc, nil
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

// wrapper makes layers report progress and, when a mount source is known for a blob,
// turns it into a remote.MountableLayer so ggcr mounts it instead of uploading it.
type wrapper struct {
	p      *Progress
	action string
	mounts map[v1.Hash]name.Reference
	repo   name.Repository
}

func (w *wrapper) layer(l v1.Layer) v1.Layer {
	if w.p == nil && len(w.mounts) == 0 {
		return l
	}
	h, err := l.Digest()
	if err != nil {
		return l
	}
	if size, err := l.Size(); err == nil {
		w.p.expect(w.action, h, size)
	}
	var out v1.Layer = &progressLayer{Layer: l, p: w.p, h: h}
	if from, ok := w.mounts[h]; ok && from.Context() != w.repo && from.Context().Registry == w.repo.Registry {
		out = &remote.MountableLayer{Layer: out, Reference: from}
	}
	return out
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
