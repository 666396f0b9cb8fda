package client

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Get fetches the manifest that ref names at its registry, without any blob.
func Get(ctx context.Context, ref string, opts ...Option) (*remote.Descriptor, error) {
	o := makeOptions(opts...)
	r, err := name.ParseReference(ref, o.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pull %q: %w", ref, err)
	}
	desc, err := remote.Get(r, o.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", r, err)
	}
	return desc, nil
}

// Image returns the image that ref names at its registry; for an index, the child for the
// platform of WithPlatform (default: the host). Blobs are fetched lazily, verified against
// their digests, and counted by WithProgress.
func Image(ctx context.Context, ref string, opts ...Option) (v1.Image, error) {
	o := makeOptions(opts...)
	desc, err := Get(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return wrapPulled(img, o), nil
}

// Index returns the index that ref names at its registry.
func Index(ctx context.Context, ref string, opts ...Option) (v1.ImageIndex, error) {
	o := makeOptions(opts...)
	desc, err := Get(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	return &progressIndex{index: idx, w: &wrapper{p: o.progress, action: "pull"}}, nil
}

func wrapPulled(img v1.Image, o *options) v1.Image {
	if o.progress == nil {
		return img
	}
	return &progressImage{Image: img, w: &wrapper{p: o.progress, action: "pull"}}
}
